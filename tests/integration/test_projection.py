"""shared.projection.Projection against a real stream and a real database (each back-end).

The apply function under test writes one row per message into a table of this test's own, with
no unique key, so a message applied twice shows up as an extra row and a skipped one as a gap.
"""

from __future__ import annotations

import asyncio
import json

import pytest
from sqlalchemy import BigInteger, Column, Integer, MetaData, String, Table, func, insert, select

from shared.bus import MSG_ID, stream_seq
from shared.envelope import new_envelope
from shared.projection import Projection, positions_table
from tests.integration.conftest import create_schema, db_for, drop_schema

pytestmark = pytest.mark.asyncio(loop_scope="session")

N = 1000


def tables() -> tuple[MetaData, Table, Table]:
    metadata = MetaData()
    positions = positions_table(metadata)
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
                      subject=names.events(), engine=engine, positions=positions, apply=apply,
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
        # back and the same batch offered again.
        span = (stream_seq(msgs[0]), stream_seq(msgs[-1]))
        await record(conn, msgs)
        if span not in failed:
            failed.append(span)
            raise RuntimeError(f"database hiccup on {span}")
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
                            apply=slow_apply, batch_size=500)
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
