"""What the services say of themselves agrees with what they do and with docs/interface.md:
every JSON answer has a schema a client can be generated from (not a bare object); the event
types of the AsyncAPI document, of docs/interface.md and of the code are the same; and every
route docs/interface.md names is in the OpenAPI, with the method it names.

(That the answers really have those schemas is checked by FastAPI on the way out, and by
schemathesis against the running services in tests/e2e/test_openapi_fuzz.py.)"""

from __future__ import annotations

import re
from functools import cache
from pathlib import Path

import pytest
from fastapi import FastAPI

from services.events.app import asyncapi
from services.events.app import create_app as events_app
from services.registry.app import create_app as registry_app
from services.reporting.app import create_app as reporting_app
from shared.event_types import EVENT_TYPES
from shared.runtime import Runtime
from shared.settings import Settings

DOC = Path(__file__).resolve().parents[2] / "docs" / "interface.md"
METHODS = ("get", "post", "put", "patch", "delete")


@cache
def specs() -> dict[str, dict]:
    settings = Settings()
    return {name: make(settings).openapi() for name, make in (
        ("registry", registry_app), ("events", events_app), ("reporting", reporting_app))}


def parked_spec() -> dict:
    """The routes every service with projections adds as they start (`/v1/parked`)."""
    app = FastAPI()
    app.include_router(Runtime("reporting", Settings())._parked_router())
    return app.openapi()


def _resolve(spec: dict, schema: dict) -> dict:
    while "$ref" in schema:
        schema = spec["components"]["schemas"][schema["$ref"].rsplit("/", 1)[-1]]
    return schema


def described(spec: dict, schema: dict) -> bool:
    """Whether `schema` says what is in the answer: an object with named properties, a list of
    described items, or a choice of described answers; not `{}` or a bare object."""
    schema = _resolve(spec, schema)
    if "anyOf" in schema or "oneOf" in schema:
        return all(described(spec, s) for s in schema.get("anyOf", schema.get("oneOf")))
    if schema.get("type") == "array":
        return described(spec, schema.get("items", {}))
    return bool(schema.get("properties"))


def undescribed_json_answers(spec: dict) -> list[str]:
    """`METHOD path status` of each 2xx JSON answer whose schema is bare (also one with no
    JSON schema at all, unless it answers another media type, such as a CSV or an image)."""
    bare = []
    for path, operations in spec["paths"].items():
        for method, operation in operations.items():
            if method not in METHODS:
                continue
            for status, response in operation.get("responses", {}).items():
                if not status.startswith("2"):
                    continue
                content = response.get("content", {})
                json_schema = content.get("application/json", {}).get("schema")
                if json_schema is None and content and "application/json" not in content:
                    continue  # a download, an image, an event stream: not JSON
                if json_schema is None or not described(spec, json_schema):
                    bare.append(f"{method.upper()} {path} {status}")
    return bare


@pytest.mark.parametrize("service", ["registry", "events", "reporting"])
def test_every_json_answer_has_a_described_schema(service):
    spec = specs()[service]
    assert len(spec["paths"]) > 5
    assert undescribed_json_answers(spec) == []


def test_the_parked_routes_are_described():
    spec = parked_spec()
    assert {"/v1/parked", "/v1/parked/replay"} <= set(spec["paths"])
    assert undescribed_json_answers(spec) == []


def test_spreadsheet_answers_are_documented_with_their_media_types():
    for service, path in [("reporting", "/v1/reports/summary"),
                          ("reporting", "/v1/reports/assessment"),
                          ("registry", "/v1/export/{collection}")]:
        content = specs()[service]["paths"][path]["get"]["responses"]["200"]["content"]
        assert {"text/csv",
                "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"} <= set(
            content), (service, path)


def test_the_registry_records_name_their_fields():
    spec = specs()["registry"]
    pairing = _resolve(spec, spec["paths"]["/v1/pairings/{id}"]["get"]["responses"]["200"]
                       ["content"]["application/json"]["schema"])
    assert {"id", "organization_id", "base_id", "name", "needs", "projects", "active",
            "created_at", "updated_at"} <= set(pairing["properties"])
    volunteers = _resolve(spec, spec["paths"]["/v1/volunteers"]["get"]["responses"]["200"]
                          ["content"]["application/json"]["schema"])
    assert {"items", "total", "limit", "offset"} <= set(volunteers["properties"])
    volunteer = _resolve(spec, volunteers["properties"]["items"]["items"])
    # Kept by the registry alone: never in a record.
    assert not {"phone", "id_number"} & set(volunteer["properties"])


# -- event types: AsyncAPI, docs/interface.md, shared/event_types.py -------------------------

def asyncapi_types() -> tuple[dict[str, set[str]], dict[str, str]]:
    """({"events" | "ingest": types with a channel}, {channel: its payload's `type`})."""
    doc = asyncapi(Settings()).to_specification().to_jsonable()
    by_prefix: dict[str, set[str]] = {"events": set(), "ingest": set()}
    payload_type: dict[str, str] = {}
    for channel in doc["channels"].values():
        address = channel["address"]
        for prefix in by_prefix:
            if address.startswith(f"tongxin.{prefix}."):
                by_prefix[prefix].add(address.removeprefix(f"tongxin.{prefix}."))
        for ref in channel.get("messages", {}).values():
            message = doc["components"]["messages"][ref["$ref"].rsplit("/", 1)[-1]]
            payload = _resolve(doc, message.get("payload", {}))
            if "type" in payload.get("properties", {}):
                payload_type[address] = payload["properties"]["type"].get("const")
    return by_prefix, payload_type


def documented_types() -> set[str]:
    """The event types docs/interface.md gives a section to (`#### \\`type\\``)."""
    return set(re.findall(r"^#### `([a-z_]+\.[a-z_]+)`", DOC.read_text(encoding="utf-8"),
                          flags=re.MULTILINE))


def test_event_types_agree_in_asyncapi_the_doc_and_the_code():
    channels, payload_type = asyncapi_types()
    declared = set(EVENT_TYPES)
    outside = {name for name, t in EVENT_TYPES.items() if t.sender == "outside"}
    assert channels["events"] == declared, "accepted-event channels vs shared/event_types.py"
    assert channels["ingest"] == outside, "offer channels vs the types outsiders may send"
    assert documented_types() == declared, "docs/interface.md's event sections vs the code"
    for address, named in payload_type.items():
        assert address.endswith(f".{named}"), (address, named)


# -- routes named in docs/interface.md ------------------------------------------------------

def documented_routes() -> set[tuple[str, str]]:
    """(METHOD, path) for each route docs/interface.md names: `GET /v1/x`, `GET`/`POST /v1/x`,
    `GET /v1/a` · `/v1/b` (b with a's method), and the registry's collections (`POST` and
    `GET` on each, `GET` and `PATCH` on `/{id}`, `POST /{id}/deactivate` and `/reactivate`)."""
    text = DOC.read_text(encoding="utf-8")
    routes: set[tuple[str, str]] = set()

    def path(raw: str) -> str:
        return re.sub(r"<([a-z_]+)>", r"{\1}", raw.split("?", 1)[0])

    for method, raw, more in re.findall(
            r"`(GET|POST|PUT|PATCH|DELETE) (/[^`\s]*)[^`]*`((?: · `/[^`\s]*`)*)", text):
        routes.add((method, path(raw)))
        for extra in re.findall(r"`(/[^`\s]*)`", more):
            routes.add((method, path(extra)))
    for first, second, raw in re.findall(r"`(GET|POST)`/`(GET|POST) (/[^`\s]*)`", text):
        routes |= {(first, path(raw)), (second, path(raw))}

    routes = {(m, p) for m, p in routes if not p.startswith("/{")}  # the registry's, below
    registry = text.split("## The registry", 1)[1]
    collections = re.findall(r"`(/v1/[a-z]+)`", registry.split("(`201`", 1)[0])
    assert len(collections) >= 7, collections
    for c in collections:
        routes |= {("POST", c), ("GET", c), ("GET", f"{c}/{{id}}"), ("PATCH", f"{c}/{{id}}"),
                   ("POST", f"{c}/{{id}}/deactivate"), ("POST", f"{c}/{{id}}/reactivate")}
    return routes


def offered_routes() -> set[tuple[str, str]]:
    return {(m.upper(), p) for spec in (*specs().values(), parked_spec())
            for p, operations in spec["paths"].items() for m in operations if m in METHODS}


def test_every_route_the_doc_names_is_in_the_openapi_with_its_method():
    named = documented_routes()
    assert len(named) > 40
    missing = sorted(f"{m} {p}" for m, p in named - offered_routes())
    assert missing == [], "routes docs/interface.md names that no service has"


def test_every_route_in_the_openapi_is_named_in_the_doc():
    unnamed = sorted(f"{m} {p}" for m, p in offered_routes() - documented_routes())
    assert unnamed == [], "routes the services offer that docs/interface.md does not name"


def test_whoami_and_health_are_on_every_service():
    for spec in specs().values():
        assert {"/v1/whoami", "/health"} <= set(spec["paths"])
