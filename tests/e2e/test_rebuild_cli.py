"""`tongxin reporting rebuild` as an operator runs it: a separate process beside the running
services (each back-end), configured only by the TONGXIN_* the reporting service has."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys

import pytest

from tests.factories import activity
from tests.harness import System, running

pytestmark = pytest.mark.asyncio(loop_scope="session")


@pytest.fixture(scope="module")
def own_system(backend, nats_url, tmp_path_factory):
    """Services of this module's own: the shared system's streams may hold the bulk tests'
    100,000s of events, which a rebuild would replay."""
    with running(System(nats_url, backend, tmp_path_factory.mktemp(f"rebuild-{backend.name}"),
                        traces=False)) as s:
        yield s


async def tongxin(system: System, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, **system.env("reporting"), "COLUMNS": "200"}
    return await asyncio.to_thread(
        subprocess.run, [sys.executable, "-m", "tongxin.cli", "reporting", "rebuild", *args],
        env=env, capture_output=True, text=True, timeout=300)


async def test_rebuild_beside_the_running_service(own_system):
    system = own_system
    org, base = await system.org_and_base()
    logged = [activity(org["id"], base["id"], served=100 + i) for i in range(5)]
    for data in logged:
        assert (await system.post_activity(data)).status_code == 202
    fixed = {**logged[0], "served": 1000, "reason": "更正人次"}
    r = await system.post_event({"type": "activity.corrected", "data": fixed, "version": 1,
                                 "event_id": "00000000-0000-4000-8000-00000000000a",
                                 "occurred_at": "2013-10-21T00:00:00Z", "source": "test"})
    assert r.status_code in (200, 202), r.text
    seq = await system.events_last_seq()
    before = await system.summary(organization_id=org["id"], min_seq=seq)
    assert before["totals"]["served"] == 1000 + 101 + 102 + 103 + 104

    listed = await tongxin(system, "--list")
    assert listed.returncode == 0 and "reporting-activities" in listed.stdout

    check = await tongxin(system, "--check")
    assert check.returncode == 0, check.stdout + check.stderr
    assert "checked (nothing swapped)" in check.stdout
    assert "reporting-activities cube_shares" in check.stdout and "DIFFERENT" not in check.stdout

    swap = await tongxin(system, "reporting-registry", "reporting-activities")
    assert swap.returncode == 0, swap.stdout + swap.stderr
    assert "rebuilt and swapped" in swap.stdout and "reporting-needs" not in swap.stdout
    now = await system.summary(organization_id=org["id"], min_seq=seq)
    # (as_of moves on: the events service adds report.overdue events for these activities)
    assert (now["rows"], now["totals"]) == (before["rows"], before["totals"])

    # The running service's projection carries on from the swapped tables.
    late = await system.post_activity(activity(org["id"], base["id"], served=7))
    after = await system.summary(organization_id=org["id"], min_seq=late.json()["seq"])
    assert after["totals"]["served"] == before["totals"]["served"] + 7

    unknown = await tongxin(system, "reporting-nothing")
    assert unknown.returncode == 2 and "no such read model" in unknown.stdout
