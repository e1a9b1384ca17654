"""Faults on real processes on loopback, under a steady load: kill -9 of each service in turn
(the supervisor restarts it), NATS stopped and started again, the database stopped for 10 s.
After recovery every accepted event is stored once and counted once, every refused one is in
the DLQ: lost 0, doubled 0. Each test prints its figures (`pytest -s` shows them)."""

from __future__ import annotations

import asyncio

import pytest

from tests.faults.load import Figures, Load, settle_and_count, unavailable_problem, wait_healthy
from tests.figures import say
from tongxin.supervisor import SERVICES

pytestmark = pytest.mark.asyncio(loop_scope="session")

TALLY: list[Figures] = []


@pytest.fixture(scope="module", autouse=True)
def tally():
    yield
    if TALLY:
        total = {k: sum(getattr(f, k) for f in TALLY) for k in (
            "faults", "sent", "accepted", "counted", "refused", "in_dlq", "lost", "doubled",
            "unavailable", "seconds")}
        say("\nFAULT SUITE: " + ", ".join(f"{k} {v:.0f}" for k, v in total.items()))


async def start_load(system) -> Load:
    org, base = await system.org_and_base()
    return Load(system, org["id"], base["id"], per_door=250, pace=0.15).start()


def check(figures: Figures, load: Load) -> None:
    say(f"\n{figures}")
    TALLY.append(figures)
    assert not load.unsettled, f"{len(load.unsettled)} offers never answered"
    assert not load.wrong, load.wrong[:10]
    assert figures.refused > 0 and figures.accepted > 0
    assert figures.lost == 0, figures
    assert figures.doubled == 0, figures
    assert figures.counted == figures.accepted
    assert figures.in_dlq == figures.refused


async def test_kill_9_each_service_in_turn(faulty):
    system, crashes = faulty
    loop = asyncio.get_running_loop()
    t0 = loop.time()
    load = await start_load(system)
    await asyncio.sleep(2)
    for service in SERVICES:
        before, seen = len(load.offered), len(crashes)
        system.sup.kill(service)  # SIGKILL to its process group
        for _ in range(50):  # the supervisor says so within a poll or two
            said = [c for c in crashes[seen:] if c.name == service]
            if said:
                break
            await asyncio.sleep(0.2)
        assert said and said[0].how == "killed by SIGKILL", crashes
        back = await wait_healthy(system, service, timeout=60)
        say(f"\n{service}: kill -9; supervisor: {said[0]}; healthy again in {back:.1f}s")
        await asyncio.sleep(2)  # steady again before the next fault
        assert len(load.offered) > before  # the load went on through it
    await load.stop()
    check(await settle_and_count(load, "kill -9 registry, events, reporting", len(SERVICES),
                                 loop.time() - t0), load)


async def test_nats_restarted_under_load(faulty, own_nats):
    system, _ = faulty
    loop = asyncio.get_running_loop()
    t0 = loop.time()
    load = await start_load(system)
    await asyncio.sleep(3)
    before = len(load.offered)
    await asyncio.to_thread(own_nats.stop)  # in a thread: the load goes on meanwhile
    await asyncio.sleep(4)
    await asyncio.to_thread(own_nats.start)  # the same port and store
    for service in SERVICES:
        await wait_healthy(system, service, timeout=60)
    say(f"\nNATS stopped for 4s; all healthy again {loop.time() - t0:.1f}s into the test; "
          f"{len(load.offered) - before} offers made meanwhile")
    await asyncio.sleep(3)
    assert len(load.offered) > before
    await load.stop()
    check(await settle_and_count(load, "NATS restarted", 1, loop.time() - t0), load)


async def test_database_stopped_for_10s(faulty, pg_cluster):
    if pg_cluster is None:
        pytest.skip("no PostgreSQL server binaries (initdb, pg_ctl) on this machine")
    system, _ = faulty
    loop = asyncio.get_running_loop()
    t0 = loop.time()
    load = await start_load(system)
    await asyncio.sleep(2)
    await asyncio.to_thread(pg_cluster.stop)
    down = loop.time()
    probes: list[tuple[str, int, str | None]] = []  # what each service answered meanwhile
    async with system.client(timeout=15) as http:
        while loop.time() - down < 10:
            for what, request in (
                    ("registry write", http.post(f"{system.url('registry')}/v1/organizations",
                                                 json={"name": "淄博市张店区卫生院",
                                                       "kind": "enterprise"})),
                    ("reporting read", http.get(f"{system.url('reporting')}/v1/reports/"
                                                "summary"))):
                r = await request
                probes.append((what, r.status_code, unavailable_problem(r)
                               if r.status_code == 503 else r.text[:200]))
            await asyncio.sleep(1)
    await asyncio.to_thread(pg_cluster.start)
    say(f"\ndatabase stopped for {loop.time() - down:.1f}s; answers meanwhile: "
          f"{sorted({(w, s) for w, s, _ in probes})}; the load saw 503 {load.unavailable} "
          f"times, statuses {dict(load.statuses)}")
    for service in SERVICES:
        await wait_healthy(system, service, timeout=90)
    await asyncio.sleep(3)
    await load.stop()
    assert [p for p in probes if p[1:] != (503, None)] == []
    assert load.unavailable > 0  # the load met the outage, and was told to come back
    check(await settle_and_count(load, "database stopped 10 s", 1, loop.time() - t0), load)
