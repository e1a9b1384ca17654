"""The end-to-end paths, measured on a running `System` (three services, one NATS, one database):
an outside system publishing on `tongxin.ingest`, and an NDJSON history upload through
`POST /v1/events/bulk` (what `tongxin load` sends). Used by `python -m bench` and
`python -m bench.speed`.
"""

from __future__ import annotations

import asyncio
import io
import json
import os
import time
from dataclasses import dataclass
from pathlib import Path

import nats

from bench.mix import Mix
from tests.harness import System
from tongxin import load
from tongxin.natsserver import NatsServer


def memory_mb(pid: int) -> tuple[float, float]:
    """(VmRSS, VmHWM) of the process in MB: resident now, and the most it has been."""
    fields = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(("VmRSS:", "VmHWM:")):
            fields[line.split(":")[0]] = int(line.split()[1]) / 1024
    return fields.get("VmRSS", float("nan")), fields.get("VmHWM", float("nan"))


def peak_rss_mb(pid: int) -> float:
    """VmHWM: the most resident memory the process has had, in MB."""
    return memory_mb(pid)[1]


def service_pid(system: System, service: str) -> int:
    assert system.sup is not None  # System.start() made it
    proc = system.sup.children[service].proc
    assert proc is not None  # and started every service
    return proc.pid


async def counted(system: System, org_id: str, min_seq: int) -> int:
    """Activities the reports count for the unit, once they have applied `min_seq`."""
    async with system.client(timeout=60) as http:
        while True:
            r = await http.get(f"{system.url('reporting')}/v1/reports/summary",
                               params={"organization_id": org_id, "min_seq": min_seq})
            if r.status_code != 503:
                r.raise_for_status()
                return r.json()["totals"]["activities"]


async def every_model_has(system: System, seq: int, timeout: float = 3600) -> None:
    """Until the events service has published up to `seq` and every consumer of the reporting
    service (each read model, the notifier) has no lag left."""
    await system.wait_for_seq(seq, timeout=timeout)
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        lags = (await system.metrics("reporting")).get("tongxin_consumer_lag", {})
        if lags and not any(lags.values()):
            return
        assert asyncio.get_running_loop().time() < deadline, f"reporting never caught up: {lags}"
        await asyncio.sleep(0.2)


@dataclass
class BusRun:
    events: int
    activities: int
    published: float   # events/s onto tongxin.ingest (pipelined)
    accepted: float    # events/s until all are on TONGXIN_EVENTS
    counted: float     # events/s until the summary counts every activity
    activities_counted: float


async def bus(system: System, mix: Mix, n: int, already_counted: int) -> BusRun:
    """`n` envelopes of the mix published pipelined on `tongxin.ingest` by "another system";
    timed until the events service has published them all and the summary counts them."""
    start_seq = await system.events_last_seq()
    before = mix.activities
    payloads = [(system.names.ingest(e["type"]), json.dumps(e, ensure_ascii=False).encode(),
                 e["event_id"]) for e in mix.envelopes(n)]
    activities = mix.activities - before
    nc = await nats.connect(system.nats_url)
    js = nc.jetstream()
    t0 = time.perf_counter()
    futures = [await js.publish_async(subject, p, headers={"Nats-Msg-Id": event_id})
               for subject, p, event_id in payloads]
    await asyncio.gather(*futures)
    published = time.perf_counter() - t0
    await nc.close()
    target_seq = start_seq + n
    await system.wait_for_seq(target_seq, timeout=3600)
    accepted = time.perf_counter() - t0
    total = await counted(system, mix.org_id, target_seq)
    counted_at = time.perf_counter() - t0
    assert total == already_counted + activities, f"counted {total}"
    return BusRun(n, activities, n / published, n / accepted, n / counted_at,
                  activities / counted_at)


@dataclass
class BulkRun:
    events: int
    activities: int
    megabytes: float
    answered: float            # events/s until the upload is answered (all accepted)
    counted: float             # events/s until the summary counts them
    every_model: float | None  # events/s until every read model has them (when asked)
    rss_quarter: tuple[float, float]  # events service (VmRSS, VmHWM) MB, a quarter uploaded
    rss_end: tuple[float, float]      # the same once answered


async def bulk(system: System, mix: Mix, n: int, already_counted: int,
               every_model: bool = False) -> BulkRun:
    """`n` envelopes of the mix as one NDJSON upload; the events service's memory sampled when
    a quarter of the bytes have gone out and at the end."""
    pid = service_pid(system, "events")
    before = mix.activities
    body = b"".join(json.dumps(e, ensure_ascii=False, separators=(",", ":")).encode() + b"\n"
                    for e in mix.envelopes(n))
    activities = mix.activities - before
    quarter: list[tuple[float, float]] = []
    sent = 0

    def progress(chunk: int) -> None:
        nonlocal sent
        sent += chunk
        if not quarter and sent >= len(body) / 4:
            quarter.append(memory_mb(pid))

    os.environ["TONGXIN_TOKEN"] = system.token  # what `tongxin load` sends
    t0 = time.perf_counter()
    answer = await asyncio.to_thread(load.send, io.BytesIO(body), system.url("events"),
                                     progress)
    answered = time.perf_counter() - t0
    end = memory_mb(pid)
    assert (answer["accepted"], answer["refused"]) == (n, 0), answer
    last = await system.events_last_seq()
    total = await counted(system, mix.org_id, last)
    counted_at = time.perf_counter() - t0
    assert total == already_counted + activities, f"counted {total}"
    all_at = None
    if every_model:
        await every_model_has(system, last)
        all_at = time.perf_counter() - t0
    return BulkRun(n, activities, len(body) / 1e6, n / answered, n / counted_at,
                   n / all_at if all_at else None, quarter[0] if quarter else end, end)


@dataclass
class VisibleRun:
    offered: int                 # events published
    rate: float                  # events/s actually offered
    latencies_ms: list[float]    # publish → visible in the summary, one per event seen
    unseen: int                  # events never seen in the summary within the wait


async def publish_to_visible(system: System, mix: Mix, rate: int, seconds: float,
                             wait: float = 120) -> VisibleRun:
    """Offer `rate` events/s of `mix` on `tongxin.ingest` for `seconds`, each event's publish
    time noted; follow TONGXIN_EVENTS for the seq each was given; and ask the summary, with
    `min_seq` set to the oldest seq not yet seen there, again and again: an answer's `as_of`
    makes every event up to it visible at the moment the answer arrived."""
    from nats.js.api import ConsumerConfig, DeliverPolicy

    n = int(rate * seconds)
    envelopes = list(mix.envelopes(n))
    published: dict[str, float] = {}
    stream_order: list[tuple[int, str]] = []  # (seq, event_id), in stream order
    nc = await nats.connect(system.nats_url)
    js = nc.jetstream()
    start_seq = await system.events_last_seq()

    async def seen(msg) -> None:
        stream_order.append((msg.metadata.sequence.stream, json.loads(msg.data)["event_id"]))

    sub = await js.subscribe(system.names.events(), cb=seen, ordered_consumer=True,
                             stream=system.names.events_stream,
                             config=ConsumerConfig(deliver_policy=DeliverPolicy.BY_START_SEQUENCE,
                                                   opt_start_seq=start_seq + 1))

    async def offer() -> float:
        t0 = time.perf_counter()
        for i, e in enumerate(envelopes):  # each at its time on a schedule that does not drift
            if (ahead := t0 + i / rate - time.perf_counter()) > 0:
                await asyncio.sleep(ahead)
            published[e["event_id"]] = time.perf_counter()
            await js.publish_async(system.names.ingest(e["type"]),
                                   json.dumps(e, ensure_ascii=False).encode(),
                                   headers={"Nats-Msg-Id": e["event_id"]})
        await js.publish_async_completed()
        return n / (time.perf_counter() - t0)

    visible: dict[str, float] = {}

    async def watch(done: asyncio.Event) -> None:
        following = 0
        deadline: float | None = None
        async with system.client(timeout=60) as http:
            while len(visible) < n:
                if done.is_set():
                    deadline = deadline or time.perf_counter() + wait
                    if time.perf_counter() > deadline:
                        return
                if following >= len(stream_order):
                    await asyncio.sleep(0.002)
                    continue
                r = await http.get(f"{system.url('reporting')}/v1/reports/summary", params={
                    "organization_id": mix.org_id, "group_by": "year",
                    "min_seq": stream_order[following][0]})
                if r.status_code == 503:  # not applied within the service's wait: ask again
                    continue
                r.raise_for_status()
                at, as_of = time.perf_counter(), r.json()["as_of"]
                while following < len(stream_order) and stream_order[following][0] <= as_of:
                    visible.setdefault(stream_order[following][1], at)
                    following += 1

    done = asyncio.Event()
    watcher = asyncio.create_task(watch(done))
    offered = await offer()
    done.set()
    await watcher
    await sub.unsubscribe()
    await nc.close()
    latencies = [(visible[i] - published[i]) * 1000 for i in published if i in visible]
    return VisibleRun(n, offered, latencies, n - len(latencies))


def nats_for(tmp: Path) -> tuple[str, NatsServer | None]:
    """TONGXIN_NATS_URL if set, else an embedded nats-server in `tmp` (the caller stops it)."""
    url = os.environ.get("TONGXIN_NATS_URL")
    if url:
        return url, None
    server = NatsServer(tmp / "nats").start()
    return server.url, server
