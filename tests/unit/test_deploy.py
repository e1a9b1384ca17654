"""deploy/: the compose file and the collector's and Prometheus's configs read as YAML and agree
with each other (Docker is not here to start them): every file mounted exists, every
dependency and host named is a compose service, every pipeline names what is defined, and
Prometheus scrapes each service on the port the service listens on."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlsplit

import yaml

from shared.settings import Settings
from tongxin.supervisor import SERVICES

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
WRITTEN_BEFORE_START = {"./nats/auth.conf"}  # by `tongxin bus config` (passwords: not in git)


def load(name: str) -> dict:
    return yaml.safe_load((DEPLOY / name).read_text())


def test_the_compose_file_hangs_together():
    compose = load("docker-compose.yml")
    services = compose["services"]
    for name, service in services.items():
        for needed in service.get("depends_on", {}):
            assert needed in services, f"{name} depends on {needed}, not a service"
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            if source.startswith("./"):
                assert (DEPLOY / source).exists() or source in WRITTEN_BEFORE_START, (
                    f"{name} mounts {source}, which is not in deploy/")
            else:
                assert source in compose["volumes"], f"{name}: volume {source} undeclared"
    assert {"otel-collector", "jaeger", "prometheus", "postgres"} <= set(services)
    assert "16686:16686" in services["jaeger"]["ports"]
    assert "9090:9090" in services["prometheus"]["ports"]
    for name in SERVICES:
        env = services[name]["environment"]
        endpoint = urlsplit(env["OTEL_EXPORTER_OTLP_ENDPOINT"])
        assert (endpoint.hostname, endpoint.port) == ("otel-collector", 4318), name


def test_the_collector_sends_what_it_receives_to_jaeger():
    config = load("otel-collector.yaml")
    assert config["receivers"]["otlp"]["protocols"]["http"]["endpoint"].endswith(":4318")
    traces = config["service"]["pipelines"]["traces"]
    for kind in ("receivers", "processors", "exporters"):
        for component in traces[kind]:
            assert component in config[kind], f"{component} is not among the {kind}"
    [exporter] = traces["exporters"]
    assert exporter.split("/")[0] == "otlp_grpc"
    assert config["exporters"][exporter]["endpoint"] == "jaeger:4317"


def test_prometheus_scrapes_every_instance_of_every_service():
    config = load("prometheus.yml")
    services = load("docker-compose.yml")["services"]
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    for name in SERVICES:
        [discovery] = jobs[name]["dns_sd_configs"]
        assert discovery["names"] == [name] and name in services
        assert discovery["type"] == "A"  # one address per container: scaled ones too
        assert discovery["port"] == Settings.model_fields[f"{name}_port"].default
        assert jobs[name].get("metrics_path", "/metrics") == "/metrics"
