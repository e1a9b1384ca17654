"""Transactional outbox: a change and the event announcing it commit together; a relay
publishes the events afterwards, in commit order, each with its `Nats-Msg-Id`, however long NATS
was away. The trace context of the change is stored with the row and continued by the relay.

Each row is written once. What is published is kept beside the rows, not on them: a watermark
per outbox (`outbox_watermarks`: the highest id on the bus; every row up to it is published) and
the stream positions each published run of rows took (`outbox_seqs`: one row per run of rows
whose stream sequences follow one another, usually one per round of publishes). Ids follow
commit order because writers take the outbox's turn (`take_turn`) before they insert: no row
can commit later with an id below one already published.

Order on the bus by design, not by timing (a relay that owns its stream: `stream=`): every
instance's relay may publish, but each message states where it must land, with
`Nats-Expected-Last-Sequence` = the stream sequence of the row before it. JetStream stores a
message only if the stream still ends there, so the stream holds the outbox's rows exactly in
id (commit) order, each once, whatever relay is slow, paused, redelivering or stale: a
duplicate within the stream's `duplicate_window` is answered with the sequence it took; a stale
publish after it is refused ("wrong last sequence") and the relay then reads the stream to learn
which rows are already there (`Relay._reconcile`) instead of publishing them again.
"""

from __future__ import annotations

import asyncio
import json
import logging
import zlib
from collections.abc import Awaitable, Callable, Iterable, Sequence
from datetime import UTC, datetime
from typing import Any

from nats.aio.msg import Msg
from nats.js import JetStreamContext, api
from nats.js.errors import APIError, NoStreamResponseError, NotFoundError
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
EXPECTED_LAST_SEQ = "Nats-Expected-Last-Sequence"
RECONCILE_ROUNDS = 10  # rounds of rows a relay reads back, at most, after a refused publish


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
    in (the one starting nearest before it that reaches it: an index seek), its first
    sequence, and the rows of the run before it."""
    ids = list(ids)
    if not ids:
        return {}
    s, row, before = _seqs(table), table.alias("row"), table.alias("before")
    runs = _seqs(table).alias("runs")
    # The nearest run that covers the row (two relays may record overlapping runs: one cut
    # short by a failure, one whole; they agree, as each row is in the stream once).
    first = (select(func.max(runs.c.first_id))
             .where(runs.c.outbox == table.name, runs.c.first_id <= row.c.id,
                    runs.c.last_id >= row.c.id)
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
    round took; the rows themselves are never written again.

    With `stream` (the stream only this outbox writes to), each publish carries
    `Nats-Expected-Last-Sequence`: the server itself keeps the stream in outbox order (see the
    module's docstring). Several instances' relays may then run at once on one database."""

    def __init__(self, engine: AsyncEngine, js: JetStreamContext, table: Table,
                 timeout: float = 5.0, batch_size: int = 500,
                 observe: Callable[[Sequence[Any]], None] | None = None,
                 stream: str | None = None):
        self.engine = engine
        # Told of the rows (subject, payload) read to be published: committed changes, seen
        # whether or not NATS takes them (the registry's keyring).
        self.observe = observe
        self.js = js
        self.table = table
        self.timeout = timeout
        self.batch_size = batch_size
        self.stream = stream
        # A test's hook: awaited with the rows of a round after they are read and before they
        # are sent (a slow relay: a pause, a GC, a reconnect).
        self.before_send: Callable[[Sequence[Any]], Awaitable[None]] | None = None
        self._wake = asyncio.Event()
        self._stopping = False
        self.published_upto = Watermark()  # highest outbox id known to be published
        self.published = 0
        self.reconciled = 0  # rows found already in the stream after a refused publish
        # (the last row this relay knows on the bus, the stream sequence the next must follow)
        self._tail: tuple[int, int] | None = None
        self._inbox: str | None = None
        self._acks: dict[str, asyncio.Future] = {}
        self._token = 0
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
            expect = await self._expected(conn, upto) if rows and self.stream else None
        if not rows:
            await self.published_upto.advance(upto)
            return 0
        if self.observe is not None:
            self.observe(rows)
        if self.before_send is not None:
            await self.before_send(rows)
        seqs.update(await self._publish_rows(list(rows), expect, upto))
        return len(rows)

    async def _expected(self, conn: AsyncConnection, upto: int) -> int:
        """The stream sequence the row after `upto` must follow: that of row `upto`."""
        if self._tail is not None and self._tail[0] == upto:
            return self._tail[1]
        if not upto:
            # Nothing of this outbox recorded on the bus: an empty stream is expected; one
            # that is not is read (a relay may have died before it recorded what it sent).
            return 0
        seq = (await seqs_of(conn, self.table, [upto])).get(upto)
        if seq is not None:
            return seq
        # Rows published before sequences were kept: follow whatever the stream holds.
        assert self.stream is not None
        return (await self.js.stream_info(self.stream)).state.last_seq

    async def _publish_rows(self, rows: list, expect: int | None = None,
                            upto: int = 0) -> dict[str, int]:
        """One pipelined round of publishes; the prefix that made it is marked published.
        With `expect`, a refused publish sends the relay to the stream to see what is there."""
        futures = await self._send(rows, expect)
        try:
            acks = await gather_acks(futures, self.timeout)
        finally:
            self._forget(futures)
        done = []
        for row, ack in zip(rows, acks, strict=True):
            if isinstance(ack, BaseException):
                break  # the rest go again next round, deduplicated by Nats-Msg-Id
            done.append((row.id, row.event_id, ack.seq))
        follow: int | None = None
        if len(done) < len(rows) and expect is not None:
            # Refused, or no answer: the stream may hold some of the rest already (another
            # relay's, or this one's answered too late). Take them from the stream as they are.
            after = done[-1][2] if done else expect
            try:
                found, follow = await self._reconcile(rows[len(done):], after)
            except Exception as exc:  # NATS away: what did make it is marked; retried later
                log.debug("could not read stream %s back: %r", self.stream, exc)
                found = []
            done += found
            self.reconciled += len(found)
        if done:
            await self._mark(done)
            self._tail = (done[-1][0], done[-1][2])
        if follow is not None:
            # The stream goes on past our last row with messages not from this outbox (or it
            # is shorter than recorded): the next row follows the stream's end.
            self._tail = (done[-1][0] if done else upto, follow)
        if len(done) < len(rows) and follow is None and (expect is None or not done):
            # (With expectations, a round that recorded some rows goes on at once: the rest
            # were refused only for following a row the server already had.)
            raise first_error(acks) or RuntimeError("outbox rows not published")
        return {event_id: seq for _, event_id, seq in done}

    async def _reconcile(self, rest: list, after: int) -> tuple[list[tuple[int, str, int]],
                                                                int | None]:
        """The rows of `rest` (in order) that the stream already holds after sequence
        `after`, each with its sequence, read back by `Nats-Msg-Id`; and, when the stream
        ends with messages that are not this outbox's rows, the sequence to follow next."""
        assert self.stream is not None
        state = (await self.js.stream_info(self.stream)).state
        last = state.last_seq
        if last < after:
            log.warning("stream %s ends at %d, before %d where outbox %s was last published; "
                        "following the stream", self.stream, last, after, self.table.name)
            return [], last
        found: list[tuple[int, str, int]] = []
        # What limits removed is not there to read; and rows that were sent but not recorded
        # are the last few rounds' at most: a longer stretch (a stream that outlived its
        # outbox's database) is stepped over unread.
        seq = max(after, state.first_seq - 1, last - RECONCILE_ROUNDS * self.batch_size)
        foreign = seq > after
        strangers: list[int] = []
        if foreign:
            log.warning("stream %s holds %d messages after %d where outbox %s was last "
                        "published; reading the last %d", self.stream, last - after, after,
                        self.table.name, last - seq)
        while seq < last:
            seq += 1
            try:
                msg = await self.js.get_msg(self.stream, seq)
            except NotFoundError:  # removed from the stream
                continue
            msg_id = (msg.headers or {}).get(MSG_ID)
            if len(found) < len(rest) and msg_id == rest[len(found)].event_id:
                found.append((rest[len(found)].id, rest[len(found)].event_id, seq))
                foreign = False
            else:
                strangers.append(seq)
                foreign = True
            if len(found) == len(rest):
                break
        if strangers:
            log.warning("stream %s: %d messages (seqs %d..%d) are not rows of outbox %s; its "
                        "next rows follow them", self.stream, len(strangers), strangers[0],
                        strangers[-1], self.table.name)
        return found, (seq if foreign else None)

    async def _send(self, rows: list, expect: int | None) -> list[asyncio.Future]:
        """Publish each row, pipelined, on this relay's own reply subject; one future per row
        for its PubAck (or the server's refusal: nats-py's `publish_async` loses a refusal's
        error and leaves its future to time out)."""
        nc = self.js._nc
        if self._inbox is None:
            self._inbox = nc.new_inbox()
            await nc.subscribe(f"{self._inbox}.*", cb=self._on_ack)
        loop = asyncio.get_running_loop()
        futures: list[asyncio.Future] = []
        one = len(rows) == 1
        # One change: its own producer span (an HTTP request's trace). A batch: one span for
        # the round, each message carrying on the trace it came with.
        span = (producer_span(rows[0].subject, parent_headers=rows[0].headers,
                              **{"messaging.message.id": rows[0].event_id}) if one else
                tracer.start_as_current_span(
                    "outbox publish", kind=SpanKind.PRODUCER,
                    attributes={"messaging.system": "nats",
                                "messaging.batch.message_count": len(rows)}))
        with span:
            try:
                for i, row in enumerate(rows):
                    headers = inject({MSG_ID: row.event_id}) if one else {
                        **(row.headers or {}), MSG_ID: row.event_id}
                    if expect is not None:
                        headers[EXPECTED_LAST_SEQ] = str(expect + i)
                    self._token += 1
                    token = str(self._token)
                    future = self._acks[token] = loop.create_future()
                    futures.append(future)
                    await nc.publish(row.subject, row.payload.encode(),
                                     reply=f"{self._inbox}.{token}", headers=headers)
            except BaseException:
                self._forget(futures)
                raise
        return futures

    def _forget(self, futures: list[asyncio.Future]) -> None:
        """Stop waiting for the answers of a round that is over (late ones are ignored)."""
        pending = set(map(id, futures))
        for token in [t for t, f in self._acks.items() if id(f) in pending]:
            del self._acks[token]

    async def _on_ack(self, msg: Msg) -> None:
        future = self._acks.pop(msg.subject.rsplit(".", 1)[-1], None)
        if future is None or future.done():
            return
        if msg.headers and msg.headers.get("Status") == "503":
            future.set_exception(NoStreamResponseError())
            return
        try:
            answer = json.loads(msg.data)
            if "error" in answer:
                try:
                    APIError.from_error(answer["error"])  # raises the matching error
                except APIError as exc:
                    future.set_exception(exc)
                    return
            future.set_result(api.PubAck.from_response(answer))
        except Exception as exc:  # an answer that is not a PubAck
            future.set_exception(exc)

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
