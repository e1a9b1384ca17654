"""Spans leave by OTLP/HTTP when OTEL_EXPORTER_OTLP_ENDPOINT is set (a real HTTP receiver)."""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, HTTPServer

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from shared.telemetry import setup_telemetry


class Collector(BaseHTTPRequestHandler):
    received: list[tuple[str, bytes]] = []

    def do_POST(self):  # noqa: N802 (http.server's naming)
        body = self.rfile.read(int(self.headers["Content-Length"]))
        Collector.received.append((self.path, body))
        self.send_response(200)
        self.send_header("Content-Type", "application/x-protobuf")
        self.end_headers()

    def log_message(self, *args):
        pass


def test_spans_are_exported_by_otlp_when_an_endpoint_is_set(monkeypatch):
    server = HTTPServer(("127.0.0.1", 0), Collector)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", f"http://127.0.0.1:{server.server_port}")
    monkeypatch.delenv("TONGXIN_TRACE_FILE", raising=False)
    try:
        provider = setup_telemetry("tongxin-test")
        with provider.get_tracer("test").start_as_current_span("reporting-activities apply"):
            pass
        assert provider.force_flush(10_000)
    finally:
        server.shutdown()
        provider.shutdown()
    assert Collector.received, "nothing reached the collector"
    path, body = Collector.received[0]
    assert path == "/v1/traces"
    request = ExportTraceServiceRequest.FromString(body)
    resource = request.resource_spans[0]
    names = [s.name for scope in resource.scope_spans for s in scope.spans]
    service = {a.key: a.value.string_value for a in resource.resource.attributes}["service.name"]
    assert (service, names) == ("tongxin-test", ["reporting-activities apply"])
