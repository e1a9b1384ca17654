"""shared.projection.Projection against a real stream and a real database (each back-end).

The apply function under test writes one row per message into a table of this test's own, with
no unique key, so a message applied twice shows up as an extra row and a skipped one as a gap.
A message the apply function cannot take is parked (a row in `parked`), never a stall; an outage
of the database parks nothing.
"""

from __future__ import annotations

import asyncio
import json
import logging
import sqlite3

import nats.errors
import pytest
from sqlalchemy import BigInteger, Column, Integer, MetaData, String, Table, func, insert, select
from sqlalchemy.exc import InterfaceError, OperationalError

from services.reporting import store as reporting_store
from services.reporting.models import activities as cube
from shared.bus import MSG_ID, stream_seq
from shared.envelope import new_envelope
from shared.projection import (
    Projection,
    ProjectionGroup,
    parked_json,
    parked_table,
    positions_table,
)
from shared.settings import Settings
from tests.factories import activity, envelope, raw
from tests.integration.conftest import create_schema, db_for, drop_schema

pytestmark = pytest.mark.asyncio(loop_scope="session")

N = 1000


def tables() -> tuple[MetaData, Table, Table]:
    metadata = MetaData()
    positions = positions_table(metadata)
    parked_table(metadata)
    applied = Table(
        "applied", metadata,
        Column("id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True,
               autoincrement=True),
        Column("seq", BigInteger, nullable=False),
        Column("n", Integer, nullable=False),
        Column("event_id", String(36), nullable=False),
    )
    return metadata, positions, applied


@pytest.fixture
async def db(backend, tag):
    """A fresh database (SQLite file or PostgreSQL schema) holding the test's two tables."""
    db = db_for(backend, "projection", tag)
    await create_schema(db)
    metadata, positions, applied = tables()
    engine = db.engine()
    async with engine.begin() as conn:
        await conn.run_sync(metadata.create_all)
    yield engine, positions, applied
    await engine.dispose()


async def publish_numbered(js, names, start: int, count: int) -> int:
    """Publish envelopes numbered start..start+count-1, pipelined; return the last seq."""
    subject = names.events("test.counted")
    futures = []
    for n in range(start, start + count):
        env = new_envelope("test.counted", {"n": n}, "projection-test")
        futures.append(await js.publish_async(subject, env.model_dump_json().encode(),
                                              headers={MSG_ID: str(env.event_id)}))
    acks = await asyncio.wait_for(asyncio.gather(*futures), 30)
    return max(a.seq for a in acks)


def recording_apply(applied: Table):
    async def apply(conn, msgs) -> None:
        rows = []
        for m in msgs:
            env = json.loads(m.data)
            rows.append({"seq": stream_seq(m), "n": env["data"]["n"], "event_id": env["event_id"]})
        await conn.execute(insert(applied), rows)
    return apply


def projection(js, names, engine, positions, apply, batch_size: int = 100) -> Projection:
    return Projection(name="test-counter", js=js, stream=names.events_stream,
                      subject=names.events(), engine=engine, positions=positions,
                      parked=positions.metadata.tables["parked"], apply=apply,
                      batch_size=batch_size)


async def stored(engine, positions: Table, applied: Table) -> tuple[list, int | None]:
    async with engine.connect() as conn:
        rows = (await conn.execute(select(applied.c.seq, applied.c.n).order_by(applied.c.id))).all()
        position = (await conn.execute(select(positions.c.position)
                                       .where(positions.c.name == "test-counter"))).scalar()
    return rows, position


async def stop(p: Projection, task: asyncio.Task) -> None:
    p.stop()
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)


async def test_stopped_part_way_and_restarted_applies_every_message_once(nc, names, db):
    engine, positions, applied = db
    js = nc.jetstream()
    last = await publish_numbered(js, names, 0, N)
    assert last == N

    # First run: after three batches, the fourth blocks inside its transaction (rows inserted,
    # position not yet stored); then the projection is stopped and its task cancelled.
    record = recording_apply(applied)
    calls = 0
    blocked = asyncio.Event()

    async def apply_then_hang(conn, msgs) -> None:
        nonlocal calls
        calls += 1
        await record(conn, msgs)
        if calls == 4:
            blocked.set()
            await asyncio.Event().wait()  # until cancelled

    first = projection(js, names, engine, positions, apply_then_hang)
    task = asyncio.create_task(first.run())
    await asyncio.wait_for(blocked.wait(), 15)
    reached = first.position
    assert 0 < reached < N
    await stop(first, task)
    assert first.applied_here == reached  # its share: the interrupted batch is not in it

    rows, position = await stored(engine, positions, applied)
    assert position == reached, "the interrupted batch's position was not stored"
    assert [r.seq for r in rows] == list(range(1, reached + 1)), "nor were its rows"

    # Second run, a new Projection on the same database, resumes after the stored position.
    second = projection(js, names, engine, positions, record)
    assert await second.load_position() == reached
    task = asyncio.create_task(second.run())
    try:
        assert await second.wait_for(N, 15)
    finally:
        await stop(second, task)

    assert second.applied_here == N - reached
    rows, position = await stored(engine, positions, applied)
    assert [r.seq for r in rows] == list(range(1, N + 1))  # each message once, in stream order
    assert [r.n for r in rows] == list(range(N))
    info = await js.stream_info(names.events_stream)
    assert position == info.state.last_seq == N


async def test_a_batch_that_fails_is_retried_not_skipped(nc, names, db):
    engine, positions, applied = db
    js = nc.jetstream()
    await publish_numbered(js, names, 0, N)
    record = recording_apply(applied)
    failed: list[tuple[int, int]] = []
    succeeded: list[tuple[int, int]] = []

    async def flaky(conn, msgs) -> None:
        # Writes its rows, then fails the first time it sees each batch: the rows must be rolled
        # back and the same batch offered again (a database hiccup: nothing is parked for it).
        span = (stream_seq(msgs[0]), stream_seq(msgs[-1]))
        await record(conn, msgs)
        if span not in failed:
            failed.append(span)
            raise OperationalError("INSERT", {}, sqlite3.OperationalError("database is locked"))
        succeeded.append(span)

    p = projection(js, names, engine, positions, flaky, batch_size=250)
    task = asyncio.create_task(p.run())
    try:
        assert await p.wait_for(N, 20)
    finally:
        await stop(p, task)

    assert failed and succeeded == failed, "every failed batch was retried, none skipped"
    assert failed[0][0] == 1 and failed[-1][1] == N
    rows, position = await stored(engine, positions, applied)
    assert [r.seq for r in rows] == list(range(1, N + 1))
    assert [r.n for r in rows] == list(range(N))
    assert position == N
    assert await p.parked_summary() == (0, None)


async def test_wait_for_is_false_on_timeout_and_true_once_reached(nc, names, db):
    engine, positions, applied = db
    js = nc.jetstream()
    await publish_numbered(js, names, 0, 5)
    p = projection(js, names, engine, positions, recording_apply(applied))
    task = asyncio.create_task(p.run())
    try:
        assert await p.wait_for(5, 15) is True
        assert await p.caught_up(5) is True
        loop = asyncio.get_running_loop()
        started = loop.time()
        assert await p.wait_for(6, 0.3) is False
        assert loop.time() - started >= 0.29  # it did wait for the timeout
        assert p.position == 5

        waiter = asyncio.create_task(p.wait_for(7, 15))
        await asyncio.sleep(0)  # the waiter is now waiting for seq 7
        assert not waiter.done()
        await publish_numbered(js, names, 5, 2)
        assert await waiter is True
        assert p.position == 7
    finally:
        await stop(p, task)
    rows, position = await stored(engine, positions, applied)
    assert (len(rows), position) == (7, 7)
    async with engine.connect() as conn:
        assert (await conn.execute(select(func.count()).select_from(applied))).scalar() == 7


async def test_a_backlog_and_a_slow_database_are_applied_exactly_once(backend, nc, names, tag):
    """Far more messages than a batch, applied slowly; and once, a fetched batch goes missing
    (as it could in a reconnect): the projection sees the hole in seqs and reads again."""
    js = nc.jetstream()
    total = 12_000
    futures = [await js.publish_async(names.events("activity.logged"), b"{}")
               for _ in range(total)]
    await asyncio.gather(*futures)
    db = db_for(backend, "reporting", tag)
    (backend.root / tag).mkdir(parents=True, exist_ok=True)
    await create_schema(db)
    engine = db.engine()
    metadata = MetaData()
    positions = positions_table(metadata)
    parked_table(metadata)
    async with engine.begin() as conn:
        await conn.run_sync(metadata.create_all)
    seen: list[int] = []

    async def slow_apply(conn, msgs):
        seen.extend(stream_seq(m) for m in msgs)
        await asyncio.sleep(0.02)

    subscribe, lost = js.pull_subscribe, []

    async def losing_subscribe(*args, **kwargs):
        sub = await subscribe(*args, **kwargs)
        fetch = sub.fetch

        async def fetch_losing_one_batch(*a, **k):
            batch = await fetch(*a, **k)
            if not lost and stream_seq(batch[0]) > 3000:
                lost.extend(stream_seq(m) for m in batch)
                batch = await fetch(*a, **k)
            return batch

        sub.fetch = fetch_losing_one_batch
        return sub

    js.pull_subscribe = losing_subscribe
    projection = Projection(name="slow", js=js, stream=names.events_stream,
                            subject=names.events(), engine=engine, positions=positions,
                            parked=metadata.tables["parked"], apply=slow_apply, batch_size=500)
    task = asyncio.create_task(projection.run())
    try:
        assert await projection.wait_for(total, 120)
    finally:
        projection.stop()
        await asyncio.gather(task, return_exceptions=True)
        await engine.dispose()
        await drop_schema(db)
    assert lost, "a batch was lost on the way"
    assert sorted(seen) == list(range(1, total + 1)), "every seq applied exactly once"


# -- parking: one bad message never stalls a projection ------------------------------------

async def parked_rows(engine, parked: Table) -> list:
    async with engine.connect() as conn:
        return (await conn.execute(select(parked).order_by(parked.c.name, parked.c.seq))).all()


async def run_until(p: Projection, seq: int, timeout: float = 30) -> None:
    task = asyncio.create_task(p.run())
    try:
        assert await p.wait_for(seq, timeout), f"{p.name} never reached seq {seq}"
    finally:
        await stop(p, task)


async def test_a_message_that_fails_alone_is_parked_and_the_rest_counted_once(
        nc, names, db, caplog):
    engine, positions, applied = db
    parked = positions.metadata.tables["parked"]
    js = nc.jetstream()
    total, bad_n = 300, 150  # the bad one (seq 151) sits inside a batch of 100
    await publish_numbered(js, names, 0, total)
    record = recording_apply(applied)
    fixed = False

    async def apply(conn, msgs) -> None:
        for m in msgs:
            if json.loads(m.data)["data"]["n"] == bad_n and not fixed:
                raise ValueError(f"cannot count n={bad_n}\nsecond line, not kept")
        await record(conn, msgs)

    p = projection(js, names, engine, positions, apply)
    with caplog.at_level(logging.ERROR, logger="shared.projection"):
        await run_until(p, total)

    rows, position = await stored(engine, positions, applied)
    assert position == total
    assert p.applied_here == total - 1  # the parked one is not counted as applied
    assert [r.seq for r in rows] == [s for s in range(1, total + 1) if s != bad_n + 1]
    [row] = await parked_rows(engine, parked)
    bad = await js.get_msg(names.events_stream, bad_n + 1)
    assert (row.name, row.seq, row.subject, row.event_id, row.event_type, row.reason) == (
        "test-counter", bad_n + 1, names.events("test.counted"),
        json.loads(bad.data)["event_id"], "test.counted", f"ValueError: cannot count n={bad_n}")
    count, newest = await p.parked_summary()
    assert count == 1 and newest["seq"] == bad_n + 1 and newest["reason"] == row.reason
    assert [i["seq"] for i in await p.list_parked(10)] == [bad_n + 1]
    [logged] = [r for r in caplog.records if "parked" in r.getMessage()]
    assert logged.levelno == logging.ERROR
    assert all(part in logged.getMessage() for part in (
        "test-counter", str(bad_n + 1), names.events("test.counted"), "ValueError"))
    assert bad.data.decode() not in caplog.text  # never the payload

    # Replayed while still broken: it stays parked, with the newest reason.
    assert await p.replay_parked() == (0, 1)
    assert len(await parked_rows(engine, parked)) == 1

    # Fixed (a deploy, so a restart): the projection applies it as it starts; nothing else
    # is applied again.
    fixed = True
    again = projection(js, names, engine, positions, apply)
    task = asyncio.create_task(again.run())
    try:
        for _ in range(100):
            if not await parked_rows(engine, parked):
                break
            await asyncio.sleep(0.1)
    finally:
        await stop(again, task)
    assert await parked_rows(engine, parked) == []
    rows, position = await stored(engine, positions, applied)
    assert sorted(r.seq for r in rows) == list(range(1, total + 1))
    assert position == total
    assert await again.replay_parked() == (0, 0)


async def test_a_parked_message_is_applied_once_when_the_projection_is_rebuilt(
        nc, names, db):
    """Rebuilding is replay from 0: the stream brings the parked message back in order (its
    parked row goes then); replaying it on start as well would apply it twice."""
    engine, positions, applied = db
    parked = positions.metadata.tables["parked"]
    js = nc.jetstream()
    await publish_numbered(js, names, 0, 5)
    record = recording_apply(applied)
    fixed = False

    async def apply(conn, msgs) -> None:
        if not fixed and any(json.loads(m.data)["data"]["n"] == 2 for m in msgs):
            raise ValueError("cannot count n=2")
        await record(conn, msgs)

    await run_until(projection(js, names, engine, positions, apply), 5)
    assert [r.seq for r in await parked_rows(engine, parked)] == [3]

    fixed = True
    async with engine.begin() as conn:  # the rebuild: read model emptied, position 0
        await conn.execute(applied.delete())
        await conn.execute(positions.update().values(position=0))
    await run_until(projection(js, names, engine, positions, apply), 5)
    rows, position = await stored(engine, positions, applied)
    assert [r.seq for r in rows] == [1, 2, 3, 4, 5]
    assert position == 5
    assert await parked_rows(engine, parked) == []


async def test_a_value_the_database_refuses_is_parked(nc, names, db):
    """Not an outage: SQLite refuses to bind a dict (ProgrammingError), asyncpg too (a
    DataError). Either way only that message is parked."""
    engine, positions, applied = db
    parked = positions.metadata.tables["parked"]
    js = nc.jetstream()
    await publish_numbered(js, names, 0, 20)

    async def apply(conn, msgs) -> None:
        rows = []
        for m in msgs:
            env = json.loads(m.data)
            n = env["data"]["n"]
            rows.append({"seq": stream_seq(m), "n": n,
                         "event_id": {"n": n} if n == 7 else env["event_id"]})
        await conn.execute(insert(applied), rows)

    p = projection(js, names, engine, positions, apply, batch_size=10)
    await run_until(p, 20)
    rows, position = await stored(engine, positions, applied)
    assert [r.seq for r in rows] == [s for s in range(1, 21) if s != 8]
    assert position == 20
    assert [r.seq for r in await parked_rows(engine, parked)] == [8]


async def test_an_outage_parks_nothing_and_the_batch_is_applied_after_it(nc, names, db):
    engine, positions, applied = db
    js = nc.jetstream()
    await publish_numbered(js, names, 0, 50)
    record = recording_apply(applied)
    outage = [  # what a database or NATS away looks like to apply, in turn
        OperationalError("INSERT", {}, sqlite3.OperationalError("database is locked")),
        InterfaceError("INSERT", {}, ConnectionResetError("connection was closed"),
                       connection_invalidated=True),
        ConnectionRefusedError("connection refused"),
        nats.errors.TimeoutError(),
    ]
    attempts = []

    async def apply(conn, msgs) -> None:
        attempts.append(stream_seq(msgs[0]))
        await record(conn, msgs)  # written, then rolled back with the failure
        if outage:
            raise outage.pop(0)

    p = projection(js, names, engine, positions, apply)
    await run_until(p, 50, timeout=60)
    rows, position = await stored(engine, positions, applied)
    assert [r.seq for r in rows] == list(range(1, 51))
    assert position == 50
    assert attempts[:5] == [1] * 5, "the same batch, until the outage was over"
    assert await parked_rows(engine, positions.metadata.tables["parked"]) == []
    assert p.healthy and p.failing_since is None


@pytest.fixture
async def reporting_db(backend, tag):
    """The reporting service's own tables (its real read model), in a fresh database."""
    db = db_for(backend, "reporting", tag)
    (backend.root / tag).mkdir(parents=True, exist_ok=True)
    await create_schema(db)
    engine = db.engine()
    async with engine.begin() as conn:
        await conn.run_sync(reporting_store.metadata.create_all)
    yield engine
    await engine.dispose()
    await drop_schema(db)


async def test_an_activity_in_year_9999_is_parked_and_never_stalls_the_reporting_projection(
        nc, names, reporting_db):
    """The defect as found: reporting's apply raised on an activity dated 9999 (OverflowError
    in astimezone) on every retry, so nothing after it was counted. Now refused by the reader
    or failing in it, it is parked, and the rest counts."""
    engine = reporting_db
    js = nc.jetstream()
    subject = names.events("activity.logged")
    served = [10, 20, 9999, 30, 40]
    for n in served:
        times = ({"started_at": "9999-12-31T23:00:00+00:00",
                  "ended_at": "9999-12-31T23:30:00+00:00"} if n == 9999 else {})
        env = envelope(activity("org-9999", "base-9999", served=n, **times))
        await js.publish(subject, raw(env), headers={MSG_ID: env["event_id"]}, timeout=5)
    p = Projection(name="reporting-activities", js=js, stream=names.events_stream,
                   subject=names.events(), engine=engine, positions=reporting_store.positions,
                   parked=reporting_store.parked, batch_size=500,
                   **cube.MODEL.steps(Settings()))
    await run_until(p, len(served))

    facts = cube.shares
    async with engine.connect() as conn:
        counted = sorted((await conn.execute(select(facts.c.served))).scalars())
    assert counted == [10, 20, 30, 40]  # every other activity, once
    [parked] = await parked_rows(engine, reporting_store.parked)
    assert (parked.name, parked.seq, parked.event_type) == (
        "reporting-activities", 3, "activity.logged")
    assert parked.reason.split(":")[0] in ("ValidationError", "OverflowError")
    assert await p.parked_summary() == (1, parked_json(parked))

    # No fix makes year 9999 a date to count: replayed, it stays parked, nothing else moves.
    assert await p.replay_parked() == (0, 1)
    async with engine.connect() as conn:
        assert (await conn.execute(select(func.count()).select_from(facts))).scalar() == 4


async def test_a_group_feeds_each_member_from_its_own_position_and_parks_for_one_alone(
        nc, names, backend, tag, caplog):
    """Two projections fed by one consumer (`ProjectionGroup`): one already far along, one new
    (as after a rebuild or a new read model); a message the new one cannot count is parked for
    it alone, while the other counts it, and neither counts anything twice."""
    db = db_for(backend, "group", tag)
    await create_schema(db)
    metadata = MetaData()
    positions = positions_table(metadata)
    parked = parked_table(metadata)
    applied = {name: Table(f"applied_{name}", metadata,
                           Column("id", BigInteger().with_variant(Integer, "sqlite"),
                                  primary_key=True, autoincrement=True),
                           Column("seq", BigInteger, nullable=False),
                           Column("n", Integer, nullable=False),
                           Column("event_id", String(36), nullable=False))
               for name in ("ahead", "new")}
    engine = db.engine()
    async with engine.begin() as conn:
        await conn.run_sync(metadata.create_all)
    js = nc.jetstream()
    bad_n = 250

    def member(name: str) -> Projection:
        record = recording_apply(applied[name])

        async def apply(conn, msgs) -> None:
            if name == "new" and any(json.loads(m.data)["data"]["n"] == bad_n for m in msgs):
                raise ValueError(f"cannot count n={bad_n}")
            await record(conn, msgs)

        return Projection(name=name, js=js, stream=names.events_stream,
                          subject=names.events(), engine=engine, positions=positions,
                          parked=parked, apply=apply, batch_size=100)

    try:
        await publish_numbered(js, names, 0, 200)
        await run_until(member("ahead"), 200)  # alone, before the group
        last = await publish_numbered(js, names, 200, 200)
        ahead, new = member("ahead"), member("new")
        group = ProjectionGroup("test-group", [ahead, new])
        task = asyncio.create_task(group.run())
        try:
            assert await ahead.wait_for(last, 30) and await new.wait_for(last, 30)
        finally:
            group.stop()
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        async with engine.connect() as conn:
            seqs = {name: list((await conn.execute(
                select(t.c.seq).order_by(t.c.id))).scalars()) for name, t in applied.items()}
            parked_rows_ = (await conn.execute(select(parked.c.name, parked.c.seq))).all()
            stored_ = dict((await conn.execute(select(positions.c.name, positions.c.position)
                                               )).all())
        assert seqs["ahead"] == list(range(1, last + 1))  # each once, in order
        assert seqs["new"] == [s for s in range(1, last + 1) if s != bad_n + 1]
        assert [tuple(r) for r in parked_rows_] == [("new", bad_n + 1)]
        assert stored_ == {"ahead": last, "new": last}
    finally:
        await engine.dispose()
        await drop_schema(db)
