"""Transactional outbox: a change and the event announcing it commit together; a relay
publishes the events afterwards, in commit order, each with its `Nats-Msg-Id`, however long NATS
was away. The trace context of the change is stored with the row and continued by the relay.

Each row is written once. What is published is kept beside the rows, not on them: a watermark
per outbox (`outbox_watermarks`: the highest id on the bus; every row up to it is published) and
the stream positions each published run of rows took (`outbox_seqs`: one row per run of rows
whose stream sequences follow one another, usually one per round of publishes). Ids follow
commit order because writers take the outbox's turn (`take_turn`) before they insert: no row
can commit later with an id below one already published.
"""

from __future__ import annotations

import asyncio
import logging
import zlib
from collections.abc import Callable, Iterable, Sequence
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
    and_,
    func,
    insert,
    select,
    text,
)
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from shared.bus import MSG_ID, first_error, gather_acks
from shared.db import write_transaction
from shared.envelope import Envelope
from shared.projection import upsert
from shared.retry import Backoff
from shared.telemetry import inject, producer_span, tracer
from shared.watermark import Watermark

log = logging.getLogger(__name__)

WATERMARKS = "outbox_watermarks"
SEQS = "outbox_seqs"


def outbox_table(metadata: MetaData, name: str = "outbox", *extra: Column) -> Table:
    """The outbox's columns; a service may add its own (`extra`) and name it for what it is
    (the events service's accepted events are its outbox). Declares the database's watermark
    and sequence tables with the first outbox."""
    if WATERMARKS not in metadata.tables:
        Table(WATERMARKS, metadata,
              Column("outbox", String(100), primary_key=True),
              Column("published_id", BigInteger, nullable=False))
        Table(SEQS, metadata,
              Column("outbox", String(100), primary_key=True),
              Column("first_id", BigInteger, primary_key=True),
              Column("last_id", BigInteger, primary_key=True),
              Column("first_seq", BigInteger, nullable=False))
    return Table(
        name, metadata,
        Column("id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True,
               autoincrement=True),
        Column("event_id", String(36), nullable=False, unique=True),
        Column("subject", String(200), nullable=False),
        Column("payload", Text, nullable=False),
        Column("headers", JSON, nullable=False),
        Column("created_at", DateTime(timezone=True), nullable=False),
        *extra,
    )


async def take_turn(conn: AsyncConnection, table: Table) -> None:
    """Before inserting into `table`: wait for the writers before this one to commit, so ids
    follow commit order (the relay's watermark relies on it). PostgreSQL hands out ids as rows
    are inserted, not as they commit; a transaction-scoped advisory lock per outbox serialises
    its writers. SQLite has one writer at a time already. Take it early in a transaction that
    also locks rows, so every writer takes its locks in the same order."""
    if conn.dialect.name == "postgresql":
        await conn.execute(text("SELECT pg_advisory_xact_lock(:key)"),
                           {"key": zlib.crc32(f"outbox:{table.name}".encode())})


async def add(conn: AsyncConnection, table: Table, subject: str, envelope: Envelope) -> None:
    """Queue an event inside the caller's transaction."""
    await take_turn(conn, table)
    await conn.execute(insert(table).values(
        event_id=str(envelope.event_id), subject=subject, payload=envelope.model_dump_json(),
        headers=inject(), created_at=datetime.now(UTC)))


async def add_many(conn: AsyncConnection, table: Table,
                   events: list[tuple[str, Envelope]]) -> None:
    """Queue many events (a spreadsheet import) in one statement, in order."""
    if not events:
        return
    await take_turn(conn, table)
    headers, when = inject(), datetime.now(UTC)
    await conn.execute(insert(table), [
        {"event_id": str(env.event_id), "subject": subject, "payload": env.model_dump_json(),
         "headers": headers, "created_at": when} for subject, env in events])


def _watermarks(table: Table) -> Table:
    return table.metadata.tables[WATERMARKS]


def _seqs(table: Table) -> Table:
    return table.metadata.tables[SEQS]


async def published_id(conn: AsyncConnection, table: Table) -> int:
    """The highest id of `table` known to be on the bus: every row up to it is."""
    w = _watermarks(table)
    return (await conn.execute(select(w.c.published_id).where(w.c.outbox == table.name))
            ).scalar() or 0


async def seqs_of(conn: AsyncConnection, table: Table, ids: Iterable[int]) -> dict[int, int]:
    """{id: stream sequence} of the rows among `ids` that are published: the run a row lies
    in (the one starting nearest before it: an index seek), its first sequence, and the rows
    of the run before it."""
    ids = list(ids)
    if not ids:
        return {}
    s, row, before = _seqs(table), table.alias("row"), table.alias("before")
    runs = _seqs(table).alias("runs")
    first = (select(func.max(runs.c.first_id))
             .where(runs.c.outbox == table.name, runs.c.first_id <= row.c.id)
             .scalar_subquery())
    rank = (select(func.count()).select_from(before)
            .where(before.c.id >= s.c.first_id, before.c.id < row.c.id).scalar_subquery())
    result = await conn.execute(
        select(row.c.id, s.c.first_seq + rank)
        .select_from(row.join(s, and_(s.c.outbox == table.name, s.c.first_id == first,
                                      s.c.last_id >= row.c.id)))
        .where(row.c.id.in_(ids)))
    return {i: seq for i, seq in result}


class Relay:
    """Publishes outbox rows in id (commit) order, pipelined: a window of publishes in flight
    on one connection, so the server stores them in the order they were sent. Consumers apply
    registry records by `updated_at`, so even a retried straggler cannot roll a record back.
    After each round, one small transaction moves the watermark and records the sequences the
    round took; the rows themselves are never written again."""

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

    def behind(self) -> None:
        """Rows were committed but not handed to `publish_now`: publish them soon."""
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
        """Publish rows just committed (each with its `id` and `event_id`), after whatever
        was committed before them and is not on the bus yet: {event_id: seq} of those that
        made it. Whatever does not make it stays for the relay; the error is raised."""
        if not rows:
            return {}
        last = max(r.id for r in rows)
        seqs: dict[str, int] = {}
        async with self._lock:
            while self.published_upto.value < last:
                if not await self._publish_pending_locked(seqs):
                    break
        if missing := [r.id for r in rows if r.event_id not in seqs]:
            # Published meanwhile by the relay's own round (or another instance's).
            async with self.engine.connect() as conn:
                found = await seqs_of(conn, self.table, missing)
            seqs.update({r.event_id: found[r.id] for r in rows if r.id in found})
        return {r.event_id: seqs[r.event_id] for r in rows if r.event_id in seqs}

    async def publish_pending(self) -> int:
        """Publish the oldest unpublished rows in order; record the prefix that made it."""
        async with self._lock:
            return await self._publish_pending_locked({})

    async def _publish_pending_locked(self, seqs: dict[str, int]) -> int:
        t = self.table
        async with self.engine.connect() as conn:
            # Another instance's relay may have moved the watermark: start from the higher.
            upto = max(self.published_upto.value, await published_id(conn, t))
            rows = (await conn.execute(
                select(t.c.id, t.c.event_id, t.c.subject, t.c.payload, t.c.headers)
                .where(t.c.id > upto).order_by(t.c.id).limit(self.batch_size))).all()
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
        """The watermark to the last row published, and the sequences the rows took: one
        run for each stretch whose sequences follow one another (a break where the server
        answered a duplicate with the sequence it stored the first time)."""
        runs: list[dict] = []
        last_seq = -1
        for id_, _, seq in done:
            if runs and seq == last_seq + 1:
                runs[-1]["last_id"] = id_
            else:
                runs.append({"outbox": self.table.name, "first_id": id_, "last_id": id_,
                             "first_seq": seq})
            last_seq = seq
        w, upto = _watermarks(self.table), done[-1][0]
        async with write_transaction(self.engine) as conn:
            await conn.execute(upsert(conn, _seqs(self.table)).on_conflict_do_nothing(), runs)
            stmt = upsert(conn, w).values(outbox=self.table.name, published_id=upto)
            await conn.execute(stmt.on_conflict_do_update(
                index_elements=[w.c.outbox], set_={"published_id": stmt.excluded.published_id},
                where=w.c.published_id < stmt.excluded.published_id))
        self.published += len(done)
        await self.published_upto.advance(upto)
