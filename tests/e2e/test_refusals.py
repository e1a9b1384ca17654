"""Bad input is refused, never a 500 (services as processes, both back-ends): bodies that are
not JSON a service can take (nested 10,000 deep, invalid UTF-8, NaN, numbers too large, empty)
on every endpoint that reads a body, and queries out of range (an offset past any database's
integer, NUL in a search, dates no programme can mean). Each answer is a 4xx in the one error
shape, naming the field; each request is sent on a connection of its own, so one answer can
never hide behind another's dropped connection. Then the same bodies on the bus: dead-lettered
with the reason, and a good offer behind them still counted."""

from __future__ import annotations

import asyncio
import json
import uuid

import httpx
import nats
import pytest

from tests.factories import activity, envelope, raw
from tests.harness import dead_letters_from_now

pytestmark = pytest.mark.asyncio(loop_scope="session")

BODIES = {
    "nested 10,000 deep": b'{"a":' * 10_000 + b"1" + b"}" * 10_000,
    "a list nested 10,000 deep": b"[" * 10_000 + b"]" * 10_000,
    "invalid UTF-8": b'{"name": "\xff\xfe"}',
    "NaN": b'{"name": NaN}',
    "a number too large for a float": b'{"name": 1e999999}',
    "an integer of 5,000 digits": b'{"name": ' + b"9" * 5_000 + b"}",
    "empty": b"",
}
WRITES = {
    "registry": ["/v1/organizations", "/v1/bases", "/v1/volunteers", "/v1/pairings"],
    "events": ["/v1/events", "/v1/activities", "/v1/events/bulk"],
    "reporting": ["/v1/assessment/rules"],
}
QUERIES = {  # query -> the parameter the refusal must name
    "offset=9223372036854775808": "offset",
    "offset=99999999999999999999999": "offset",
    "offset=-1": "offset",
    "limit=0": "limit",
}
LISTS = {
    "registry": ["/v1/organizations", "/v1/bases", "/v1/volunteers", "/v1/teams",
                 "/v1/pairings", "/v1/regions"],
    "events": ["/v1/parked"],
    "reporting": ["/v1/parked", "/v1/notifications?organization_id=x",
                  "/v1/reports/needs/items", "/v1/reports/volunteers"],
}
REPORT_QUERIES = {
    "/v1/reports/summary?from=9999-12-31": "from",
    "/v1/reports/summary?to=0001-01-01": "to",
    "/v1/reports/assessment?year=99999": "year",
    "/v1/reports/summary?organization_id=" + "x" * 65: "organization_id",
}


async def ask(system, service: str, method: str, path: str,
              body: bytes | None = None) -> httpx.Response:
    async with system.client(timeout=60) as http:
        headers = {"content-type": "application/json"} if body is not None else {}
        return await http.request(method, f"{system.url(service)}{path}", content=body,
                                  headers=headers)


def judged(r: httpx.Response, field: str | None = None) -> str | None:
    """What is wrong with the answer, or None if it is a refusal naming the field."""
    if not 400 <= r.status_code < 500:
        return f"{r.status_code}: {r.text[:200]}"
    try:
        errors = r.json()["errors"]
    except (ValueError, KeyError, TypeError):
        return f"{r.status_code} without the error shape: {r.text[:200]}"
    if not errors or not all(e.get("message") for e in errors):
        return f"{r.status_code} with no reason: {errors}"
    named = [e["field"] for e in errors]
    if field is not None and not any(f == field or f.startswith(f"{field}.") for f in named):
        return f"{r.status_code} names {named}, not {field!r}"
    return None


async def test_bodies_no_service_can_take_are_refused_naming_the_body(system):
    wrong = {}
    for service, paths in WRITES.items():
        for path in paths:
            for label, body in BODIES.items():
                r = await ask(system, service, "POST", path, body)
                # A bulk upload answers 200 with each line's error (CONTRACT.md).
                if path.endswith("/bulk") and r.status_code == 200:
                    ok = r.json()["accepted"] == 0 and (r.json()["errors"] or label == "empty")
                    problem = None if ok else f"bulk took it: {r.text[:200]}"
                else:
                    problem = judged(r)
                if problem:
                    wrong[f"{service} POST {path} with {label}"] = problem
    assert not wrong, wrong


async def test_queries_out_of_range_are_refused_naming_the_parameter(system):
    wrong = {}
    for service, paths in LISTS.items():
        for path in paths:
            for query, field in QUERIES.items():
                joined = f"{path}{'&' if '?' in path else '?'}{query}"
                if problem := judged(await ask(system, service, "GET", joined), field):
                    wrong[f"{service} GET {joined}"] = problem
    for path, field in REPORT_QUERIES.items():
        if problem := judged(await ask(system, "reporting", "GET", path), field):
            wrong[f"reporting GET {path}"] = problem
    assert not wrong, wrong


async def test_nul_in_a_query_or_an_id_is_refused_naming_it(system):
    """NUL is never meaningful, SQLite's LIKE stops reading a pattern at it (a search for it
    would match everything) and PostgreSQL cannot take it: a 4xx naming the parameter."""
    wrong = {}
    for service, path, field in (
            ("registry", "/v1/organizations?q=%00", "q"),
            ("registry", "/v1/bases?q=a%00b", "q"),
            ("registry", "/v1/organizations?code=%00", "code"),
            ("registry", "/v1/organizations/%00", "id"),
            ("events", "/v1/events/%00", "event_id"),
            ("events", "/v1/photos/%00", "ref"),
            ("reporting", "/v1/reports/pairings/%00", "id"),
            ("reporting", "/v1/reports/summary?region=%00", "region")):
        if problem := judged(await ask(system, service, "GET", path), field):
            wrong[f"{service} {path}"] = problem
    # Other odd text is an ordinary search that finds nothing.
    r = await ask(system, "registry", "GET", "/v1/volunteers?q=%E2%80%AE")
    if r.status_code != 200 or r.json()["items"]:
        wrong["/v1/volunteers?q=U+202E"] = f"{r.status_code}: {r.text[:200]}"
    assert not wrong, wrong


async def test_the_same_bodies_on_the_bus_are_dead_lettered_and_a_good_one_counted(system):
    org, base = await system.org_and_base()
    good = envelope(activity(org["id"], base["id"], served=7))
    nc = await nats.connect(system.nats_url)
    js = nc.jetstream()
    dlq = await dead_letters_from_now(js, system.names)
    try:
        for body in BODIES.values():
            await system.publish_raw("activity.logged", body, {"Nats-Msg-Id": str(uuid.uuid4())})
        seq = await system.publish_raw("activity.logged", raw(good),
                                       {"Nats-Msg-Id": good["event_id"]})
        reasons = {}
        while len(reasons) < len(BODIES):
            msg = await dlq.next_msg(timeout=60)
            reasons[msg.data] = json.loads(msg.headers["Tongxin-Error"])  # unchanged bytes
    finally:
        await nc.close()
    for label, body in BODIES.items():
        assert [e["field"] for e in reasons[body]] == ["body"], (label, reasons[body])
    assert seq  # the good offer behind them is accepted and counted, once
    async with system.client() as http:
        for _ in range(300):
            got = await http.get(f"{system.url('events')}/v1/events/{good['event_id']}")
            # Stored first, then published: its seq is there once the relay has sent it.
            if got.status_code == 200 and got.json()["seq"] is not None:
                break
            await asyncio.sleep(0.2)
    assert got.status_code == 200 and got.json()["seq"] is not None, got.text
    summary = await system.summary(organization_id=org["id"], min_seq=got.json()["seq"])
    assert summary["totals"]["served"] == 7
