"""Every v1 event type through the events service as a process, on a real NATS server and each
database back-end: the life cycles (activities, attendance, needs, reports, campaign visits),
their refusals over HTTP (409 at odds with state, 422 a bad field) and on the bus (the DLQ with
`Tongxin-Error`), out-of-order arrival on the bus, and idempotency on `event_id`.

The system is shared across tests, so every test makes its own units, bases and ids."""

from __future__ import annotations

import asyncio
import hashlib
import json
import uuid

import httpx
import nats
import nats.errors
import pytest
from nats.aio.msg import Msg

from tests.factories import activity, envelope, need, raw, schedule
from tests.harness import recent
from tests.photo_files import PNG

pytestmark = pytest.mark.asyncio(loop_scope="session")

SOURCE = "hotline-12345"


# -- helpers ------------------------------------------------------------------------------

def env_of(event_type: str, data: dict, **changes) -> dict:
    return envelope(data, event_type=event_type, source=SOURCE, **changes)


async def offer(system, event_type: str, data: dict, **changes) -> httpx.Response:
    """Offer one event over HTTP (`POST /v1/events`)."""
    return await system.post_event(env_of(event_type, data, **changes))


async def ok(system, event_type: str, data: dict, **changes) -> dict:
    """Offer one event over HTTP; it must be accepted (202, new, with a seq)."""
    env = env_of(event_type, data, **changes)
    r = await system.post_event(env)
    assert r.status_code == 202, f"{event_type}: {r.status_code} {r.text}"
    body = r.json()
    assert body["event_id"] == env["event_id"] and body["duplicate"] is False, body
    assert isinstance(body["seq"], int) and body["seq"] > 0, body
    return body


def refused(r: httpx.Response, status: int, field: str) -> str:
    """The one reason of a refusal naming exactly `field`, after checking the status."""
    assert r.status_code == status, f"expected {status} naming {field}: {r.status_code} {r.text}"
    errors = r.json()["errors"]
    assert [e["field"] for e in errors] == [field], errors
    assert errors[0]["message"], errors
    return errors[0]["message"]


def fields(r: httpx.Response) -> list[str]:
    return [e["field"] for e in r.json()["errors"]]


async def read_by_id(system, stream: str, subject: str, event_ids: set[str],
                     timeout: float = 20) -> dict[str, list[Msg]]:
    """Every message on `subject` (in `stream`, from its start) whose payload's event_id is
    one of `event_ids`, waiting (bounded) until each has at least one."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    got: dict[str, list[Msg]] = {}
    nc = await nats.connect(system.nats_url)
    try:
        sub = await nc.jetstream().subscribe(subject, stream=stream, ordered_consumer=True,
                                             config=recent())
        while True:
            if event_ids <= got.keys():
                # Everything wanted is in; drain what is already stored, for duplicates.
                try:
                    msg = await sub.next_msg(timeout=0.3)
                except nats.errors.TimeoutError:
                    return got
            else:
                remaining = deadline - loop.time()
                assert remaining > 0, (f"not on {subject} within {timeout} s: "
                                       f"{sorted(event_ids - got.keys())}")
                try:
                    msg = await sub.next_msg(timeout=min(remaining, 0.5))
                except nats.errors.TimeoutError:
                    continue
            try:
                event_id = json.loads(msg.data).get("event_id")
            except (ValueError, AttributeError):
                continue
            if event_id in event_ids:
                got.setdefault(event_id, []).append(msg)
    finally:
        await nc.close()


async def dead_letters(system, event_type: str, event_ids: set[str],
                       timeout: float = 20) -> dict[str, Msg]:
    """The dead-lettered offer of each of `event_ids` on `tongxin.dlq.<type>` (exactly one
    each)."""
    got = await read_by_id(system, system.names.dlq_stream, system.names.dlq(event_type),
                           event_ids, timeout)
    for event_id, msgs in got.items():
        assert len(msgs) == 1, f"{event_id} dead-lettered {len(msgs)} times"
    return {k: v[0] for k, v in got.items()}


async def published(system, event_ids: set[str], timeout: float = 20) -> dict[str, Msg]:
    """The accepted event of each of `event_ids` in TONGXIN_EVENTS (exactly once each)."""
    got = await read_by_id(system, system.names.events_stream, system.names.events(),
                           event_ids, timeout)
    for event_id, msgs in got.items():
        assert len(msgs) == 1, f"{event_id} published {len(msgs)} times"
    return {k: v[0] for k, v in got.items()}


def seq_of(msg: Msg) -> int:
    return msg.metadata.sequence.stream


def error_of(msg: Msg) -> list[dict]:
    return json.loads(msg.headers["Tongxin-Error"])


async def publish(system, env: dict) -> bytes:
    """Publish an envelope on the bus as another system does; returns the bytes offered."""
    payload = raw(env)
    await system.publish_raw(env["type"], payload, {"Nats-Msg-Id": env["event_id"]})
    return payload


async def taken(system) -> None:
    """Until the events service has taken the last offer on the bus."""
    await system.offer_taken(await system.ingest_last_seq())


async def paired(system, base: dict | None = None) -> tuple[dict, dict, dict]:
    """A unit paired with a base: (organisation, base, pairing)."""
    suffix = uuid.uuid4().hex[:6]
    org = await system.register("organizations", name=f"民盟淄博市委-{suffix}",
                                kind="democratic_party")
    if base is None:
        base = await system.register("bases", name=f"张店区马尚镇-{suffix}", kind="community",
                                     households=800)
    pairing = await system.register("pairings", organization_id=org["id"], base_id=base["id"],
                                    starts_on="2013-01-01")
    return org, base, pairing


async def volunteer(system, org: dict) -> dict:
    return await system.register("volunteers", name=f"志愿者{uuid.uuid4().hex[:4]}",
                                 organization_id=org["id"], party_status="non_member")


def corrected(data: dict, **changes) -> dict:
    return {**data, "reason": "服务人数统计有误", **changes}


def retracted(activity_id: str) -> dict:
    return {"activity_id": activity_id, "reason": "重复录入"}


# -- 1. activities ------------------------------------------------------------------------

async def test_activity_scheduled_logged_corrected_retracted(system):
    org, base = await system.org_and_base()
    plan = schedule(org["id"], base["id"])
    await ok(system, "activity.scheduled", plan)
    data = activity(org["id"], base["id"], activity_id=plan["activity_id"], served=100)
    await ok(system, "activity.logged", data)  # fulfils the rota entry

    again = await offer(system, "activity.logged", {**data, "served": 999})
    message = refused(again, 409, "data.activity_id")
    assert "activity.corrected" in message and plan["activity_id"] in message

    await ok(system, "activity.corrected", corrected(data, served=120))
    await ok(system, "activity.corrected", corrected(data, served=121))  # and again

    never = activity(org["id"], base["id"])
    message = refused(await offer(system, "activity.corrected", corrected(never)), 409,
                      "data.activity_id")
    assert "not been logged" in message and never["activity_id"] in message

    await ok(system, "activity.retracted", retracted(data["activity_id"]))
    message = refused(await offer(system, "activity.corrected", corrected(data, served=5)),
                      409, "data.activity_id")
    assert "retracted" in message
    message = refused(await offer(system, "activity.retracted", retracted(data["activity_id"])),
                      409, "data.activity_id")
    assert "already retracted" in message
    message = refused(await offer(system, "activity.logged", data), 409, "data.activity_id")
    assert "retracted" in message


async def test_a_rota_entry_cannot_replace_a_logged_activity(system):
    org, base = await system.org_and_base()
    data = activity(org["id"], base["id"])
    await ok(system, "activity.logged", data)
    plan = schedule(org["id"], base["id"], activity_id=data["activity_id"])
    message = refused(await offer(system, "activity.scheduled", plan), 409, "data.activity_id")
    assert "already logged" in message


async def test_a_fair_takes_its_service_types_and_served_from_its_stalls(system):
    org, base = await system.org_and_base()
    clinic, barber, repairer = [
        await system.register("organizations", name=f"{n}-{uuid.uuid4().hex[:6]}",
                              kind="public_institution")
        for n in ("市中心医院", "理发协会", "家电维修站")]
    stalls = [
        {"service_type": "free_clinic", "served": 120, "organization_id": clinic["id"],
         "title": "义诊", "volunteers": 8},
        {"service_type": "haircut", "served": 45, "organization_id": barber["id"]},
        {"service_type": "repair", "served": 30, "organization_id": repairer["id"],
         "volunteers": 3},
    ]
    data = activity(org["id"], base["id"], title="同心大集", stalls=stalls)
    del data["service_types"], data["served"]
    env = env_of("activity.logged", data)
    r = await system.post_event(env)
    assert r.status_code == 202, r.text

    async with system.client() as http:
        stored = await http.get(f"{system.url('events')}/v1/events/{env['event_id']}")
    assert stored.status_code == 200, stored.text
    stored_data = stored.json()["envelope"]["data"]
    assert stored_data["service_types"] == ["free_clinic", "haircut", "repair"]
    assert stored_data["served"] == 195
    assert [s["organization_id"] for s in stored_data["stalls"]] == [
        clinic["id"], barber["id"], repairer["id"]]

    (msg,) = (await published(system, {env["event_id"]})).values()
    assert msg.subject == system.names.events("activity.logged")
    assert seq_of(msg) == r.json()["seq"]
    on_bus = json.loads(msg.data)["data"]
    assert on_bus["service_types"] == ["free_clinic", "haircut", "repair"]
    assert on_bus["served"] == 195
    assert on_bus == stored_data

    # An activity-level `served` that differs from the stalls' sum is refused, naming it.
    wrong = {**data, "activity_id": str(uuid.uuid4()), "served": 200}
    message = refused(await offer(system, "activity.logged", wrong), 422, "data.served")
    assert "195" in message
    # The same sum is fine; so are the stalls' own service types, in any order.
    right = {**data, "activity_id": str(uuid.uuid4()), "served": 195,
             "service_types": ["repair", "free_clinic", "haircut"]}
    await ok(system, "activity.logged", right)
    # A stall's unit the registry does not know is a 422 naming that stall.
    unknown = {**data, "activity_id": str(uuid.uuid4()),
               "stalls": [*stalls[:2], {**stalls[2], "organization_id": "no-such-unit"}]}
    refused(await offer(system, "activity.logged", unknown), 422, "data.stalls[2].organization_id")


async def test_outputs_name_indicators_from_the_taxonomy(system):
    org, base = await system.org_and_base()
    data = activity(org["id"], base["id"], service_types=["donation"],
                    outputs=[{"indicator": "students_funded", "quantity": 12}])
    await ok(system, "activity.logged", data)
    bad = activity(org["id"], base["id"],
                   outputs=[{"indicator": "smiles_counted", "quantity": 3},
                            {"indicator": "libraries_built", "quantity": 1}])
    message = refused(await offer(system, "activity.logged", bad), 422,
                      "data.outputs[0].indicator")
    assert "smiles_counted" in message


@pytest.mark.parametrize("started_at", [
    "9999-12-31T12:00:00+08:00",
    "9999-12-31T23:59:59-08:00",   # past year 9999 in UTC
    "0001-01-01T09:00:00+08:00",
    "0001-01-01T00:00:00+08:00",   # before year 1 in UTC
])
async def test_a_date_no_programme_can_mean_is_422_naming_it(system, started_at):
    org, base = await system.org_and_base()
    data = activity(org["id"], base["id"], started_at=started_at)
    r = await offer(system, "activity.logged", data)
    assert r.status_code == 422, r.text
    assert "data.started_at" in fields(r), r.json()
    # and a rota day in year 9999
    plan = schedule(org["id"], base["id"], planned_on="9999-12-31")
    refused(await offer(system, "activity.scheduled", plan), 422, "data.planned_on")


async def test_occurred_at_in_2200_is_422_naming_it(system):
    org, base = await system.org_and_base()
    r = await offer(system, "activity.logged", activity(org["id"], base["id"]),
                    occurred_at="2200-01-01T00:00:00+08:00")
    refused(r, 422, "occurred_at")


async def test_a_team_of_another_organisation_is_422(system):
    org, base = await system.org_and_base()
    other, _ = await system.org_and_base()
    team = await system.register("teams", name=f"医疗卫生服务队-{uuid.uuid4().hex[:6]}",
                                 category="medical", organization_id=other["id"])
    message = refused(await offer(system, "activity.logged",
                                  activity(org["id"], base["id"], team_id=team["id"])),
                      422, "data.team_id")
    assert other["id"] in message
    # its own unit's activity may name it
    await ok(system, "activity.logged", activity(other["id"], base["id"], team_id=team["id"]))


# -- 2. attendance ------------------------------------------------------------------------

async def test_attendance_recorded_confirmed_and_replaced(system):
    org, base = await system.org_and_base()
    act = activity(org["id"], base["id"])  # 09:00-12:00, three hours
    await ok(system, "activity.logged", act)
    v = await volunteer(system, org)
    pair = {"activity_id": act["activity_id"], "volunteer_id": v["id"]}

    await ok(system, "attendance.recorded", {**pair, "hours": 2.5, "method": "self"})
    await ok(system, "attendance.confirmed", {**pair, "organization_id": org["id"]})
    # recorded again for the same pair: the hours are replaced
    await ok(system, "attendance.recorded", {**pair, "hours": 3, "method": "self"})
    await ok(system, "attendance.declined", {**pair, "organization_id": org["id"],
                                             "reason": "未到场"})

    long = await offer(system, "attendance.recorded", {**pair, "hours": 5, "method": "organiser"})
    message = refused(long, 409, "data.hours")
    assert "5 h" in message and "3 h" in message


async def test_a_volunteer_at_two_overlapping_activities_is_refused(system):
    org, base = await system.org_and_base()
    morning = activity(org["id"], base["id"])  # 09:00-12:00
    late = activity(org["id"], base["id"], started_at="2013-10-20T11:00:00+08:00",
                    ended_at="2013-10-20T14:00:00+08:00")
    after = activity(org["id"], base["id"], started_at="2013-10-20T12:00:00+08:00",
                     ended_at="2013-10-20T15:00:00+08:00")
    for a in (morning, late, after):
        await ok(system, "activity.logged", a)
    v = await volunteer(system, org)
    await ok(system, "attendance.recorded", {"activity_id": morning["activity_id"],
                                             "volunteer_id": v["id"], "hours": 3,
                                             "method": "sign_in"})
    r = await offer(system, "attendance.recorded", {"activity_id": late["activity_id"],
                                                    "volunteer_id": v["id"], "hours": 1,
                                                    "method": "sign_in"})
    message = refused(r, 409, "data.volunteer_id")
    assert morning["activity_id"] in message
    # back to back is no overlap
    await ok(system, "attendance.recorded", {"activity_id": after["activity_id"],
                                             "volunteer_id": v["id"], "hours": 3,
                                             "method": "sign_in"})


async def test_attendance_refusals(system):
    org, base = await system.org_and_base()
    stranger, _ = await system.org_and_base()
    act = activity(org["id"], base["id"])
    await ok(system, "activity.logged", act)
    v, w = await volunteer(system, org), await volunteer(system, org)

    # confirming hours nobody recorded: over HTTP an immediate 409
    nobody = {"activity_id": act["activity_id"], "volunteer_id": w["id"],
              "organization_id": org["id"]}
    message = refused(await offer(system, "attendance.confirmed", nobody), 409,
                      "data.volunteer_id")
    assert "no hours are recorded" in message

    pair = {"activity_id": act["activity_id"], "volunteer_id": v["id"]}
    await ok(system, "attendance.recorded", {**pair, "hours": 2, "method": "self"})
    refused(await offer(system, "attendance.declined", {**pair, "organization_id": org["id"]}),
            422, "data.reason")
    message = refused(await offer(system, "attendance.confirmed",
                                  {**pair, "organization_id": stranger["id"]}),
                      409, "data.organization_id")
    assert stranger["id"] in message
    # an unknown volunteer is a 422 naming it
    refused(await offer(system, "attendance.recorded",
                        {**pair, "volunteer_id": "no-such-volunteer", "hours": 1,
                         "method": "self"}), 422, "data.volunteer_id")


# -- 3. needs -----------------------------------------------------------------------------

async def test_the_full_need_cycle(system):
    org, base, _ = await paired(system)
    n = need(base["id"])
    nid = n["need_id"]
    by = {"need_id": nid, "organization_id": org["id"]}
    await ok(system, "need.submitted", n)
    await ok(system, "need.claimed", by)
    await ok(system, "need.returned", {**by, "reason": "超出服务能力"})
    await ok(system, "need.claimed", by)
    await ok(system, "need.resolved", {**by, "note": "已更换灯泡"})
    await ok(system, "need.closed", {"need_id": nid, "outcome": "confirmed"})
    await ok(system, "need.reopened", {"need_id": nid, "reason": "路灯又坏了"})
    await ok(system, "need.claimed", by)
    await ok(system, "need.resolved", by)
    await ok(system, "need.reopened", {"need_id": nid, "reason": "居民不满意"})
    await ok(system, "need.closed", {"need_id": nid, "outcome": "withdrawn"})


async def test_need_refusals_name_the_state(system):
    org, base, _ = await paired(system)
    loner, _ = await system.org_and_base()
    n = need(base["id"])
    nid = n["need_id"]
    await ok(system, "need.submitted", n)

    message = refused(await offer(system, "need.resolved",
                                  {"need_id": nid, "organization_id": org["id"]}),
                      409, "data.need_id")
    assert nid in message and "open" in message

    message = refused(await offer(system, "need.claimed",
                                  {"need_id": nid, "organization_id": loner["id"]}),
                      409, "data.organization_id")
    assert loner["id"] in message and base["id"] in message

    await ok(system, "need.claimed", {"need_id": nid, "organization_id": org["id"]})
    message = refused(await offer(system, "need.claimed",
                                  {"need_id": nid, "organization_id": org["id"]}),
                      409, "data.need_id")
    assert "claimed" in message and org["id"] in message

    message = refused(await offer(system, "need.closed", {"need_id": nid,
                                                          "outcome": "confirmed"}),
                      409, "data.outcome")
    assert "claimed" in message

    message = refused(await offer(system, "need.submitted", n), 409, "data.need_id")
    assert "already submitted" in message


async def test_a_need_under_a_pairing_is_only_its_units(system):
    org, base, pairing = await paired(system)
    other, _, _ = await paired(system, base)  # also paired with that base
    n = need(base["id"], pairing_id=pairing["id"])
    await ok(system, "need.submitted", n)
    message = refused(await offer(system, "need.claimed",
                                  {"need_id": n["need_id"], "organization_id": other["id"]}),
                      409, "data.organization_id")
    assert pairing["id"] in message and org["id"] in message
    await ok(system, "need.claimed", {"need_id": n["need_id"], "organization_id": org["id"]})
    # a need with no pairing at that base: either paired unit may take it
    free = need(base["id"])
    await ok(system, "need.submitted", free)
    await ok(system, "need.claimed", {"need_id": free["need_id"], "organization_id": other["id"]})


async def test_answers_and_a_repeat_linked_reach_the_rates(system):
    """need.feedback and need.linked through the events service (their refusals naming the
    field), then the needs report and items from the reporting service: the repeat flagged,
    then linked and counted once; the answer's reason nowhere in what is reported."""
    org, base, _ = await paired(system)
    first, repeat = need(base["id"], category="repair"), need(base["id"], category="repair")
    fid, rid = first["need_id"], repeat["need_id"]
    by = {"need_id": fid, "organization_id": org["id"]}
    await ok(system, "need.submitted", first)
    await ok(system, "need.submitted", repeat)
    answer = {"need_id": fid, "satisfaction": "unsatisfied", "respondent": "resident",
              "reason": "灯还是不亮-不可外传"}
    assert "only a resolved or closed need can be answered" in refused(
        await offer(system, "need.feedback", answer), 409, "data.need_id")
    refused(await offer(system, "need.feedback", {**answer, "reason": None}), 422,
            "data.reason")
    outsider, _, _ = await paired(system)
    refused(await offer(system, "need.linked", {"need_id": rid, "original_id": fid,
                                                "organization_id": outsider["id"]}),
            409, "data.organization_id")

    async def needs_report() -> tuple[dict, dict]:
        async with system.client(timeout=60) as http:
            params = {"base_id": base["id"], "min_seq": last["seq"]}
            totals = (await http.get(f"{system.url('reporting')}/v1/reports/needs",
                                     params=params)).json()["totals"]
            items = (await http.get(f"{system.url('reporting')}/v1/reports/needs/items",
                                    params=params)).json()
        return totals, {r["need_id"]: r for r in items["rows"]}

    last = await ok(system, "need.claimed", by)
    totals, items = await needs_report()
    assert items[rid]["possible_duplicate_of"] == fid and totals["possible_duplicates"] == 1
    await ok(system, "need.linked", {"need_id": rid, "original_id": fid,
                                     "organization_id": org["id"]})
    await ok(system, "need.resolved", by)
    await ok(system, "need.closed", {"need_id": fid, "outcome": "confirmed"})
    await ok(system, "need.feedback", answer)
    await ok(system, "need.reopened", {"need_id": fid, "reason": "群众不满意"})
    last = await ok(system, "need.claimed", by)
    totals, items = await needs_report()
    assert (items[rid]["state"], items[rid]["linked_to"], items[rid]["possible_duplicate_of"]) \
        == ("closed", fid, None)
    assert (items[fid]["satisfaction"], items[fid]["reopened_after_unsatisfied"]) == (
        "unsatisfied", 1)
    # One need counted (the repeat in none): claimed on time, settled once and not solved
    # now, answered not satisfied.
    assert (totals["possible_duplicates"], totals["closed_duplicate"], totals["response_rate"],
            totals["settled"], totals["resolution_rate"], totals["satisfaction_rate"],
            totals["reopened_after_unsatisfied"]) == (0, 1, 1.0, 1, 0.0, 0.0, 1)
    assert "不可外传" not in str(items)


@pytest.mark.parametrize("number", [
    "138 0533 1234",
    "138-0533-1234",
    "+86 138 0533 1234",      # with the country code, as phones show it
    "370302198001011234",     # a resident ID number
])
async def test_a_phone_number_in_a_need_is_422(system, number):
    _, base, _ = await paired(system)
    r = await offer(system, "need.submitted",
                    need(base["id"], description=f"请联系王阿姨 {number}"))
    message = refused(r, 422, "data.description")
    assert "phone" in message
    assert number not in r.text  # the number is not echoed back


# -- 4. reports ---------------------------------------------------------------------------

async def test_a_report_cites_uploaded_photos(system):
    org, base = await system.org_and_base()
    act = activity(org["id"], base["id"])
    await ok(system, "activity.logged", act)
    never = hashlib.sha256(uuid.uuid4().bytes).hexdigest()
    report = {"activity_id": act["activity_id"], "organization_id": org["id"],
              "summary": "义诊一天，服务群众120人", "photos": [never]}
    message = refused(await offer(system, "report.submitted", report), 422, "data.photos[0]")
    assert never in message

    async with system.client(timeout=60) as http:
        up = await http.post(f"{system.url('events')}/v1/photos",
                             files={"file": ("合影.png", PNG, "image/png")})
    assert up.status_code == 201, up.text
    ref = up.json()["ref"]
    await ok(system, "report.submitted", {**report, "photos": [ref]})
    # a second photo never uploaded is named by its place
    r = await offer(system, "report.submitted", {**report, "photos": [ref, never]})
    refused(r, 422, "data.photos[1]")


async def test_report_overdue_is_not_accepted_from_outside(system):
    org, base = await system.org_and_base()
    act = activity(org["id"], base["id"])
    await ok(system, "activity.logged", act)
    r = await offer(system, "report.overdue", {"activity_id": act["activity_id"],
                                               "organization_id": org["id"],
                                               "due_at": "2013-10-27T12:00:00+08:00"})
    message = refused(r, 422, "type")
    assert "report.overdue" in message


# -- 5. campaign visits -------------------------------------------------------------------

async def test_campaign_visits(system):
    suffix = uuid.uuid4().hex[:6]
    inside = await system.register("bases", name=f"周村区青年路社区-{suffix}", kind="community",
                                   households=1200)
    outside = await system.register("bases", name=f"周村区丝市街社区-{suffix}", kind="community")
    async with system.client() as http:
        r = await http.post(f"{system.url('registry')}/v1/campaigns", json={
            "code": f"knock-{suffix}", "name": "敲门行动 2013 秋", "starts_on": "2013-10-01",
            "ends_on": "2013-10-31", "base_ids": [inside["id"]]})
    assert r.status_code == 201, r.text
    campaign = r.json()
    visit = {"campaign_id": campaign["id"], "base_id": inside["id"],
             "visited_on": "2013-10-12", "households_visited": 3,
             "household_keys": ["3-2-401", "3-2-402", "3-1-101"], "volunteers": 4,
             "problems_found": 1}

    message = refused(await offer(system, "campaign.visit_recorded",
                                  {**visit, "base_id": outside["id"]}), 422, "data.base_id")
    assert outside["id"] in message
    message = refused(await offer(system, "campaign.visit_recorded",
                                  {**visit, "visited_on": "2013-11-01"}), 422, "data.visited_on")
    assert "2013-10-01" in message and "2013-10-31" in message
    await ok(system, "campaign.visit_recorded", visit)
    await ok(system, "campaign.visit_recorded", {**visit, "visited_on": "2013-10-31"})
    refused(await offer(system, "campaign.visit_recorded",
                        {**visit, "campaign_id": "no-such-campaign"}), 422, "data.campaign_id")


async def test_a_campaign_over_a_region_covers_only_its_bases(system):
    suffix = uuid.uuid4().hex[:6]
    code = f"370306{suffix}"
    await system.register("regions", code=code, name=f"周村区-{suffix}", level="district")
    inside = await system.register("bases", name=f"周村区青年路社区-{suffix}", kind="community",
                                   region_code=code)
    outside = await system.register("bases", name=f"张店区马尚社区-{suffix}", kind="community")
    async with system.client() as http:
        r = await http.post(f"{system.url('registry')}/v1/campaigns", json={
            "code": f"knock-{suffix}", "name": "敲门行动 周村", "starts_on": "2013-10-01",
            "ends_on": "2013-10-31", "region_code": code})
    assert r.status_code == 201, r.text
    visit = {"campaign_id": r.json()["id"], "base_id": inside["id"],
             "visited_on": "2013-10-12", "households_visited": 5}
    await ok(system, "campaign.visit_recorded", visit)
    message = refused(await offer(system, "campaign.visit_recorded",
                                  {**visit, "base_id": outside["id"]}), 422, "data.base_id")
    assert outside["id"] in message


# -- 6. the bus: refusals are dead-lettered unchanged, with the same reasons --------------

async def test_refusals_on_the_bus_are_dead_lettered_with_the_same_reasons(system):
    org, base, _ = await paired(system)
    # claiming twice
    n = need(base["id"])
    await ok(system, "need.submitted", n)
    await ok(system, "need.claimed", {"need_id": n["need_id"], "organization_id": org["id"]})
    twice = env_of("need.claimed", {"need_id": n["need_id"], "organization_id": org["id"]})
    # hours longer than the activity; overlap
    act = activity(org["id"], base["id"])
    overlapping = activity(org["id"], base["id"], started_at="2013-10-20T10:00:00+08:00",
                           ended_at="2013-10-20T11:00:00+08:00")
    await ok(system, "activity.logged", act)
    await ok(system, "activity.logged", overlapping)
    v = await volunteer(system, org)
    await ok(system, "attendance.recorded", {"activity_id": act["activity_id"],
                                             "volunteer_id": v["id"], "hours": 3,
                                             "method": "organiser"})
    long = env_of("attendance.recorded", {"activity_id": act["activity_id"],
                                          "volunteer_id": v["id"], "hours": 4,
                                          "method": "organiser"})
    overlap = env_of("attendance.recorded", {"activity_id": overlapping["activity_id"],
                                             "volunteer_id": v["id"], "hours": 1,
                                             "method": "organiser"})
    # a correction of a retracted activity
    gone = activity(org["id"], base["id"], started_at="2013-10-21T09:00:00+08:00",
                    ended_at="2013-10-21T12:00:00+08:00")
    await ok(system, "activity.logged", gone)
    await ok(system, "activity.retracted", retracted(gone["activity_id"]))
    late_fix = env_of("activity.corrected", corrected(gone))

    cases = {twice["event_id"]: (twice, "data.need_id"),
             long["event_id"]: (long, "data.hours"),
             overlap["event_id"]: (overlap, "data.volunteer_id"),
             late_fix["event_id"]: (late_fix, "data.activity_id")}
    # What HTTP answers (a refusal is not stored, so the same envelopes may go on the bus).
    over_http = {}
    for event_id, (env, field) in cases.items():
        r = await system.post_event(env)
        refused(r, 409, field)
        over_http[event_id] = r.json()["errors"]
    offered = {event_id: await publish(system, env) for event_id, (env, _) in cases.items()}

    by_type: dict[str, set[str]] = {}
    for event_id, (env, _) in cases.items():
        by_type.setdefault(env["type"], set()).add(event_id)
    letters = {}
    for event_type, ids in by_type.items():
        letters |= await dead_letters(system, event_type, ids)
    for event_id, (env, field) in cases.items():
        msg = letters[event_id]
        assert msg.subject == system.names.dlq(env["type"])
        assert msg.data == offered[event_id]  # byte for byte
        assert error_of(msg) == over_http[event_id], (field, error_of(msg))
    assert "retracted" in error_of(letters[late_fix["event_id"]])[0]["message"]
    assert act["activity_id"] in error_of(letters[overlap["event_id"]])[0]["message"]
    # and none of them was accepted
    ids = set(cases)
    assert await system.events_published(ids) == dict.fromkeys(ids, 0)


# -- 7. out-of-order arrival on the bus ---------------------------------------------------

async def test_a_claim_before_its_need_is_accepted_after_it(system):
    org, base, _ = await paired(system)
    n = need(base["id"])
    submitted = env_of("need.submitted", n)
    claimed = env_of("need.claimed", {"need_id": n["need_id"], "organization_id": org["id"]})
    await publish(system, claimed)
    await taken(system)  # it waits for what it needs before the rest is offered
    await publish(system, submitted)
    got = await published(system, {submitted["event_id"], claimed["event_id"]})
    assert seq_of(got[submitted["event_id"]]) < seq_of(got[claimed["event_id"]])
    # the need is claimed now: another claim over HTTP says so
    message = refused(await offer(system, "need.claimed",
                                  {"need_id": n["need_id"], "organization_id": org["id"]}),
                      409, "data.need_id")
    assert "claimed" in message


async def test_a_resolution_before_its_claim_is_accepted_after_it(system):
    org, base, _ = await paired(system)
    n = need(base["id"])
    by = {"need_id": n["need_id"], "organization_id": org["id"]}
    submitted = env_of("need.submitted", n)
    resolved = env_of("need.resolved", by)
    claimed = env_of("need.claimed", by)
    await publish(system, submitted)
    await published(system, {submitted["event_id"]})
    await publish(system, resolved)
    await taken(system)  # it waits for what it needs before the rest is offered
    await publish(system, claimed)
    got = await published(system, {submitted["event_id"], claimed["event_id"],
                                   resolved["event_id"]})
    assert [seq_of(got[e["event_id"]]) for e in (submitted, claimed, resolved)] == sorted(
        seq_of(m) for m in got.values())


async def test_a_claim_of_a_need_never_submitted_is_dead_lettered_after_the_wait(system):
    org, base, _ = await paired(system)
    claimed = env_of("need.claimed", {"need_id": f"never-{uuid.uuid4().hex[:8]}",
                                      "organization_id": org["id"]})
    start = asyncio.get_running_loop().time()
    offered = await publish(system, claimed)
    letters = await dead_letters(system, "need.claimed", {claimed["event_id"]}, timeout=30)
    waited = asyncio.get_running_loop().time() - start
    msg = letters[claimed["event_id"]]
    assert msg.data == offered
    (error,) = error_of(msg)
    assert error["field"] == "data.need_id"
    assert "has not been submitted" in error["message"] and "waited" in error["message"]
    assert waited >= 5.5, f"dead-lettered after {waited:.1f} s, before the 6 s wait"
    assert await system.events_published({claimed["event_id"]}) == {claimed["event_id"]: 0}


async def test_attendance_before_its_activity_is_accepted_after_it(system):
    org, base = await system.org_and_base()
    act = activity(org["id"], base["id"])
    v = await volunteer(system, org)
    logged = env_of("activity.logged", act)
    recorded = env_of("attendance.recorded", {"activity_id": act["activity_id"],
                                              "volunteer_id": v["id"], "hours": 2,
                                              "method": "self"})
    await publish(system, recorded)
    await taken(system)  # it waits for what it needs before the rest is offered
    await publish(system, logged)
    got = await published(system, {logged["event_id"], recorded["event_id"]})
    assert seq_of(got[logged["event_id"]]) < seq_of(got[recorded["event_id"]])
    assert json.loads(got[recorded["event_id"]].data)["data"]["hours"] == 2


async def test_a_confirmation_before_the_hours_is_accepted_after_them(system):
    org, base = await system.org_and_base()
    act = activity(org["id"], base["id"])
    await ok(system, "activity.logged", act)
    v = await volunteer(system, org)
    pair = {"activity_id": act["activity_id"], "volunteer_id": v["id"]}
    confirmed = env_of("attendance.confirmed", {**pair, "organization_id": org["id"]})
    recorded = env_of("attendance.recorded", {**pair, "hours": 2, "method": "self"})
    await publish(system, confirmed)
    await taken(system)  # it waits for what it needs before the rest is offered
    await publish(system, recorded)
    got = await published(system, {confirmed["event_id"], recorded["event_id"]})
    assert seq_of(got[recorded["event_id"]]) < seq_of(got[confirmed["event_id"]])


# -- 8. idempotency on event_id -----------------------------------------------------------

async def test_the_same_event_id_again(system):
    org, base, _ = await paired(system)
    env = env_of("need.submitted", need(base["id"]))
    first = await system.post_event(env)
    assert first.status_code == 202, first.text

    same = await system.post_event(env)
    assert same.status_code == 202, same.text
    assert same.json() == {"event_id": env["event_id"], "seq": first.json()["seq"],
                           "duplicate": True}
    # the same data sent later (another occurred_at) is still a retry
    later = {**env, "occurred_at": "2013-10-21T08:00:00+08:00", "source": "another-door"}
    assert (await system.post_event(later)).json()["duplicate"] is True

    changed = {**env, "data": {**env["data"], "title": "另一件事"}}
    message = refused(await system.post_event(changed), 409, "event_id")
    assert env["event_id"] in message

    # On the bus: the same envelope twice more (with and without Nats-Msg-Id) is not
    # published again; one with different data is dead-lettered naming event_id.
    await publish(system, env)
    await system.publish_raw(env["type"], raw(env), None)
    changed_bytes = raw(changed)
    await system.publish_raw(changed["type"], changed_bytes, None)
    barrier = env_of("need.claimed", {"need_id": env["data"]["need_id"],
                                      "organization_id": org["id"]})
    await publish(system, barrier)
    await published(system, {barrier["event_id"]})
    letters = await dead_letters(system, "need.submitted", {env["event_id"]})
    msg = letters[env["event_id"]]
    assert msg.data == changed_bytes
    assert [e["field"] for e in error_of(msg)] == ["event_id"]
    assert await system.events_published({env["event_id"]}) == {env["event_id"]: 1}
