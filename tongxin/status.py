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
# Every probe (each service's /health and /metrics, all at once) has this long to answer, so a
# reading takes at most about this long, whatever is down or stuck; slower counts as down. A
# service answers /metrics within its own probes' bound (shared.metrics), well inside this.
TIMEOUT = 0.8


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


async def read_service(http: httpx.AsyncClient, service: str, url: str,
                       timeout: float = TIMEOUT) -> ServiceStatus:
    """/health and /metrics at once, each given `timeout` in all (connecting included)."""
    async def get(path: str) -> httpx.Response | Exception:
        try:
            return await asyncio.wait_for(http.get(f"{url}{path}"), timeout)
        except (httpx.HTTPError, TimeoutError) as exc:
            return exc

    status = ServiceStatus(service, url)
    health, metrics = await asyncio.gather(get("/health"), get("/metrics"))
    if isinstance(health, Exception):
        status.problem = _reason(health, timeout)
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
    if isinstance(metrics, Exception):
        status.unread.append(f"/metrics ({_reason(metrics, timeout)})")
    elif metrics.status_code == 200:
        from_metrics(status, metrics.text)
    else:
        status.unread.append(f"/metrics answered {metrics.status_code}")
    return status


async def read_all(urls: dict[str, str], timeout: float = TIMEOUT) -> list[ServiceStatus]:
    """Every service at once: a reading takes about `timeout` at most."""
    # Certificates are loaded only for https (loading them takes longer than a probe).
    https = any(u.startswith("https:") for u in urls.values())
    async with httpx.AsyncClient(timeout=timeout, headers=auth_headers(), verify=https) as http:
        return list(await asyncio.gather(*(read_service(http, s, u, timeout)
                                           for s, u in urls.items())))


def _reason(exc: Exception, timeout: float) -> str:
    if isinstance(exc, httpx.ConnectError):
        return "nothing answers (not running?)"
    if isinstance(exc, TimeoutError | httpx.TimeoutException):
        return f"no answer within {timeout:g}s"
    return f"{type(exc).__name__}: {exc}"


def _count(value: int | None) -> str:
    return "" if value is None else f"{value:,}"


def table(statuses: list[ServiceStatus], title: str = "") -> Table:
    """One row per consumer (a service without any gets one row of its own); the service's
    own figures on its first row. Made to fit 80 columns: no borders, short headers, each
    consumer's stream left to --json, why a service is not ok said under the table
    (`problems`)."""
    t = Table(title=title or None, title_justify="left", box=None, pad_edge=False,
              collapse_padding=True, header_style="bold")
    for col in ("service", "health", "consumer", "lag", "parked", "outbox", "DLQ", "sent"):
        # Figures are never cut; where the width runs out a consumer's name folds instead.
        t.add_column(col, justify="left" if col in ("service", "health", "consumer")
                     else "right", no_wrap=col != "consumer", overflow="fold")
    for s in statuses:
        health = Text(s.health, style={"ok": "green", "degraded": "yellow"}.get(s.health, "red"))
        consumers: list[Consumer | None] = list(s.consumers) or [None]
        for i, c in enumerate(consumers):
            first = i == 0
            t.add_row(
                s.service if first else "",
                health if first else "",
                c.name if c else "",
                Text(_count(c.lag), style="yellow" if c.lag else "") if c else "",
                Text(_count(c.parked), style="red" if c.parked else "") if c else "",
                _count(s.outbox_backlog) if first else "",
                _count(s.dlq_depth) if first else "",
                _count(s.notifications_sent) if first else "")
    return t


def problems(statuses: list[ServiceStatus]) -> list[str]:
    """Why each service that is not ok is not, a line each, for under the table."""
    return [f"{s.service} {s.health}: {s.problem}" for s in statuses if s.problem]


def summary(statuses: list[ServiceStatus]) -> str:
    """One line under the table: what is behind, in all (outbox: rows yet to publish; sent:
    notifications sent)."""
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
