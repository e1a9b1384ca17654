"""The whole system as users meet it: three service processes, a real NATS server, a real
database (each test runs on SQLite and, where configured, PostgreSQL)."""

from __future__ import annotations

import asyncio
import json
import re
import uuid

import nats
import pytest

from shared.event_types import EVENT_TYPES
from tests.factories import activity, envelope, raw
from tests.harness import dead_letters_from_now

pytestmark = pytest.mark.asyncio(loop_scope="session")


async def test_register_log_over_http_and_bus_then_read_summary(system):
    org, base = await system.org_and_base()
    other_base = await system.register("bases", name="淄川区太河镇西余粮村", kind="village")

    first = await system.post_activity(activity(org["id"], base["id"], served=650, volunteers=60,
                                                volunteer_hours=180))
    assert first.status_code == 202, first.text
    second = await system.post_activity(activity(
        org["id"], other_base["id"], served=100, volunteers=18, volunteer_hours=135,
        started_at="2013-11-02T08:30:00+08:00", ended_at="2013-11-02T16:00:00+08:00",
        donations=[]))
    assert second.status_code == 202, second.text
    # "Another system": a raw nats-py publish of an envelope onto the ingest stream.
    env = envelope(activity(org["id"], base["id"], served=269, trainees=269, volunteers=12,
                            volunteer_hours=36, service_types=["training"], donations=[]))
    await system.publish_raw("activity.logged", raw(env), {"Nats-Msg-Id": env["event_id"]})

    by_org = await _summary_with(system, 3, group_by="organization", organization_id=org["id"])
    assert by_org["rows"] == [{
        "key": org["id"], "label": org["name"], "code": "", "activities": 3,
        "served": 650 + 100 + 269,
        "volunteers": 60 + 18 + 12, "volunteer_hours": 180 + 135 + 36, "trainees": 269,
        "donation_value_cny": 4000.0, "unique_volunteers": 0, "outputs": {}}]
    assert by_org["totals"]["served"] == 1019
    assert by_org["as_of"] >= first.json()["seq"]

    # min_seq: the labels too (reports then wait for the registry changes already published).
    by_base = await system.summary(group_by="base", organization_id=org["id"],
                                   min_seq=second.json()["seq"])
    assert {r["label"]: r["served"] for r in by_base["rows"]} == {
        base["name"]: 650 + 269, "淄川区太河镇西余粮村": 100}

    by_month = await system.summary(group_by="month", organization_id=org["id"])
    assert {r["key"]: r["activities"] for r in by_month["rows"]} == {"2013-10": 2, "2013-11": 1}

    october = await system.summary(group_by="organization", organization_id=org["id"],
                                   **{"from": "2013-10-01", "to": "2013-10-31"})
    assert october["totals"]["activities"] == 2


async def _summary_with(system, activities: int, timeout: float = 20, **params) -> dict:
    """The summary once it counts `activities` (bus offers are accepted asynchronously)."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        result = await system.summary(**params)
        if result["totals"]["activities"] >= activities:
            return result
        assert asyncio.get_running_loop().time() < deadline, result
        await asyncio.sleep(0.1)


async def test_same_event_offered_many_ways_is_counted_once(system):
    org, base = await system.org_and_base()
    data = activity(org["id"], base["id"], served=77)

    # HTTP twice with one Idempotency-Key.
    a = await system.post_activity(data, **{"Idempotency-Key": "zibo-2013-0001"})
    b = await system.post_activity(data, **{"Idempotency-Key": "zibo-2013-0001"})
    assert (a.status_code, b.status_code) == (202, 202)
    assert a.json()["duplicate"] is False and b.json()["duplicate"] is True
    assert a.json()["event_id"] == b.json()["event_id"] and a.json()["seq"] == b.json()["seq"]

    # One envelope over HTTP, then on the bus with Nats-Msg-Id, then without it
    # (so JetStream's duplicate window cannot be what saves us), twice each.
    env = envelope(activity(org["id"], base["id"], served=5))
    first = await system.post_event(env)
    again = await system.post_event(env)
    assert first.json()["duplicate"] is False and again.json()["duplicate"] is True
    for headers in ({"Nats-Msg-Id": env["event_id"]}, None, None):
        await system.publish_raw("activity.logged", raw(env), headers)

    # A bus-first event, resent without Nats-Msg-Id, then over HTTP.
    env2 = envelope(activity(org["id"], base["id"], served=3))
    await system.publish_raw("activity.logged", raw(env2), None)
    await system.publish_raw("activity.logged", raw(env2), None)
    await _summary_with(system, 3, group_by="organization", organization_id=org["id"])
    late = await system.post_event(env2)
    assert late.status_code == 202 and late.json()["duplicate"] is True

    # And across a restart of reporting: it resumes from its stored position.
    system.restart("reporting")
    result = await system.summary(group_by="organization", organization_id=org["id"],
                                  min_seq=late.json()["seq"])
    assert result["totals"]["activities"] == 3
    assert result["totals"]["served"] == 77 + 5 + 3
    # and upstream of reporting: each event was published once, however often it was offered
    ids = {a.json()["event_id"], env["event_id"], env2["event_id"]}
    assert await system.events_published(ids) == dict.fromkeys(ids, 1)


@pytest.mark.parametrize("change, field", [
    ({"served": None}, "data.served"),              # missing (removed below)
    ({"volunteers": "twelve"}, "data.volunteers"),  # wrong type
    ({"served": -5}, "data.served"),                # negative count
    ({"base_id": "no-such-base"}, "data.base_id"),  # unknown base
    ({"ended_at": "2013-10-20T08:00:00+08:00"}, "data.ended_at"),
    ({"service_types": []}, "data.service_types"),
    ({"donations": [{"item": "图书", "quantity": 0, "unit": "册", "value_cny": 1}]},
     "data.donations[0].quantity"),
])
async def test_bad_input_over_http_is_422_naming_the_field(system, change, field):
    org, base = await system.org_and_base()
    data = {**activity(org["id"], base["id"]), **change}
    if change == {"served": None}:
        del data["served"]
    r = await system.post_activity(data)
    assert r.status_code == 422, r.text
    assert field in [e["field"] for e in r.json()["errors"]], r.json()
    assert all(e["message"] for e in r.json()["errors"])
    # a valid activity after it is counted; the refused one never is
    barrier = await system.post_activity(activity(org["id"], base["id"], served=1))
    counted = await system.summary(organization_id=org["id"], min_seq=barrier.json()["seq"])
    assert counted["totals"]["activities"] == 1


async def test_bad_envelopes_over_http(system):
    r = await system.post_event(b"\xff not json")
    assert r.status_code == 422
    r = await system.post_event({"type": "activity.logged", "data": {}})
    fields = {e["field"] for e in r.json()["errors"]}
    assert {"event_id", "occurred_at", "source"} <= fields
    r = await system.post_event(envelope({}, event_type="activity.danced"))
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "type"


async def test_bad_offers_on_the_bus_go_to_the_dlq_with_reasons(system):
    org, base = await system.org_and_base()
    missing = activity(org["id"], base["id"])
    del missing["title"]
    offers = {
        "non-json": (b"\x00\x01 this is not JSON", "body"),
        "missing": (raw(envelope(missing)), "data.title"),
        "wrong-type": (raw(envelope(activity(org["id"], base["id"], served="many"))),
                       "data.served"),
        "negative": (raw(envelope(activity(org["id"], base["id"], volunteer_hours=-1))),
                     "data.volunteer_hours"),
        "unknown-base": (raw(envelope(activity(org["id"], "no-such-base"))), "data.base_id"),
    }
    good = envelope(activity(org["id"], base["id"], served=9))

    nc = await nats.connect(system.nats_url)
    js = nc.jetstream()
    dlq = await dead_letters_from_now(js, system.names)
    try:
        for key, (payload, _) in offers.items():
            await system.publish_raw("activity.logged", payload,
                                     {"Nats-Msg-Id": f"{key}-{uuid.uuid4()}"})
        await system.publish_raw("activity.logged", raw(good), {"Nats-Msg-Id": good["event_id"]})
        got = {}
        while len(got) < len(offers):
            msg = await dlq.next_msg(timeout=20)
            got[msg.data] = (msg.subject, json.loads(msg.headers["Tongxin-Error"]))
    finally:
        await nc.close()
    for payload, field in offers.values():
        subject, errors = got[payload]  # unchanged bytes
        assert subject == system.names.dlq("activity.logged")
        assert field in [e["field"] for e in errors], errors
    result = await _summary_with(system, 1, organization_id=org["id"])
    assert result["totals"] == {**result["totals"], "activities": 1, "served": 9}
    async with system.client() as http:
        for s in ("events", "reporting"):
            assert (await http.get(f"{system.url(s)}/health")).json()["status"] == "ok"


async def test_reporting_down_while_200_events_are_accepted(system):
    org, base = await system.org_and_base()
    system.sup.stop("reporting")
    try:
        last = 0
        for _i in range(50):  # over HTTP
            r = await system.post_activity(activity(org["id"], base["id"], served=1))
            assert r.status_code == 202
            last = max(last, r.json()["seq"])
        for _i in range(150):  # and from another system on the bus
            env = envelope(activity(org["id"], base["id"], served=1))
            await system.publish_raw("activity.logged", raw(env),
                                     {"Nats-Msg-Id": env["event_id"]})
    finally:
        system.sup.start("reporting", system.env("reporting"))
        system.sup.wait_healthy(["reporting"])
    await _summary_with(system, 200, timeout=60, organization_id=org["id"])
    # Everything on the stream now counted: anything extra would show.
    result = await system.summary(organization_id=org["id"],
                                  min_seq=await system.events_last_seq())
    assert result["totals"]["activities"] == 200
    assert result["totals"]["served"] == 200


async def test_min_seq_lets_a_client_read_its_own_write(system):
    org, base = await system.org_and_base()
    r = await system.post_activity(activity(org["id"], base["id"], served=42))
    result = await system.summary(organization_id=org["id"], min_seq=r.json()["seq"])
    assert result["totals"]["served"] == 42
    assert result["as_of"] >= r.json()["seq"]


async def test_a_bad_query_names_the_parameter_and_the_page_shows_the_figures(system):
    async with system.client() as http:
        r = await http.get(f"{system.url('reporting')}/v1/reports/summary",
                           params={"group_by": "colour", "from": "yesterday"})
        assert r.status_code == 422
        assert {e["field"] for e in r.json()["errors"]} == {"group_by", "from"}
        org, base = await system.org_and_base()
        logged = await system.post_activity(activity(org["id"], base["id"], served=4321))
        shown = await system.summary(min_seq=logged.json()["seq"], group_by="organization")
        page = await http.get(f"{system.url('reporting')}/")
    # The page is the dashboard (tests/e2e/test_dashboard.py drives it in a browser): its
    # script reads the figures from the summary it links to.
    assert page.status_code == 200 and "text/html" in page.headers["content-type"]
    assert "/static/dashboard/dashboard.js" in page.text and "总览" in page.text
    assert {(r["label"], r["served"]) for r in shown["rows"]} >= {(org["name"], 4321)}


async def test_min_seq_beyond_the_stream_answers_503_with_retry_after(system):
    async with system.client() as http:
        r = await http.get(f"{system.url('reporting')}/v1/reports/summary",
                           params={"min_seq": 10**9})
    assert r.status_code == 503
    assert r.headers["retry-after"] == "1"


async def test_one_trace_from_http_request_to_the_reporting_database_write(system):
    org, base = await system.org_and_base()
    trace_id = uuid.uuid4().hex
    r = await system.post_activity(activity(org["id"], base["id"]),
                                   traceparent=f"00-{trace_id}-{'1' * 16}-01")
    await system.summary(min_seq=r.json()["seq"])
    spans = _spans_of(system, trace_id)
    seen = {(s["resource"]["attributes"]["service.name"], s["name"]) for s in spans}
    assert ("tongxin-events", "POST /v1/activities") in seen
    assert ("tongxin-events", f"{system.names.events('activity.logged')} publish") in seen
    assert ("tongxin-reporting", "reporting-activities apply") in seen
    apply = next(s for s in spans if s["name"] == "reporting-activities apply")
    writes = [s for s in spans if s["parent_id"] == apply["context"]["span_id"]
              and s["name"].startswith("INSERT")]
    assert writes, "the projection's database write is part of the trace"


async def test_one_trace_from_a_registry_change_through_the_outbox(system):
    trace_id = uuid.uuid4().hex
    async with system.client() as http:
        r = await http.post(f"{system.url('registry')}/v1/bases",
                            json={"name": "济南市历下区", "kind": "community"},
                            headers={"traceparent": f"00-{trace_id}-{'2' * 16}-01"})
    assert r.status_code == 201
    deadline = asyncio.get_running_loop().time() + 20
    while True:
        seen = {(s["resource"]["attributes"]["service.name"], s["name"])
                for s in _spans_of(system, trace_id)}
        if ("tongxin-events", "events-registry-replica apply") in seen:
            break
        assert asyncio.get_running_loop().time() < deadline, seen
        await asyncio.sleep(0.2)
    assert ("tongxin-registry", "POST /v1/bases") in seen
    assert ("tongxin-registry", f"{system.names.registry('base', 'registered')} publish") in seen


async def test_a_trace_from_another_system_on_the_bus_is_continued(system):
    org, base = await system.org_and_base()
    trace_id = uuid.uuid4().hex
    env = envelope(activity(org["id"], base["id"]))
    await system.publish_raw("activity.logged", raw(env), {
        "Nats-Msg-Id": env["event_id"], "traceparent": f"00-{trace_id}-{'3' * 16}-01"})
    deadline = asyncio.get_running_loop().time() + 20
    while True:
        names = {s["name"] for s in _spans_of(system, trace_id)}
        if "reporting-activities apply" in names:
            break
        assert asyncio.get_running_loop().time() < deadline, names
        await asyncio.sleep(0.2)
    assert f"{system.names.ingest()} process" in names


def _spans_of(system, trace_id: str) -> list[dict]:
    return [s for s in system.spans() if s["context"]["trace_id"] == f"0x{trace_id}"]


async def test_docs_and_health(system):
    async with system.client() as http:
        for s in ("registry", "events", "reporting"):
            health = (await http.get(f"{system.url(s)}/health")).json()
            assert health["status"] == "ok"
            assert (await http.get(f"{system.url(s)}/docs")).status_code == 200
            spec = (await http.get(f"{system.url(s)}/openapi.json")).json()
            refs = set(re.findall(r'"\$ref": "#/components/schemas/([^"]+)"', json.dumps(spec)))
            assert refs <= set(spec["components"]["schemas"]), "every schema $ref resolves"
        spec = (await http.get(f"{system.url('events')}/asyncapi.json")).json()
        # Made from the event type table: every type's accepted subject, and an offer subject
        # for each type outside systems may send, with its data schema.
        text = json.dumps(spec)
        for name, declared in EVENT_TYPES.items():
            assert system.names.events(name) in text
            assert (system.names.ingest(name) in text) == (declared.sender == "outside")
            assert declared.envelope.__name__ in text
        assert (await http.get(f"{system.url('events')}/asyncapi")).status_code == 200


async def test_an_activity_is_logged_once_even_under_another_event_id(system):
    org, base = await system.org_and_base()
    data = activity(org["id"], base["id"], served=100)
    first = await system.post_activity(data)
    again = await system.post_activity({**data, "served": 999})  # new event_id, same activity
    assert again.status_code == 409, again.text
    assert again.json()["errors"][0]["field"] == "data.activity_id"
    assert "activity.corrected" in again.json()["errors"][0]["message"]
    counted = await system.summary(organization_id=org["id"], min_seq=first.json()["seq"])
    assert counted["totals"]["served"] == 100


async def test_something_unreadable_on_the_events_stream_does_not_stop_reporting(system):
    nc = await nats.connect(system.nats_url)
    try:
        await nc.jetstream().publish(system.names.events("test.garbage"), b"not an envelope",
                                     timeout=5)
    finally:
        await nc.close()
    org, base = await system.org_and_base()
    r = await system.post_activity(activity(org["id"], base["id"], served=8))
    result = await system.summary(organization_id=org["id"], min_seq=r.json()["seq"])
    assert result["totals"]["served"] == 8
    async with system.client() as http:
        assert (await http.get(f"{system.url('reporting')}/health")).json()["status"] == "ok"
