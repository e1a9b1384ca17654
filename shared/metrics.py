"""Prometheus metrics every service exports on `GET /metrics`.

Two kinds:
- kept as they happen: HTTP request latency (a histogram by method, route template and status,
  from a small ASGI middleware) and what the outbox relays published;
- read when scraped: each consumer's lag, parked messages, outbox backlogs, the DLQ's depth,
  health. A scrape runs a handful of cheap queries (a count on an indexed column, one GROUP BY,
  one `stream_info` per stream read), side by side and each bounded, so a scrape never waits
  long on an outage, and an HTTP request never costs a NATS request.

Open to anyone who can reach the port (`/metrics` is in `shared.auth.OPEN_PATHS`): scrapers
carry no key. So every label here is a service-level name — a route template, a projection,
a stream, a table — never an id, a name or a phone number of anyone.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Iterable
from pathlib import Path
from typing import TYPE_CHECKING

from fastapi import FastAPI, Request
from fastapi.responses import Response
from nats.js import JetStreamContext
from prometheus_client import (
    CollectorRegistry,
    GCCollector,
    Histogram,
    PlatformCollector,
    ProcessCollector,
)
from prometheus_client.exposition import choose_encoder
from prometheus_client.metrics_core import CounterMetricFamily, GaugeMetricFamily, Metric
from sqlalchemy import func, select
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from shared.db import WAITS
from shared.retry import is_transient

if TYPE_CHECKING:
    from shared.outbox import Relay
    from shared.projection import Projection

log = logging.getLogger(__name__)

PROBE_TIMEOUT = 3.0  # seconds a scrape waits for one probe; Prometheus's own default is 10
# Up to five minutes: a history load (`POST /v1/events/bulk`) is one long request.
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300)
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})

Probe = Callable[[], Awaitable[Iterable[Metric]]]


class Metrics:
    """One service's metrics: its own registry (not the process-wide default, so apps made in
    one process, as in the integration tests, never collide), and the probes run per scrape."""

    def __init__(self, probe_timeout: float = PROBE_TIMEOUT) -> None:
        self.probe_timeout = probe_timeout
        self.registry = CollectorRegistry()
        for collector in (ProcessCollector, PlatformCollector, GCCollector):
            collector(registry=self.registry)
        self.http = Histogram(
            "tongxin_http_request_duration_seconds",
            "HTTP requests served, by method, route template and status: seconds until the "
            "response was sent",
            ["method", "route", "status"], buckets=LATENCY_BUCKETS, registry=self.registry)
        self._probes: dict[str, Probe] = {}
        self._scraped: list[Metric] = []
        self._lock = asyncio.Lock()  # one scrape at a time fills `_scraped`
        self.registry.register(_Scraped(self))

    def probe(self, name: str, probe: Probe) -> None:
        """Run `probe` at every scrape; what it returns is exported (families of one name
        from several probes are merged)."""
        self._probes[name] = probe

    async def render(self, accept: str = "") -> tuple[bytes, str]:
        """The page and its content type, in the format `accept` asks for: Prometheus asks for
        OpenMetrics, anything else gets the classic text format."""
        encode, content_type = choose_encoder(accept)
        async with self._lock:
            names = list(self._probes)
            results = await asyncio.gather(
                *(asyncio.wait_for(self._probes[n](), self.probe_timeout) for n in names),
                return_exceptions=True)
            ok = GaugeMetricFamily("tongxin_metrics_probe_ok", "1 if this scrape could read "
                                   "what the probe reports, 0 if not (its figures are left out)",
                                   labels=["probe"])
            families: list[Metric] = [ok]
            for name, result in zip(names, results, strict=True):
                if isinstance(result, BaseException):
                    log.info("metrics: probe %s failed: %r", name, result)
                    ok.add_metric([name], 0)
                else:
                    ok.add_metric([name], 1)
                    families += result
            self._scraped = _merged(families)
            return encode(self.registry), content_type


class _Scraped:
    """Hands the registry what the last `render` read (prometheus_client collects
    synchronously; the reading is async, so it is done just before)."""

    def __init__(self, metrics: Metrics):
        self.metrics = metrics

    def collect(self) -> Iterable[Metric]:
        return list(self.metrics._scraped)


def _merged(families: list[Metric]) -> list[Metric]:
    """One family per name: a name written twice would make the whole page unreadable."""
    out: dict[str, Metric] = {}
    for family in families:
        if family.name in out:
            out[family.name].samples += family.samples
        else:
            out[family.name] = family
    return list(out.values())


class HttpMetrics:
    """ASGI middleware timing each HTTP request into `Metrics.http`. The route is the matched
    route's template (`/v1/events/{event_id}`), never the raw path, so ids do not multiply the
    series; a path no route matches counts as `unmatched`."""

    def __init__(self, app: ASGIApp, metrics: Metrics):
        self.app = app
        self.histogram = metrics.http

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status: int | None = None

        async def send_noting_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_noting_status)
        except Exception as exc:
            # Answered outside this middleware by the app's catch-all handler (shared.http):
            # 503 for an outage, 500 otherwise.
            status = status or (503 if is_transient(exc) else 500)
            raise
        finally:
            method = scope["method"] if scope["method"] in METHODS else "other"
            route = getattr(scope.get("route"), "path", None) or "unmatched"
            # No status at all: the client went away first (499, as nginx counts it).
            self.histogram.labels(method, route, str(status or 499)).observe(
                time.perf_counter() - started)


def add_metrics(app: FastAPI, metrics: Metrics) -> None:
    app.add_middleware(HttpMetrics, metrics=metrics)

    page = {"schema": {"type": "string"}}

    @app.get("/metrics", tags=["operations"], response_class=Response,
             summary="Prometheus metrics (open, like /health)",
             responses={200: {"content": {"text/plain": page,
                                          "application/openmetrics-text": page},
                              "description": "service-level figures only: no ids, no names"}})
    async def metrics_page(request: Request) -> Response:
        body, content_type = await metrics.render(request.headers.get("accept", ""))
        return Response(body, headers={"Content-Type": content_type})


# -- probes --------------------------------------------------------------------------------

def health_probe(checks: Callable[[], Awaitable[dict[str, bool]]]) -> Probe:
    async def probe() -> list[Metric]:
        family = GaugeMetricFamily("tongxin_health_check", "1 while the check passes "
                                   "(what /health reports)", labels=["check"])
        for check, ok in (await checks()).items():
            family.add_metric([check], 1 if ok else 0)
        return [family]

    return probe


def projections_probe(projections: list[Projection]) -> Probe:
    """Each projection's lag (its stream's last seq minus the seq it has applied: a projection
    reads its whole stream) and parked messages: one `stream_info` per stream, one GROUP BY
    per parked table."""

    async def probe() -> list[Metric]:
        lag = consumer_lag_family()
        parked = GaugeMetricFamily("tongxin_projection_parked", "messages this projection "
                                   "could not apply and set aside (GET /v1/parked)",
                                   labels=["projection"])
        applied = CounterMetricFamily("tongxin_projection_applied", "messages this process "
                                      "applied since it started (its share of the work, where "
                                      "instances share a database)", labels=["projection"])
        for p in projections:
            applied.add_metric([p.name], p.applied_here)
        if not projections:
            return [lag, parked, applied]
        js = projections[0].js
        streams = {p.stream for p in projections}
        last = dict(zip(streams, await asyncio.gather(
            *(_last_seq(js, s) for s in streams)), strict=True))
        for p in projections:
            lag.add_metric([p.name, p.stream], max(last[p.stream] - p.position, 0))
        counts: dict[str, int] = {}
        tables = {(id(p.engine), p.parked.name): p for p in projections}
        for p in tables.values():
            async with p.engine.connect() as conn:
                for name, count in await conn.execute(
                        select(p.parked.c.name, func.count()).group_by(p.parked.c.name)):
                    counts[name] = count
        for p in projections:
            parked.add_metric([p.name], counts.get(p.name, 0))
        return [lag, parked, applied]

    return probe


def relays_probe(relays: list[Relay]) -> Probe:
    """Each outbox's unpublished rows (those past its watermark), and what this
    process's relay has published since it started."""

    from shared.outbox import published_id

    async def probe() -> list[Metric]:
        backlog = GaugeMetricFamily("tongxin_outbox_backlog", "outbox rows committed but not "
                                    "yet published to NATS", labels=["outbox"])
        published = CounterMetricFamily("tongxin_outbox_published", "outbox rows this process "
                                        "published since it started", labels=["outbox"])
        for relay in relays:
            t = relay.table
            async with relay.engine.connect() as conn:
                upto = await published_id(conn, t)
                waiting = (await conn.execute(select(func.count()).select_from(t)
                                              .where(t.c.id > upto))).scalar_one()
            backlog.add_metric([t.name], waiting)
            published.add_metric([t.name], relay.published)
        return [backlog, published]

    return probe


def durable_probe(js: Callable[[], JetStreamContext], stream: str, durable: str) -> Probe:
    """A durable consumer's lag: messages not yet delivered plus delivered but not yet acked.
    Every instance sharing the consumer reports the same figure (take the max, not the sum)."""

    async def probe() -> list[Metric]:
        info = await js().consumer_info(stream, durable)
        lag = consumer_lag_family()
        lag.add_metric([durable, stream], (info.num_pending or 0) + (info.num_ack_pending or 0))
        return [lag]

    return probe


def write_waits_probe() -> Probe:
    """Writers to each SQLite file taking turns (`shared.db.write_transaction`): how many
    wrote, how long the longest wait for a turn and the longest turn were, how many wait now.
    A wait that keeps growing means a writer holds its turn too long."""

    async def probe() -> list[Metric]:
        labels = ["database"]
        writes = CounterMetricFamily("tongxin_db_writes", "write transactions that took "
                                     "their turn on this SQLite file", labels=labels)
        wait = GaugeMetricFamily("tongxin_db_write_wait_max_seconds", "the longest wait "
                                 "for a turn to write, since the process started", labels=labels)
        held = GaugeMetricFamily("tongxin_db_write_held_max_seconds", "the longest turn "
                                 "held, since the process started", labels=labels)
        waiting = GaugeMetricFamily("tongxin_db_write_waiting", "writers waiting for their "
                                    "turn now", labels=labels)
        for file, w in WAITS.items():
            name = [Path(file).name]
            writes.add_metric(name, w.count)
            wait.add_metric(name, w.max_wait)
            held.add_metric(name, w.max_held)
            waiting.add_metric(name, w.waiting)
        return [writes, wait, held, waiting]

    return probe


def dlq_probe(js: Callable[[], JetStreamContext], stream: str) -> Probe:
    async def probe() -> list[Metric]:
        info = await js().stream_info(stream)
        return [GaugeMetricFamily("tongxin_dlq_depth", "rejected offers in the DLQ stream "
                                  "(kept 90 days; what matters is when it grows)",
                                  value=info.state.messages)]

    return probe


def consumer_lag_family() -> GaugeMetricFamily:
    return GaugeMetricFamily("tongxin_consumer_lag", "messages in the stream this consumer "
                             "has yet to apply (projections) or to ack (durable consumers)",
                             labels=["consumer", "stream"])


async def _last_seq(js: JetStreamContext, stream: str) -> int:
    return (await js.stream_info(stream)).state.last_seq
