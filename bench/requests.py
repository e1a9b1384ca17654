"""The per-request floor: what one request costs the server when it does next to nothing.

    python -m bench.requests [--requests 2000] [--clients 20] [--postgres URL]

Starts the three services as `python -m bench` does (TONGXIN_NATS_URL if set, else an embedded
nats-server; SQLite unless --postgres, by default TONGXIN_TEST_POSTGRES_URL, names a server),
logs a few activities, then sends each request below `--requests` times from `--clients`
concurrent clients (one keep-alive connection each):

- `GET /health` (no key; its checks ask the database `SELECT 1` and each projection's count of
  parked messages): the reference, measured in the same run;
- `GET /v1/whoami` with an admin key on each service: the floor every request pays (who is
  asking, the route's checks, instrumentation, the JSON answer);
- `GET /v1/reports/summary` scoped to a unit: one small report.

For each: requests/s, and the server process's CPU time per request (user + system, read from
/proc before and after; the bench's own clients are not counted).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
import time
from pathlib import Path

import httpx
from rich.console import Console
from rich.table import Table

from bench.endtoend import nats_for
from bench.mix import recent
from tests.factories import activity
from tests.harness import Backend, System, create_pg_database, drop_pg_database

console = Console(width=None if sys.stdout.isatty() else 120)
TICK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """User + system CPU time the process has used so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK  # utime, stime (fields 14, 15)


async def measure(url: str, headers: dict[str, str], pid: int, requests: int,
                  clients: int) -> tuple[float, float]:
    """(requests/s, server CPU ms per request) for `requests` GETs of `url`."""
    left = requests

    async def client() -> None:
        nonlocal left
        async with httpx.AsyncClient(headers=headers, timeout=60) as http:
            while left > 0:
                left -= 1
                r = await http.get(url)
                assert r.status_code == 200, (url, r.status_code, r.text[:200])

    async with httpx.AsyncClient(headers=headers, timeout=60) as http:  # warm up
        for _ in range(20):
            (await http.get(url)).raise_for_status()
    cpu0, t0 = cpu_seconds(pid), time.perf_counter()
    await asyncio.gather(*(client() for _ in range(clients)))
    wall, cpu = time.perf_counter() - t0, cpu_seconds(pid) - cpu0
    return requests / wall, cpu / requests * 1000


async def run(args) -> None:
    tmp = Path(tempfile.mkdtemp(prefix="tongxin-bench-"))
    nats_url, server = nats_for(tmp)
    pg = await create_pg_database(args.postgres) if args.postgres else None
    backend = Backend("postgres" if pg else "sqlite", tmp / "db", pg)
    system = System(nats_url, backend, tmp / "system", traces=False).start()
    rows = []
    try:
        org, base = await system.org_and_base()
        for _ in range(args.activities):
            r = await system.post_activity(activity(org["id"], base["id"], **recent()))
            r.raise_for_status()
        await system.summary(organization_id=org["id"],
                             min_seq=await system.events_last_seq())  # caught up
        assert system.sup is not None  # started
        pid = {s: c.proc.pid for s, c in system.sup.children.items() if c.proc is not None}
        cases = [
            ("reporting", "/health", {}),
            ("reporting", "/v1/whoami", system.auth()),
            ("events", "/v1/whoami", system.auth()),
            ("registry", "/v1/whoami", system.auth()),
            ("reporting", f"/v1/reports/summary?organization_id={org['id']}", system.auth()),
        ]
        for service, path, headers in cases:
            rate, cpu = await measure(system.url(service) + path, headers, pid[service],
                                      args.requests, args.clients)
            rows.append((service, "GET " + path.split("?")[0], f"{rate:,.0f} /s",
                         f"{cpu:.2f} ms"))
    finally:
        system.stop()
        if server:
            server.stop()
        if pg:
            await drop_pg_database(args.postgres, pg)
    table = Table(title=f"Per-request floor: {args.requests:,} requests each, {args.clients} "
                        f"concurrent clients, {backend.name}")
    for col in ("service", "request", "requests/s", "server CPU / request"):
        table.add_column(col)
    for row in rows:
        table.add_row(*row)
    console.print(table)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--requests", type=int, default=2000)
    p.add_argument("--clients", type=int, default=20)
    p.add_argument("--activities", type=int, default=50,
                   help="activities logged first, so the report has something to add up")
    p.add_argument("--postgres", default=os.environ.get("TONGXIN_TEST_POSTGRES_URL"),
                   help="a PostgreSQL server URL (a throwaway database is created there)")
    asyncio.run(run(p.parse_args()))


if __name__ == "__main__":
    main()
