"""End-to-end throughput: outside systems publish N events on the bus; how fast are they
accepted (events service) and counted (reporting)? Also HTTP logging, one request at a time.

    python -m bench [--events 20000] [--http 300] [--postgres URL]

Uses TONGXIN_NATS_URL if set, else an embedded nats-server; SQLite unless --postgres is given.
Prints figures and their ratio to the targets in NATS-NOTES.md (measured on these machines).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import tempfile
import time
import uuid
from pathlib import Path

import httpx
import nats
from rich.console import Console
from rich.table import Table

from tests.factories import activity, envelope, raw
from tests.harness import Backend, System, create_pg_database, drop_pg_database
from tongxin.natsserver import NatsServer

TARGET_E2E = 14_000  # events/s, one transaction per 500-event batch on PostgreSQL (NATS-NOTES)
console = Console()


async def run(args) -> None:
    tmp = Path(tempfile.mkdtemp(prefix="tongxin-bench-"))
    server = None
    nats_url = os.environ.get("TONGXIN_NATS_URL")
    if not nats_url:
        server = NatsServer(tmp / "nats").start()
        nats_url = server.url
    pg = await create_pg_database(args.postgres) if args.postgres else None
    backend = Backend("postgres" if pg else "sqlite", tmp / "db", pg)
    system = System(nats_url, backend, tmp / "system", traces=False).start()
    rows = []
    try:
        org, base = await system.org_and_base()

        # HTTP, one request at a time (what a form or mini-program does).
        async with httpx.AsyncClient(timeout=30) as http:
            t0 = time.perf_counter()
            for _ in range(args.http):
                r = await http.post(f"{system.url('events')}/v1/activities",
                                    json=activity(org["id"], base["id"]))
                r.raise_for_status()
            http_rate = args.http / (time.perf_counter() - t0)
        rows.append(("HTTP POST /v1/activities, sequential", f"{http_rate:,.0f} /s", "—"))
        start_seq = await system.events_last_seq()

        # The bus: N envelopes published pipelined by "another system".
        payloads = [raw(envelope(activity(org["id"], base["id"]))) for _ in range(args.events)]
        nc = await nats.connect(nats_url)
        js = nc.jetstream()
        subject = system.names.ingest("activity.logged")
        t0 = time.perf_counter()
        futures = [await js.publish_async(subject, p, headers={"Nats-Msg-Id": str(uuid.uuid4())})
                   for p in payloads]
        await asyncio.gather(*futures)
        published = time.perf_counter() - t0
        target_seq = start_seq + args.events
        await system.wait_for_seq(target_seq, timeout=600)
        accepted = time.perf_counter() - t0
        async with httpx.AsyncClient(timeout=60) as http:
            r = await http.get(f"{system.url('reporting')}/v1/reports/summary",
                               params={"organization_id": org["id"], "min_seq": target_seq})
            while r.status_code == 503:
                r = await http.get(f"{system.url('reporting')}/v1/reports/summary",
                                   params={"organization_id": org["id"], "min_seq": target_seq})
        counted = time.perf_counter() - t0
        total = r.json()["totals"]["activities"]
        await nc.close()
        assert total == args.events + args.http, f"counted {total}"
        e2e = args.events / counted
        rows += [
            ("publish to tongxin.ingest (pipelined)", f"{args.events / published:,.0f} /s", "—"),
            ("accepted → TONGXIN_EVENTS", f"{args.events / accepted:,.0f} /s", "—"),
            ("end to end: published → counted in reports", f"{e2e:,.0f} /s",
             f"{e2e / TARGET_E2E:.2f}× of {TARGET_E2E:,}/s"),
        ]
    finally:
        system.stop()
        if server:
            server.stop()
        if pg:
            await drop_pg_database(args.postgres, pg)
    table = Table(title=f"Tongxin end to end, {args.events:,} bus events, {backend.name}")
    for col in ("path", "rate", "ratio to target"):
        table.add_column(col)
    for row in rows:
        table.add_row(*row)
    console.print(table)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--events", type=int, default=20_000)
    p.add_argument("--http", type=int, default=300)
    p.add_argument("--postgres", default=os.environ.get("TONGXIN_TEST_POSTGRES_URL"),
                   help="a PostgreSQL server URL (a throwaway database is created there)")
    asyncio.run(run(p.parse_args()))


if __name__ == "__main__":
    main()
