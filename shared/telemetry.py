"""Tracing and logging set-up, and the helpers that carry a trace across NATS.

Spans leave the process by OTLP when `OTEL_EXPORTER_OTLP_ENDPOINT` is set, and as JSON lines to a
file when `TONGXIN_TRACE_FILE` is set (what the tests read). Log lines carry the trace id so an
operator can go from a log line to its trace.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager

from opentelemetry import context as otel_context
from opentelemetry import propagate, trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import (
    BatchSpanProcessor,
    SimpleSpanProcessor,
    SpanExporter,
    SpanExportResult,
)
from opentelemetry.trace import Link, SpanKind

tracer = trace.get_tracer("tongxin")


class JsonLinesExporter(SpanExporter):
    """One JSON object per span per line: greppable at 2 a.m. and easy for tests to read."""

    def __init__(self, path: str):
        self._file = open(path, "a", encoding="utf-8", buffering=1)  # noqa: SIM115

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        for span in spans:
            self._file.write(json.dumps(json.loads(span.to_json()), ensure_ascii=False) + "\n")
        return SpanExportResult.SUCCESS

    def shutdown(self) -> None:
        self._file.close()


def setup_telemetry(service_name: str) -> TracerProvider:
    provider = TracerProvider(resource=Resource.create({"service.name": service_name}))
    if os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT"):
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    if path := os.environ.get("TONGXIN_TRACE_FILE"):
        provider.add_span_processor(SimpleSpanProcessor(JsonLinesExporter(path)))
    trace.set_tracer_provider(provider)
    return provider


class _TraceIdFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        ctx = trace.get_current_span().get_span_context()
        record.trace_id = f"{ctx.trace_id:032x}" if ctx.is_valid else "-"
        return True


def setup_logging(service_name: str, level: str = "INFO") -> None:
    handler = logging.StreamHandler()
    handler.addFilter(_TraceIdFilter())
    handler.setFormatter(logging.Formatter(
        f"%(asctime)s %(levelname)s {service_name} %(name)s trace=%(trace_id)s %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # Per-request access lines and per-message broker lines cost throughput and say little.
    logging.getLogger("uvicorn.access").setLevel(logging.WARNING)


def inject(headers: dict[str, str] | None = None) -> dict[str, str]:
    """The current trace context as W3C headers (`traceparent`), added to `headers`."""
    headers = dict(headers or {})
    propagate.inject(headers)
    return headers


def extract(headers: Mapping[str, str] | None) -> otel_context.Context:
    return propagate.extract(dict(headers or {}))


@contextmanager
def producer_span(subject: str, parent_headers: Mapping[str, str] | None = None,
                  **attributes: str) -> Iterator[trace.Span]:
    """A `<subject> publish` span; with `parent_headers`, continuing the trace they carry."""
    ctx = extract(parent_headers) if parent_headers is not None else None
    with tracer.start_as_current_span(
        f"{subject} publish", context=ctx, kind=SpanKind.PRODUCER,
        attributes={"messaging.system": "nats", "messaging.destination.name": subject,
                    **attributes},
    ) as span:
        yield span


@contextmanager
def batch_span(name: str, headers_list: list[Mapping[str, str] | None],
               **attributes) -> Iterator[trace.Span]:
    """A span for work done on a batch of messages.

    It continues the first message's trace, so at low rates (one message a batch) one trace runs
    from the publisher into the database write; every other message's trace is linked.
    """
    contexts = [trace.get_current_span(extract(h)).get_span_context() for h in headers_list]
    valid = [c for c in contexts if c.is_valid]
    parent = trace.set_span_in_context(trace.NonRecordingSpan(valid[0])) if valid else None
    links = [Link(c) for c in valid[1:]]
    with tracer.start_as_current_span(
        name, context=parent if parent is not None else otel_context.Context(),
        kind=SpanKind.CONSUMER, links=links,
        attributes={"messaging.system": "nats", "messaging.batch.message_count":
                    len(headers_list), **attributes},
    ) as span:
        yield span
