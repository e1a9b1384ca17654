"""Reporting: how fast the read models are rebuilt from the record, beside the reference
pipelines measured in the same run on the same events, and how fast reports answer.

    python -m bench.reporting [--events 1000000] [--postgres URL] [--clients 50]

1. N accepted events (a mix: activities, some of them fairs, corrections, retractions,
   attendance, needs and their claims, reports) are put on a fresh TONGXIN_EVENTS.
2. Reference pipelines over the same stream, on PostgreSQL: (a) raw nats-py `fetch(500)`, the
   batch's figures summed in memory, one upsert transaction per batch; (b) one transaction per
   event (over the first `--per-event` events: a million would take half an hour).
3. Tongxin live: the reporting service started on empty tables catches up on the stream, every
   read model (and the notifier) at once, as after a deploy with a new schema: events/s until
   every consumer's lag is 0.
4. Tongxin: `tongxin reporting rebuild` (in process): every read model replays the stream into
   fresh tables and swaps them in. Events/s per model and for all of them, each with its ratio
   to (a).
5. The reporting service on the rebuilt tables; `--clients` concurrent clients ask for every
   report of REPORTS (the summary four ways, volunteers, needs, timeliness, assessment), each
   query's scope and period drawn at random and never asked twice: p50 and p99.

`make bench` (bench.speed) reuses these pieces for issue 13's table.

Prints the table and appends it, with machine and versions, to bench/RESULTS.md.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import platform
import random
import statistics
import sys
import tempfile
import time
import uuid
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import nats
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy
from rich.console import Console
from rich.table import Table
from sqlalchemy import text

from bench.endtoend import memory_mb, nats_for
from bench.verdicts import percentile
from shared.auth import key_hash, new_key
from shared.db import make_engine, migrate
from shared.settings import Settings
from shared.streams import declare, stream_names
from shared.subjects import Names
from tests.harness import create_pg_database, drop_pg_database
from tongxin.natsserver import free_port
from tongxin.supervisor import Supervisor

console = Console(width=None if sys.stdout.isatty() else 140)
RESULTS = Path(__file__).with_name("RESULTS.md")
UNITS, BASES, VOLUNTEERS = 200, 600, 5_000
TOP_UNITS = 10  # units with no parent; every other unit is under one of them
START = datetime(2013, 1, 1, 1, tzinfo=UTC)  # the first event; then one a minute
KINDS = ["free_clinic", "haircut", "repair", "tutoring", "legal_aid", "consultation"]


# -- the events -----------------------------------------------------------------------------

def _env(event_type: str, data: dict, when: datetime) -> dict:
    return {"event_id": str(uuid.uuid4()), "type": event_type, "version": 1,
            "occurred_at": when.isoformat(), "source": "bench", "data": data}


def events(n: int, seed: int = 7):
    """(type, payload) for n accepted events over two years, in a realistic mix."""
    rnd = random.Random(seed)
    start = START
    logged: list[dict] = []
    needs: list[str] = []
    made = 0
    while made < n:
        when = start + timedelta(minutes=made)  # a million events span about two years
        roll = rnd.random()
        unit, base = f"u{rnd.randrange(UNITS)}", f"b{rnd.randrange(BASES)}"
        if roll < 0.55 or not logged:
            data = {"activity_id": str(uuid.uuid4()), "organization_id": unit, "base_id": base,
                    "title": "同心服务活动", "theme": "harmonious_society",
                    "started_at": when.isoformat(),
                    "ended_at": (when + timedelta(hours=2)).isoformat(),
                    "volunteers": rnd.randrange(1, 30), "volunteer_hours": rnd.randrange(2, 60),
                    "trainees": rnd.randrange(0, 5)}
            if rnd.random() < 0.02:  # a fair: stalls from other units
                data["stalls"] = [{"service_type": rnd.choice(KINDS),
                                   "served": rnd.randrange(10, 200),
                                   "organization_id": f"u{rnd.randrange(UNITS)}"}
                                  for _ in range(rnd.randrange(5, 15))]
            else:
                data["service_types"] = rnd.sample(KINDS, rnd.randrange(1, 3))
                data["served"] = rnd.randrange(5, 300)
            if rnd.random() < 0.1:
                data["outputs"] = [{"indicator": "students_funded",
                                    "quantity": rnd.randrange(1, 10)}]
            logged.append(data)
            yield "activity.logged", _env("activity.logged", data, when)
        elif roll < 0.80:
            act = rnd.choice(logged[-500:])
            yield "attendance.recorded", _env("attendance.recorded", {
                "activity_id": act["activity_id"], "volunteer_id": f"v{rnd.randrange(VOLUNTEERS)}",
                "hours": 2, "method": rnd.choice(["sign_in", "self", "organiser"])}, when)
        elif roll < 0.86:
            act = rnd.choice(logged[-500:])
            yield "report.submitted", _env("report.submitted", {
                "activity_id": act["activity_id"], "organization_id": act["organization_id"],
                "summary": "服务小结", "photos": []}, when)
        elif roll < 0.93:
            need_id = f"n{made}"
            needs.append(need_id)
            yield "need.submitted", _env("need.submitted", {
                "need_id": need_id, "base_id": base, "title": "路灯维修", "category": "repair",
                "urgency": "normal", "channel": "hotline"}, when)
        elif roll < 0.98 and needs:
            yield "need.claimed", _env("need.claimed", {"need_id": needs.pop(),
                                                         "organization_id": unit}, when)
        elif roll < 0.995:
            act = rnd.choice(logged[-2000:])
            fixed = {**act, "served": (act.get("served") or 0) + 1, "reason": "更正人数"}
            if "stalls" in act:
                fixed.pop("served")
            yield "activity.corrected", _env("activity.corrected", fixed, when)
        else:
            act = logged.pop(rnd.randrange(len(logged)))
            yield "activity.retracted", _env("activity.retracted", {
                "activity_id": act["activity_id"], "reason": "重复录入"}, when)
        made += 1


async def fill(js, names: Names, n: int) -> float:
    """Put n accepted events on the events stream (as the events service would)."""
    t0 = time.perf_counter()
    window = []
    for event_type, env in events(n):
        window.append(await js.publish_async(
            names.events(event_type), json.dumps(env, ensure_ascii=False).encode(),
            headers={"Nats-Msg-Id": env["event_id"]}))
        if len(window) >= 5_000:
            await asyncio.gather(*window)
            window = []
    await asyncio.gather(*window)
    return n / (time.perf_counter() - t0)


async def registry(js, names: Names) -> str:
    """Names for the units and bases, so reports have labels; and an admin key (the reporting
    service runs alone here, so it is published as the registry would): returned."""
    now = datetime.now(UTC).isoformat()
    key_id, key = new_key()
    env = _env("key.issued", {"id": key_id, "name": "bench", "role": "admin", "active": True,
                              "organization_id": None, "key_hash": key_hash(key),
                              "updated_at": now}, datetime.now(UTC))
    futures = [await js.publish_async(names.registry("key", "issued"), json.dumps(env).encode(),
                                      headers={"Nats-Msg-Id": env["event_id"]})]
    for kind, count, prefix, extra in (("organization", UNITS, "u", {"kind": "enterprise"}),
                                       ("base", BASES, "b", {"kind": "community"})):
        for i in range(count):
            # Units u0…u9 at the top, each with the units u10…u199 ending in its digit under it
            # (a subtree of about 20), so a unit's scope takes in its subtree as reports do.
            parent = {"parent_id": f"u{i % TOP_UNITS}"} if kind == "organization" and \
                i >= TOP_UNITS else {}
            env = _env(f"{kind}.registered", {"id": f"{prefix}{i}", "name": f"{kind}{i}",
                                              "updated_at": now, **extra, **parent},
                       datetime.now(UTC))
            futures.append(await js.publish_async(
                names.registry(kind, "registered"), json.dumps(env).encode(),
                headers={"Nats-Msg-Id": env["event_id"]}))
    await asyncio.gather(*futures)
    return key


# -- the reference pipelines ----------------------------------------------------------------

def _subscription(js, names: Names):
    config = ConsumerConfig(ack_policy=AckPolicy.NONE, deliver_policy=DeliverPolicy.ALL,
                            mem_storage=True, inactive_threshold=60)
    return js.pull_subscribe(names.events(), durable=None, stream=names.events_stream,
                             config=config)


CUBE = """CREATE TABLE ref_cube (organization_id text, base_id text, month text,
activities bigint, served bigint, volunteers bigint, hours double precision,
PRIMARY KEY (organization_id, base_id, month))"""
UPSERT = """INSERT INTO ref_cube VALUES (:o, :b, :m, :a, :s, :v, :h)
ON CONFLICT (organization_id, base_id, month) DO UPDATE SET
activities = ref_cube.activities + excluded.activities, served = ref_cube.served + excluded.served,
volunteers = ref_cube.volunteers + excluded.volunteers, hours = ref_cube.hours + excluded.hours"""


def _figures(msg) -> tuple[tuple[str, str, str], list] | None:
    env = json.loads(msg.data)
    if env["type"] != "activity.logged":
        return None
    d = env["data"]
    served = d.get("served") or sum(s["served"] for s in d.get("stalls", []))
    return ((d["organization_id"], d["base_id"], d["started_at"][:7]),
            [1, served, d["volunteers"], d["volunteer_hours"]])


async def reference_batched(js, names: Names, url: str, schema: str, n: int) -> float:
    """Raw nats-py fetch(500) → figures summed per batch → one upsert transaction a batch."""
    engine = make_engine(url, schema)
    async with engine.begin() as conn:
        await conn.execute(text(CUBE))
    sub = await _subscription(js, names)
    t0 = time.perf_counter()
    done = 0
    while done < n:
        batch = await sub.fetch(500, timeout=10)
        sums: dict[tuple[str, str, str], list] = defaultdict(lambda: [0, 0, 0, 0.0])
        for msg in batch:
            if (got := _figures(msg)) is not None:
                key, figures = got
                sums[key] = [a + b for a, b in zip(sums[key], figures, strict=True)]
        if sums:
            async with engine.begin() as conn:
                await conn.execute(text(UPSERT), [
                    {"o": o, "b": b, "m": m, "a": f[0], "s": f[1], "v": f[2], "h": f[3]}
                    for (o, b, m), f in sums.items()])
        done += len(batch)
    rate = n / (time.perf_counter() - t0)
    await sub.unsubscribe()
    await engine.dispose()
    return rate


async def reference_fetch(js, names: Names, n: int) -> float:
    """Raw nats-py `fetch(500)` of the stream, each message's JSON decoded, nothing written:
    the rate no consumer of the stream can beat."""
    sub = await _subscription(js, names)
    t0 = time.perf_counter()
    done = 0
    while done < n:
        batch = await sub.fetch(min(500, n - done), timeout=10)
        for msg in batch:
            json.loads(msg.data)
        done += len(batch)
    rate = n / (time.perf_counter() - t0)
    await sub.unsubscribe()
    return rate


async def reference_per_event(js, names: Names, url: str, schema: str, n: int) -> float:
    """The same, but one transaction per event (what a naive consumer does)."""
    engine = make_engine(url, schema)
    async with engine.begin() as conn:
        await conn.execute(text(CUBE.replace("ref_cube", "ref_cube_single")))
    sub = await _subscription(js, names)
    t0 = time.perf_counter()
    done = 0
    while done < n:
        batch = await sub.fetch(min(500, n - done), timeout=10)
        for msg in batch:
            if (got := _figures(msg)) is not None:
                (o, b, m), f = got
                async with engine.begin() as conn:
                    await conn.execute(text(UPSERT.replace("ref_cube", "ref_cube_single")),
                                       {"o": o, "b": b, "m": m, "a": f[0], "s": f[1],
                                        "v": f[2], "h": f[3]})
            else:
                async with engine.begin() as conn:
                    await conn.execute(text("SELECT 1"))
        done += len(batch)
    rate = n / (time.perf_counter() - t0)
    await sub.unsubscribe()
    await engine.dispose()
    return rate


# -- `tongxin reporting rebuild`, as an operator runs it ---------------------------------------

@dataclass
class RebuildRun:
    seconds: float  # from the registry models' swap until every events model had replayed
    returncode: int
    rss_quarter: tuple[float, float]  # the command's (VmRSS, VmHWM) MB a quarter of the way
    rss_end: tuple[float, float]      # and at the last look before it exited
    log: Path                         # what it printed


async def rebuild_command(env: dict[str, str], pg: str, schema: str, events_last: int,
                          log: Path) -> RebuildRun:
    """Run `tongxin reporting rebuild` (every read model) in a process of its own; watch its
    memory and, from the rebuild schema's positions, how far the slowest model has replayed.
    The time counted is the events stream's replay, every model at once, from the registry
    models' swap (seen in the live schema, which must be fresh) until the slowest events model
    has reached `events_last`: the registry replica before it and the waits for a live service
    (none runs here: the rebuild's `settle`, 15 s a model) are not the rebuild's rate."""
    from services.reporting.rebuild import rebuildable

    models = [m.name for m in rebuildable() if m.stream == "events"]
    first = [m.name for m in rebuildable() if m.stream == "registry"]
    tongxin = Path(sys.executable).with_name("tongxin")
    engine = make_engine(pg, f"{schema}_rebuild")
    live = make_engine(pg, schema)  # fresh: a position there is a swap by the command

    async def positions(db) -> dict[str, int]:
        try:
            async with db.connect() as conn:
                return dict((await conn.execute(text(
                    "SELECT name, position FROM projection_positions"))).tuples().all())
        except Exception:  # the schema or table is not there yet
            return {}

    with log.open("wb") as out:
        t0 = time.perf_counter()
        proc = await asyncio.create_subprocess_exec(
            str(tongxin), "reporting", "rebuild", stdout=out, stderr=asyncio.subprocess.STDOUT,
            env={**os.environ, **env})
        quarter: tuple[float, float] | None = None
        last = (float("nan"), float("nan"))
        replayed: float | None = None
        began: float | None = None  # the registry models swapped: the events models start
        while proc.returncode is None:
            try:
                sample = memory_mb(proc.pid)
            except FileNotFoundError:  # exited between two looks
                sample = (math.nan, math.nan)
            if not math.isnan(sample[1]):  # an exited process's status has no Vm lines
                last = sample
            if began is None:
                swapped = await positions(live)
                if all(swapped.get(m, 0) for m in first):
                    began = time.perf_counter() - t0
            elif replayed is None or quarter is None:
                found = await positions(engine)
                slowest = min((found.get(m, 0) for m in models), default=0)
                if quarter is None and slowest >= events_last / 4:
                    quarter = last
                if replayed is None and slowest >= events_last:
                    replayed = time.perf_counter() - t0
            try:
                await asyncio.wait_for(proc.wait(), 0.25)
            except TimeoutError:
                pass
        ended = time.perf_counter() - t0
    await engine.dispose()
    await live.dispose()
    return RebuildRun((replayed or ended) - (began or 0.0), proc.returncode, quarter or last,
                      last, log)


def serve(nats_url: str, tag: str, pg: str, schema: str, tmp: Path) -> tuple[Supervisor, int]:
    """The reporting service alone on `schema`, started and healthy: (its supervisor, port)."""
    port = free_port()
    sup = Supervisor(env={}, ports={"reporting": port}, log_dir=tmp / f"logs-{schema}")
    sup.start("reporting", {"TONGXIN_NATS_URL": nats_url, "TONGXIN_NAMESPACE": tag,
                            "TONGXIN_REPORTING_DATABASE_URL": pg,
                            "TONGXIN_DB_SCHEMA": schema, "TONGXIN_DATA_DIR": str(tmp),
                            "TONGXIN_TRACE_FILE": ""})
    sup.wait_healthy(["reporting"], timeout=120)
    return sup, port


# -- report latency -------------------------------------------------------------------------

async def catch_up(nats_url: str, tag: str, pg: str, tmp: Path, n: int) -> float:
    """The reporting service started on empty tables (its own schema): stream events/s until
    /metrics shows no lag on any of its consumers."""
    await migrate("reporting", pg, "live")
    port = free_port()
    sup = Supervisor(env={}, ports={"reporting": port}, log_dir=tmp / "logs-live")
    t0 = time.perf_counter()
    sup.start("reporting", {"TONGXIN_NATS_URL": nats_url, "TONGXIN_NAMESPACE": tag,
                            "TONGXIN_REPORTING_DATABASE_URL": pg, "TONGXIN_DB_SCHEMA": "live",
                            "TONGXIN_DATA_DIR": str(tmp), "TONGXIN_TRACE_FILE": ""})
    try:
        async with httpx.AsyncClient(timeout=30) as http:
            while True:
                try:
                    page = (await http.get(f"http://127.0.0.1:{port}/metrics")).text
                except httpx.TransportError:
                    page = ""
                lags = [float(line.rsplit(" ", 1)[1]) for line in page.splitlines()
                        if line.startswith("tongxin_consumer_lag{")]
                if lags and not any(lags):
                    return n / (time.perf_counter() - t0)
                await asyncio.sleep(0.2)
    finally:
        sup.stop_all()


def _period(rnd: random.Random, days: int) -> dict[str, str]:
    """A period inside the events' span: a random first day, one day to a year long."""
    first = START.date() + timedelta(days=rnd.randrange(days))
    return {"from": first.isoformat(),
            "to": (first + timedelta(days=rnd.randrange(0, 365))).isoformat()}


def _scope(rnd: random.Random) -> dict[str, str]:
    """The whole programme, a top unit with its subtree, any unit (a leaf, mostly), or a
    base."""
    roll = rnd.randrange(4)
    if roll == 0:
        return {}
    if roll == 3:
        return {"base_id": f"b{rnd.randrange(BASES)}"}
    return {"organization_id": f"u{rnd.randrange(TOP_UNITS if roll == 1 else UNITS)}"}


def draw(params: Params, rnd: random.Random, days: int, asked: set) -> dict:
    """A query for the report that nobody has asked yet in this run (drawn again if so)."""
    for _ in range(1000):
        query = params(rnd, days)
        key = tuple(sorted(query.items()))
        if key not in asked:
            asked.add(key)
            return query
    raise RuntimeError("no query left that was not asked already: too few to draw from")


Params = Callable[[random.Random, int], dict]
# The reports timed under load (issue 13): name, path, the query drawn for each request.
REPORTS: list[tuple[str, str, Params]] = [
    ("summary, whole programme", "/v1/reports/summary", lambda r, d: {
        "group_by": r.choice(["year", "quarter", "service_type", "base"]), **_period(r, d)}),
    ("summary by unit", "/v1/reports/summary", lambda r, d: {
        "group_by": "organization", **_period(r, d)}),
    ("summary by month", "/v1/reports/summary", lambda r, d: {
        "group_by": "month", **_period(r, d)}),
    ("summary, one unit's subtree", "/v1/reports/summary", lambda r, d: {
        "organization_id": f"u{r.randrange(TOP_UNITS)}",
        "group_by": r.choice(["organization", "month", "service_type"]), **_period(r, d)}),
    ("volunteers (first 100 rows)", "/v1/reports/volunteers", lambda r, d: {
        **_scope(r), **_period(r, d), "limit": 100}),
    ("needs", "/v1/reports/needs", lambda r, d: {
        **_scope(r), **_period(r, d),
        "group_by": r.choice(["base", "organization", "category", "month"])}),
    ("timeliness", "/v1/reports/timeliness", lambda r, d: {
        **_scope(r), **_period(r, d), "group_by": r.choice(["organization", "month"])}),
    ("assessment", "/v1/reports/assessment", lambda r, d: {
        **_scope(r), "year": START.year + r.randrange(max(1, d // 365 + 1))}),
]


def span_days(n: int) -> int:
    """Days the `n` events of `events(n)` cover (one a minute)."""
    return max(1, n // (24 * 60) + 1)


async def latency(url: str, key: str, clients: int, requests: int, days: int,
                  asked: dict[str, set] | None = None) -> dict[str, list[float]]:
    """`clients` concurrent clients, each asking every report of REPORTS `requests` times, in
    a random order, each time with a scope and period (or year) drawn at random and never
    asked before in the run (`asked`), so no cache can give the answer. Milliseconds per report; a
    failure is kept as `<name> not 200 (…)` or `<name> timed out`."""
    timings: dict[str, list[float]] = defaultdict(list)
    # per report, every query asked so far (pass the same dict to several calls: none repeats)
    asked = asked if asked is not None else defaultdict(set)

    async def client(i: int) -> None:
        rnd = random.Random(i)
        asks = [r for r in REPORTS for _ in range(requests)]
        rnd.shuffle(asks)
        async with httpx.AsyncClient(base_url=url, timeout=300,
                                     headers={"Authorization": f"Bearer {key}"}) as http:
            for name, path, params in asks:
                t0 = time.perf_counter()
                try:
                    r = await http.get(path, params=draw(params, rnd, days, asked[name]))
                except httpx.TimeoutException:  # counted and shown, like any failure
                    timings[f"{name} timed out (300 s)"].append(0.0)
                    continue
                if r.status_code == 200:
                    timings[name].append((time.perf_counter() - t0) * 1000)
                else:  # counted and shown: an overloaded service answers 503
                    timings[f"{name} not 200 ({r.status_code})"].append(0.0)

    await asyncio.gather(*(client(i) for i in range(clients)))
    return timings


async def summary_timings(url: str, schema: str) -> list[tuple[str, str, str]]:
    """One summary at a time, in process, on the rebuilt tables: read from the rollups and
    computed from the cube's rows (`summary_raw`, what it was before), best of two."""
    from services.reporting.models import activities
    from services.reporting.scope import Scope

    engine = make_engine(url, schema)
    rows = []
    cases = [(g, Scope(), "whole programme") for g in
             ("organization", "month", "service_type", "base", "region", "quarter")]
    cases.append(("month", Scope(organization_id="u7"), "one unit"))
    async with engine.connect() as conn:
        for group_by, scope, what in cases:
            ms = []
            for fn in (activities.summary, activities.summary_raw):
                best = float("inf")
                for _ in range(2):
                    t0 = time.perf_counter()
                    await fn(conn, group_by, scope)  # type: ignore[operator,arg-type]
                    best = min(best, (time.perf_counter() - t0) * 1000)
                ms.append(best)
            rows.append((f"summary by {group_by}, {what}: from rollups · from rows (1 client)",
                         f"{ms[0]:,.0f} ms · {ms[1]:,.0f} ms", f"{ms[1] / ms[0]:,.0f}× faster"))
    await engine.dispose()
    return rows


# -- the run --------------------------------------------------------------------------------

async def run(args) -> None:
    from services.reporting.rebuild import rebuild

    tmp = Path(tempfile.mkdtemp(prefix="tongxin-bench-reporting-"))
    nats_url, server = nats_for(tmp)
    assert args.postgres, "set --postgres or TONGXIN_TEST_POSTGRES_URL: the references run there"
    pg = await create_pg_database(args.postgres)
    tag = f"bench{uuid.uuid4().hex[:6]}"
    names = Names(tag)
    nc = await nats.connect(nats_url)
    js = nc.jetstream()
    rows: list[tuple[str, str, str]] = []
    sup = None
    try:
        await declare(js, names)
        key = await registry(js, names)
        fill_rate = await fill(js, names, args.events)
        rows.append((f"publish {args.events:,} accepted events (pipelined)",
                     f"{fill_rate:,.0f} /s", "—"))

        admin = make_engine(pg)
        async with admin.begin() as conn:
            await conn.execute(text("CREATE SCHEMA ref"))
        await admin.dispose()
        ref = await reference_batched(js, names, pg, "ref", args.events)
        rows.append(("(a) reference: fetch(500) → pre-summed upsert, 1 tx a batch",
                     f"{ref:,.0f} /s", "1.00 (denominator)"))
        single_n = min(args.per_event, args.events)
        single = await reference_per_event(js, names, pg, "ref", single_n)
        rows.append((f"(b) reference: 1 tx per event (first {single_n:,})",
                     f"{single:,.0f} /s", f"{single / ref:.2f}× of (a)"))

        live = await catch_up(nats_url, tag, pg, tmp, args.events)
        rows.append(("tongxin live: the reporting service catching up from 0 (every model, "
                     "the notifier)", f"{live:,.0f} /s",
                     f"{live / ref:.2f}× of (a), {live / single:.1f}× of (b)"))

        settings = Settings(nats_url=nats_url, namespace=tag, reporting_database_url=pg,
                            db_schema="reporting", data_dir=tmp)
        await migrate("reporting", pg, "reporting")
        result = await rebuild(settings, settle=1.0)  # no live service: nothing to wait for
        total_events = sum(m.events for m in result.models)
        total_seconds = result.seconds  # the models replay side by side
        for m in result.models:
            rate = m.events / m.seconds if m.seconds else 0.0
            rows.append((f"tongxin rebuild: {m.name} (beside the others)", f"{rate:,.0f} /s",
                         f"{rate / ref:.2f}× of (a), {rate / single:.1f}× of (b)"))
        per_stream = args.events / total_seconds
        rows.append(("tongxin rebuild, every read model at once (stream events ÷ wall time)",
                     f"{per_stream:,.0f} /s", f"{per_stream / ref:.2f}× of (a), "
                     f"{per_stream / single:.1f}× of (b)"))
        rows.append(("  events applied, all models", f"{total_events:,} in {total_seconds:,.0f} s",
                     "—"))

        rows.extend(await summary_timings(pg, "reporting"))
        sup, port = serve(nats_url, tag, pg, "reporting", tmp)
        timings = await latency(f"http://127.0.0.1:{port}", key, args.clients, args.requests,
                                span_days(args.events))
        for name, values in timings.items():
            if "not 200" in name or "timed out" in name:
                rows.append((f"GET {name}", f"{len(values):,} requests", "—"))
                continue
            rows.append((f"GET {name}: {args.clients} concurrent clients, "
                         f"{len(values):,} requests",
                         f"p50 {statistics.median(values):,.0f} ms · "
                         f"p99 {percentile(values, 0.99):,.0f} ms", "—"))
    finally:
        if sup:
            sup.stop_all()
        for name in stream_names(names):  # the buckets' streams too
            try:
                await js.delete_stream(name)
            except Exception:
                pass
        await nc.close()
        if server:
            server.stop()
        await drop_pg_database(args.postgres, pg)
    report(args, rows)


def now_utc() -> str:
    return f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC"


def machine_lines() -> list[str]:
    """What RESULTS.md says of the machine and the versions a run used."""
    import importlib.metadata as md

    versions = ", ".join(f"{p} {md.version(p)}" for p in (
        "faststream", "nats-py", "sqlalchemy", "asyncpg", "pydantic", "fastapi"))
    machine = (f"{platform.node()}: {os.cpu_count()} cores, "
               f"{os.sysconf('SC_PAGE_SIZE') * os.sysconf('SC_PHYS_PAGES') / 2**30:.0f} GiB, "
               f"Python {platform.python_version()}, {platform.platform()}")
    return [f"Machine: {machine}.  ", f"Versions: {versions}."]


def report(args, rows: list[tuple[str, str, str]]) -> None:
    title = f"Tongxin reporting, {args.events:,} events, PostgreSQL"
    table = Table(title=title)
    for col in ("path", "figure", "ratio"):
        table.add_column(col)
    for row in rows:
        table.add_row(*row)
    console.print(table)
    lines = [f"\n## {title} — {now_utc()}\n", *machine_lines(), "",
             "| path | figure | ratio |", "| --- | --- | --- |",
             *[f"| {a} | {b} | {c} |" for a, b, c in rows]]
    with RESULTS.open("a") as f:
        f.write("\n".join(lines) + "\n")
    console.print(f"appended to {RESULTS}")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--events", type=int, default=1_000_000)
    p.add_argument("--per-event", type=int, default=20_000,
                   help="events for the one-transaction-per-event reference")
    p.add_argument("--clients", type=int, default=50)
    p.add_argument("--requests", type=int, default=3,
                   help="requests of each report per client")
    p.add_argument("--postgres", default=os.environ.get("TONGXIN_TEST_POSTGRES_URL"))
    asyncio.run(run(p.parse_args()))


if __name__ == "__main__":
    main()
