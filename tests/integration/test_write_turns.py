"""Writers to one SQLite file take turns (`shared.db.write_transaction`): the reporting service's
whole set of writers — every read model's projection and the notifier's two — catching up on a
backlog at once, on one file, as after a restart of `make run`'s reporting service. None may
wait for the file's lock mid-transaction ("database is locked" after the busy timeout was the
lock storm behind CI's stalls); each waits only for the turns of those queued before it."""

from __future__ import annotations

import asyncio
import logging
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select

from services.reporting import notify, store
from services.reporting.models import READ_MODELS
from shared import db
from shared.db import make_engine, write_transaction
from shared.settings import Settings
from tests.factories import activity, need
from tests.figures import say
from tests.integration.readmodels import Reporting

pytestmark = pytest.mark.asyncio(loop_scope="session")

BACKLOG_ACTIVITIES = 600  # with their reports, attendance and needs: ~2,000 events


async def test_every_projection_catching_up_on_one_file_waits_only_its_turn(
        nc, names, tmp_path, caplog):
    caplog.set_level(logging.WARNING)
    file = tmp_path / "reporting.db"
    engine = make_engine(f"sqlite:///{file}")
    async with engine.begin() as conn:
        await conn.run_sync(store.metadata.create_all)
    settings = Settings(namespace=names.namespace)
    rep = Reporting(nc, names, engine, settings=settings)
    # The backlog is on the streams before anyone reads them.
    units = [await rep.registry("organization", name=f"上虞区轮值单位{i}",
                                kind="government_department") for i in range(20)]
    bases = [await rep.registry("base", name=f"上虞区曹娥街道社区{i}", kind="community")
             for i in range(10)]
    start = datetime(2026, 3, 7, 9, tzinfo=UTC)
    for i in range(BACKLOG_ACTIVITIES):
        org, base = units[i % len(units)]["id"], bases[i % len(bases)]["id"]
        began = start + timedelta(days=i % 90)
        data = activity(org, base, started_at=began.isoformat(),
                        ended_at=(began + timedelta(hours=3)).isoformat())
        await rep.event("activity.logged", data)
        await rep.event("attendance.recorded", {
            "activity_id": data["activity_id"], "volunteer_id": str(uuid.uuid4()),
            "hours": 2, "method": "self"})
        if i % 2:
            await rep.event("report.submitted", {"activity_id": data["activity_id"],
                                                 "organization_id": org, "summary": "总结"})
        if i % 3 == 0:
            await rep.event("need.submitted", need(base))

    waits_before = db.WAITS.get(str(file.resolve()))
    assert waits_before is None  # a file of its own: the figures below are this test's
    notifier = notify.Notifier(nc.jetstream(), engine, settings)
    writers = len(READ_MODELS) + 2  # every read model, and the notifier's two projections
    tasks = [asyncio.create_task(w()) for w in (notifier.events.run, notifier.registry.run)]
    async with rep:
        try:
            await rep.caught_up(timeout=300)
            assert await notifier.events.wait_for(rep.last_seq["events"], 300)
            assert await notifier.registry.wait_for(rep.last_seq["registry"], 300)
        finally:
            notifier.stop()
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    waits = db.WAITS[str(file.resolve())]
    say(f"\nwrite turns, {writers} writers catching up on {rep.last_seq['events']} events on "
        f"one SQLite file: {waits.count} turns, longest wait {waits.max_wait:.2f}s, longest "
        f"turn {waits.max_held:.2f}s, mean wait {waits.total_wait / waits.count:.3f}s")
    # Nobody waited for SQLite's lock inside a transaction: no busy timeouts, no retries.
    assert "database is locked" not in caplog.text
    assert [r.getMessage() for r in caplog.records if "failed on seq" in r.getMessage()] == []
    async with engine.connect() as conn:
        assert (await conn.execute(select(func.count()).select_from(store.parked))
                ).scalar_one() == 0
    # First come, first served: a writer waits at most for one turn of each other writer.
    assert waits.count >= writers
    assert waits.max_wait <= (writers - 1) * waits.max_held + 1.0, waits
    assert waits.waiting == 0
    await engine.dispose()


async def test_a_failed_turn_rolls_back_and_passes_the_turn_on(tmp_path):
    engine = make_engine(f"sqlite:///{tmp_path / 'one.db'}")
    async with engine.begin() as conn:
        await conn.exec_driver_sql("CREATE TABLE t (n INTEGER PRIMARY KEY)")
    order: list[str] = []

    async def writer(name: str, fail: bool = False) -> None:
        async with write_transaction(engine) as conn:
            order.append(name)
            await conn.exec_driver_sql(f"INSERT INTO t VALUES ({len(order)})")
            if fail:
                raise RuntimeError("the work itself failed")

    first = asyncio.create_task(writer("first", fail=True))
    rest = [asyncio.create_task(writer(f"w{i}")) for i in range(5)]
    with pytest.raises(RuntimeError):
        await first
    await asyncio.gather(*rest)
    assert order == ["first", "w0", "w1", "w2", "w3", "w4"]  # in the order they asked
    async with engine.connect() as conn:
        assert [n for (n,) in await conn.exec_driver_sql("SELECT n FROM t ORDER BY n")] == [
            2, 3, 4, 5, 6]  # the failed turn's row rolled back
    await engine.dispose()
