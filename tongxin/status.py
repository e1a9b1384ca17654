"""`tongxin status`: each service's `/health` and `/metrics`, read over HTTP (both open, no key
needed) and put in one table: health, each consumer's lag and parked messages, outbox backlogs,
the DLQ's depth, notifications sent. Like `tongxin load`, no service code is imported: it reads
what Prometheus reads."""

from __future__ import annotations

import asyncio
from dataclasses import asdict, dataclass, field

import httpx
from prometheus_client.parser import text_string_to_metric_families
from rich.table import Table
from rich.text import Text

from tongxin.keys import auth_headers

SERVICES = ("registry", "events", "reporting")
TIMEOUT = 5.0  # a service slower than this to answer counts as down


@dataclass
class Consumer:
    name: str
    stream: str
    lag: int
    parked: int | None = None  # projections only: durable consumers park nothing


@dataclass
class ServiceStatus:
    service: str
    url: str
    health: str = "down"          # ok, degraded, down
    problem: str = ""             # why not ok: the failing checks, or the connection error
    consumers: list[Consumer] = field(default_factory=list)
    outbox_backlog: int | None = None
    dlq_depth: int | None = None
    notifications_sent: int | None = None
    unread: list[str] = field(default_factory=list)  # probes the service could not read

    @property
    def up(self) -> bool:
        return self.health == "ok"

    def as_json(self) -> dict:
        return asdict(self)


def default_urls(host: str, ports: dict[str, int]) -> dict[str, str]:
    host = "127.0.0.1" if host in ("0.0.0.0", "::", "") else host  # listening everywhere
    return {s: f"http://{host}:{ports[s]}" for s in SERVICES}


def from_metrics(status: ServiceStatus, text: str) -> ServiceStatus:
    """Fill `status` from a `/metrics` page (Prometheus text format)."""
    parked: dict[str, int] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            value, labels = int(sample.value), sample.labels
            if sample.name == "tongxin_consumer_lag":
                status.consumers.append(Consumer(labels["consumer"], labels["stream"], value))
            elif sample.name == "tongxin_projection_parked":
                parked[labels["projection"]] = value
            elif sample.name == "tongxin_outbox_backlog":
                status.outbox_backlog = (status.outbox_backlog or 0) + value
            elif sample.name == "tongxin_dlq_depth":
                status.dlq_depth = value
            elif sample.name == "tongxin_notifications_sent_total":
                status.notifications_sent = value
            elif sample.name == "tongxin_metrics_probe_ok" and not value:
                status.unread.append(labels["probe"])
    for consumer in status.consumers:
        consumer.parked = parked.get(consumer.name)
    status.consumers.sort(key=lambda c: c.name)
    return status


async def read_service(http: httpx.AsyncClient, service: str, url: str) -> ServiceStatus:
    status = ServiceStatus(service, url)
    try:
        health = await http.get(f"{url}/health")
        metrics = await http.get(f"{url}/metrics")
    except httpx.HTTPError as exc:
        status.problem = _reason(exc)
        return status
    try:
        body = health.json()
    except ValueError:
        body = {}
    if health.status_code == 200:
        status.health = "ok"
    else:
        status.health = "degraded" if body else "down"
        failing = [k for k, v in body.items() if v is False]
        status.problem = (f"failing: {', '.join(failing)}" if failing
                          else f"/health answered {health.status_code}")
    if metrics.status_code == 200:
        from_metrics(status, metrics.text)
    else:
        status.unread.append(f"/metrics answered {metrics.status_code}")
    return status


async def read_all(urls: dict[str, str]) -> list[ServiceStatus]:
    async with httpx.AsyncClient(timeout=TIMEOUT, headers=auth_headers()) as http:
        return list(await asyncio.gather(*(read_service(http, s, u) for s, u in urls.items())))


def _reason(exc: httpx.HTTPError) -> str:
    if isinstance(exc, httpx.ConnectError):
        return "nothing answers (not running?)"
    if isinstance(exc, httpx.TimeoutException):
        return f"no answer within {TIMEOUT:.0f}s"
    return f"{type(exc).__name__}: {exc}"


def _count(value: int | None) -> str:
    return "" if value is None else f"{value:,}"


def table(statuses: list[ServiceStatus], title: str = "") -> Table:
    """One row per consumer (a service without any gets one row of its own); the service's
    own figures on its first row."""
    t = Table(title=title or None, title_justify="left")
    for col in ("service", "health", "consumer", "stream", "lag", "parked", "outbox backlog",
                "DLQ", "notifications sent"):
        t.add_column(col, justify="left" if col in ("service", "health", "consumer", "stream")
                     else "right")
    for s in statuses:
        style = {"ok": "green", "degraded": "yellow"}.get(s.health, "red")
        health = Text(s.health, style=style)
        if s.problem:
            health.append(f" ({s.problem})", style="dim")
        consumers: list[Consumer | None] = list(s.consumers) or [None]
        for i, c in enumerate(consumers):
            first = i == 0
            t.add_row(
                s.service if first else "",
                health if first else "",
                c.name if c else "",
                c.stream if c else "",
                Text(_count(c.lag), style="yellow" if c.lag else "") if c else "",
                Text(_count(c.parked), style="red" if c.parked else "") if c else "",
                _count(s.outbox_backlog) if first else "",
                _count(s.dlq_depth) if first else "",
                _count(s.notifications_sent) if first else "",
                end_section=i == len(consumers) - 1)
    return t


def summary(statuses: list[ServiceStatus]) -> str:
    """One line under the table: what is behind, in all."""
    lag = sum(c.lag for s in statuses for c in s.consumers)
    backlog = sum(s.outbox_backlog or 0 for s in statuses)
    down = [s.service for s in statuses if not s.up]
    parts = [f"lag {lag:,} in all" if lag else "no lag",
             f"{backlog:,} outbox rows to publish" if backlog else "outboxes empty"]
    if unread := [f"{s.service}: {', '.join(s.unread)}" for s in statuses if s.unread]:
        parts.append(f"could not read {'; '.join(unread)}")
    if down:
        parts.append(f"not ok: {', '.join(down)}")
    return "; ".join(parts)
