"""The topology of `tongxin up --nats-cluster 3 --replicas 2` under a steady mixed load, and
the faults that matter on it, measured.

`ClusterSystem`: three nats-servers from the wheel as one JetStream cluster (NatsCluster, with
its `sync_interval`), streams with three replicas, two instances of each service on one
PostgreSQL database (a schema per service), started as `tongxin up` starts them; or, for the
comparison, one nats-server and one instance of each.

`MixedLoad`: chains of events that must stay in order per key, each step offered over HTTP to
the events instances in turn (so consecutive steps of a key are accepted by different
instances): an activity logged, a volunteer's attendance recorded, the activity corrected and
every third one retracted; a need submitted, claimed and resolved; and single activities
offered on the bus (TONGXIN_INGEST). `verdict` then reads TONGXIN_EVENTS and the reports:
lost, doubled, out of order per key, parked.

`run_faults` injects each fault under a fresh load and measures the takeover: the seconds from
the fault until new offers are stored again on both streams, the ingest consumer has settled
every offer that was in the stream at the fault, and a surviving reporting instance has applied
every event that was in TONGXIN_EVENTS at the fault."""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import signal
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path

import httpx
import nats
import nats.errors
from nats.js.api import ConsumerConfig, DeliverPolicy

from services.events.bus import INGEST_DURABLE
from shared.bus import PING_INTERVAL
from tests.factories import activity, envelope, need
from tests.harness import System, issue_admin_key
from tongxin.natsserver import NatsCluster, NatsServer, free_port
from tongxin.supervisor import SERVICES, service_of

FIRST_DAY = date(2013, 1, 1)
_days = itertools.count()  # each activity a day of its own: no volunteer is at two at once


def cpu_seconds(pid: int) -> float:
    """utime + stime of a process, from /proc/<pid>/stat."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@dataclass
class ClusterSystem(System):
    """`nodes` nats-servers (3: a cluster; 1: a single server) and `instances` of each
    service. The harness's own NATS reads go to every node (`servers`)."""

    nodes: int = 3
    instances: int = 2
    cluster: NatsCluster | None = None
    single: NatsServer | None = None
    restarts_at_start: int = 0

    @property
    def servers(self) -> list[str]:
        if self.cluster:
            return [n.url for n in self.cluster.nodes]
        assert self.single is not None
        return [self.single.url]

    @property
    def names_of_instances(self) -> list[str]:
        return [s if n == 1 else f"{s}-{n}" for n in range(1, self.instances + 1)
                for s in SERVICES]

    def start(self) -> ClusterSystem:
        from tongxin.supervisor import Supervisor

        self.workdir.mkdir(parents=True, exist_ok=True)
        if self.nodes > 1:
            self.cluster = NatsCluster(self.workdir / "nats", self.nodes,
                                       log_dir=self.workdir / "logs").start()
            url = self.cluster.url
            self.settings["TONGXIN_STREAM_REPLICAS"] = str(min(3, self.nodes))
        else:
            self.single = NatsServer(self.workdir / "nats", log_file=self.workdir / "nats.log",
                                     config=self._single_config()).start()
            url = self.single.url
        self.nats_url = self.servers[0]  # System's own helpers (clean-up)
        self.service_nats_urls = {s: url for s in SERVICES}
        # The operator's step, as `tongxin up` takes it: services only wait for their streams.
        asyncio_run(self._declare(min(3, self.nodes)))
        names = self.names_of_instances
        ports = {n: free_port() for n in names}
        self.sup = Supervisor(env={f"TONGXIN_{s.upper()}_PORT": str(ports[s]) for s in SERVICES},
                              ports=ports, log_dir=self.workdir / "logs")
        # Instance 1 of each migrates its database on start; the others start after it.
        for s in SERVICES:
            self.sup.start(s, self.env(s))
        self._wait_up(SERVICES)
        for name in names[len(SERVICES):]:
            service = name.rpartition("-")[0]
            self.sup.start(name, {**self.env(service), "TONGXIN_MIGRATE_ON_START": "false"})
        self._wait_up(names)
        self.token = issue_admin_key(self)
        asyncio_run(self._key_everywhere())
        return self

    async def _declare(self, replicas: int) -> None:
        """As `tongxin up` declares them (tongxin.cli.declare_streams): tried again while the
        cluster elects its meta leader."""
        from shared.streams import declare

        for attempt in itertools.count():
            try:
                nc = await nats.connect(self.servers, connect_timeout=5)
                try:
                    await declare(nc.jetstream(timeout=10), self.names, replicas=replicas)
                    return
                finally:
                    await nc.close()
            except (nats.errors.Error, TimeoutError, OSError):
                if attempt >= 60:
                    raise
                await asyncio.sleep(1)

    def _single_config(self) -> Path:
        path = self.workdir / "nats-single.conf"
        path.write_text(f"jetstream {{\n  sync_interval: {NatsCluster.SYNC_INTERVAL}\n}}\n")
        return path

    def _wait_up(self, names, timeout: float = 150) -> None:
        """Until every one answers /health; one that exits meanwhile is started again (as
        `tongxin up` does) and counted in `restarts_at_start`."""
        assert self.sup is not None
        deadline = time.monotonic() + timeout
        pending = set(names)
        while pending:
            self.restarts_at_start += len(self.sup.supervise())
            for name in list(pending):
                try:
                    url = self.sup.children[name].url
                    if httpx.get(f"{url}/health", timeout=1).status_code == 200:
                        pending.discard(name)
                except httpx.HTTPError:
                    pass
            if pending:
                assert time.monotonic() < deadline, f"not healthy: {pending}"
                time.sleep(0.2)

    async def _key_everywhere(self) -> None:
        assert self.sup is not None
        async with httpx.AsyncClient(headers=self.auth(), timeout=10) as http:
            for name in self.names_of_instances:
                url = self.sup.children[name].url
                for _ in range(600):
                    if (await http.get(f"{url}/v1/whoami")).status_code == 200:
                        break
                    await asyncio.sleep(0.1)

    def stop(self) -> None:
        try:
            super().stop()
        finally:
            if self.cluster:
                self.cluster.stop()
            if self.single:
                self.single.stop()

    def instance_urls(self, service: str) -> list[str]:
        assert self.sup is not None
        return [c.url for n, c in self.sup.children.items() if service_of(n) == service]

    def pid(self, name: str) -> int:
        assert self.sup is not None
        proc = self.sup.children[name].proc
        assert proc is not None
        return proc.pid

    async def connect(self):
        return await nats.connect(servers=self.servers, connect_timeout=2,
                                  max_reconnect_attempts=-1, reconnect_time_wait=0.3,
                                  ping_interval=PING_INTERVAL, max_outstanding_pings=2)

    async def leader(self, stream: str) -> int:
        """The index (0-based) of the node leading `stream`."""
        nc = await self.connect()
        try:
            for _ in range(200):
                try:
                    info = await nc.jetstream().stream_info(stream)
                    if info.cluster and info.cluster.leader:
                        return int(info.cluster.leader.rsplit("-", 1)[1]) - 1
                except (nats.errors.Error, TimeoutError):
                    pass
                await asyncio.sleep(0.1)
        finally:
            await nc.close()
        raise AssertionError(f"{stream} has no leader")

    async def metrics_of(self, name: str) -> dict[str, dict[tuple, float]]:
        from prometheus_client.parser import text_string_to_metric_families

        assert self.sup is not None
        async with httpx.AsyncClient(timeout=10) as http:
            r = await http.get(f"{self.sup.children[name].url}/metrics")
        out: dict[str, dict[tuple, float]] = {}
        for family in text_string_to_metric_families(r.text):
            for s in family.samples:
                out.setdefault(s.name, {})[tuple(sorted(s.labels.items()))] = s.value
        return out


def asyncio_run(coro):
    """Run `coro` to its end, also from inside a running loop (a thread of its own)."""
    import concurrent.futures

    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, coro).result()


# -- the load ---------------------------------------------------------------------------


@dataclass
class Chain:
    """A key's events, offered one after another (each once the one before was accepted)."""

    kind: str                 # "activity", "need" or "single" (one activity, on the bus)
    key: str                  # the activity's title, or the need_id
    steps: list[dict]         # the envelopes, in the order they are offered
    accepted: list[str] = field(default_factory=list)  # event_ids, in the order accepted
    served: int = 0           # the activity's final `served`
    retracted: bool = False
    volunteer: str | None = None
    hours: float = 0.0        # the attendance's, once accepted


@dataclass
class MixedLoad:
    system: ClusterSystem
    org: str
    base: str
    volunteers: list[str]
    tag: str                  # this load's keys begin with it
    workers: int = 4          # chains under way at once, over HTTP
    pace: float = 0.05        # seconds between one worker's offers
    bus_pace: float = 0.2     # seconds between offers on the bus
    chains: list[Chain] = field(default_factory=list)
    offered: int = 0
    wrong: list[str] = field(default_factory=list)
    unsettled: int = 0
    _stop: asyncio.Event = field(default_factory=asyncio.Event)
    _tasks: list[asyncio.Task] = field(default_factory=list)
    _n: itertools.count = field(default_factory=itertools.count)

    def start(self) -> MixedLoad:
        self._tasks = [asyncio.create_task(self._worker(w)) for w in range(self.workers)]
        self._tasks.append(asyncio.create_task(self._bus()))
        return self

    async def stop(self) -> None:
        self._stop.set()
        await asyncio.gather(*self._tasks)

    @property
    def accepted(self) -> int:
        return sum(len(c.accepted) for c in self.chains)

    def _chain(self) -> Chain:
        k = next(self._n)
        if k % 2 == 0:
            return self._activity_chain(k)
        return self._need_chain(k)

    def _activity_chain(self, k: int) -> Chain:
        day = FIRST_DAY + timedelta(days=next(_days))
        title = f"{self.tag}-a{k}"
        data = activity(self.org, self.base, title=title, served=10 + k % 50,
                        started_at=f"{day}T09:00:00+08:00", ended_at=f"{day}T12:00:00+08:00",
                        volunteers=2, volunteer_hours=4, donations=[])
        volunteer = self.volunteers[k % len(self.volunteers)]
        corrected = {**data, "served": 20 + k % 50, "reason": "复核人数"}
        steps = [envelope(data),
                 envelope({"activity_id": data["activity_id"], "volunteer_id": volunteer,
                           "hours": 2, "method": "organiser"}, "attendance.recorded"),
                 envelope(corrected, "activity.corrected")]
        retracted = k % 3 == 0
        if retracted:
            steps.append(envelope({"activity_id": data["activity_id"], "reason": "重复登记"},
                                  "activity.retracted"))
        return Chain("activity", title, steps, served=corrected["served"],
                     retracted=retracted, volunteer=volunteer, hours=2)

    def _need_chain(self, k: int) -> Chain:
        data = need(self.base, need_id=f"{self.tag}-n{k}")
        claim = {"need_id": data["need_id"], "organization_id": self.org}
        return Chain("need", data["need_id"], [
            envelope(data, "need.submitted"), envelope(claim, "need.claimed"),
            envelope({**claim, "note": "已修好"}, "need.resolved")])

    async def _worker(self, w: int) -> None:
        urls = self.system.instance_urls("events")
        async with httpx.AsyncClient(headers=self.system.auth(), timeout=15) as http:
            turn = w
            while not self._stop.is_set():
                chain = self._chain()
                self.chains.append(chain)
                for env in chain.steps:
                    turn += 1  # the next step to the other instance
                    if not await self._offer(http, urls[turn % len(urls)], chain, env):
                        break
                    await asyncio.sleep(self.pace)

    async def _offer(self, http: httpx.AsyncClient, url: str, chain: Chain, env: dict) -> bool:
        """Offered until answered (the same event_id each time); True once accepted."""
        self.offered += 1
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 120
        urls = self.system.instance_urls("events")
        while loop.time() < deadline:
            try:
                r = await http.post(f"{url}/v1/events", json=env)
            except httpx.TransportError:  # that instance is away: the other one
                url = urls[(urls.index(url) + 1) % len(urls)] if url in urls else urls[0]
                await asyncio.sleep(0.2)
                continue
            if r.status_code == 202:
                chain.accepted.append(env["event_id"])
                return True
            if r.status_code in (503, 502, 500):
                await asyncio.sleep(0.3)
                continue
            self.wrong.append(f"{env['type']} {chain.key}: {r.status_code} {r.text[:300]}")
            return False
        self.unsettled += 1
        return False

    async def _bus(self) -> None:
        nc = await self.system.connect()
        js = nc.jetstream()
        subject = self.system.names.ingest("activity.logged")
        try:
            while not self._stop.is_set():
                k = next(self._n)
                day = FIRST_DAY + timedelta(days=next(_days))
                title = f"{self.tag}-b{k}"
                data = activity(self.org, self.base, title=title, served=5,
                                started_at=f"{day}T09:00:00+08:00",
                                ended_at=f"{day}T12:00:00+08:00", volunteers=1,
                                volunteer_hours=2, donations=[])
                env = envelope(data, source="faults-bus")
                chain = Chain("single", title, [env], served=5)
                self.chains.append(chain)
                self.offered += 1
                deadline = asyncio.get_running_loop().time() + 120
                while asyncio.get_running_loop().time() < deadline:
                    try:
                        await js.publish(subject, json.dumps(env, ensure_ascii=False).encode(),
                                         headers={"Nats-Msg-Id": env["event_id"]}, timeout=3)
                    except (nats.errors.Error, TimeoutError, OSError):
                        await asyncio.sleep(0.3)  # again, the same Msg-Id
                        continue
                    chain.accepted.append(env["event_id"])
                    break
                else:
                    self.unsettled += 1
                await asyncio.sleep(self.bus_pace)
        finally:
            await nc.close()


async def setup_people(system: ClusterSystem, tag: str, count: int = 4):
    """An organisation, a base paired with it and `count` volunteers, known to every events
    instance (the registry's stream is applied in order: the last volunteer comes last)."""
    org = await system.register("organizations", name=f"镇江市统战部-{tag}",
                                kind="party_organization")
    base = await system.register("bases", name=f"句容市天王镇-{tag}", kind="village",
                                 households=300)
    # Only the base's paired unit may claim its needs.
    await system.register("pairings", organization_id=org["id"], base_id=base["id"],
                          starts_on="2013-01-01")
    people = [await system.register("volunteers", name=f"志愿者{i}-{tag}",
                                    organization_id=org["id"], code=f"{tag}-{i}",
                                    phone="13800138000") for i in range(count)]
    async with httpx.AsyncClient(headers=system.auth(), timeout=10) as http:
        for url in system.instance_urls("events"):
            for _ in range(600):
                r = await http.get(f"{url}/v1/forms/choices")
                if r.status_code == 200 and any(v["id"] == people[-1]["id"]
                                                for v in r.json()["volunteers"]):
                    break
                await asyncio.sleep(0.1)
    return org["id"], base["id"], [p["id"] for p in people]


# -- what became of it ----------------------------------------------------------------


@dataclass
class Row:
    fault: str
    sent: int = 0
    accepted: int = 0
    counted: int = 0
    lost: int = 0
    doubled: int = 0
    out_of_order: int = 0
    parked: int = 0
    restarts_at_start: int = 0
    takeover: float | None = None
    note: str = ""
    wrong: list[str] = field(default_factory=list)

    HEADER = ("| fault | sent | accepted | counted | lost | doubled | out of order | parked | "
              "restarts at start | takeover (s) |\n| --- | ---: | ---: | ---: | ---: | ---: | "
              "---: | ---: | ---: | ---: |")

    def line(self) -> str:
        took = "—" if self.takeover is None else f"{self.takeover:.1f}"
        return (f"| {self.fault} | {self.sent} | {self.accepted} | {self.counted} | "
                f"{self.lost} | {self.doubled} | {self.out_of_order} | {self.parked} | "
                f"{self.restarts_at_start} | {took} |")


async def stream_positions(system: ClusterSystem, ids: set[str]) -> dict[str, list[int]]:
    """Each of `ids` (an event_id): the TONGXIN_EVENTS seqs it stands at."""
    out: dict[str, list[int]] = {i: [] for i in ids}
    nc = await system.connect()
    try:
        js = nc.jetstream()
        names = system.names
        last = (await js.stream_info(names.events_stream)).state.last_seq
        if not last:
            return out
        sub = await js.subscribe(names.events(), stream=names.events_stream,
                                 ordered_consumer=True,
                                 config=ConsumerConfig(deliver_policy=DeliverPolicy.ALL))
        seq = 0
        while seq < last:
            try:
                msg = await sub.next_msg(timeout=10)
            except nats.errors.TimeoutError:
                break
            seq = msg.metadata.sequence.stream
            event_id = json.loads(msg.data).get("event_id")
            if event_id in out:
                out[event_id].append(seq)
    finally:
        await nc.close()
    return out


async def wait_settled(system: ClusterSystem, timeout: float = 180) -> int:
    """Until the ingest consumer has nothing pending, every outbox is published and every
    reporting instance has applied all of TONGXIN_EVENTS; returns its last seq."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    nc = await system.connect()
    try:
        js = nc.jetstream()
        names = system.names
        while True:
            waiting = []
            ingest = await js.consumer_info(names.ingest_stream, INGEST_DURABLE)
            if ingest.num_pending or ingest.num_ack_pending:
                waiting.append(f"ingest {ingest.num_pending}+{ingest.num_ack_pending}")
            for name in system.names_of_instances:
                m = await system.metrics_of(name)
                backlog = sum(m.get("tongxin_outbox_backlog", {}).values())
                lag = sum(m.get("tongxin_consumer_lag", {}).values())
                if backlog or lag:
                    waiting.append(f"{name} backlog {backlog} lag {lag}")
            if not waiting:
                return (await js.stream_info(names.events_stream)).state.last_seq
            assert loop.time() < deadline, f"never settled: {waiting}"
            await asyncio.sleep(0.5)
    finally:
        await nc.close()


async def parked(system: ClusterSystem) -> int:
    """Messages parked by any read model (each service's instances share one table)."""
    total = 0
    for s in SERVICES:
        m = await system.metrics_of(s)
        total += int(sum(m.get("tongxin_projection_parked", {}).values()))
    return total


async def verdict(load: MixedLoad, row: Row) -> Row:
    """Settle, then read TONGXIN_EVENTS and both reporting instances' reports."""
    system = load.system
    last = await wait_settled(system)
    accepted_ids = {e for c in load.chains for e in c.accepted}
    seqs = await stream_positions(system, accepted_ids)
    row.sent, row.accepted = load.offered, len(accepted_ids)
    row.wrong = list(load.wrong) + ([f"{load.unsettled} offers never answered"]
                                    if load.unsettled else [])
    row.parked = await parked(system)
    lost_ids = {e for e, s in seqs.items() if not s}
    doubled_ids = {e for e, s in seqs.items() if len(s) > 1}
    for chain in load.chains:
        order = [seqs[e][0] for e in chain.accepted if seqs[e]]
        if order != sorted(order):
            row.out_of_order += 1
            row.wrong.append(f"out of order: {chain.key} "
                             f"{[s['type'] for s in chain.steps[:len(chain.accepted)]]} at "
                             f"seqs {order}")
    # Reporting, on each instance: every activity once with its final figures (none for a
    # retracted one), every need in the state of its last accepted step, each volunteer's
    # confirmed hours. A key shown too often is doubled; one missing, or behind, is lost.
    short: set[str] = set()  # keys whose accepted events some instance does not count
    over: set[str] = set()   # keys some instance counts more than once
    for url in system.instance_urls("reporting"):
        activities, needs, hours = await read_reports(system, url, load, last)
        for chain in load.chains:
            if not chain.accepted:
                continue
            if chain.kind == "need":
                got = needs.get(chain.key, [])
                want = ["open", "claimed", "resolved"][len(chain.accepted) - 1]
                if got != [want]:
                    (over if len(got) > 1 else short).add(chain.key)
                    row.wrong.append(f"{url} need {chain.key}: {got}, not [{want}]")
                continue
            if chain.kind == "activity" and len(chain.accepted) < len(chain.steps):
                continue  # cut short by the load's end (an offer refused): not judged here
            rows = activities.get(chain.key, [])
            want_rows = [] if chain.retracted else [chain.served]
            if rows != want_rows:
                (over if len(rows) > len(want_rows) else short).add(chain.key)
                row.wrong.append(f"{url} activity {chain.key}: served {rows}, not "
                                 f"{want_rows}")
        want_hours: Counter = Counter()
        for chain in load.chains:
            if chain.kind == "activity" and len(chain.accepted) == len(chain.steps) \
                    and not chain.retracted:
                want_hours[chain.volunteer] += chain.hours
        for volunteer, h in want_hours.items():
            if abs(hours.get(volunteer, 0.0) - h) > 1e-6:
                row.wrong.append(f"{url} volunteer {volunteer}: {hours.get(volunteer)} h "
                                 f"confirmed, not {h}")
    by_key = {c.key: c for c in load.chains}
    row.lost = len(lost_ids | {e for k in short for e in by_key[k].accepted[-1:]})
    row.doubled = len(doubled_ids | {e for k in over for e in by_key[k].accepted[:1]})
    row.counted = sum(len(c.accepted) for c in load.chains
                      if c.key not in short | over and not set(c.accepted) & lost_ids)
    return row


async def read_reports(system: ClusterSystem, url: str, load: MixedLoad, last: int):
    """From one reporting instance, once it has applied `last`: {title: [served, ...]},
    {need_id: [state, ...]}, {volunteer_id: hours confirmed}."""
    activities: dict[str, list[int]] = {}
    needs: dict[str, list[str]] = {}
    hours: dict[str, float] = {}
    async with httpx.AsyncClient(headers=system.auth(), timeout=30) as http:
        for _ in range(600):
            r = await http.get(f"{url}/v1/reports/summary",
                               params={"organization_id": load.org})
            if r.status_code == 200 and (r.json().get("as_of") or 0) >= last:
                break
            await asyncio.sleep(0.2)
        offset = 0
        while True:
            r = await http.get(f"{url}/v1/reports/activities", params={
                "organization_id": load.org, "limit": 1000, "offset": offset})
            assert r.status_code == 200, r.text
            rows = r.json()["rows"]
            for a in rows:
                activities.setdefault(a["title"], []).append(a["served"])
            if len(rows) < 1000:
                break
            offset += 1000
        offset = 0
        while True:
            r = await http.get(f"{url}/v1/reports/needs/items", params={
                "base_id": load.base, "limit": 1000, "offset": offset})
            assert r.status_code == 200, r.text
            rows = r.json()["rows"]
            for n in rows:
                needs.setdefault(n["need_id"], []).append(n["state"])
            if len(rows) < 1000:
                break
            offset += 1000
        r = await http.get(f"{url}/v1/reports/volunteers",
                           params={"organization_id": load.org, "limit": 1000})
        assert r.status_code == 200, r.text
        for v in r.json()["rows"]:
            hours[v.get("volunteer_id") or v.get("id")] = v["hours_confirmed"]
    return activities, needs, hours


# -- faults ---------------------------------------------------------------------------


async def takeover_time(system: ClusterSystem, t0: float, ingest0: int, events0: int,
                        survivors: list[str], timeout: float = 180,
                        parts: dict[str, float] | None = None) -> float:
    """Seconds from `t0` (loop time of the fault) until: offers made after the fault are on
    TONGXIN_INGEST and events on TONGXIN_EVENTS again (past `ingest0`, `events0`, their last
    seqs at the fault), the ingest consumer has settled every offer up to `ingest0`, and a
    surviving reporting instance reports `as_of` >= `events0`. `parts` gets the seconds
    until each of them first held."""
    loop = asyncio.get_running_loop()
    parts = {} if parts is None else parts
    nc = await system.connect()
    js = nc.jetstream(timeout=1)  # a probe lost in the outage must not blur the time
    names = system.names

    def seen(part: str, ok: bool) -> bool:
        if ok and part not in parts:
            parts[part] = loop.time() - t0
        return part in parts

    try:
        async with httpx.AsyncClient(headers=system.auth(), timeout=1) as http:
            while loop.time() - t0 < timeout:
                try:
                    ingest = await js.stream_info(names.ingest_stream)
                    events = await js.stream_info(names.events_stream)
                    consumer = await js.consumer_info(names.ingest_stream, INGEST_DURABLE)
                    ok = [seen("offers stored", ingest.state.last_seq > ingest0),
                          seen("events stored", events.state.last_seq > events0),
                          seen("offers in hand settled",
                               consumer.ack_floor.stream_seq >= ingest0)]
                    for url in survivors:
                        r = await http.get(f"{url}/v1/reports/summary")
                        if r.status_code == 200:
                            ok.append(seen("reporting caught up", r.json()["as_of"] >= events0))
                            break
                    else:
                        ok.append(False)
                    if all(ok):
                        return loop.time() - t0
                except (nats.errors.Error, TimeoutError, httpx.HTTPError, OSError):
                    pass
                await asyncio.sleep(0.1)
    finally:
        await nc.close()
    raise AssertionError(f"no takeover within {timeout:.0f}s: {parts}")


def said(parts: dict[str, float]) -> str:
    return ", ".join(f"{k} {v:.1f}s" for k, v in sorted(parts.items(), key=lambda kv: kv[1]))


async def last_seqs(system: ClusterSystem) -> tuple[int, int]:
    nc = await system.connect()
    try:
        js = nc.jetstream()
        for _ in range(100):
            try:
                i = (await js.stream_info(system.names.ingest_stream)).state.last_seq
                e = (await js.stream_info(system.names.events_stream)).state.last_seq
                return i, e
            except (nats.errors.Error, TimeoutError):
                await asyncio.sleep(0.1)
        raise AssertionError("streams unreadable")
    finally:
        await nc.close()


async def caught_up(system: ClusterSystem, node: int, timeout: float = 120) -> float:
    """Seconds until node `node` (0-based) is a current replica of every stream again."""
    loop = asyncio.get_running_loop()
    t0 = loop.time()
    server = f"{NatsCluster.NAME}-{node + 1}"
    nc = await system.connect()
    js = nc.jetstream()
    try:
        while loop.time() - t0 < timeout:
            try:
                ok = True
                for stream in (system.names.events_stream, system.names.ingest_stream):
                    info = await js.stream_info(stream)
                    c = info.cluster
                    if c is None:
                        ok = False
                        break
                    if c.leader == server:
                        continue
                    mine = [r for r in (c.replicas or []) if r.name == server]
                    if not mine or not mine[0].current or (mine[0].lag or 0) > 0:
                        ok = False
                if ok:
                    return loop.time() - t0
            except (nats.errors.Error, TimeoutError):
                pass
            await asyncio.sleep(0.2)
    finally:
        await nc.close()
    raise AssertionError(f"node {server} never caught up")


async def wait_lag(system: ClusterSystem, name: str, timeout: float = 30) -> bool:
    """Until `name` (a reporting instance) has something left to apply: mid-batch."""
    loop = asyncio.get_running_loop()
    t0 = loop.time()
    while loop.time() - t0 < timeout:
        m = await system.metrics_of(name)
        if sum(m.get("tongxin_consumer_lag", {}).values()) > 0:
            return True
        await asyncio.sleep(0.02)
    return False


@dataclass
class Fault:
    name: str
    kind: str  # see inject()


async def inject(system: ClusterSystem, load: MixedLoad, kind: str, row: Row,
                 hold: float = 6.0) -> None:
    """Inject one fault under `load`, measure the takeover into `row`, and put the topology
    back (a killed node or instance started again) before returning."""
    assert system.cluster is not None and system.sup is not None
    loop = asyncio.get_running_loop()
    survivors = system.instance_urls("reporting")
    node: int | None = None
    killed: str | None = None
    if kind in ("events-leader", "ingest-leader", "hang"):
        stream = system.names.ingest_stream if kind == "ingest-leader" \
            else system.names.events_stream
        node = await system.leader(stream)
    ingest0, events0 = await last_seqs(system)
    t0 = loop.time()
    if kind in ("events-leader", "ingest-leader"):
        assert node is not None
        proc = system.cluster.nodes[node].proc
        assert proc is not None
        proc.kill()
        proc.wait()
        row.note = f"leader tongxin-{node + 1} killed"
    elif kind == "hang":
        assert node is not None
        proc = system.cluster.nodes[node].proc
        assert proc is not None
        os.kill(proc.pid, signal.SIGSTOP)
        row.note = f"node tongxin-{node + 1} (the events leader) stopped 15 s"
    elif kind == "reporting":
        killed = "reporting-2"
        behind = await wait_lag(system, killed)
        system.sup.kill(killed)
        survivors = [system.sup.children["reporting"].url]
        row.note = "reporting-2 killed " + ("with messages left to apply" if behind
                                           else "(never seen behind in 30 s)")
    elif kind == "events":
        killed = "events-2"
        system.sup.kill(killed)
        row.note = "events-2 killed"
    parts: dict[str, float] = {}
    if kind == "hang":
        measure = asyncio.create_task(takeover_time(system, t0, ingest0, events0, survivors,
                                                    parts=parts))
        await asyncio.sleep(15)
        assert node is not None
        os.kill(system.cluster.nodes[node].proc.pid, signal.SIGCONT)  # type: ignore[union-attr]
        row.takeover = await measure
        row.note += f"; current again {await caught_up(system, node):.1f}s after SIGCONT"
    else:
        row.takeover = await takeover_time(system, t0, ingest0, events0, survivors,
                                           parts=parts)
    row.note += f"; {said(parts)}"
    await asyncio.sleep(hold)  # the load goes on without the lost part a while
    if kind in ("events-leader", "ingest-leader"):
        assert node is not None
        system.cluster.nodes[node].start()
        row.note += f"; restarted, caught up in {await caught_up(system, node):.1f}s"
    if killed:
        service = killed.rpartition("-")[0]
        system.sup.start(killed, {**system.env(service), "TONGXIN_MIGRATE_ON_START": "false"})
        system._wait_up([killed])


async def run_fault(system: ClusterSystem, fault: Fault, warm: float = 4.0,
                    after: float = 4.0, workers: int = 4, hold: float = 6.0) -> Row:
    """A fresh organisation and load; `warm` seconds of it, the fault, `after` seconds more;
    then the verdict."""
    tag = f"f{uuid.uuid4().hex[:6]}"
    org, base, people = await setup_people(system, tag)
    load = MixedLoad(system, org, base, people, tag, workers=workers).start()
    row = Row(fault.name, restarts_at_start=system.restarts_at_start)
    try:
        await asyncio.sleep(warm)  # the load in full swing before the fault
        if fault.kind == "restart-node":
            assert system.cluster is not None
            node = await system.leader(system.names.events_stream)
            node = (node + 1) % len(system.cluster.nodes)  # a follower: the load goes on
            proc = system.cluster.nodes[node].proc
            assert proc is not None
            proc.kill()
            proc.wait()
            await asyncio.sleep(10)  # it falls behind while the load goes on
            t0 = time.monotonic()
            system.cluster.nodes[node].start()
            row.takeover = (time.monotonic() - t0) + await caught_up(system, node)
            row.note = (f"follower tongxin-{node + 1} down 10 s under load, restarted: "
                        "takeover = until it is a current replica of both streams")
        elif fault.kind != "none":
            await inject(system, load, fault.kind, row, hold=hold)
        await asyncio.sleep(after)
    finally:
        await load.stop()
    return await verdict(load, row)


FAULTS = [
    Fault("kill -9 the TONGXIN_EVENTS leader", "events-leader"),
    Fault("restart a killed node (catch up)", "restart-node"),
    Fault("kill -9 the TONGXIN_INGEST leader", "ingest-leader"),
    Fault("SIGSTOP the events leader 15 s, SIGCONT", "hang"),
    Fault("kill -9 a reporting instance mid-batch", "reporting"),
    Fault("kill -9 an events instance", "events"),
]
