"""End-to-end throughput: outside systems send N events of a realistic mix (activities, needs
submitted and claimed, attendance, reports); how fast are they accepted (events service) and
counted (reporting)? On the bus (`tongxin.ingest`), through the bulk endpoint
(`POST /v1/events/bulk`, what `tongxin load` uses), and HTTP logging one request at a time.

    python -m bench [--events 20000] [--http 300] [--http-clients 20] [--postgres URL]

Uses TONGXIN_NATS_URL if set, else an embedded nats-server; SQLite unless --postgres is given.
Prints figures and their ratio to the targets in NATS-NOTES.md (measured on these machines),
and the events service's peak memory.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

from bench.endtoend import bulk, bus, nats_for, peak_rss_mb, service_pid
from bench.mix import Mix, recent, volunteers
from tests.factories import activity
from tests.harness import Backend, System, create_pg_database, drop_pg_database

TARGET_E2E = 14_000  # events/s, one transaction per 500-event batch on PostgreSQL (NATS-NOTES)
VOLUNTEERS = 500
console = Console(width=None if sys.stdout.isatty() else 120)  # a log keeps rows whole


def ratio(rate: float) -> str:
    return f"{rate / TARGET_E2E:.2f}× of {TARGET_E2E:,}/s"


async def concurrent_posts(system: System, org_id: str, base_id: str, n: int,
                           clients: int) -> tuple[float, float, float]:
    """`n` single activities posted by `clients` clients at once, each one request at a time
    (many forms and mini-programs at a peak): events/s, and p50 and p99 latency in ms."""
    latencies: list[float] = []
    left = iter(range(n))

    async def client(http) -> None:
        for _ in left:
            t = time.perf_counter()
            r = await http.post(f"{system.url('events')}/v1/activities",
                                json=activity(org_id, base_id, **recent()))
            r.raise_for_status()
            latencies.append(time.perf_counter() - t)

    async with system.client(timeout=60) as http:
        t0 = time.perf_counter()
        await asyncio.gather(*(client(http) for _ in range(clients)))
        rate = n / (time.perf_counter() - t0)
    latencies.sort()
    return (rate, 1000 * latencies[len(latencies) // 2],
            1000 * latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))])


def mix_of(m: Mix, before: dict) -> str:
    now = {t: m.counts[t] - before.get(t, 0) for t in m.counts}
    return ", ".join(f"{n:,} {t}" for t, n in now.items() if n)


async def run(args) -> None:
    tmp = Path(tempfile.mkdtemp(prefix="tongxin-bench-"))
    nats_url, server = nats_for(tmp)
    pg = await create_pg_database(args.postgres) if args.postgres else None
    backend = Backend("postgres" if pg else "sqlite", tmp / "db", pg)
    system = System(nats_url, backend, tmp / "system", traces=False).start()
    rows = []
    notes = []
    try:
        org, base = await system.org_and_base()
        await system.register("pairings", organization_id=org["id"], base_id=base["id"],
                              starts_on="2013-01-01")
        mix = Mix(org["id"], base["id"],
                  await volunteers(system.url("registry"), org["id"], "bench", VOLUNTEERS,
                                  system.auth()),
                  activities_only=args.activities_only)
        events_pid = service_pid(system, "events")

        # HTTP, one request at a time (what a form or mini-program does). Recent times: an
        # activity of 2013 would owe its report at once, and the deadline sweep would publish
        # report.overdue events among the ones measured below.
        async with system.client(timeout=30) as http:
            t0 = time.perf_counter()
            for _ in range(args.http):
                r = await http.post(f"{system.url('events')}/v1/activities",
                                    json=activity(org["id"], base["id"], **recent()))
                r.raise_for_status()
            http_rate = args.http / (time.perf_counter() - t0)
        rows.append(("HTTP POST /v1/activities, sequential", f"{http_rate:,.0f} /s", "—"))
        if args.http_clients:
            rate, p50, p99 = await concurrent_posts(system, org["id"], base["id"], args.http,
                                                    args.http_clients)
            rows.append((f"HTTP POST /v1/activities, {args.http_clients} concurrent clients",
                         f"{rate:,.0f} /s (p50 {p50:,.0f} ms · p99 {p99:,.0f} ms)", "—"))
        posted = args.http * (2 if args.http_clients else 1)

        # The bus: N envelopes of the mix published pipelined by "another system".
        before = dict(mix.counts)
        b = await bus(system, mix, args.events, already_counted=posted)
        notes.append(f"bus: {mix_of(mix, before)}")
        rows += [
            ("bus: publish to tongxin.ingest (pipelined)", f"{b.published:,.0f} /s", "—"),
            ("bus: accepted → TONGXIN_EVENTS", f"{b.accepted:,.0f} /s", ratio(b.accepted)),
            ("bus end to end: published → counted in reports", f"{b.counted:,.0f} /s",
             ratio(b.counted)),
            ("  activities only: published → counted", f"{b.activities_counted:,.0f} /s", "—"),
        ]

        # The bulk endpoint: the same number of events of the mix as one NDJSON upload.
        before = dict(mix.counts)
        u = await bulk(system, mix, args.events, already_counted=posted + b.activities)
        notes.append(f"bulk: {mix_of(mix, before)} ({u.megabytes:.1f} MB)")
        rows += [
            ("bulk: POST /v1/events/bulk → answered (all accepted)",
             f"{u.answered:,.0f} /s", ratio(u.answered)),
            ("bulk end to end: upload → counted in reports", f"{u.counted:,.0f} /s",
             ratio(u.counted)),
        ]
        rows.append(("events service peak RSS (VmHWM)", f"{peak_rss_mb(events_pid):,.0f} MB",
                     "—"))
    finally:
        system.stop()
        if server:
            server.stop()
        if pg:
            await drop_pg_database(args.postgres, pg)
    table = Table(title=f"Tongxin end to end, {args.events:,} events of a mix per path, "
                        f"{backend.name}", caption="; ".join(notes))
    for col in ("path", "rate", "ratio to target"):
        table.add_column(col)
    for row in rows:
        table.add_row(*row)
    console.print(table)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--events", type=int, default=20_000)
    p.add_argument("--http", type=int, default=300)
    p.add_argument("--http-clients", type=int, default=0,
                   help="also post --http activities from this many clients at once")
    p.add_argument("--activities-only", action="store_true",
                   help="send only activity.logged (comparable with runs before other types)")
    p.add_argument("--postgres", default=os.environ.get("TONGXIN_TEST_POSTGRES_URL"),
                   help="a PostgreSQL server URL (a throwaway database is created there)")
    asyncio.run(run(p.parse_args()))


if __name__ == "__main__":
    main()
