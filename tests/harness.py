"""Real parts for tests: a NATS server, databases on SQLite and PostgreSQL, the three services
as processes. Every run isolates itself: its own stream names (a namespace), its own database
on PostgreSQL with a schema per service, its own SQLite files."""

from __future__ import annotations

import asyncio
import concurrent.futures
import json
import os
import signal
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import nats
import nats.errors
from nats.js.api import ConsumerConfig, DeliverPolicy
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy.engine import make_url

from shared.subjects import Names
from tongxin.natsserver import NatsServer, free_port
from tongxin.supervisor import SERVICES, Supervisor

RUN_ID = uuid.uuid4().hex[:8]


def nats_from_env() -> str | None:
    return os.environ.get("TONGXIN_NATS_URL")


def postgres_admin_url() -> str | None:
    return os.environ.get("TONGXIN_TEST_POSTGRES_URL")


@dataclass
class Backend:
    """Where one system's services keep their tables."""

    name: str            # "sqlite" or "postgres"
    root: Path           # for SQLite files
    pg_url: str | None = None  # the run's throwaway database

    def url(self, service: str, tag: str) -> str:
        if self.name == "sqlite":
            return f"sqlite+aiosqlite:///{self.root / tag / f'{service}.db'}"
        assert self.pg_url is not None  # a postgres backend is given its database
        return self.pg_url

    def schema(self, service: str, tag: str) -> str | None:
        return f"{tag}_{service}" if self.name == "postgres" else None


async def _admin(admin_url: str, statement: str) -> None:
    """Run one statement on the server `admin_url` names (CREATE/DROP DATABASE)."""
    import asyncpg

    u = make_url(admin_url)
    conn = await asyncpg.connect(user=u.username, password=u.password, host=u.host,
                                 port=u.port or 5432, database=u.database or "postgres")
    try:
        await conn.execute(statement)
    finally:
        await conn.close()


async def create_pg_database(admin_url: str) -> str:
    """A throwaway database of this run's, on the server `admin_url` names: one of its own
    each call (the session's back-end has one; a test may make more)."""
    name = f"tongxin_test_{RUN_ID}_{uuid.uuid4().hex[:6]}"
    await _admin(admin_url, f'CREATE DATABASE "{name}"')
    return make_url(admin_url).set(drivername="postgresql+asyncpg",
                                   database=name).render_as_string(False)


async def drop_pg_database(admin_url: str, url: str) -> None:
    await _admin(admin_url, f'DROP DATABASE IF EXISTS "{make_url(url).database}" WITH (FORCE)')


@dataclass
class System:
    """The three services running as processes, as `tongxin up` runs them."""

    nats_url: str
    backend: Backend
    workdir: Path
    tag: str = field(default_factory=lambda: f"t{RUN_ID}{uuid.uuid4().hex[:6]}")
    sup: Supervisor | None = None
    traces: bool = True  # write spans to a file the tests read (off for benchmarks)
    settings: dict[str, str] = field(default_factory=dict)  # more TONGXIN_* for every service
    token: str = ""  # an admin key, issued at start: what every helper below sends
    # A service's own NATS URL (its user's credentials), where it is not `nats_url`; the
    # harness's own reads and clean-up keep `nats_url`.
    service_nats_urls: dict[str, str] = field(default_factory=dict)

    @property
    def names(self) -> Names:
        return Names(self.tag)

    @property
    def trace_file(self) -> Path:
        return self.workdir / "traces.jsonl"

    def env(self, service: str) -> dict[str, str]:
        return {
            "TONGXIN_NATS_URL": self.service_nats_urls.get(service, self.nats_url),
            "TONGXIN_NAMESPACE": self.tag,
            "TONGXIN_DATA_DIR": str(self.workdir),
            f"TONGXIN_{service.upper()}_DATABASE_URL": self.backend.url(service, self.tag),
            "TONGXIN_DB_SCHEMA": self.backend.schema(service, self.tag) or "",
            "TONGXIN_TRACE_FILE": str(self.trace_file) if self.traces else "",
            "TONGXIN_MIN_SEQ_WAIT": "10",
            "TONGXIN_SECRET_KEY": f"test-secret-{self.tag}",
            # Tests write fast, all as one admin; a key's own limit is tested (test_trust).
            "TONGXIN_RATE_LIMIT": "1000000",
            **self.settings,
        }

    def start(self) -> System:
        self.workdir.mkdir(parents=True, exist_ok=True)
        (self.workdir / self.tag).mkdir(exist_ok=True)
        ports = {s: free_port() for s in SERVICES}
        # Each service knows the others' ports, as under `tongxin up`: a browser without a
        # session is sent to this system's registry login, and the dashboard links its forms.
        self.sup = Supervisor(env={f"TONGXIN_{s.upper()}_PORT": str(p) for s, p in ports.items()},
                              ports=ports, log_dir=self.workdir / "logs")
        # The operator's step first, as `tongxin up` takes it: services may not declare streams.
        with concurrent.futures.ThreadPoolExecutor(1) as pool:
            pool.submit(asyncio.run, self.declare_streams()).result()
        for s in SERVICES:
            self.sup.start(s, self.env(s))
        self.sup.wait_healthy(timeout=90)
        self.token = issue_admin_key(self)
        return self

    def restart(self, service: str) -> None:
        assert self.sup is not None  # started
        self.sup.stop(service)
        self.sup.start(service, self.env(service))
        self.sup.wait_healthy([service], timeout=60)

    def stop(self) -> None:
        if self.sup:
            self.sup.stop_all()
        # The NATS server may be shared and outlive us. (A thread of its own: stop() may be
        # called from inside a running event loop.)
        with concurrent.futures.ThreadPoolExecutor(1) as pool:
            pool.submit(asyncio.run, self._delete_streams()).result()

    async def declare_streams(self) -> None:
        from shared.streams import declare

        nc = await nats.connect(self.nats_url)
        try:
            await declare(nc.jetstream(timeout=10), self.names)
        finally:
            await nc.close()

    async def _delete_streams(self) -> None:
        from nats.js.errors import NotFoundError

        from shared.streams import stream_names

        nc = await nats.connect(self.nats_url)
        try:
            # The buckets are streams too (KV_<bucket>, OBJ_<bucket>).
            for name in stream_names(self.names):
                try:
                    await nc.jetstream().delete_stream(name)
                except NotFoundError:
                    pass
        finally:
            await nc.close()

    def url(self, service: str) -> str:
        assert self.sup is not None  # started
        return self.sup.children[service].url

    # -- the public interface, as an outside system uses it ----------------------------
    def auth(self, key: str | None = None) -> dict[str, str]:
        return {"Authorization": f"Bearer {key or self.token}"}

    def client(self, key: str | None = None, **kwargs) -> httpx.AsyncClient:
        """An HTTP client sending `key` (the admin key unless given) with every request."""
        kwargs.setdefault("timeout", 30)
        kwargs["headers"] = {**self.auth(key), **kwargs.get("headers", {})}
        return httpx.AsyncClient(**kwargs)

    async def issue_key(self, role: str, organization_id: str | None = None,
                        name: str = "test key", **fields) -> str:
        """A new API key (by the admin over HTTP), once every service accepts it."""
        async with self.client() as http:
            r = await http.post(f"{self.url('registry')}/v1/keys", json={
                "role": role, "organization_id": organization_id, "name": name, **fields})
            assert r.status_code == 201, r.text
            key = r.json()["key"]
        await self.accepted_everywhere(key)
        return key

    async def accepted_everywhere(self, key: str, timeout: float = 20) -> None:
        """Until each service knows `key` (the others learn it from the registry's stream)."""
        deadline = asyncio.get_running_loop().time() + timeout
        async with self.client(key) as http:
            for service in SERVICES:
                while (r := await http.get(f"{self.url(service)}/v1/whoami")).status_code != 200:
                    assert asyncio.get_running_loop().time() < deadline, (service, r.text)
                    await asyncio.sleep(0.1)

    async def register(self, collection: str, **record) -> dict:
        async with self.client() as http:
            r = await http.post(f"{self.url('registry')}/v1/{collection}", json=record)
        assert r.status_code == 201, r.text
        return r.json()

    async def org_and_base(self) -> tuple[dict, dict]:
        suffix = uuid.uuid4().hex[:6]
        org = await self.register("organizations", name=f"淄博市委统战部-{suffix}",
                                  kind="party_organization")
        base = await self.register("bases", name=f"高青县刘春村-{suffix}", kind="village",
                                   households=410)
        return org, base

    async def post_activity(self, data: dict, **headers) -> httpx.Response:
        async with self.client() as http:
            return await http.post(f"{self.url('events')}/v1/activities", json=data,
                                   headers=headers)

    async def post_event(self, envelope: dict | bytes) -> httpx.Response:
        async with self.client() as http:
            if isinstance(envelope, bytes):
                return await http.post(f"{self.url('events')}/v1/events", content=envelope,
                                       headers={"content-type": "application/json"})
            return await http.post(f"{self.url('events')}/v1/events", json=envelope)

    async def summary(self, **params) -> dict:
        async with self.client() as http:
            r = await http.get(f"{self.url('reporting')}/v1/reports/summary", params=params)
        assert r.status_code == 200, r.text
        return r.json()

    async def publish_raw(self, subject_type: str, payload: bytes,
                          headers: dict[str, str] | None = None) -> int:
        """Publish like another system would, with nats-py only; returns the ingest seq."""
        nc = await nats.connect(self.nats_url)
        try:
            ack = await nc.jetstream().publish(self.names.ingest(subject_type), payload,
                                               headers=headers, timeout=5)
            return ack.seq
        finally:
            await nc.close()

    async def offer_taken(self, ingest_seq: int, timeout: float = 20) -> None:
        """Wait until the events service has taken the offer at `ingest_seq` off the bus
        (delivered to it at least once: accepted, refused, or waiting for what it needs)."""
        from services.events.bus import INGEST_DURABLE

        nc = await nats.connect(self.nats_url)
        try:
            js = nc.jetstream()
            deadline = asyncio.get_running_loop().time() + timeout
            while (await js.consumer_info(self.names.ingest_stream, INGEST_DURABLE)
                   ).delivered.stream_seq < ingest_seq:
                assert asyncio.get_running_loop().time() < deadline, (
                    f"offer {ingest_seq} never taken")
                await asyncio.sleep(0.05)
        finally:
            await nc.close()

    async def events_last_seq(self) -> int:
        return await self._last_seq(self.names.events_stream)

    async def ingest_last_seq(self) -> int:
        return await self._last_seq(self.names.ingest_stream)

    async def _last_seq(self, stream: str) -> int:
        nc = await nats.connect(self.nats_url)
        try:
            return (await nc.jetstream().stream_info(stream)).state.last_seq
        finally:
            await nc.close()

    async def events_published(self, event_ids: set[str]) -> dict[str, int]:
        """How many times each of `event_ids` stands in TONGXIN_EVENTS (among the messages of
        the last minutes: the shared system's stream also holds the bulk tests' 100,000s)."""
        nc = await nats.connect(self.nats_url)
        counts = dict.fromkeys(event_ids, 0)
        try:
            last = (await nc.jetstream().stream_info(self.names.events_stream)).state.last_seq
            sub = await nc.jetstream().subscribe(self.names.events(), ordered_consumer=True,
                                                 stream=self.names.events_stream,
                                                 config=recent())
            seq = 0
            while seq < last:
                try:
                    msg = await sub.next_msg(timeout=10)
                except nats.errors.TimeoutError:
                    break  # nothing (more) in the window
                seq = msg.metadata.sequence.stream
                try:  # other tests put forgeries on the stream, on purpose
                    event_id = json.loads(msg.data)["event_id"]
                except (ValueError, KeyError, TypeError):
                    continue
                if event_id in counts:
                    counts[event_id] += 1
        finally:
            await nc.close()
        return counts

    async def wait_for_seq(self, seq: int, timeout: float = 20) -> None:
        """Wait until the events service has published at least up to `seq`."""
        deadline = asyncio.get_running_loop().time() + timeout
        while await self.events_last_seq() < seq:
            assert asyncio.get_running_loop().time() < deadline, f"seq {seq} never published"
            await asyncio.sleep(0.1)

    async def metrics(self, service: str) -> dict[str, dict[tuple, float]]:
        """The service's `/metrics`, as {family: {labels (sorted pairs): value}}."""
        async with self.client() as http:
            r = await http.get(f"{self.url(service)}/metrics")
        assert r.status_code == 200, r.text
        out: dict[str, dict[tuple, float]] = {}
        for family in text_string_to_metric_families(r.text):
            for s in family.samples:
                out.setdefault(s.name, {})[tuple(sorted(s.labels.items()))] = s.value
        return out

    async def settled(self, service: str, since: float | None = None,
                      timeout: float = 60) -> None:
        """Wait until nothing more is on its way from `service`: every consumer it runs has
        no lag, every outbox is published, and each periodic pass (report deadlines, the
        notifier's reminders) has run at least once in full after `since` (Unix time; now if
        not given). What a test then reads is all there will be: no sleeping on it."""
        since = time.time() if since is None else since
        deadline = asyncio.get_running_loop().time() + timeout
        while True:
            m = await self.metrics(service)
            waiting = {
                "lag": {k: v for k, v in m.get("tongxin_consumer_lag", {}).items() if v},
                "outbox": {k: v for k, v in m.get("tongxin_outbox_backlog", {}).items() if v},
                "sweeps": {k: v for k, v in
                           m.get("tongxin_sweep_last_started_seconds", {}).items()
                           if v < since},
                "probes": {k: v for k, v in m.get("tongxin_metrics_probe_ok", {}).items()
                           if not v},
            }
            if not any(waiting.values()):
                return
            assert asyncio.get_running_loop().time() < deadline, (
                f"{service} never settled: {waiting}")
            await asyncio.sleep(0.1)

    def spans(self) -> list[dict]:
        if not self.trace_file.exists():
            return []
        # split("\n"), not splitlines(): a span may hold U+2028 and the like (a name), which
        # JSON keeps as it is and splitlines() would break a line at.
        return [json.loads(line) for line in self.trace_file.read_text().split("\n") if line]


def recent(minutes: float = 10) -> ConsumerConfig:
    """A consumer starting some minutes back: a test looks for what it published itself,
    without reading a whole stream that earlier tests filled."""
    since = datetime.now(UTC) - timedelta(minutes=minutes)
    return ConsumerConfig(deliver_policy=DeliverPolicy.BY_START_TIME, opt_start_time=since)


async def dead_letters_from_now(js, names: Names):
    """The DLQ from this moment on: where the offers a test is about to make end up."""
    return await js.subscribe(names.dlq(), stream=names.dlq_stream, ordered_consumer=True,
                              config=ConsumerConfig(deliver_policy=DeliverPolicy.NEW))


def issue_admin_key(system: System) -> str:
    """The first admin key, as an operator makes it (`tongxin keys create`): straight into the
    registry's database; the registry publishes it for the other services."""
    from tongxin.keys import create_key

    env = system.env("registry")

    async def issue() -> str:
        key = await create_key(env["TONGXIN_REGISTRY_DATABASE_URL"],
                               env["TONGXIN_DB_SCHEMA"] or None,
                               role="admin", organization_id=None, name="test admin",
                               namespace=system.tag)
        await system.accepted_everywhere(key, timeout=60)
        return key

    # A thread of its own: start() may be called from inside a running event loop.
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, issue()).result()


RUNNING: list[System] = []  # what a timed-out test's report shows the stacks of


def stacks(system: System, tail: int = 40_000) -> dict[str, str]:
    """Every service's threads and asyncio tasks as they are now (SIGUSR1 and SIGUSR2: see
    shared/serve.py and shared/runtime.py), read back from the end of its log."""
    if system.sup is None:
        return {}
    sent = []
    for name, child in system.sup.children.items():
        if child.proc and child.proc.poll() is None:
            child.proc.send_signal(signal.SIGUSR1)
            child.proc.send_signal(signal.SIGUSR2)
            sent.append(name)
    time.sleep(1.0)
    out = {}
    for name in sent:
        path = system.sup.log_path(name)
        if path and path.exists():
            out[name] = path.read_bytes()[-tail:].decode(errors="replace")
    return out


@contextmanager
def running(system: System) -> Iterator[System]:
    """The system started, and stopped afterwards (also when it fails to start half-way)."""
    try:
        system.start()
    except Exception:
        system.stop()
        raise
    RUNNING.append(system)
    try:
        yield system
    finally:
        RUNNING.remove(system)
        system.stop()


def embedded_nats(tmp: Path) -> NatsServer:
    return NatsServer(tmp / "nats", log_file=tmp / "nats.log").start()
