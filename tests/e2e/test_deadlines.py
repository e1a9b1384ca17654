"""Report deadlines (服务旗帜接传) on the real processes: `report.overdue` fires once per
activity whose report is missing when it falls due, also when the deadline passes while the
events service is down, and never again after a restart."""

from __future__ import annotations

import asyncio
import json
import time
from collections import Counter
from datetime import UTC, datetime, timedelta

import nats
import pytest

from tests.factories import activity, envelope
from tests.harness import System

pytestmark = pytest.mark.asyncio(loop_scope="session")

DUE_SECONDS = 3


@pytest.fixture(scope="module")
def deadline_system(backend, nats_url, tmp_path_factory):
    """A system of its own: reports fall due seconds after an activity ends."""
    s = System(nats_url, backend, tmp_path_factory.mktemp(f"deadlines-{backend.name}"),
               settings={"TONGXIN_REPORT_DUE_DAYS": str(DUE_SECONDS / 86400),
                         "TONGXIN_DEADLINE_SWEEP_SECONDS": "0.5"})
    try:
        s.start()
        yield s
    finally:
        s.stop()


async def overdue_counts(system: System) -> Counter:
    """How many `report.overdue` events each activity has in TONGXIN_EVENTS."""
    nc = await nats.connect(system.nats_url)
    try:
        js = nc.jetstream()
        info = await js.stream_info(system.names.events_stream)
        counts: Counter = Counter()
        for seq in range(info.state.first_seq, info.state.last_seq + 1):
            msg = await js.get_msg(system.names.events_stream, seq)
            env = json.loads(msg.data)
            if env["type"] == "report.overdue":
                counts[env["data"]["activity_id"]] += 1
        return counts
    finally:
        await nc.close()


async def until(check, timeout: float = 20):
    deadline = asyncio.get_running_loop().time() + timeout
    while not (result := await check()):
        assert asyncio.get_running_loop().time() < deadline, "condition never met"
        await asyncio.sleep(0.2)
    return result


async def clock_past(data: dict) -> float:
    """Wait until the activity's report has fallen due by the clock; its due time (Unix)."""
    due = datetime.fromisoformat(data["ended_at"]).timestamp() + DUE_SECONDS
    await asyncio.sleep(max(due - time.time(), 0) + 0.05)  # the clock is the condition here
    assert time.time() > due
    return due


def ending_in(org: dict, base: dict, seconds: float) -> dict:
    end = datetime.now(UTC) + timedelta(seconds=seconds)
    return activity(org["id"], base["id"], started_at=(end - timedelta(hours=2)).isoformat(),
                    ended_at=end.isoformat())


async def test_a_missing_report_falls_overdue_once_across_restarts(deadline_system):
    system = deadline_system
    org, base = await system.org_and_base()
    missed = ending_in(org, base, 0)
    reported = ending_in(org, base, 0)
    for data in (missed, reported):
        assert (await system.post_activity(data)).status_code == 202
    r = await system.post_event(envelope({"activity_id": reported["activity_id"],
                                          "organization_id": org["id"],
                                          "summary": "服务旗帜已传递，附活动总结"},
                                         "report.submitted"))
    assert r.status_code == 202, r.text

    counts = await until(lambda: _with(system, missed["activity_id"]))
    assert counts[reported["activity_id"]] == 0

    # The next deadline passes while the events service is down: it fires after the restart.
    while_down = ending_in(org, base, 1)
    assert (await system.post_activity(while_down)).status_code == 202
    system.sup.stop("events")
    await clock_past(while_down)  # the deadline passes while it is down
    system.sup.start("events", system.env("events"))
    system.sup.wait_healthy(["events"], timeout=60)
    counts = await until(lambda: _with(system, while_down["activity_id"]))

    # And a restart after everything fired fires nothing again.
    system.restart("events")
    await system.settled("events")  # a whole sweep since the restart, all of it published
    counts = await overdue_counts(system)
    assert {k: counts[k] for k in (missed["activity_id"], reported["activity_id"],
                                   while_down["activity_id"])} == {
        missed["activity_id"]: 1, reported["activity_id"]: 0, while_down["activity_id"]: 1}

    # A late report is still accepted; the deadline it missed stays missed.
    r = await system.post_event(envelope({"activity_id": missed["activity_id"],
                                          "organization_id": org["id"], "summary": "补交总结"},
                                         "report.submitted"))
    assert r.status_code == 202, r.text


async def test_a_retracted_activity_owes_no_report(deadline_system):
    system = deadline_system
    org, base = await system.org_and_base()
    data = ending_in(org, base, 1)
    assert (await system.post_activity(data)).status_code == 202
    r = await system.post_event(envelope({"activity_id": data["activity_id"],
                                          "reason": "重复登记"}, "activity.retracted"))
    assert r.status_code == 202, r.text
    due = await clock_past(data)
    await system.settled("events", since=due)  # a whole sweep after it fell due, published
    assert (await overdue_counts(system))[data["activity_id"]] == 0


async def _with(system: System, activity_id: str) -> Counter | None:
    counts = await overdue_counts(system)
    return counts if counts[activity_id] else None
