"""Stream-to-table projections: ordered, batched, exact.

A projection reads one stream from the position it has stored, in order, and applies each batch
of messages in one transaction that also stores the new position. Restart or redelivery therefore
never applies a message twice nor skips one, and rebuilding is replay from position 0.
An ephemeral pull consumer without acks delivers the messages, one fetch at a time; the durable
state is the position in the projection's own database. A projection reads its whole stream, so
its seqs must be consecutive: if a fetched batch ever went missing, the gap is noticed and the
projection reads again from its stored position.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable

from nats.aio.msg import Msg
from nats.errors import TimeoutError as NatsTimeout
from nats.js import JetStreamContext
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy
from sqlalchemy import BigInteger, Column, MetaData, String, Table, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from shared.bus import stream_seq
from shared.telemetry import batch_span
from shared.watermark import Watermark

log = logging.getLogger(__name__)

class _Gap(Exception):
    """Messages between the stored position and a batch never arrived."""


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
        self.failing_since: float | None = None
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
        while not self._stopping.is_set():
            sub = None
            try:
                sub = await self._subscribe(await self.load_position())
                await self._consume(sub)
            except _Gap as gap:
                log.warning("projection %s: %s; reading again from the stored position",
                            self.name, gap)
            except Exception as exc:  # NATS away or restarted: read again once it is back
                if self._stopping.is_set():
                    break
                log.warning("projection %s cannot read %s (%r); trying again", self.name,
                            self.stream, exc)
                await asyncio.sleep(1.0)
            finally:
                if sub is not None:
                    await self._unsubscribe(sub)

    async def _subscribe(self, position: int):
        """An ephemeral pull consumer from `position + 1`: we fetch what we can apply (real
        back-pressure), and need no acks, as the position in our database is the truth."""
        config = ConsumerConfig(
            ack_policy=AckPolicy.NONE, inactive_threshold=300, mem_storage=True,
            **({"deliver_policy": DeliverPolicy.BY_START_SEQUENCE, "opt_start_seq": position + 1}
               if position else {"deliver_policy": DeliverPolicy.ALL}))
        log.info("projection %s reading %s from seq %d", self.name, self.stream, position + 1)
        return await self.js.pull_subscribe(self.subject, durable=None, stream=self.stream,
                                            config=config)

    async def _unsubscribe(self, sub) -> None:
        try:
            name = (await sub.consumer_info()).name
            await sub.unsubscribe()
            await self.js.delete_consumer(self.stream, name)
        except Exception:  # already gone (server restarted, connection closed)
            pass

    async def _consume(self, sub) -> None:
        while not self._stopping.is_set():
            try:
                batch = await sub.fetch(self.batch_size, timeout=1.0)
            except (NatsTimeout, TimeoutError):
                continue
            await self._apply_until_done(batch)

    def stop(self) -> None:
        self._stopping.set()

    @property
    def healthy(self) -> bool:
        """False while a batch has been failing for more than half a minute."""
        return self.failing_since is None or time.monotonic() - self.failing_since < 30

    async def _apply_until_done(self, batch: list[Msg]) -> None:
        # Never skip a batch: order matters, so retry until the database takes it.
        delay = 0.2
        while True:
            try:
                await self._apply(batch)
                self.failing_since = None
                return
            except _Gap:
                raise
            except Exception:
                if self._stopping.is_set():
                    raise
                self.failing_since = self.failing_since or time.monotonic()
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
                await self._check_no_gap(stored, fresh)
                if fresh:
                    await self.apply(conn, fresh)
                    await conn.execute(update(self.positions)
                                       .where(self.positions.c.name == self.name)
                                       .values(position=stream_seq(fresh[-1])))
        # Another instance sharing the database may have applied them: the stored position
        # counts as applied here too.
        await self.applied.advance(stream_seq(fresh[-1]) if fresh else stored)

    async def _check_no_gap(self, stored: int, fresh: list[Msg]) -> None:
        """The projection reads its whole stream, whose seqs have no holes: a missing seq means
        the client dropped messages (its buffer overflowed), so read again from `stored`."""
        expected = stored + 1
        for m in fresh:
            if stream_seq(m) != expected:
                first = (await self.js.stream_info(self.stream)).state.first_seq
                if first <= expected:
                    raise _Gap(f"expected seq {expected}, got {stream_seq(m)}")
                log.error("projection %s: seqs %d..%d are no longer in %s; skipped",
                          self.name, expected, first - 1, self.stream)
            expected = stream_seq(m) + 1

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
