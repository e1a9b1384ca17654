"""The fault table and the sizing figures of README's "Deploy at scale", measured:

    PYTHONPATH=. python -m tests.faults.cluster_table [--steady 30] [--faults all|none]

On PostgreSQL (TONGXIN_TEST_POSTGRES_URL, else one of our own by initdb). First the cluster
(three nats-servers from the wheel, streams with three replicas, two instances of each
service): each fault of tests/faults/cluster.py under a fresh mixed load, one table row each;
then `--steady` seconds of the same load without a fault, measuring each instance's share of
the work (its /metrics counters) and CPU (from /proc/<pid>/stat); then the same steady load on
one nats-server and one instance of each service. Last, JetStream publishing into a
three-replica stream with `sync_interval: always` against the default."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import tempfile
import time
import uuid
from pathlib import Path

import httpx
import nats

from tests.faults.cluster import (
    FAULTS,
    ClusterSystem,
    MixedLoad,
    Row,
    run_fault,
    setup_people,
    verdict,
)
from tests.faults.conftest import PgCluster, pg_bin
from tests.harness import Backend, create_pg_database, drop_pg_database, postgres_admin_url
from tongxin.natsserver import NatsCluster
from tongxin.supervisor import SERVICES, service_of


def tree_cpu(pid: int) -> float:
    """CPU seconds (user + system) of `pid` and its children, from /proc/<pid>/stat."""
    tck = os.sysconf("SC_CLK_TCK")
    total = 0.0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        me = int(stat.parent.name)
        if me == pid or int(fields[1]) == pid:
            total += (int(fields[11]) + int(fields[12])) / tck
    return total


def cpus(system: ClusterSystem) -> dict[str, float]:
    assert system.sup is not None
    out = {name: tree_cpu(system.pid(name)) for name in system.names_of_instances}
    nodes = system.cluster.nodes if system.cluster else [system.single]
    for n, node in enumerate(nodes, 1):
        assert node is not None and node.proc is not None
        out[f"nats-{n}"] = tree_cpu(node.proc.pid)
    return out


async def shares(system: ClusterSystem) -> dict[str, float]:
    """Each instance's counters: events instances the outbox rows they published, reporting
    instances the messages their read models applied."""
    out = {}
    for name in system.names_of_instances:
        m = await system.metrics_of(name)
        if service_of(name) == "events":
            out[name] = sum(m.get("tongxin_outbox_published_total", {}).values())
        elif service_of(name) == "reporting":
            out[name] = sum(m.get("tongxin_projection_applied_total", {}).values())
    return out


async def steady(system: ClusterSystem, seconds: float, workers: int) -> dict:
    tag = f"s{uuid.uuid4().hex[:6]}"
    org, base, people = await setup_people(system, tag)
    cpu0, share0, t0 = cpus(system), await shares(system), time.monotonic()
    load = MixedLoad(system, org, base, people, tag, workers=workers, pace=0.0,
                     bus_pace=0.05).start()
    await asyncio.sleep(seconds)
    await load.stop()
    offered_for = time.monotonic() - t0
    await applied_everywhere(system)  # cheaply: /metrics would cost CPU of its own
    took = time.monotonic() - t0
    cpu1, share1 = cpus(system), await shares(system)
    row = await verdict(load, Row("steady, no fault"))
    cpu = {k: cpu1[k] - cpu0[k] for k in cpu1}
    per_service = {s: sum(v for k, v in cpu.items() if service_of(k) == s) for s in SERVICES}
    per_service["nats"] = sum(v for k, v in cpu.items() if k.startswith("nats-"))
    events = row.accepted
    return {"row": row, "events": events, "offered_for": offered_for, "settled_in": took,
            "rate": events / offered_for, "cpu": cpu,
            "cpu_per_1000": {s: 1000 * v / events for s, v in per_service.items()},
            "share": {k: share1[k] - share0.get(k, 0) for k in share1}}


async def applied_everywhere(system: ClusterSystem, timeout: float = 300) -> None:
    """Until the ingest consumer is drained and every reporting instance's `as_of` is
    TONGXIN_EVENTS's last seq, unchanged for a second (the outboxes are empty then)."""
    from services.events.bus import INGEST_DURABLE

    nc = await system.connect()
    js = nc.jetstream()
    names = system.names
    deadline = time.monotonic() + timeout
    stable = (-1, 0.0)
    try:
        async with httpx.AsyncClient(headers=system.auth(), timeout=10) as http:
            while time.monotonic() < deadline:
                c = await js.consumer_info(names.ingest_stream, INGEST_DURABLE)
                last = (await js.stream_info(names.events_stream)).state.last_seq
                as_of = [(await http.get(f"{u}/v1/reports/summary")).json()["as_of"]
                         for u in system.instance_urls("reporting")]
                if c.num_pending or c.num_ack_pending or min(as_of) < last:
                    stable = (-1, 0.0)
                elif stable[0] != last:
                    stable = (last, time.monotonic())
                elif time.monotonic() - stable[1] >= 1.0:
                    return
                await asyncio.sleep(0.2)
    finally:
        await nc.close()
    raise AssertionError("never applied everywhere")


async def publish_rate(sync: str | None, root: Path, count: int = 5000) -> float:
    """Messages a second into a three-replica stream, 300 bytes each, pipelined."""
    cluster = NatsCluster(root, 3, sync_interval=sync).start()
    try:
        nc = await nats.connect(servers=[n.url for n in cluster.nodes])
        js = nc.jetstream()
        for _ in range(300):  # until the cluster has a meta leader
            try:
                await js.add_stream(name="SYNC", subjects=["sync.>"], num_replicas=3)
                break
            except Exception:
                await asyncio.sleep(0.1)
        body = b"x" * 300
        t0 = time.monotonic()
        for start in range(0, count, 500):
            acks = [await js.publish_async(f"sync.{i}", body)
                    for i in range(start, start + 500)]
            await asyncio.gather(*acks)
        rate = count / (time.monotonic() - t0)
        await nc.close()
        return rate
    finally:
        cluster.stop()


def print_sizing(name: str, m: dict) -> None:
    print(f"\n{name}: {m['events']} events accepted in {m['offered_for']:.0f} s of load "
          f"({m['rate']:.0f}/s), all applied {m['settled_in']:.0f} s after it began; "
          f"{m['row'].line()}")
    print("  CPU seconds per instance: " + ", ".join(f"{k} {v:.1f}" for k, v in
                                                     sorted(m["cpu"].items())))
    print("  CPU seconds per 1,000 events: " + ", ".join(
        f"{k} {v:.2f}" for k, v in m["cpu_per_1000"].items()) +
        f"; total {sum(m['cpu_per_1000'].values()):.2f}")
    if m["share"]:
        print("  share (events: outbox rows published; reporting: messages applied): " +
              ", ".join(f"{k} {v:.0f}" for k, v in sorted(m["share"].items())))


async def main(args) -> None:
    root = Path(tempfile.mkdtemp(prefix="tongxin-cluster-table-"))
    own = None
    admin = postgres_admin_url()
    if not admin:
        bin_dir = pg_bin()
        assert bin_dir, "needs PostgreSQL: TONGXIN_TEST_POSTGRES_URL, or initdb"
        own = PgCluster(bin_dir).init()
        admin = own.admin_url
    print(f"machine: {os.cpu_count()} cores, load average "
          f"{' '.join(f'{x:.1f}' for x in os.getloadavg())} at the start")
    results = {}
    try:
        db = await create_pg_database(admin)
        system = ClusterSystem("", Backend("postgres", root, db), root / "cluster",
                               traces=False)
        t0 = time.monotonic()
        try:
            system.start()
            print(f"cluster up in {time.monotonic() - t0:.0f}s "
                  f"(restarts at start: {system.restarts_at_start})")
            rows = []
            for fault in [f for f in FAULTS if args.faults == "all" or f.kind == args.faults]:
                row = await run_fault(system, fault)
                rows.append(row)
                print(f"{row.line()}  {row.note}" + (f"\n  wrong: {row.wrong[:5]}"
                                                     if row.wrong else ""), flush=True)
            if rows:
                print("\n" + "\n".join([Row.HEADER, *(r.line() for r in rows)]))
                print("\n" + "\n".join(f"- {r.fault}: {r.note}" for r in rows if r.note))
            if args.steady:
                results["cluster"] = await steady(system, args.steady, args.workers)
                print_sizing("cluster (3 nodes, R3, 2 instances each)", results["cluster"])
        finally:
            system.stop()
            await drop_pg_database(admin, db)
        if args.steady:
            db = await create_pg_database(admin)
            single = ClusterSystem("", Backend("postgres", root, db), root / "single",
                                   traces=False, nodes=1, instances=1)
            try:
                single.start()
                results["single"] = await steady(single, args.steady, args.workers)
                print_sizing("single (1 nats-server, R1, 1 instance each)", results["single"])
            finally:
                single.stop()
                await drop_pg_database(admin, db)
        if args.sync:
            always = await publish_rate("always", root / "sync-always")
            default = await publish_rate(None, root / "sync-default")
            print(f"\nR3 publishing, 300 B, pipelined 500 at a time: sync_interval always "
                  f"{always:.0f} msg/s, default (2 min) {default:.0f} msg/s")
        print(f"\nload average at the end: {' '.join(f'{x:.1f}' for x in os.getloadavg())}")
    finally:
        if own:
            own.remove()
    return results


def write_json(path: str, results: dict) -> None:
    Path(path).write_text(json.dumps({k: {**v, "row": v["row"].line()}
                                      for k, v in results.items()}, indent=1))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--steady", type=float, default=30, help="seconds of steady load "
                        "for the sizing figures (0: none)")
    parser.add_argument("--workers", type=int, default=24, help="chains under way at once")
    parser.add_argument("--faults", choices=("all", "none", *(f.kind for f in FAULTS)),
                        default="all", help="all, none, or one of them")
    parser.add_argument("--sync", action=argparse.BooleanOptionalAction, default=True,
                        help="measure sync_interval's cost")
    parser.add_argument("--json", help="also write the sizing figures here")
    args = parser.parse_args()
    figures = asyncio.run(main(args))
    if args.json:
        write_json(args.json, figures)
