"""Figures an organiser can trust (services as processes, both back-ends): nothing placed in
the future by accident, no hours that cannot have been given, and times read back as sent.

- an activity ending in 2099, a visit dated ahead, attendance or a report said to occur ahead
  of the clock (past `TONGXIN_FUTURE_GRACE_HOURS`, default 24) are refused with a 422 naming
  the field (in Chinese when asked), over HTTP and on the bus (dead-lettered with the reason);
  nothing of them reaches the reports, and the dashboard's "today" is the clock's;
- an activity's `volunteer_hours` beyond its length × turn-outs is refused like attendance
  beyond its length;
- `GET /v1/events/{id}` gives back the `occurred_at` sent (+08:00) as the same instant in UTC.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import nats
import pytest
from sqlalchemy import select

from services.events.store import accepted_events
from shared.db import make_engine
from tests.factories import activity, envelope, raw
from tests.harness import System, dead_letters_from_now

pytestmark = pytest.mark.asyncio(loop_scope="session")

SHANGHAI = ZoneInfo("Asia/Shanghai")


def refusal(r, status: int = 422) -> dict[str, str]:
    assert r.status_code == status, r.text
    return {e["field"]: e["message"] for e in r.json()["errors"]}


async def stored(system: System, event_id: str) -> dict:
    """The accepted event as `GET /v1/events/{id}` gives it, once it is there."""
    async with system.client() as http:
        for _ in range(300):
            r = await http.get(f"{system.url('events')}/v1/events/{event_id}")
            if r.status_code == 200:
                return r.json()
            await asyncio.sleep(0.2)
    raise AssertionError(f"event {event_id} was never accepted: {r.text}")


async def test_an_activity_dated_2099_is_refused_naming_ended_at_and_moves_no_date(system):
    org, base = await system.org_and_base()
    ahead = activity(org["id"], base["id"], served=99, started_at="2099-10-20T09:00:00+08:00",
                     ended_at="2099-10-20T12:00:00+08:00")
    errors = refusal(await system.post_activity(ahead, **{"Accept-Language": "zh-CN"}))
    assert list(errors) == ["data.ended_at"], errors
    assert errors["data.ended_at"].startswith("晚于现在超过 24 小时"), errors
    # Within the grace (ending an hour from now): accepted.
    soon = datetime.now(UTC) + timedelta(hours=1)
    fine = activity(org["id"], base["id"], served=5, started_at=(
        soon - timedelta(hours=3)).isoformat(), ended_at=soon.isoformat())
    r = await system.post_activity(fine)
    assert r.status_code == 202, r.text
    summary = await system.summary(organization_id=org["id"], min_seq=r.json()["seq"])
    assert (summary["totals"]["activities"], summary["totals"]["served"]) == (1, 5), summary

    # The dashboard's "today" is the clock's, and no year ahead of it is offered.
    async with system.client() as http:
        r = await http.get(f"{system.url('reporting')}/v1/dashboard/choices")
    assert r.status_code == 200, r.text
    choices = r.json()
    today = datetime.now(SHANGHAI).date()
    assert choices["today"] in {today.isoformat(), (today + timedelta(days=1)).isoformat()}
    assert all(year <= today.year + 1 for year in choices["years"]), choices["years"]
    assert choices["last_day"] is None or choices["last_day"] <= choices["today"], choices


async def test_attendance_visits_and_reports_dated_ahead_are_refused_naming_the_field(system):
    org, base = await system.org_and_base()
    volunteer = await system.register("volunteers", name=f"张志愿-{uuid.uuid4().hex[:6]}",
                                      organization_id=org["id"])
    campaign = await system.register("campaigns", code=f"qm_{uuid.uuid4().hex[:6]}",
                                     name="敲门行动", starts_on="2013-01-01",
                                     ends_on="2100-12-31", base_ids=[base["id"]])
    logged = activity(org["id"], base["id"])
    assert (await system.post_activity(logged)).status_code == 202
    ahead = (datetime.now(UTC) + timedelta(days=3)).isoformat()
    attendance = {"activity_id": logged["activity_id"], "volunteer_id": volunteer["id"],
                  "hours": 2, "method": "organiser"}
    report = {"activity_id": logged["activity_id"], "organization_id": org["id"],
              "summary": "义诊小结"}
    for event_type, data in [("attendance.recorded", attendance),
                             ("report.submitted", report)]:
        errors = refusal(await system.post_event(envelope(data, event_type,
                                                          occurred_at=ahead)))
        assert list(errors) == ["occurred_at"], (event_type, errors)
    visit = {"campaign_id": campaign["id"], "base_id": base["id"], "households_visited": 3}
    later = (datetime.now(SHANGHAI).date() + timedelta(days=2)).isoformat()
    errors = refusal(await system.post_event(envelope(
        {**visit, "visited_on": later}, "campaign.visit_recorded")))
    assert list(errors) == ["data.visited_on"], errors
    # Dated today, each is accepted.
    today = datetime.now(SHANGHAI).date().isoformat()
    for event_type, data in [("attendance.recorded", attendance), ("report.submitted", report),
                             ("campaign.visit_recorded", {**visit, "visited_on": today})]:
        r = await system.post_event(envelope(data, event_type))
        assert r.status_code == 202, (event_type, r.text)


async def test_volunteer_hours_beyond_length_times_turn_outs_are_refused_like_attendance(
        system):
    org, base = await system.org_and_base()
    volunteer = await system.register("volunteers", name=f"李志愿-{uuid.uuid4().hex[:6]}",
                                      organization_id=org["id"])
    # 1 turn-out, 100 h on a 3 h activity.
    errors = refusal(await system.post_activity(activity(
        org["id"], base["id"], volunteers=1, volunteer_hours=100),
        **{"Accept-Language": "zh-CN"}))
    assert errors == {"data.volunteer_hours": "100 小时超过了活动时长 3 小时 × 1 人次（3 小时）"}
    ok = activity(org["id"], base["id"], volunteers=1, volunteer_hours=3)
    assert (await system.post_activity(ok)).status_code == 202
    corrected = {**ok, "volunteer_hours": 50, "reason": "时长录错"}
    errors = refusal(await system.post_event(envelope(corrected, "activity.corrected")))
    assert list(errors) == ["data.volunteer_hours"], errors
    # Attendance of 50 h on it is refused by the same rule (one person).
    errors = refusal(await system.post_event(envelope({
        "activity_id": ok["activity_id"], "volunteer_id": volunteer["id"], "hours": 50,
        "method": "organiser"}, "attendance.recorded")), 409)
    assert list(errors) == ["data.hours"], errors


async def test_offers_dated_ahead_on_the_bus_are_dead_lettered_naming_the_field(system):
    org, base = await system.org_and_base()
    ahead = envelope(activity(org["id"], base["id"], started_at="2099-10-20T09:00:00+08:00",
                              ended_at="2099-10-20T12:00:00+08:00"))
    too_long = envelope(activity(org["id"], base["id"], volunteers=1, volunteer_hours=100))
    nc = await nats.connect(system.nats_url)
    try:
        dlq = await dead_letters_from_now(nc.jetstream(), system.names)
        for env in (ahead, too_long):
            await system.publish_raw("activity.logged", raw(env),
                                     {"Nats-Msg-Id": env["event_id"]})
        reasons: dict[str, list[str]] = {}
        while len(reasons) < 2:
            msg = await dlq.next_msg(timeout=60)
            try:
                event_id = json.loads(msg.data)["event_id"]
            except (ValueError, KeyError, TypeError):
                continue  # another test's
            if event_id in (ahead["event_id"], too_long["event_id"]):
                reasons[event_id] = [e["field"] for e in json.loads(
                    msg.headers["Tongxin-Error"])]
    finally:
        await nc.close()
    assert reasons == {ahead["event_id"]: ["data.ended_at"],
                       too_long["event_id"]: ["data.volunteer_hours"]}


async def test_occurred_at_reads_back_as_the_instant_sent(system):
    """SQLite keeps a time's wall clock without its offset: an event sent at 09:30 +08:00
    once read back as 09:30 UTC, eight hours off."""
    org, base = await system.org_and_base()
    sent = datetime.now(SHANGHAI).replace(microsecond=0) - timedelta(hours=1)
    env = envelope(activity(org["id"], base["id"]), occurred_at=sent.isoformat())
    assert sent.utcoffset() == timedelta(hours=8) and "+08:00" in env["occurred_at"]
    r = await system.post_event(env)
    assert r.status_code == 202, r.text
    got = await stored(system, env["event_id"])
    assert datetime.fromisoformat(got["occurred_at"]) == sent, got["occurred_at"]
    assert datetime.fromisoformat(got["occurred_at"]).utcoffset() == timedelta(0)
    received = datetime.fromisoformat(got["received_at"])
    assert abs(received - datetime.now(UTC)) < timedelta(minutes=10), got["received_at"]
    assert datetime.fromisoformat(got["envelope"]["occurred_at"]) == sent
    # The column holds the same instant (in UTC: SQLite drops the offset).
    events = system.env("events")
    engine = make_engine(events["TONGXIN_EVENTS_DATABASE_URL"],
                         events.get("TONGXIN_DB_SCHEMA") or None)
    try:
        async with engine.connect() as conn:
            column = (await conn.execute(select(accepted_events.c.occurred_at).where(
                accepted_events.c.event_id == env["event_id"]))).scalar_one()
    finally:
        await engine.dispose()
    if column.tzinfo is None:
        column = column.replace(tzinfo=UTC)
    assert column == sent, column
