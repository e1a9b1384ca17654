"""Sign-in hours through the running services (each back-end, real NATS): an organiser opens a
sign-in page (its QR code drawn by the server), a volunteer signs in and out with no account,
naming only their registry code, and

- the hours are the signed span, published as `attendance.recorded` with `method=sign_in` and
  both times, and counted in the volunteers report as signed, confirmed hours;
- a sign-in never signed out stays open: flagged in the organiser's list, no hours, not
  confirmed (and cannot be confirmed), counted apart in the report;
- a sign-in outside the activity's time, or far from a base that has a place, is refused
  naming the field, in English and in Chinese;
- the same sign-in delivered again (bus and HTTP) counts once;
- the volunteers report keeps signed, self-reported and organiser-entered hours apart."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from services.events.forms import signing
from tests.factories import activity, envelope, raw
from tests.harness import System

pytestmark = pytest.mark.asyncio(loop_scope="session")


def iso(moment: datetime) -> str:
    return moment.isoformat()


async def a_unit_with_volunteers(system: System, *, base: dict | None = None,
                                 count: int = 2) -> dict:
    suffix = uuid.uuid4().hex[:6]
    org = await system.register("organizations", name=f"上虞区委统战部-签到-{suffix}",
                                kind="party_organization")
    base = base or await system.register("bases", name=f"东关街道-签到-{suffix}",
                                         kind="community")
    people = [await system.register("volunteers", name=f"志愿者{i}-{suffix}",
                                    organization_id=org["id"], code=f"SY-{suffix}-{i}",
                                    phone="13800138000")
              for i in range(count)]
    # The events service learns them from the registry's stream: until it knows the last.
    async with system.client() as http:
        for _ in range(300):
            r = await http.get(f"{system.url('events')}/v1/forms/choices")
            assert r.status_code == 200, r.text
            if any(v["id"] == people[-1]["id"] for v in r.json()["volunteers"]):
                break
            await asyncio.sleep(0.1)
        else:
            raise AssertionError("the events service never learnt the volunteers")
    return {"org": org, "base": base, "people": people}


async def logged(system: System, org: dict, base: dict, start: datetime, end: datetime) -> dict:
    act = activity(org["id"], base["id"], started_at=iso(start), ended_at=iso(end),
                   volunteers=2, volunteer_hours=0)
    r = await system.post_activity(act)
    assert r.status_code == 202, r.text
    return act


async def opened(system: System, act: dict) -> dict:
    async with system.client() as http:
        r = await http.post(f"{system.url('events')}/v1/sign-in/pages",
                            json={"activity_id": act["activity_id"]})
        assert r.status_code == 200, r.text
        page = r.json()
        again = await http.post(f"{system.url('events')}/v1/sign-in/pages",
                                json={"activity_id": act["activity_id"]})
        assert again.json()["code"] == page["code"]  # one page per activity
    assert page["url"].endswith(f"/sign/{page['code']}")
    return page


async def step(system: System, code: str, which: str, volunteer: str,
               lang: str = "en", **more) -> httpx.Response:
    """A volunteer's phone: no key, no login."""
    async with httpx.AsyncClient(timeout=30, headers={"Accept-Language": lang}) as http:
        return await http.post(f"{system.url('events')}/sign/{code}/{which}",
                               json={"volunteer": volunteer, **more})


async def listed(system: System, code: str) -> dict:
    async with system.client() as http:
        r = await http.get(f"{system.url('events')}/v1/sign-in/pages/{code}")
    assert r.status_code == 200, r.text
    return r.json()


async def ledger(system: System, org: dict, seq: int) -> dict[str, dict]:
    async with system.client() as http:
        r = await http.get(f"{system.url('reporting')}/v1/reports/volunteers",
                           params={"organization_id": org["id"], "min_seq": seq})
    assert r.status_code == 200, r.text
    return {row["volunteer_id"]: row for row in r.json()["rows"]}


def errors(r: httpx.Response) -> dict[str, str]:
    return {e["field"]: e["message"] for e in r.json()["errors"]}


async def test_signed_hours_are_the_span_and_a_missing_sign_out_stays_open(system: System):
    unit = await a_unit_with_volunteers(system)
    now = datetime.now(UTC)
    act = await logged(system, unit["org"], unit["base"], now - timedelta(hours=1),
                       now + timedelta(hours=2))
    page = await opened(system, act)
    async with system.client() as http:
        qr = await http.get(f"{system.url('events')}/v1/sign-in/pages/{page['code']}/qr.svg")
    assert qr.status_code == 200 and qr.headers["content-type"].startswith("image/svg+xml")
    assert "<svg" in qr.text and "<path" in qr.text
    async with httpx.AsyncClient() as anyone:  # the organiser's list is not public
        r = await anyone.get(f"{system.url('events')}/v1/sign-in/pages/{page['code']}")
        assert r.status_code == 401
        about = await anyone.get(f"{system.url('events')}/sign/{page['code'].lower()}/about")
        assert about.status_code == 200 and about.json()["title"] == act["title"]

    stays, leaves = unit["people"]
    r = await step(system, page["code"], "in", leaves["code"])
    assert r.status_code == 200, r.text
    signed_in = r.json()
    assert signed_in["volunteer_id"] == leaves["id"] and signed_in["signed_out_at"] is None
    assert signed_in["hours"] is None
    r = await step(system, page["code"], "in", stays["id"])  # the registry id does too
    assert r.status_code == 200, r.text
    open_seq = r.json()["seq"]
    # A second tap answers what stands, and records nothing new.
    again = await step(system, page["code"], "in", leaves["code"])
    assert again.status_code == 200 and again.json()["signed_in_at"] == signed_in["signed_in_at"]
    assert again.json()["event_id"] is None

    listing = await listed(system, page["code"])
    assert listing["open_count"] == 2
    assert {s["volunteer_id"]: (s["open"], s["hours"], s["status"])
            for s in listing["signed"]} == {leaves["id"]: (True, None, "open"),
                                            stays["id"]: (True, None, "open")}
    rows = await ledger(system, unit["org"], max(open_seq, signed_in["seq"]))
    for who in (leaves, stays):
        assert (rows[who["id"]]["hours_confirmed"], rows[who["id"]]["hours_unconfirmed"],
                rows[who["id"]]["open_sign_ins"]) == (0, 0, 1)

    r = await step(system, page["code"], "out", leaves["code"])
    assert r.status_code == 200, r.text
    out = r.json()
    start = datetime.fromisoformat(out["signed_in_at"])
    end = datetime.fromisoformat(out["signed_out_at"])
    span = (end - start).total_seconds() / 3600
    assert start == datetime.fromisoformat(signed_in["signed_in_at"]) and end > start
    assert out["hours"] == pytest.approx(span, abs=1e-4)
    # What was published: attendance.recorded, method sign_in, both times, only the id.
    async with system.client() as http:
        stored = (await http.get(f"{system.url('events')}/v1/events/{out['event_id']}")).json()
    assert stored["type"] == "attendance.recorded"
    data = stored["envelope"]["data"]
    assert data["method"] == "sign_in" and data["volunteer_id"] == leaves["id"]
    assert datetime.fromisoformat(data["signed_in_at"]) == start
    assert datetime.fromisoformat(data["signed_out_at"]) == end
    assert data["hours"] == pytest.approx(span, abs=1e-4)
    assert "13800138000" not in str(stored) and leaves["name"] not in str(stored)

    # Signing out again answers the same hours; signing in again is refused, naming who.
    again = await step(system, page["code"], "out", leaves["code"])
    assert again.status_code == 200 and again.json()["hours"] == out["hours"]
    refused = await step(system, page["code"], "in", leaves["code"], lang="zh-CN")
    assert refused.status_code == 409 and "已于" in errors(refused)["volunteer"]

    listing = await listed(system, page["code"])
    assert listing["open_count"] == 1
    mine = {s["volunteer_id"]: s for s in listing["signed"]}
    assert (mine[leaves["id"]]["open"], mine[leaves["id"]]["status"]) == (False, "confirmed")
    assert mine[leaves["id"]]["hours"] == pytest.approx(span, abs=1e-4)
    assert mine[stays["id"]]["open"] is True and mine[stays["id"]]["hours"] is None

    rows = await ledger(system, unit["org"], out["seq"])
    assert rows[leaves["id"]]["hours_confirmed"] == pytest.approx(span, abs=0.01)
    assert rows[leaves["id"]]["hours_by_method"]["sign_in"] == pytest.approx(span, abs=0.01)
    assert rows[leaves["id"]]["open_sign_ins"] == 0
    # The one who never signed out: open, no hours, never the activity's planned three.
    assert (rows[stays["id"]]["hours_confirmed"], rows[stays["id"]]["hours_unconfirmed"],
            rows[stays["id"]]["hours_by_method"]["sign_in"],
            rows[stays["id"]]["open_sign_ins"]) == (0, 0, 0, 1)
    # ... and an open sign-in cannot be confirmed as it stands.
    async with system.client() as http:
        r = await http.post(f"{system.url('events')}/v1/events", json=envelope(
            {"activity_id": act["activity_id"], "volunteer_id": stays["id"],
             "organization_id": unit["org"]["id"]}, "attendance.confirmed"))
    assert r.status_code == 409 and "has not signed out" in errors(r)["data.volunteer_id"]

    # Signing out before signing in is refused, naming the volunteer; so is a stranger.
    other = await a_unit_with_volunteers(system, count=1)
    r = await step(system, page["code"], "out", other["people"][0]["code"])
    assert r.status_code == 409 and "volunteer" in errors(r)
    r = await step(system, page["code"], "in", "nobody-at-all", lang="zh-CN")
    assert r.status_code == 422 and "登记库中没有" in errors(r)["volunteer"]
    r = await step(system, "ZZZZZZ", "in", leaves["code"])
    assert r.status_code == 422 and "code" in errors(r)


async def test_a_sign_in_outside_the_time_or_far_from_the_base_is_refused(system: System):
    base = await system.register("bases", name=f"刘春村-签到-{uuid.uuid4().hex[:6]}",
                                 kind="village", latitude=36.81, longitude=118.05)
    unit = await a_unit_with_volunteers(system, base=base, count=1)
    who = unit["people"][0]
    now = datetime.now(UTC)
    past = await logged(system, unit["org"], base, now - timedelta(hours=30),
                        now - timedelta(hours=27))
    page = await opened(system, past)
    r = await step(system, page["code"], "in", who["code"])
    assert r.status_code == 422, r.text
    assert "outside the activity's time" in errors(r)["data.signed_in_at"]
    r = await step(system, page["code"], "in", who["code"], lang="zh-CN")
    assert "不在活动时间内" in errors(r)["data.signed_in_at"]
    # Through the API too: a sign-out after the activity ended names signed_out_at.
    r = await system.post_event(envelope({
        "activity_id": past["activity_id"], "volunteer_id": who["id"], "method": "sign_in",
        "signed_in_at": past["started_at"],
        "signed_out_at": iso(now - timedelta(hours=20))}, "attendance.recorded"))
    assert r.status_code == 422 and "data.signed_out_at" in errors(r), r.text
    r = await system.post_event(envelope({
        "activity_id": past["activity_id"], "volunteer_id": who["id"], "method": "sign_in",
        "signed_in_at": past["started_at"], "hours": 1}, "attendance.recorded"))
    assert r.status_code == 422 and "data.hours" in errors(r), r.text

    running = await logged(system, unit["org"], base, now - timedelta(hours=1),
                           now + timedelta(hours=1))
    page = await opened(system, running)
    far = await step(system, page["code"], "in", who["code"], latitude=36.90, longitude=118.05)
    assert far.status_code == 422 and " m from the base" in errors(far)["location"]
    far = await step(system, page["code"], "in", who["code"], lang="zh-CN", latitude=36.90,
                     longitude=118.05)
    assert "米" in errors(far)["location"]
    near = await step(system, page["code"], "in", who["code"], latitude=36.8105,
                      longitude=118.0502)
    assert near.status_code == 200, near.text
    assert (await listed(system, page["code"]))["open_count"] == 1


async def test_a_sign_in_delivered_again_counts_once_and_methods_stay_apart(system: System):
    unit = await a_unit_with_volunteers(system, count=1)
    who = unit["people"][0]
    org, base = unit["org"], unit["base"]
    day = datetime(2013, 10, 19, 1, 0, tzinfo=UTC)  # 09:00 in Shanghai
    signed = await logged(system, org, base, day, day + timedelta(hours=3))
    self_reported = await logged(system, org, base, day + timedelta(days=7),
                                 day + timedelta(days=7, hours=3))
    by_organiser = await logged(system, org, base, day + timedelta(days=14),
                                day + timedelta(days=14, hours=3))
    # An outside volunteer app's sign-in, with its times: offered on the bus twice and over
    # HTTP once, one event_id.
    env = envelope({"activity_id": signed["activity_id"], "volunteer_id": who["id"],
                    "method": "sign_in", "signed_in_at": iso(day + timedelta(minutes=15)),
                    "signed_out_at": iso(day + timedelta(hours=2, minutes=45))},
                    "attendance.recorded", event_id=signing.event_id(
                        signed["activity_id"], who["id"], "out"), source="volunteer-app")
    since = datetime.now(UTC).timestamp()
    first = await system.publish_raw("attendance.recorded", raw(env))
    second = await system.publish_raw("attendance.recorded", raw(env))
    await system.offer_taken(second)
    assert second > first
    r = await system.post_event(env)
    assert r.status_code == 202 and r.json()["duplicate"] is True, r.text
    for data in ({"activity_id": self_reported["activity_id"], "volunteer_id": who["id"],
                  "hours": 1.5, "method": "self"},
                 {"activity_id": by_organiser["activity_id"], "volunteer_id": who["id"],
                  "hours": 2, "method": "organiser"}):
        r = await system.post_event(envelope(data, "attendance.recorded"))
        assert r.status_code == 202, r.text
    await system.settled("events", since=since)
    seq = await system.events_last_seq()
    row = (await ledger(system, org, seq))[who["id"]]
    assert row["hours_by_method"] == {"self": 1.5, "organiser": 2.0, "sign_in": 2.5,
                                      "import": 0.0}
    assert (row["hours_confirmed"], row["hours_unconfirmed"], row["activities"],
            row["open_sign_ins"]) == (4.5, 1.5, 3, 0)
