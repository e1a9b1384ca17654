"""Loading history with `tongxin load` (POST /v1/events/bulk), the installed command against
the services as processes, both back-ends: 50,000 events of several types in one file,
counted exactly; the same file again is all duplicates; bad lines are listed by number while
the good ones are kept. Memory, not time, is asserted: the events service must stream the file.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import pytest_asyncio

from tests.factories import activity, envelope

pytestmark = pytest.mark.asyncio(loop_scope="session")

TONGXIN = str(Path(sys.executable).parent / "tongxin")
EVENTS = 50_000
VOLUNTEERS = 1000
GROUP = 20             # lines: 16 activities, a need submitted and claimed, 2 attendances
ACTIVITIES_PER_GROUP = 16
MAX_GROWTH_MB = 100   # the file is 24 MB; held whole, its parsed lines alone would pass this
# Not a speed requirement: 50,000 events take minutes on a loaded 2-core machine (the rate is
# printed), more than the suite's default 300 s per test.
LONG = pytest.mark.timeout(1800)


@dataclass
class Run:
    code: int
    stdout: str
    stderr: str
    seconds: float

    @property
    def answer(self) -> dict:
        return json.loads(self.stdout)


async def tongxin_load(source: Path | None, url: str, *args: str,
                       stdin: Path | None = None, token: str = "") -> Run:
    """The installed `tongxin load`, as a user runs it."""
    argv = [TONGXIN, "load", str(source) if source else "-", "--url", url, *args]
    given = await asyncio.to_thread(stdin.read_bytes) if stdin else None
    t0 = time.perf_counter()
    proc = await asyncio.create_subprocess_exec(
        *argv, stdin=asyncio.subprocess.PIPE if stdin else asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        env={**os.environ, "COLUMNS": "200", "TONGXIN_TOKEN": token})
    out, err = await asyncio.wait_for(proc.communicate(given), timeout=1200)
    return Run(proc.returncode, out.decode(), err.decode(), time.perf_counter() - t0)


def peak_rss_mb(pid: int) -> float:
    """VmHWM: the most resident memory the process has had, in MB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise AssertionError(f"no VmHWM for process {pid}")


def compact(env: dict) -> str:
    return json.dumps(env, ensure_ascii=False, separators=(",", ":"))


@dataclass
class History:
    """What was written to the file, counted while it was written."""

    path: Path
    lines: int = 0
    activities: int = 0
    served: int = 0
    needs: int = 0
    attendances: int = 0


def history_lines(org_id: str, base_id: str, volunteer_ids: list[str], tag: str,
                  events: int, history: History) -> Iterator[str]:
    """`events` lines, one group of GROUP at a time. Times lie in the last two days, so no
    report falls overdue while the test runs; a volunteer's activities never overlap."""
    start = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) - timedelta(days=2)
    attendance = 0
    for g in range(events // GROUP):
        group = []
        for k in range(ACTIVITIES_PER_GROUP):
            if k < 2:  # attended below: the volunteer's n-th activity has slot n, 2 h apart
                begins = start + timedelta(hours=2 * ((attendance + k) // len(volunteer_ids)))
            else:
                begins = start + timedelta(minutes=g % 600)
            served = 1 + (g + k) % 50
            data = {"activity_id": str(uuid.uuid4()), "organization_id": org_id,
                    "base_id": base_id, "title": f"义诊{k}", "service_types": ["free_clinic"],
                    "theme": "new_countryside", "started_at": begins.isoformat(),
                    "ended_at": (begins + timedelta(hours=1)).isoformat(), "volunteers": 2,
                    "volunteer_hours": 2, "served": served}
            group.append(("activity.logged", data))
            history.activities += 1
            history.served += served
        need_id = f"{tag}-n{g}"
        group.append(("need.submitted", {"need_id": need_id, "base_id": base_id,
                                         "title": "修路灯", "category": "repair",
                                         "channel": "hotline"}))
        group.append(("need.claimed", {"need_id": need_id, "organization_id": org_id}))
        history.needs += 1
        for k in range(2):
            group.append(("attendance.recorded", {
                "activity_id": group[k][1]["activity_id"],
                "volunteer_id": volunteer_ids[attendance % len(volunteer_ids)],
                "hours": 1, "method": "sign_in"}))
            attendance += 1
        history.attendances += 2
        for event_type, data in group:
            occurred = data.get("started_at") or start.isoformat()
            history.lines += 1
            yield compact(envelope(data, event_type, occurred_at=occurred, source="zibo-2013"))


async def register_volunteers(system, org_id: str, tag: str, n: int) -> list[str]:
    """n volunteers in one spreadsheet import; their ids."""
    csv = "code,name,organization_id\n" + "".join(
        f"{tag}-v{i},志愿者{i},{org_id}\n" for i in range(n))
    registry = system.url("registry")
    async with system.client(timeout=300) as http:
        r = await http.post(f"{registry}/v1/import/volunteers",
                            files={"file": ("volunteers.csv", csv.encode())})
        assert r.status_code == 200, r.text
        ids = []
        while len(ids) < n:
            page = (await http.get(f"{registry}/v1/volunteers", params={
                "organization_id": org_id, "limit": 1000, "offset": len(ids)})).json()
            assert page["items"], page
            ids += [v["id"] for v in page["items"]]
    return ids


async def summary_when_caught_up(system, timeout: float = 600, **params) -> dict:
    """The summary once reporting has applied `min_seq` (it may lag a big load)."""
    deadline = time.monotonic() + timeout
    async with system.client(timeout=60) as http:
        while True:
            r = await http.get(f"{system.url('reporting')}/v1/reports/summary", params=params)
            if r.status_code != 503 or time.monotonic() > deadline:
                assert r.status_code == 200, r.text
                return r.json()
            await asyncio.sleep(1)


@dataclass
class Loaded:
    history: History
    org_id: str
    first: Run
    seq_after: int
    peak_before_mb: float
    peak_after_mb: float


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def loaded(system, tmp_path_factory) -> Loaded:
    """The registry a history needs (a unit paired with a base, 1,000 volunteers), the 50k
    file written line by line, and its first load."""
    tag = uuid.uuid4().hex[:6]
    org, base = await system.org_and_base()
    await system.register("pairings", organization_id=org["id"], base_id=base["id"],
                          starts_on="2013-01-01")
    volunteer_ids = await register_volunteers(system, org["id"], tag, VOLUNTEERS)
    history = History(tmp_path_factory.mktemp("bulk") / "history.ndjson")
    with history.path.open("w", encoding="utf-8") as f:
        for line in history_lines(org["id"], base["id"], volunteer_ids, tag, EVENTS, history):
            f.write(line + "\n")
    pid = system.sup.children["events"].proc.pid
    before = peak_rss_mb(pid)
    first = await tongxin_load(history.path, system.url("events"), "--json",
                                 token=system.token)
    after = peak_rss_mb(pid)
    size_mb = history.path.stat().st_size / 1e6
    print(f"\n[{system.backend.name}] tongxin load: {history.lines:,} events "
          f"({size_mb:.0f} MB) in {first.seconds:.1f}s = {history.lines / first.seconds:,.0f} "
          f"events/s; events service peak RSS {before:.0f} MB before, {after:.0f} MB after "
          f"(+{after - before:.0f} MB)")
    return Loaded(history, org["id"], first, await system.events_last_seq(), before, after)


@LONG
async def test_a_history_loaded_and_counted_in_flat_memory(system, loaded):
    h = loaded.history
    assert loaded.first.code == 0, loaded.first.stdout + loaded.first.stderr
    answer = loaded.first.answer
    assert (answer["lines"], answer["accepted"], answer["duplicates"], answer["refused"]) == (
        h.lines, h.lines, 0, 0), answer["errors"][:5]
    assert h.lines == EVENTS and h.activities == EVENTS * ACTIVITIES_PER_GROUP // GROUP

    t0 = time.perf_counter()
    summary = await summary_when_caught_up(system, organization_id=loaded.org_id,
                                           min_seq=loaded.seq_after)
    print(f"[{system.backend.name}] reporting caught up {time.perf_counter() - t0:.1f}s "
          "after the load finished")
    assert summary["totals"]["activities"] == h.activities
    assert summary["totals"]["served"] == h.served
    assert loaded.peak_after_mb - loaded.peak_before_mb < MAX_GROWTH_MB, (
        f"the events service's peak RSS grew from {loaded.peak_before_mb:.0f} MB to "
        f"{loaded.peak_after_mb:.0f} MB over the load")


@LONG
async def test_the_same_file_again_is_all_duplicates(system, loaded):
    h = loaded.history
    again = await tongxin_load(h.path, system.url("events"), "--json", token=system.token)
    assert again.code == 0, again.stdout + again.stderr
    answer = again.answer
    assert (answer["accepted"], answer["duplicates"], answer["refused"]) == (0, h.lines, 0)
    assert await system.events_last_seq() == loaded.seq_after, "nothing new is published"
    print(f"[{system.backend.name}] the same file again: {h.lines:,} duplicates in "
          f"{again.seconds:.1f}s = {h.lines / again.seconds:,.0f} events/s")


async def test_bad_lines_are_listed_and_the_good_ones_kept(system, tmp_path):
    org, base = await system.org_and_base()
    stranger = await system.register("organizations", name=f"未结对单位-{uuid.uuid4().hex[:6]}",
                                     kind="enterprise")
    await system.register("pairings", organization_id=org["id"], base_id=base["id"],
                          starts_on="2013-01-01")
    recent = {"started_at": (datetime.now(UTC) - timedelta(hours=3)).isoformat(),
              "ended_at": (datetime.now(UTC) - timedelta(hours=1)).isoformat()}
    need_id = f"n-{uuid.uuid4().hex[:8]}"

    def act(**changes) -> str:
        return compact(envelope(activity(org["id"], base["id"], **{**recent, **changes})))

    lines = [
        act(served=7),                                                            # 1
        act(served=8),                                                            # 2
        '{"event_id": "' + str(uuid.uuid4()) + '", "type": "activity.logged", ',  # 3 bad JSON
        compact(envelope({"need_id": need_id, "base_id": base["id"], "title": "老人体检",
                          "category": "free_clinic", "channel": "community"},
                         "need.submitted")),                                      # 4
        act(served=-1),                                                           # 5 bad field
        compact(envelope({"need_id": need_id, "organization_id": stranger["id"]},
                         "need.claimed")),                                        # 6 unpaired
        compact(envelope({"need_id": need_id, "organization_id": org["id"]},
                         "need.claimed")),                                        # 7
        act(served=9),                                                            # 8
    ]
    path = tmp_path / "历史.ndjson"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    refused = {(3, "body"), (5, "data.served"), (6, "data.organization_id")}

    run = await tongxin_load(path, system.url("events"), token=system.token)
    assert run.code == 1, run.stdout + run.stderr
    assert "5 accepted, 0 duplicates (sent before), 3 refused" in run.stdout, run.stdout
    table = [row.split("│") for row in run.stdout.splitlines() if row.count("│") == 4]
    listed = {(int(cells[1]), cells[2].strip()) for cells in table if cells[1].strip().isdigit()}
    assert listed == refused, run.stdout
    assert "not paired" in run.stdout and "not valid JSON" in run.stdout

    # The same file again, from standard input: the good lines are duplicates now, and the
    # stranger's claim is refused for a new reason (the need has been claimed meanwhile).
    again = await tongxin_load(None, system.url("events"), "--json", stdin=path,
                               token=system.token)
    assert again.code == 1, again.stdout + again.stderr
    answer = again.answer
    assert (answer["accepted"], answer["duplicates"], answer["refused"], answer["lines"]) == (
        0, 5, 3, 8)
    assert {(e["line"], e["field"]) for e in answer["errors"]} == {
        (3, "body"), (5, "data.served"), (6, "data.need_id")}
    assert all(e["message"] for e in answer["errors"])

    summary = await summary_when_caught_up(system, organization_id=org["id"],
                                           min_seq=await system.events_last_seq())
    assert (summary["totals"]["activities"], summary["totals"]["served"]) == (3, 24)


async def test_an_unreachable_service_is_a_clear_message_and_exit_code_2(tmp_path):
    from tongxin.natsserver import free_port

    path = tmp_path / "one.ndjson"
    path.write_text("{}\n")
    run = await tongxin_load(path, f"http://127.0.0.1:{free_port()}")
    assert run.code == 2, run.stdout + run.stderr
    assert "cannot reach the events service" in run.stdout
