"""The operator's view, against the services as processes: every service's `/metrics` (open,
Prometheus text, only service-level labels) and the installed `tongxin status`, which shows a
burst of events as consumer lag that falls back to zero."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from services.reporting.models import READ_MODELS
from tests.factories import activity, envelope
from tongxin.natsserver import free_port
from tongxin.supervisor import SERVICES

pytestmark = pytest.mark.asyncio(loop_scope="session")

TONGXIN = str(Path(sys.executable).parent / "tongxin")
BURST = 1000        # activities in one POST /v1/events/bulk
ZERO_WITHIN = 180   # seconds for every consumer to apply the burst: generous, the machine is shared

# What each service reports beside the HTTP histogram and the process's own figures.
FAMILIES = {
    "registry": {"tongxin_health_check", "tongxin_outbox_backlog", "tongxin_outbox_published",
                 "tongxin_metrics_probe_ok"},
    "events": {"tongxin_health_check", "tongxin_outbox_backlog", "tongxin_outbox_published",
               "tongxin_consumer_lag", "tongxin_projection_parked", "tongxin_dlq_depth",
               "tongxin_metrics_probe_ok"},
    "reporting": {"tongxin_health_check", "tongxin_outbox_backlog", "tongxin_outbox_published",
                  "tongxin_consumer_lag", "tongxin_projection_parked",
                  "tongxin_notifications_sent", "tongxin_metrics_probe_ok"},
}
CONSUMERS = {
    "events": {"events-registry-replica", "events-ingest-v1"},
    "reporting": {m.name for m in READ_MODELS if m.handlers} | {"notifier-events",
                                                                 "notifier-registry"},
}


async def scrape(system, service: str) -> tuple[str, dict]:
    """`/metrics` as a scraper reads it: no key. The text and its families by name."""
    async with httpx.AsyncClient(timeout=30) as http:
        r = await http.get(f"{system.url(service)}/metrics")
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("text/plain"), r.headers
    return r.text, {f.name: f for f in text_string_to_metric_families(r.text)}


def requests_counted(families: dict, method: str, route: str, status: str) -> float:
    return sum(s.value for s in families["tongxin_http_request_duration_seconds"].samples
               if s.name.endswith("_count") and s.labels == {
                   "method": method, "route": route, "status": status})


@dataclass
class Run:
    code: int
    stdout: str
    stderr: str

    @property
    def statuses(self) -> list[dict]:
        return json.loads(self.stdout)


def status_argv(system, *args: str, **urls: str) -> list[str]:
    """The installed `tongxin status`, pointed at the system's ports. A service on this
    shared test machine, busy with a burst, may take longer than the default 0.8 s to answer:
    given 30 s here (tests/unit/test_status.py holds the default's bound)."""
    targets = {s: urls.get(s, system.url(s)) for s in SERVICES}
    return [TONGXIN, "status", *(a for s, u in targets.items() for a in (f"--{s}", u)),
            "--timeout", "30", *args]


def status_env() -> dict[str, str]:
    # Without a key: /health and /metrics are open, so an operator's shell needs none.
    # An 80-column terminal: the table fits it.
    return {**os.environ, "COLUMNS": "80", "TONGXIN_TOKEN": ""}


async def tongxin_status(system, *args: str, **urls: str) -> Run:
    proc = await asyncio.create_subprocess_exec(
        *status_argv(system, *args, **urls), stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE, stdin=asyncio.subprocess.DEVNULL,
        env=status_env())
    out, err = await asyncio.wait_for(proc.communicate(), timeout=60)
    return Run(proc.returncode or 0, out.decode(), err.decode())


def lags(statuses: list[dict]) -> dict[str, int]:
    return {f"{s['service']}/{c['name']}": c["lag"] for s in statuses for c in s["consumers"]}


def behind(statuses: list[dict]) -> int:
    """Everything not yet through: consumer lag and outbox rows not yet published."""
    return sum(lags(statuses).values()) + sum(s["outbox_backlog"] or 0 for s in statuses)


async def test_every_service_exports_its_metrics_to_anyone(system):
    for service in SERVICES:
        _, families = await scrape(system, service)
        missing = FAMILIES[service] - set(families)
        assert not missing, f"{service} lacks {missing}"
        assert "tongxin_http_request_duration_seconds" in families
        assert families["tongxin_http_request_duration_seconds"].type == "histogram"
        assert "process_resident_memory_bytes" in families
        unread = [s.labels["probe"] for s in families["tongxin_metrics_probe_ok"].samples
                  if s.value != 1]
        assert not unread, f"{service} could not read {unread}"
        checks = {s.labels["check"]: s.value for s in families["tongxin_health_check"].samples}
        assert checks == {"nats": 1, "database": 1, "workers": 1}, (service, checks)
        if service in CONSUMERS:
            named = {s.labels["consumer"] for s in families["tongxin_consumer_lag"].samples}
            assert named == CONSUMERS[service], service
            parked = {s.labels["projection"] for s in
                      families["tongxin_projection_parked"].samples}
            assert parked == CONSUMERS[service] - {"events-ingest-v1"}, service
    _, reporting = await scrape(system, "reporting")
    outboxes = {s.labels["outbox"] for s in reporting["tongxin_outbox_backlog"].samples}
    assert outboxes == {"notifications"}


async def test_http_latency_counts_a_request_by_its_route_not_its_path(system):
    event_id = str(uuid.uuid4())
    route = "/v1/events/{event_id}"
    _, before = await scrape(system, "events")
    async with system.client() as http:
        r = await http.get(f"{system.url('events')}/v1/events/{event_id}")
    assert r.status_code == 404, r.text
    text, after = await scrape(system, "events")
    assert (requests_counted(after, "GET", route, "404")
            - requests_counted(before, "GET", route, "404")) == 1
    assert event_id not in text, "an id in the path must not become a label"
    # A path no route matches is one series, whatever the path.
    async with httpx.AsyncClient(timeout=30) as http:
        await http.get(f"{system.url('events')}/no/such/{event_id}")
    text, after = await scrape(system, "events")
    assert event_id not in text
    assert requests_counted(after, "GET", "unmatched", "404") >= 1


async def test_status_shows_lag_going_to_zero_after_a_burst(system):
    org, base = await system.org_and_base()
    await system.register("pairings", organization_id=org["id"], base_id=base["id"],
                          starts_on="2013-01-01")
    start = datetime.now(UTC) - timedelta(hours=3)
    body = "".join(json.dumps(envelope(activity(
        org["id"], base["id"], served=1 + i % 50, donations=[],
        started_at=(start + timedelta(seconds=i)).isoformat(),
        ended_at=(start + timedelta(seconds=i, hours=1)).isoformat())),
        ensure_ascii=False) + "\n" for i in range(BURST)).encode()

    # `tongxin status --watch` from before the burst to after it, a reading every 0.2 s: on a
    # pipe, with --json, each reading is a line.
    watching = await asyncio.create_subprocess_exec(
        *status_argv(system, "--watch", "--json", "--every", "0.2"),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        stdin=asyncio.subprocess.DEVNULL, env=status_env())
    assert watching.stdout is not None

    readings: list[tuple[float, list[dict]]] = []  # (when it came, what it said)

    async def read() -> None:
        assert watching.stdout is not None
        while line := await watching.stdout.readline():
            readings.append((time.monotonic(), json.loads(line)))

    reader = asyncio.create_task(read())
    try:
        while not readings:
            if reader.done():
                assert watching.stderr is not None
                raise AssertionError("tongxin status --watch stopped: "
                                     + (await watching.stderr.read()).decode())
            await asyncio.sleep(0.05)
        lag_before = sum(lags(readings[0][1]).values())
        assert all(s["health"] == "ok" for s in readings[0][1]), readings[0]
        t0 = time.monotonic()
        async with system.client(timeout=300) as http:
            r = await http.post(f"{system.url('events')}/v1/events/bulk", content=body,
                                headers={"content-type": "application/x-ndjson"})
        assert r.status_code == 200, r.text
        assert (r.json()["accepted"], r.json()["refused"]) == (BURST, 0), r.json()["errors"][:3]
        posted = time.monotonic()
        while True:  # until the burst has been seen as lag, and a reading after it shows 0
            during = [(t, s) for t, s in readings if t > t0]
            peak_at, peak = max(((t, sum(lags(s).values())) for t, s in during),
                                key=lambda r: r[1], default=(t0, 0))
            through = [t for t, s in during if t > peak_at and behind(s) == 0]
            if peak and through:
                zero_at = through[0]
                break
            assert time.monotonic() - posted < ZERO_WITHIN, (
                f"{'still behind' if peak else 'no lag seen'} {ZERO_WITHIN}s after the "
                f"burst: {lags(during[-1][1]) if during else 'no readings'}")
            await asyncio.sleep(0.1)
        busiest = next(lags(s) for t, s in during if t == peak_at)
    finally:
        if watching.returncode is None:
            watching.send_signal(signal.SIGINT)  # Ctrl-C: how an operator stops it
        await asyncio.wait_for(watching.wait(), timeout=30)
        await reader
    assert watching.returncode == 0, "every service was up: exit code 0 after Ctrl-C"

    # What an operator sees: the table, every consumer at 0, exit code 0.
    shown = await tongxin_status(system)
    assert shown.code == 0, shown.stdout + shown.stderr
    lines = shown.stdout.splitlines()
    at = next(i for i, line in enumerate(lines) if line.startswith("service "))
    assert lines[at].split()[:4] == ["service", "health", "consumer", "lag"], lines[at]
    assert all(len(line) <= 80 for line in lines), shown.stdout
    rows = [line.split() for line in lines[at + 1:] if line.startswith(" ")
            or line.split()[0] in SERVICES]
    consumers = CONSUMERS["events"] | CONSUMERS["reporting"]
    # a row: [service, health,] consumer, lag, ...
    seen = {row[k]: row[k + 1] for row in rows for k in range(len(row) - 1)
            if row[k] in consumers}
    assert set(seen) == consumers, shown.stdout
    assert set(seen.values()) == {"0"}, shown.stdout
    assert [row[1] for row in rows if row[0] in SERVICES] == ["ok"] * 3, shown.stdout
    assert "no lag; outboxes empty" in shown.stdout, shown.stdout

    print(f"\n[{system.backend.name}] burst of {BURST} activities (bulk POST "
          f"{posted - t0:.1f}s): lag {lag_before} before; peak {peak:,} "
          f"{peak_at - t0:.1f}s after the POST was sent ({busiest}); 0 "
          f"{zero_at - posted:.1f}s after it answered; {len(readings)} readings of tongxin "
          f"status --watch\n{shown.stdout}")


async def test_status_exits_1_when_a_service_is_down(system):
    nowhere = f"http://127.0.0.1:{free_port()}"
    run = await tongxin_status(system, reporting=nowhere)
    assert run.code == 1, run.stdout + run.stderr
    assert "reporting down: nothing answers" in run.stdout, run.stdout
    assert "not ok: reporting" in run.stdout, run.stdout
    as_json = await tongxin_status(system, "--json", reporting=nowhere)
    assert as_json.code == 1
    assert [s["health"] for s in as_json.statuses] == ["ok", "ok", "down"]
