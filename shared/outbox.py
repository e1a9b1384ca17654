"""Transactional outbox: a change and the event announcing it commit together; a relay
publishes the events afterwards, in commit order, each with its `Nats-Msg-Id`, however long NATS
was away. The trace context of the change is stored with the row and continued by the relay.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any

from nats.js import JetStreamContext
from opentelemetry.trace import SpanKind
from sqlalchemy import (
    JSON,
    BigInteger,
    Column,
    DateTime,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    bindparam,
    func,
    insert,
    select,
    update,
)
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from shared.bus import MSG_ID, first_error, gather_acks
from shared.db import write_transaction
from shared.envelope import Envelope
from shared.retry import Backoff
from shared.telemetry import inject, producer_span, tracer
from shared.watermark import Watermark

log = logging.getLogger(__name__)


def outbox_table(metadata: MetaData, name: str = "outbox", *extra: Column) -> Table:
    """The outbox's columns; a service may add its own (`extra`) and name it for what it is
    (the events service's accepted events are its outbox)."""
    return Table(
        name, metadata,
        Column("id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True,
               autoincrement=True),
        Column("event_id", String(36), nullable=False, unique=True),
        Column("subject", String(200), nullable=False),
        Column("payload", Text, nullable=False),
        Column("headers", JSON, nullable=False),
        Column("created_at", DateTime(timezone=True), nullable=False),
        Column("published_at", DateTime(timezone=True), nullable=True, index=True),
        Column("seq", BigInteger, nullable=True),
        *extra,
    )


async def add(conn: AsyncConnection, table: Table, subject: str, envelope: Envelope) -> None:
    """Queue an event inside the caller's transaction."""
    await conn.execute(insert(table).values(
        event_id=str(envelope.event_id), subject=subject, payload=envelope.model_dump_json(),
        headers=inject(), created_at=datetime.now(UTC)))


async def add_many(conn: AsyncConnection, table: Table,
                   events: list[tuple[str, Envelope]]) -> None:
    """Queue many events (a spreadsheet import) in one statement, in order."""
    if not events:
        return
    headers, when = inject(), datetime.now(UTC)
    await conn.execute(insert(table), [
        {"event_id": str(env.event_id), "subject": subject, "payload": env.model_dump_json(),
         "headers": headers, "created_at": when} for subject, env in events])


class Relay:
    """Publishes outbox rows in id (commit) order, pipelined: a window of publishes in flight
    on one connection, so the server stores them in the order they were sent. Consumers apply
    registry records by `updated_at`, so even a retried straggler cannot roll a record back."""

    def __init__(self, engine: AsyncEngine, js: JetStreamContext, table: Table,
                 timeout: float = 5.0, batch_size: int = 500,
                 observe: Callable[[Sequence[Any]], None] | None = None):
        self.engine = engine
        # Told of the rows (subject, payload) read to be published: committed changes, seen
        # whether or not NATS takes them (the registry's keyring).
        self.observe = observe
        self.js = js
        self.table = table
        self.timeout = timeout
        self.batch_size = batch_size
        self._wake = asyncio.Event()
        self._stopping = False
        self.published_upto = Watermark()  # highest outbox id known to be published
        self.published = 0
        # One publisher at a time, so the stream takes rows in commit order.
        self._lock = asyncio.Lock()
        self._behind = True  # rows may be waiting from before (a restart): look first

    def behind(self) -> None:
        """Rows were committed but not handed to `publish_now`: look for them first."""
        self._behind = True
        self._wake.set()

    def wake(self) -> None:
        self._wake.set()

    def stop(self) -> None:
        self._stopping = True
        self._wake.set()

    async def run(self) -> None:
        backoff = Backoff(first=0.2, cap=5)
        while not self._stopping:
            try:
                sent = await self.publish_pending()
                backoff.reset()
                if sent:
                    continue  # more may be waiting
            except Exception as exc:
                log.warning("outbox relay could not publish (%s); retrying in %.1fs", exc,
                            backoff.delay)
                await backoff.sleep()
                continue
            try:
                await asyncio.wait_for(self._wake.wait(), timeout=1.0)
            except TimeoutError:
                pass
            self._wake.clear()

    async def wait_published(self, timeout: float) -> bool:
        """After a commit: wait (bounded) until everything committed so far is on the bus, so
        whoever acts on the answer next finds the change in the stream. False on timeout;
        the rows are published later all the same."""
        async with self.engine.connect() as conn:
            upto = (await conn.execute(select(func.max(self.table.c.id)))).scalar() or 0
        self.wake()
        return await self.published_upto.reached(upto, timeout)

    async def publish_now(self, rows: list) -> dict[str, int]:
        """Publish rows just committed (id, event_id, subject, payload, headers), without
        reading them back: {event_id: seq} of those that made it. If earlier rows are still
        waiting (NATS was away), those go first, so the stream keeps commit order. Whatever
        does not make it stays for the relay; the error is raised after the rest is kept."""
        if self.observe is not None:
            self.observe(rows)
        async with self._lock:
            if self._behind:
                seqs: dict[str, int] = {}
                while await self._publish_pending_locked(seqs):
                    pass
                self._behind = False
                return {r.event_id: seqs[r.event_id] for r in rows if r.event_id in seqs}
            try:
                return await self._publish_rows(rows)
            except Exception:
                self._behind = True
                raise

    async def publish_pending(self) -> int:
        """Publish the oldest unpublished rows in order; record the prefix that made it."""
        async with self._lock:
            sent = await self._publish_pending_locked({})
            if not sent:
                self._behind = False
            return sent

    async def _publish_pending_locked(self, seqs: dict[str, int]) -> int:
        t = self.table
        async with self.engine.connect() as conn:
            # Read the highest id first: if nothing is pending after it, all up to it is out
            # (a row committed in between is not counted as published).
            upto = (await conn.execute(select(func.max(t.c.id)))).scalar() or 0
            rows = (await conn.execute(
                select(t.c.id, t.c.event_id, t.c.subject, t.c.payload, t.c.headers)
                .where(t.c.published_at.is_(None)).order_by(t.c.id).limit(self.batch_size)
            )).all()
        if not rows:
            await self.published_upto.advance(upto)
            return 0
        if self.observe is not None:
            self.observe(rows)
        seqs.update(await self._publish_rows(list(rows)))
        return len(rows)

    async def _publish_rows(self, rows: list) -> dict[str, int]:
        """One pipelined round of publishes; the prefix that made it is marked published."""
        futures = []
        if len(rows) == 1:
            # One change or one HTTP request: a producer span of its own, in its trace.
            row = rows[0]
            with producer_span(row.subject, parent_headers=row.headers,
                               **{"messaging.message.id": row.event_id}):
                futures.append(await self.js.publish_async(
                    row.subject, row.payload.encode(), headers=inject({MSG_ID: row.event_id})))
        else:
            # A batch: one span for the round, and each message carries on the trace it
            # came with (a span per message would cost more than the rest of the work).
            with tracer.start_as_current_span(
                    "outbox publish", kind=SpanKind.PRODUCER,
                    attributes={"messaging.system": "nats",
                                "messaging.batch.message_count": len(rows)}):
                for row in rows:
                    futures.append(await self.js.publish_async(
                        row.subject, row.payload.encode(),
                        headers={**(row.headers or {}), MSG_ID: row.event_id}))
        acks = await gather_acks(futures, self.timeout)
        done = []
        for row, ack in zip(rows, acks, strict=True):
            if isinstance(ack, BaseException):
                break  # the rest go again next round, deduplicated by Nats-Msg-Id
            done.append((row.id, row.event_id, ack.seq))
        if done:
            await self._mark(done)
        if len(done) < len(rows):
            raise first_error(acks)  # type: ignore[misc]
        return {event_id: seq for _, event_id, seq in done}

    async def _mark(self, done: list[tuple[int, str, int]]) -> None:
        now = datetime.now(UTC)
        async with write_transaction(self.engine) as conn:
            await conn.execute(
                update(self.table).where(self.table.c.id == bindparam("b_id"))
                .values(published_at=now, seq=bindparam("b_seq")),
                [{"b_id": i, "b_seq": s} for i, _, s in done])
        self.published += len(done)
        await self.published_upto.advance(done[-1][0])
