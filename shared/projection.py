"""Stream-to-table projections: ordered, batched, exact.

A projection reads one stream from the position it has stored, in order, and applies each batch
of messages in one transaction that also stores the new position. Restart or redelivery therefore
never applies a message twice nor skips one, and rebuilding is replay from position 0.
An ephemeral pull consumer without acks delivers the messages, one fetch at a time; the durable
state is the position in the projection's own database. A projection reads its whole stream, so
its seqs must be consecutive: if a fetched batch ever went missing, the gap is noticed and the
projection reads again from its stored position.

No message may stall a projection. While the database or NATS is away, a batch is retried until
they are back (an outage parks nothing). A batch that fails for any other reason is applied in
halves, and halves of those; a message that fails alone is *parked*: a row in `parked`, written
in the transaction that moves the position past it, and logged. The rest keep counting. Parked
messages are applied again (`replay_parked`) when the projection starts, i.e. once a fix is
deployed, and on request (`POST /v1/parked/replay`).
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

from nats.aio.msg import Msg
from nats.errors import TimeoutError as NatsTimeout
from nats.js import JetStreamContext
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy, RawStreamMsg
from nats.js.errors import NotFoundError
from sqlalchemy import (
    BigInteger,
    Column,
    DateTime,
    MetaData,
    String,
    Table,
    delete,
    func,
    select,
    update,
)
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from shared.bus import stream_seq
from shared.db import write_transaction
from shared.retry import Backoff, is_transient
from shared.telemetry import batch_span, tracer
from shared.watermark import Watermark

log = logging.getLogger(__name__)

class _Gap(Exception):
    """Messages between the stored position and a batch never arrived."""


Apply = Callable[[AsyncConnection, list[Any]], Awaitable[None]]
Decode = Callable[[Msg], Any]  # a message -> what `apply` takes (None: nothing to apply)
Before = Callable[[list[Msg]], Awaitable[None]]
Observe = Callable[[list[Msg]], None]


def positions_table(metadata: MetaData) -> Table:
    return Table(
        "projection_positions", metadata,
        Column("name", String(100), primary_key=True),
        Column("position", BigInteger, nullable=False),
    )


def parked_table(metadata: MetaData) -> Table:
    """Messages a projection could not apply: skipped (the position is past them), never lost.
    No payload here (it may hold personal data): the stream keeps it, under `seq`."""
    return Table(
        "parked", metadata,
        Column("name", String(100), primary_key=True),  # the projection
        Column("seq", BigInteger, primary_key=True),
        Column("subject", String(300), nullable=False),
        Column("event_id", String(64), nullable=True),
        Column("event_type", String(100), nullable=True),
        Column("reason", String(500), nullable=False),
        Column("parked_at", DateTime(timezone=True), nullable=False),
    )


def upsert(conn: AsyncConnection, table: Table):
    """`INSERT ... ON CONFLICT` for the connection's dialect."""
    return (pg_insert if conn.dialect.name == "postgresql" else sqlite_insert)(table)


class Projection:
    def __init__(self, *, name: str, js: JetStreamContext, stream: str, subject: str,
                 engine: AsyncEngine, positions: Table, parked: Table, apply: Apply,
                 batch_size: int = 500, decode: Decode | None = None,
                 before: Before | None = None, immediate: bool = True,
                 observe: Observe | None = None,
                 started: Callable[[], Awaitable[None]] | None = None):
        self.name = name
        self.js = js
        self.stream = stream
        self.subject = subject
        self.engine = engine
        self.positions = positions
        self.parked = parked
        self.apply = apply  # (conn, decoded messages) inside the transaction
        self.decode: Decode = decode or (lambda msg: msg)
        self.before = before
        self.immediate = immediate  # SQLite's write lock up front (False: a rebuild's file)
        # A copy in memory beside the table (the keyring): `started` fills it from the table
        # once the stored position is read, and before anything counts as applied; `observe`
        # is told of every message of each batch once the stored position is past it (applied
        # here, or by another instance sharing the database), before `applied` moves.
        self.observe = observe
        self.started = started
        self.batch_size = batch_size
        self.applied = Watermark()  # the stream seq applied and committed
        # Messages this process applied (committed by its own transactions), since it started:
        # with instances sharing a database, each instance's share of the work.
        self.applied_here = 0
        self._fresh = 0  # of the transaction in hand
        self.failing_since: float | None = None
        self._stopping = asyncio.Event()
        self._replayed = False  # parked messages are tried again once per start

    async def load_position(self) -> int:
        async with write_transaction(self.engine, immediate=self.immediate) as conn:
            await conn.execute(upsert(conn, self.positions)
                               .values(name=self.name, position=0)
                               .on_conflict_do_nothing(index_elements=["name"]))
            position = (await conn.execute(
                select(self.positions.c.position).where(self.positions.c.name == self.name)
            )).scalar_one()
        if self.started is not None:
            await self.started()
        await self.applied.advance(position)
        return position

    async def run(self) -> None:
        backoff = Backoff(first=0.5, cap=10)
        while not self._stopping.is_set():
            sub = None
            try:
                position = await self.load_position()
                if not self._replayed:  # a start is a deploy: perhaps of the fix they wait for
                    await self.replay_parked()
                    self._replayed = True
                sub = await self._subscribe(position)
                backoff.reset()
                await self._consume(sub)
            except _Gap as gap:
                log.warning("projection %s: %s; reading again from the stored position",
                            self.name, gap)
            except Exception as exc:  # NATS away or restarted: read again once it is back
                if self._stopping.is_set():
                    break
                log.warning("projection %s cannot read %s (%r); trying again in %.1fs",
                            self.name, self.stream, exc, backoff.delay)
                await backoff.sleep(self._stopping)
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
        async def remove() -> None:
            name = (await sub.consumer_info()).name
            await sub.unsubscribe()
            await self.js.delete_consumer(self.stream, name)

        try:
            # Bounded: with NATS away each request would wait out its timeout, holding up a
            # shutdown; a consumer left behind goes by itself (inactive_threshold).
            await asyncio.wait_for(remove(), 1.0)
        except Exception:  # already gone (server restarted, connection closed), or NATS away
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
        """Apply `batch`, or each of its messages alone, parking those that fail alone. Order
        matters, so an outage is waited out here, however long: nothing is skipped for it."""
        backoff = Backoff(first=0.2, cap=10)
        park: Exception | None = None  # set once this single message is known to be bad
        while True:
            try:
                await self._apply(batch, park)
                self.failing_since = None
                return
            except _Gap:
                raise
            except Exception as exc:
                if self._stopping.is_set():
                    raise
                if park is None and not is_transient(exc):
                    if len(batch) == 1:
                        park = exc
                        continue
                    log.warning("projection %s: seq %d..%d failed together (%s); applying "
                                "them in halves to find the one that fails", self.name,
                                stream_seq(batch[0]), stream_seq(batch[-1]), reason_of(exc))
                    # Halves, not one at a time: one bad message in a batch of 1,000 costs
                    # about 20 transactions, not 1,000.
                    middle = len(batch) // 2
                    await self._apply_until_done(batch[:middle])
                    await self._apply_until_done(batch[middle:])
                    return
                # An outage (or parking itself failed): the same work again, later.
                self.failing_since = self.failing_since or time.monotonic()
                log.warning("projection %s failed on seq %d..%d (%s); retrying in %.1fs",
                            self.name, stream_seq(batch[0]), stream_seq(batch[-1]),
                            reason_of(exc), backoff.delay,
                            exc_info=park is not None)  # parking failing is a bug: trace it
                if await backoff.sleep(self._stopping):
                    raise

    async def _lock_position(self, conn: AsyncConnection) -> int:
        stmt = select(self.positions.c.position).where(self.positions.c.name == self.name)
        if conn.dialect.name == "postgresql":
            stmt = stmt.with_for_update()  # one writer per projection, even with replicas
        return (await conn.execute(stmt)).scalar_one()

    async def _apply(self, batch: list[Msg], park: Exception | None = None) -> None:
        """Apply the batch's new messages and store the new position, in one transaction. With
        `park`, the one message is not applied but parked, for that reason."""
        with batch_span(f"{self.name} apply", [m.headers for m in batch],
                        **{"tongxin.projection": self.name,
                           "messaging.destination.name": self.stream}):
            decoded = [] if park is not None else await self._prepare(batch)
            async with write_transaction(self.engine, immediate=self.immediate) as conn:
                position = await self._write(conn, batch, decoded, park)
        await self._committed(batch if park is None else [], position)

    async def _committed(self, batch: list[Msg], position: int) -> None:
        """After the commit: `batch` (all of it applied) is told to `observe`, and `position`
        counts as applied. Another instance sharing the database may have applied them: the
        stored position counts as applied here too."""
        self.applied_here += self._fresh
        self._fresh = 0
        if batch and self.observe is not None:
            self.observe(batch)
        await self.applied.advance(position)

    async def _prepare(self, batch: list[Msg]) -> list[Any]:
        """Outside the write turn: what the batch waits for, and decoding (which raises for a
        message that cannot be read, so that it is found and parked)."""
        if self.before is not None:
            await self.before(batch)
        return [self.decode(m) for m in batch]

    async def _write(self, conn: AsyncConnection, batch: list[Msg], decoded: list[Any],
                     park: Exception | None = None) -> int:
        """Inside the transaction: apply what is new to this projection (or park the one
        message, with `park`) and store the position; returns it."""
        stored = await self._lock_position(conn)
        fresh = [m for m in batch if stream_seq(m) > stored]
        await self._check_no_gap(stored, fresh)
        self._fresh = len(fresh) if park is None else 0  # a parked one is not applied
        if not fresh:
            return stored
        if park is None:
            await self.apply(conn, [d for m, d in zip(batch, decoded, strict=True)
                                    if stream_seq(m) > stored and d is not None])
            # Parked before a rebuild from 0, applied now: no longer parked.
            await conn.execute(delete(self.parked).where(
                self.parked.c.name == self.name,
                self.parked.c.seq.between(stream_seq(fresh[0]), stream_seq(fresh[-1]))))
        else:
            await self._park(conn, fresh[0], park)
            # Never the payload: it may hold personal data; the stream keeps it under seq.
            log.error("projection %s parked seq %d on %s: %s", self.name, stream_seq(fresh[0]),
                      fresh[0].subject, reason_of(park))
        await conn.execute(update(self.positions).where(self.positions.c.name == self.name)
                           .values(position=stream_seq(fresh[-1])))
        return stream_seq(fresh[-1])

    async def _park(self, conn: AsyncConnection, msg: Msg, exc: Exception) -> None:
        event_id, event_type = _identify(msg.data)
        row = {"name": self.name, "seq": stream_seq(msg), "subject": msg.subject[:300],
               "event_id": event_id, "event_type": event_type, "reason": reason_of(exc),
               "parked_at": datetime.now(UTC)}
        stmt = upsert(conn, self.parked).values(row)
        # Parked again on a rebuild from position 0: the newest reason wins.
        await conn.execute(stmt.on_conflict_do_update(
            index_elements=["name", "seq"],
            set_={c: stmt.excluded[c] for c in ("subject", "event_id", "event_type", "reason",
                                                "parked_at")}))

    async def replay_parked(self) -> tuple[int, int]:
        """Apply each parked message again, alone, fetched from the stream by its seq: applied,
        its parked row goes in the same transaction; failing, the row stays with the new
        reason. Returns (replayed, still parked). An outage raises (nothing is lost)."""
        p = self.parked
        async with self.engine.connect() as conn:
            seqs = list((await conn.execute(
                select(p.c.seq).where(p.c.name == self.name).order_by(p.c.seq))).scalars())
        replayed = 0
        for seq in seqs:
            try:
                msg = _as_msg(self.js, self.stream, await self.js.get_msg(self.stream, seq))
            except NotFoundError:  # removed from the stream (limits, or by hand)
                await self._keep_parked(seq, "NotFoundError: no longer in the stream")
                continue
            try:
                with batch_span(f"{self.name} replay", [msg.headers],
                                **{"tongxin.projection": self.name,
                                   "messaging.destination.name": self.stream}):
                    if self.before is not None:
                        await self.before([msg])
                    decoded = self.decode(msg)
                    async with write_transaction(self.engine, immediate=self.immediate) as conn:
                        # One writer, as in _apply; a seq past the position (a rebuild from 0
                        # under way) is left for the stream to bring, in order.
                        if seq > await self._lock_position(conn):
                            continue
                        mine = p.c.name == self.name, p.c.seq == seq
                        if (await conn.execute(delete(p).where(*mine))).rowcount:
                            await self.apply(conn, [] if decoded is None else [decoded])
                            if self.observe is not None:
                                self.observe([msg])
                            replayed += 1  # (else another instance replayed it just now)
                            log.info("projection %s applied parked seq %d", self.name, seq)
            except Exception as exc:
                if is_transient(exc):
                    raise
                await self._keep_parked(seq, reason_of(exc))
                log.error("projection %s: parked seq %d on %s still fails: %s", self.name, seq,
                          msg.subject, reason_of(exc))
        return replayed, len(seqs) - replayed

    async def _keep_parked(self, seq: int, reason: str) -> None:
        async with write_transaction(self.engine, immediate=self.immediate) as conn:
            await conn.execute(update(self.parked)
                               .where(self.parked.c.name == self.name, self.parked.c.seq == seq)
                               .values(reason=reason[:500]))

    async def parked_summary(self) -> tuple[int, dict | None]:
        """How many messages this projection has parked, and the newest of them."""
        p = self.parked
        async with self.engine.connect() as conn:
            count = (await conn.execute(
                select(func.count()).select_from(p).where(p.c.name == self.name))).scalar_one()
            newest = None
            if count:
                row = (await conn.execute(select(p).where(p.c.name == self.name)
                                          .order_by(p.c.parked_at.desc(), p.c.seq.desc())
                                          .limit(1))).one()
                newest = parked_json(row)
        return count, newest

    async def list_parked(self, limit: int, offset: int = 0) -> list[dict]:
        p = self.parked
        async with self.engine.connect() as conn:
            rows = (await conn.execute(select(p).where(p.c.name == self.name)
                                       .order_by(p.c.seq).limit(limit).offset(offset))).all()
        return [parked_json(r) for r in rows]

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


class ProjectionGroup:
    """Projections of one stream on one database, fed by one consumer and written in one
    transaction a batch: each message is fetched and decoded once for all of them, and a batch
    costs one turn to write and one commit, not one per projection. Each member keeps its own
    position (a member rebuilt, or new, catches up while the others pass over what they have),
    its parked messages and its wait for `min_seq`.

    A batch that some member cannot apply (a message it cannot read or count) is applied by
    each member on its own instead, halving and parking as a lone projection does: the others
    are never held back by it. An outage is waited out for all of them together."""

    def __init__(self, name: str, members: list[Projection]):
        first = members[0]
        assert all((m.stream, m.engine) == (first.stream, first.engine) for m in members)
        self.name = name
        self.members = members
        self.batch_size = max(m.batch_size for m in members)

    @property
    def stopping(self) -> bool:
        return any(m._stopping.is_set() for m in self.members)

    def stop(self) -> None:
        for m in self.members:
            m.stop()

    @property
    def healthy(self) -> bool:
        return all(m.healthy for m in self.members)

    async def run(self) -> None:
        lead = self.members[0]
        backoff = Backoff(first=0.5, cap=10)
        while not self.stopping:
            sub = None
            try:
                start = min([await m.load_position() for m in self.members])
                for m in self.members:
                    if not m._replayed:  # a start is a deploy: perhaps of the fix they wait for
                        await m.replay_parked()
                        m._replayed = True
                sub = await lead._subscribe(start)
                backoff.reset()
                while not self.stopping:
                    try:
                        batch = await sub.fetch(self.batch_size, timeout=1.0)
                    except (NatsTimeout, TimeoutError):
                        continue
                    await self._apply_until_done(batch)
            except _Gap as gap:
                log.warning("projections %s: %s; reading again from the stored positions",
                            self.name, gap)
            except Exception as exc:  # NATS away or restarted: read again once it is back
                if self.stopping:
                    break
                log.warning("projections %s cannot read %s (%r); trying again in %.1fs",
                            self.name, lead.stream, exc, backoff.delay)
                await backoff.sleep(lead._stopping)
            finally:
                if sub is not None:
                    await lead._unsubscribe(sub)

    async def _apply_until_done(self, batch: list[Msg]) -> None:
        backoff = Backoff(first=0.2, cap=10)
        while True:
            try:
                await self._apply(batch)
                for m in self.members:
                    m.failing_since = None
                return
            except _Gap:
                raise
            except Exception as exc:
                if self.stopping:
                    raise
                if not is_transient(exc):
                    log.warning("projections %s: seq %d..%d failed together (%s); each "
                                "projection applies them on its own", self.name,
                                stream_seq(batch[0]), stream_seq(batch[-1]), reason_of(exc))
                    for m in self.members:
                        await m._apply_until_done(batch)
                    return
                now = time.monotonic()
                for m in self.members:
                    m.failing_since = m.failing_since or now
                log.warning("projections %s failed on seq %d..%d (%s); retrying in %.1fs",
                            self.name, stream_seq(batch[0]), stream_seq(batch[-1]),
                            reason_of(exc), backoff.delay)
                if await backoff.sleep(self.members[0]._stopping):
                    raise

    async def _apply(self, batch: list[Msg]) -> None:
        lead = self.members[0]
        with batch_span(f"{self.name} apply", [m.headers for m in batch],
                        **{"tongxin.projection": self.name,
                           "messaging.destination.name": lead.stream}):
            decoded = [await m._prepare(batch) for m in self.members]
            positions = []
            async with write_transaction(lead.engine, immediate=lead.immediate) as conn:
                for m, d in zip(self.members, decoded, strict=True):
                    # A span a member, in the batch's: each read model's write shows as its own.
                    with tracer.start_as_current_span(f"{m.name} apply",
                                                      attributes={"tongxin.projection": m.name}):
                        positions.append(await m._write(conn, batch, d))
        for m, position in zip(self.members, positions, strict=True):
            await m._committed(batch, position)


def reason_of(exc: BaseException) -> str:
    """The exception's type and the first line of its message: enough to find the fault, and
    short of the SQL parameters (personal data) that SQLAlchemy puts on later lines."""
    lines = str(exc).strip().splitlines()
    text = f"{type(exc).__name__}: {lines[0]}" if lines else type(exc).__name__
    return text[:500]


def parked_json(row) -> dict:
    parked_at = row.parked_at
    if parked_at is not None and parked_at.tzinfo is None:  # SQLite keeps no offset: UTC
        parked_at = parked_at.replace(tzinfo=UTC)
    return {"projection": row.name, "seq": row.seq, "subject": row.subject,
            "event_id": row.event_id, "event_type": row.event_type, "reason": row.reason,
            "parked_at": parked_at.isoformat() if parked_at else None}


def _identify(data: bytes) -> tuple[str | None, str | None]:
    """event_id and type from the envelope, if it is readable enough to have them."""
    try:
        envelope = json.loads(data)
    except (ValueError, RecursionError):  # not JSON, or nested deep enough to be an attack
        return None, None
    if not isinstance(envelope, dict):
        return None, None
    event_id, event_type = envelope.get("event_id"), envelope.get("type")
    return (event_id[:64] if isinstance(event_id, str) else None,
            event_type[:100] if isinstance(event_type, str) else None)


def _as_msg(js: JetStreamContext, stream: str, raw: RawStreamMsg) -> Msg:
    """A message fetched by seq, shaped as a consumer delivers it (apply functions read its
    stream seq from the metadata)."""
    # nats-py types RawStreamMsg's fields optional; a message got by seq has seq, time, subject.
    metadata = Msg.Metadata(
        sequence=Msg.Metadata.SequencePair(consumer=0, stream=raw.seq),  # type: ignore[arg-type]
        num_pending=0, num_delivered=1, timestamp=raw.time,  # type: ignore[arg-type]
        stream=stream, consumer="")
    return Msg(_client=js._nc, subject=raw.subject,  # type: ignore[arg-type]
               data=raw.data or b"", headers=raw.headers, _metadata=metadata)
