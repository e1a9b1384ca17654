"""`tongxin status` from what a service's `/metrics` says: the page `shared.metrics` writes
(probes merged, a failing one marked), read back by `tongxin.status` and put in the table."""

from __future__ import annotations

import asyncio

from prometheus_client.metrics_core import GaugeMetricFamily
from rich.console import Console

from shared.metrics import Metrics, consumer_lag_family
from tongxin.cli import STATUS_TIMEOUT
from tongxin.status import (
    TIMEOUT,
    Consumer,
    ServiceStatus,
    from_metrics,
    problems,
    read_all,
    summary,
    table,
)

CANNED = """\
# HELP tongxin_consumer_lag messages in the stream this consumer has yet to apply
# TYPE tongxin_consumer_lag gauge
tongxin_consumer_lag{consumer="reporting-activities",stream="TONGXIN_EVENTS"} 1234.0
tongxin_consumer_lag{consumer="notifier-events",stream="TONGXIN_EVENTS"} 0.0
# HELP tongxin_projection_parked parked
# TYPE tongxin_projection_parked gauge
tongxin_projection_parked{projection="reporting-activities"} 0.0
tongxin_projection_parked{projection="notifier-events"} 3.0
# HELP tongxin_outbox_backlog backlog
# TYPE tongxin_outbox_backlog gauge
tongxin_outbox_backlog{outbox="notifications"} 7.0
# HELP tongxin_notifications_sent_total sent
# TYPE tongxin_notifications_sent_total counter
tongxin_notifications_sent_total 42.0
# HELP tongxin_metrics_probe_ok ok
# TYPE tongxin_metrics_probe_ok gauge
tongxin_metrics_probe_ok{probe="projections"} 1.0
tongxin_metrics_probe_ok{probe="outboxes"} 0.0
"""


def rendered(statuses: list[ServiceStatus], width: int = 80) -> list[str]:
    console = Console(record=True, width=width)
    console.print(table(statuses))
    for line in problems(statuses):
        console.print(line)
    return console.export_text().splitlines()


def test_the_table_shows_each_consumer_and_the_service_figures_in_80_columns():
    reporting = from_metrics(ServiceStatus("reporting", "http://x:8003", health="ok"), CANNED)
    events = ServiceStatus("events", "http://x:8002", health="ok", consumers=[
        Consumer("events-registry-replica", "TONGXIN_REGISTRY", 12_345, 0),
        Consumer("events-ingest-v1", "TONGXIN_INGEST", 0)], outbox_backlog=1_234_567,
        dlq_depth=10_000)
    down = ServiceStatus("registry", "http://x:8001", problem="nothing answers (not running?)")
    assert [(c.name, c.lag, c.parked) for c in reporting.consumers] == [
        ("notifier-events", 0, 3), ("reporting-activities", 1234, 0)]
    assert (reporting.outbox_backlog, reporting.notifications_sent, reporting.unread) == (
        7, 42, ["outboxes"])

    lines = rendered([reporting, events, down])
    assert all(len(line.rstrip()) <= 80 for line in lines), "\n".join(lines)
    assert "…" not in "".join(lines), "\n".join(lines)  # nothing cut short
    assert lines[0].split() == ["service", "health", "consumer", "lag", "parked", "outbox",
                                "DLQ", "sent"]
    assert [line.split() for line in lines[1:]] == [
        ["reporting", "ok", "notifier-events", "0", "3", "7", "42"],
        ["reporting-activities", "1,234", "0"],
        ["events", "ok", "events-registry-replica", "12,345", "0", "1,234,567", "10,000"],
        ["events-ingest-v1", "0"],
        ["registry", "down"],
        ["registry", "down:", "nothing", "answers", "(not", "running?)"],
    ]
    assert summary([reporting, down]) == (
        "lag 1,234 in all; 7 outbox rows to publish; could not read reporting: outboxes; "
        "not ok: registry")
    # Figures too wide for 80 columns together: the consumer's name folds, no figure is cut.
    huge = ServiceStatus("events", "http://x:8002", health="degraded", consumers=[
        Consumer("events-registry-replica", "TONGXIN_REGISTRY", 123_456_789, 1_000_000)],
        outbox_backlog=987_654_321, dlq_depth=1_000_001, notifications_sent=555_555_555)
    text = "\n".join(rendered([huge]))
    assert all(len(line.rstrip()) <= 80 for line in text.splitlines()), text
    for figure in ("123,456,789", "1,000,000", "987,654,321", "1,000,001", "555,555,555"):
        assert figure in text, text


async def test_a_service_that_never_answers_is_given_up_within_the_bound():
    """`tongxin status` answers in about a second whatever is stuck: a service that takes the
    connection and never answers is down after TIMEOUT, its /health and /metrics asked at
    once, every service at once."""
    hung: list[asyncio.StreamWriter] = []

    async def never_answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        hung.append(writer)  # read nothing, answer nothing, keep the connection open

    server = await asyncio.start_server(never_answer, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        statuses = await asyncio.wait_for(read_all(
            {s: f"http://127.0.0.1:{port}" for s in ("registry", "events", "reporting")}), 30)
    finally:
        for writer in hung:
            writer.close()
        server.close()
    assert [(s.health, s.problem) for s in statuses] == [
        ("down", f"no answer within {TIMEOUT:g}s")] * 3
    assert len(hung) == 6  # /health and /metrics of each, asked together
    assert TIMEOUT < 1 and TIMEOUT == STATUS_TIMEOUT  # the CLI's default


async def test_what_metrics_writes_status_reads():
    """Families of one name from two probes are merged into one (a name written twice would
    make the page unreadable); a probe that fails is marked, the others still count."""
    metrics = Metrics()

    async def projections():
        lag = consumer_lag_family()
        lag.add_metric(["events-registry-replica", "TONGXIN_REGISTRY"], 5)
        parked = GaugeMetricFamily("tongxin_projection_parked", "p", labels=["projection"])
        parked.add_metric(["events-registry-replica"], 1)
        return [lag, parked]

    async def ingest():
        lag = consumer_lag_family()
        lag.add_metric(["events-ingest-v1", "TONGXIN_INGEST"], 12)
        return [lag]

    async def dlq():
        return [GaugeMetricFamily("tongxin_dlq_depth", "d", value=2)]

    async def nats_away():
        raise ConnectionRefusedError("nats is away")

    for name, probe in (("projections", projections), ("ingest", ingest), ("dlq", dlq),
                        ("outboxes", nats_away)):
        metrics.probe(name, probe)
    body, content_type = await metrics.render()
    assert content_type.startswith("text/plain")
    page = body.decode()
    assert page.count("# TYPE tongxin_consumer_lag gauge") == 1

    events = from_metrics(ServiceStatus("events", "http://x:8002", health="ok"), page)
    assert [(c.name, c.stream, c.lag, c.parked) for c in events.consumers] == [
        ("events-ingest-v1", "TONGXIN_INGEST", 12, None),
        ("events-registry-replica", "TONGXIN_REGISTRY", 5, 1)]
    assert (events.dlq_depth, events.outbox_backlog, events.unread) == (2, None, ["outboxes"])


async def test_a_probe_that_hangs_is_cut_short():
    """A scrape is bounded: a probe stuck on an outage is given up, not waited for."""
    metrics = Metrics(probe_timeout=0.2)
    metrics.probe("stuck", lambda: asyncio.sleep(60, result=[]))
    body, _ = await asyncio.wait_for(metrics.render(), timeout=5)
    assert 'tongxin_metrics_probe_ok{probe="stuck"} 0.0' in body.decode()


async def test_prometheus_gets_openmetrics_when_it_asks():
    """Prometheus asks for OpenMetrics first; the page it gets must parse as that."""
    from prometheus_client.openmetrics.parser import text_string_to_metric_families

    metrics = Metrics()
    metrics.http.labels("GET", "/v1/events/{event_id}", "200").observe(0.02)
    body, content_type = await metrics.render(
        "application/openmetrics-text;version=1.0.0;q=0.6,text/plain;version=0.0.4;q=0.3")
    assert content_type.startswith("application/openmetrics-text")
    families = {f.name: f for f in text_string_to_metric_families(body.decode())}
    assert families["tongxin_http_request_duration_seconds"].type == "histogram"
    assert families["tongxin_metrics_probe_ok"].type == "gauge"
