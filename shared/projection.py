"""Stream-to-table projections: ordered, batched, exact.

A projection reads one stream from the position it has stored, in order, and applies each batch
of messages in one transaction that also stores the new position. Restart or redelivery therefore
never applies a message twice nor skips one, and rebuilding is replay from position 0.
An ordered consumer (ephemeral, flow-controlled, recreated on any gap) delivers the messages; the
durable state is the position in the projection's own database.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from nats.aio.msg import Msg
from nats.errors import TimeoutError as NatsTimeout
from nats.js import JetStreamContext
from nats.js.api import ConsumerConfig, DeliverPolicy
from sqlalchemy import BigInteger, Column, MetaData, String, Table, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from shared.bus import stream_seq
from shared.telemetry import batch_span
from shared.watermark import Watermark

log = logging.getLogger(__name__)

Apply = Callable[[AsyncConnection, list[Msg]], Awaitable[None]]


def positions_table(metadata: MetaData) -> Table:
    return Table(
        "projection_positions", metadata,
        Column("name", String(100), primary_key=True),
        Column("position", BigInteger, nullable=False),
    )


def upsert(conn: AsyncConnection, table: Table):
    """`INSERT ... ON CONFLICT` for the connection's dialect."""
    return (pg_insert if conn.dialect.name == "postgresql" else sqlite_insert)(table)


class Projection:
    def __init__(self, *, name: str, js: JetStreamContext, stream: str, subject: str,
                 engine: AsyncEngine, positions: Table, apply: Apply, batch_size: int = 500):
        self.name = name
        self.js = js
        self.stream = stream
        self.subject = subject
        self.engine = engine
        self.positions = positions
        self.apply = apply
        self.batch_size = batch_size
        self.applied = Watermark()  # the stream seq applied and committed
        self._stopping = asyncio.Event()

    async def load_position(self) -> int:
        async with self.engine.begin() as conn:
            await conn.execute(upsert(conn, self.positions)
                               .values(name=self.name, position=0)
                               .on_conflict_do_nothing(index_elements=["name"]))
            position = (await conn.execute(
                select(self.positions.c.position).where(self.positions.c.name == self.name)
            )).scalar_one()
        await self.applied.advance(position)
        return position

    async def run(self) -> None:
        start = await self.load_position()
        config = (ConsumerConfig(deliver_policy=DeliverPolicy.BY_START_SEQUENCE,
                                 opt_start_seq=start + 1)
                  if start else ConsumerConfig(deliver_policy=DeliverPolicy.ALL))
        sub = await self.js.subscribe(self.subject, stream=self.stream, ordered_consumer=True,
                                      config=config, pending_msgs_limit=self.batch_size * 20)
        log.info("projection %s reading %s from seq %d", self.name, self.stream, start + 1)
        try:
            while not self._stopping.is_set():
                try:
                    first = await sub.next_msg(timeout=0.5)
                except (NatsTimeout, TimeoutError):
                    continue
                batch = [first]
                while len(batch) < self.batch_size and sub.pending_msgs > 0:
                    batch.append(await sub.next_msg(timeout=1))
                await self._apply_until_done(batch)
        finally:
            try:
                await sub.unsubscribe()
            except Exception:  # connection may already be gone at shutdown
                pass

    def stop(self) -> None:
        self._stopping.set()

    async def _apply_until_done(self, batch: list[Msg]) -> None:
        # Never skip a batch: order matters, so retry until the database takes it.
        delay = 0.2
        while True:
            try:
                await self._apply(batch)
                return
            except Exception:
                if self._stopping.is_set():
                    raise
                log.exception("projection %s failed on seq %d..%d; retrying in %.1fs",
                              self.name, stream_seq(batch[0]), stream_seq(batch[-1]), delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 10)

    async def _apply(self, batch: list[Msg]) -> None:
        with batch_span(f"{self.name} apply", [m.headers for m in batch],
                        **{"tongxin.projection": self.name,
                           "messaging.destination.name": self.stream}):
            async with self.engine.begin() as conn:
                stmt = select(self.positions.c.position).where(
                    self.positions.c.name == self.name)
                if conn.dialect.name == "postgresql":
                    stmt = stmt.with_for_update()  # one writer per projection, even with replicas
                stored = (await conn.execute(stmt)).scalar_one()
                fresh = [m for m in batch if stream_seq(m) > stored]
                if fresh:
                    await self.apply(conn, fresh)
                    await conn.execute(update(self.positions)
                                       .where(self.positions.c.name == self.name)
                                       .values(position=stream_seq(fresh[-1])))
        if fresh:
            await self.applied.advance(stream_seq(fresh[-1]))

    @property
    def position(self) -> int:
        return self.applied.value

    async def wait_for(self, seq: int, timeout: float) -> bool:
        """Wait until this projection has applied `seq`; False on timeout."""
        return await self.applied.reached(seq, timeout)

    async def caught_up(self, timeout: float) -> bool:
        """Wait until everything now in the stream is applied."""
        info = await self.js.stream_info(self.stream)
        return await self.wait_for(info.state.last_seq, timeout)
