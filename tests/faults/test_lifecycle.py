"""Instances that start, hand over and stop cleanly, on real processes: a service started
before its NATS (and before the cluster has a JetStream quorum) comes up when they do, without
exiting; a killed events instance's offers go to the surviving instance once their short
ack_wait ends (measured); a service whose NATS died first still shuts down cleanly."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import time
import uuid
from pathlib import Path

import nats
import pytest

from services.events.bus import ACK_WAIT, INGEST_DURABLE
from shared.settings import Settings
from tests.factories import activity, envelope
from tests.faults.conftest import PgCluster, pg_bin
from tests.faults.load import stream_counts
from tests.figures import say
from tests.harness import (
    Backend,
    System,
    create_pg_database,
    drop_pg_database,
    running,
)
from tongxin.cli import declare_streams
from tongxin.natsserver import NatsCluster, NatsServer, free_port
from tongxin.supervisor import Supervisor


def service_env(tmp: Path, nats_url: str, service: str, **more: str) -> dict[str, str]:
    return {"TONGXIN_NATS_URL": nats_url, "TONGXIN_DATA_DIR": str(tmp),
            "TONGXIN_NAMESPACE": f"lc{uuid.uuid4().hex[:6]}",
            f"TONGXIN_{service.upper()}_DATABASE_URL":
                f"sqlite+aiosqlite:///{tmp / f'{service}.db'}",
            "TONGXIN_DB_SCHEMA": "", "TONGXIN_SECRET_KEY": "lifecycle-test", **more}


def declared(env: dict[str, str], replicas: int = 1) -> dict[str, str]:
    """The operator's step for `env`'s NATS and namespace (`tongxin bus streams`, as `tongxin
    up` takes it before any service starts): the services only wait for their streams."""
    declare_streams(env["TONGXIN_NATS_URL"], Settings(namespace=env["TONGXIN_NAMESPACE"],
                                                      stream_replicas=replicas))
    return env


def wait_for_log(sup: Supervisor, name: str, text: str, timeout: float = 60) -> None:
    """Until `name`'s log says `text`; it must not exit meanwhile."""
    child = sup.children[name]
    path = sup.log_path(name)
    assert child.proc is not None and path is not None
    deadline = time.monotonic() + timeout
    while text not in path.read_text(errors="replace"):
        assert child.proc.poll() is None, (
            f"{name} exited ({child.proc.returncode}):\n{path.read_text()[-3000:]}")
        assert time.monotonic() < deadline, f"{name} never said {text!r}"
        time.sleep(0.1)


def assert_stopped_cleanly(sup: Supervisor, name: str) -> None:
    """Stopped (SIGTERM) within the supervisor's 15 s, its shutdown complete: uvicorn ends by
    raising the SIGTERM it caught again, so the exit status is that signal's (or 0); one
    SIGKILLed for hanging would be -9."""
    proc = sup.children[name].proc
    log = sup.log_path(name).read_text()
    assert proc is not None and proc.returncode in (0, -signal.SIGTERM), (
        proc and proc.returncode, log[-3000:])
    assert "Application shutdown complete" in log, log[-3000:]
    assert "Application shutdown failed" not in log, log[-3000:]


def test_a_service_started_before_nats_and_its_quorum_comes_up_when_they_do(tmp_path):
    cluster = NatsCluster(tmp_path, 3, log_dir=tmp_path / "logs").start()
    for node in cluster.nodes:  # ports and stores chosen; nothing listens yet
        node.stop()
    sup = Supervisor(env={}, ports={"events": free_port()}, log_dir=tmp_path / "logs")
    try:
        env = service_env(tmp_path, cluster.url, "events", TONGXIN_STREAM_REPLICAS="3")
        sup.start("events", env)
        pid = sup.children["events"].proc.pid
        wait_for_log(sup, "events", "no server reachable yet")
        # One node of three: connected, but JetStream has no quorum, so no stream can be
        # looked up yet (what made both events instances exit with `nats: timeout`).
        cluster.nodes[0].start()
        wait_for_log(sup, "events", "waiting for the streams: ")
        for node in cluster.nodes[1:]:
            node.start()
        # The operator's step, once there is a quorum (it retries until then); the service
        # waits for it, it does not declare them itself.
        declared(env, replicas=3)
        sup.wait_healthy(["events"], timeout=90)  # raises if it exited meanwhile
        assert sup.children["events"].proc.pid == pid  # the same process: never restarted
        log = sup.log_path("events").read_text()
        say(f"\nSTART BEFORE NATS: events waited for NATS "
            f"({log.count('no server reachable yet')} notices), for the JetStream quorum "
            f"({log.count('waiting for the streams: ')} retries) and for the operator's "
            f"streams ({log.count('streams not declared')} notices), then came up; no exit")
        sup.stop("events")
        assert_stopped_cleanly(sup, "events")
    finally:
        sup.stop_all()
        cluster.stop()


def test_a_service_started_before_its_database_comes_up_when_it_does(tmp_path, nats_url):
    bin_dir = pg_bin()
    if bin_dir is None:
        pytest.skip("needs PostgreSQL's server binaries (initdb, pg_ctl) to start it late")
    pg = PgCluster(bin_dir).init()
    sup = Supervisor(env={}, ports={"registry": free_port()}, log_dir=tmp_path / "logs")
    try:
        pg.stop()
        env = declared(service_env(tmp_path, nats_url, "registry"))
        env["TONGXIN_REGISTRY_DATABASE_URL"] = pg.admin_url
        sup.start("registry", env)  # it migrates on start: the first thing it needs
        pid = sup.children["registry"].proc.pid
        wait_for_log(sup, "registry", "migrating the database: ")
        pg.start()
        sup.wait_healthy(["registry"], timeout=90)  # raises if it exited meanwhile
        assert sup.children["registry"].proc.pid == pid
        retries = sup.log_path("registry").read_text().count("migrating the database: ")
        say(f"\nSTART BEFORE THE DATABASE: registry retried {retries} times, then came up; "
            "no exit")
        sup.stop("registry")
        assert_stopped_cleanly(sup, "registry")
    finally:
        sup.stop_all()
        pg.remove()


def test_shutdown_after_nats_died_is_clean(tmp_path):
    server = NatsServer(tmp_path / "nats", log_file=tmp_path / "nats.log").start()
    names = ("registry", "events", "reporting")
    sup = Supervisor(env={f"TONGXIN_{s.upper()}_PORT": str(free_port()) for s in names},
                     ports={s: free_port() for s in names}, log_dir=tmp_path / "logs")
    try:
        for s in names:
            sup.start(s, declared(service_env(tmp_path, server.url, s)))
        sup.wait_healthy(names, timeout=90)
        assert server.proc is not None
        server.proc.kill()  # NATS goes away first, without a goodbye
        server.proc.wait()
        for s in names:
            sup.stop(s)
            assert_stopped_cleanly(sup, s)
    finally:
        sup.stop_all()
        server.stop()


@pytest.mark.asyncio(loop_scope="session")
async def test_a_killed_events_instance_offers_go_to_the_survivor_after_ack_wait(
        tmp_path, pg_server, nats_url):
    db = await create_pg_database(pg_server)
    system = System(nats_url, Backend("postgres", tmp_path, db), tmp_path / "system",
                    traces=False)
    try:
        with running(system):
            await takeover(system)
    finally:
        await drop_pg_database(pg_server, db)


async def takeover(system: System) -> None:
    sup = system.sup
    assert sup is not None
    sup.ports["events-2"] = free_port()
    sup.start("events-2", system.env("events"))
    sup.wait_healthy(["events-2"], timeout=90)
    org, base = await system.org_and_base()
    survivor = sup.children["events-2"].proc
    killed = sup.children["events"].proc
    nc = await nats.connect(system.nats_url)
    js = nc.jetstream()
    names = system.names
    loop = asyncio.get_running_loop()
    offered: set[str] = set()
    try:
        # The survivor is held still (SIGSTOP) while the other instance fetches, so what
        # the killed one held is known to be its own; it goes on right after the kill.
        os.killpg(survivor.pid, signal.SIGSTOP)
        held = 0
        for _round in range(20):
            acks = []
            for _ in range(500):
                env = envelope(activity(org["id"], base["id"]), source="lifecycle")
                offered.add(env["event_id"])
                acks.append(await js.publish_async(
                    names.ingest("activity.logged"), json.dumps(env).encode(),
                    headers={"Nats-Msg-Id": env["event_id"]}))
            await asyncio.gather(*acks)
            deadline = loop.time() + 30
            while loop.time() < deadline:
                info = await js.consumer_info(names.ingest_stream, INGEST_DURABLE)
                if info.num_ack_pending:
                    held = info.num_ack_pending
                    break
                if info.num_pending == 0:
                    break  # all handled before we saw it hold any: another round
                await asyncio.sleep(0.01)
            if held:
                break
        assert held, "the events instance never held an unacked offer to kill it with"
        os.killpg(killed.pid, signal.SIGKILL)
        killed_at = loop.time()
        killed.wait()
        os.killpg(survivor.pid, signal.SIGCONT)
        last = (await js.stream_info(names.ingest_stream)).state.last_seq
        redelivered = 0
        while True:  # every offer acked, by the survivor: the killed one's too
            info = await js.consumer_info(names.ingest_stream, INGEST_DURABLE)
            redelivered = max(redelivered, info.num_redelivered)
            if info.ack_floor.stream_seq >= last and not info.num_ack_pending:
                break
            assert loop.time() - killed_at < 180, info
            assert survivor.poll() is None
            await asyncio.sleep(0.05)
        took = loop.time() - killed_at
        while True:  # and each of them accepted once, on TONGXIN_EVENTS
            counts = await stream_counts(system.nats_url, names.events_stream,
                                         names.events(), offered)
            if all(counts.values()) or loop.time() - killed_at > 180:
                break
            await asyncio.sleep(0.5)
        lost = sum(1 for c in counts.values() if c == 0)
        doubled = sum(1 for c in counts.values() if c > 1)
        say(f"\nTAKEOVER: events instance killed -9 holding {held} unacked offers; the "
            f"survivor had them all acked {took:.1f}s later (ack_wait {ACK_WAIT:.0f}s, was "
            f"60s); {len(offered)} offers, {redelivered} seen redelivered, lost {lost}, "
            f"doubled {doubled}")
        assert lost == 0 and doubled == 0
    finally:
        if survivor.poll() is None:
            os.killpg(survivor.pid, signal.SIGCONT)
        await nc.close()
