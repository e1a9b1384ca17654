"""The seeds' figures, reproduced from events sent through the public interface (the three
services as processes, a real NATS server, each database back-end): registry records over
HTTP, history through `POST /v1/events/bulk`, single events through `POST /v1/events`, and the
figures read back from the reports.

Every test makes its own units and bases, and reads its reports scoped to them, because the
system is shared across tests."""

from __future__ import annotations

import asyncio
import json
import uuid
from datetime import date, timedelta

import pytest

from tests.factories import activity, envelope

pytestmark = pytest.mark.asyncio(loop_scope="session")


async def bulk(system, envelopes: list[dict]) -> int:
    """Send history as NDJSON; every line must be accepted. Returns a seq at or after them."""
    body = "\n".join(json.dumps(e, ensure_ascii=False) for e in envelopes).encode()
    async with system.client(timeout=120) as http:
        r = await http.post(f"{system.url('events')}/v1/events/bulk", content=body,
                            headers={"content-type": "application/x-ndjson"})
    assert r.status_code == 200, r.text
    result = r.json()
    assert (result["accepted"], result["errors"]) == (len(envelopes), []), result
    return await system.events_last_seq()


async def post(system, event_type: str, data: dict) -> int:
    r = await system.post_event(envelope(data, event_type=event_type))
    assert r.status_code == 202, f"{event_type}: {r.text}"
    return r.json()["seq"]


async def report(system, path: str, **params) -> dict:
    async with system.client() as http:
        r = await http.get(f"{system.url('reporting')}{path}", params=params)
    assert r.status_code == 200, r.text
    return r.json()


def spread(total: int, parts: int) -> list[int]:
    """`total` in `parts` whole numbers, as uneven as real records."""
    base, extra = divmod(total, parts)
    return [base + (1 if i < extra else 0) for i in range(parts)]


async def test_zibo_132_activities_8700_served_376_students_funded_269_trained(system):
    """Seed 000: six “同心” teams of the Zibo programme, a year of activities."""
    s = uuid.uuid4().hex[:6]
    zibo = await system.register("organizations", name=f"淄博市委统战部-{s}",
                                 kind="party_organization")
    teams = [await system.register("teams", name=f"“同心·{n}”服务团-{s}", category=c,
                                   organization_id=zibo["id"])
             for n, c in (("法律", "legal_aid"), ("教育", "tutoring"), ("医疗卫生", "medical"),
                          ("科技文化", "sci_tech_culture"), ("非公助农", "agri_aid"),
                          ("党外博士", "expert"))]
    villages = [await system.register("bases", name=f"{n}-{s}", kind="village")
                for n in ("高青县孟家村", "沂源县东里镇", "淄川区太河镇")]
    served, trained = spread(8_700, 132), spread(269, 132)
    funded, libraries = spread(376, 132), [1 if i < 12 else 0 for i in range(132)]
    history = []
    first = date(2013, 1, 5)
    for i in range(132):
        day = first + timedelta(days=i * 2)
        outputs = [o for o in ({"indicator": "students_funded", "quantity": funded[i]},
                               {"indicator": "libraries_built", "quantity": libraries[i]})
                   if o["quantity"]]
        donations = ([{"item": "药品", "quantity": 1, "unit": "批", "value_cny": 40_000},
                      {"item": "图书", "quantity": 500, "unit": "册", "value_cny": 0},
                      {"item": "电脑", "quantity": 10, "unit": "台", "value_cny": 0}]
                     if i == 0 else [])
        history.append(envelope(activity(
            zibo["id"], villages[i % 3]["id"], team_id=teams[i % 6]["id"], served=served[i],
            trainees=trained[i], outputs=outputs, donations=donations,
            started_at=f"{day}T09:00:00+08:00", ended_at=f"{day}T12:00:00+08:00")))
    seq = await bulk(system, history)

    summary = await report(system, "/v1/reports/summary", organization_id=zibo["id"],
                           group_by="team", min_seq=seq)
    totals = summary["totals"]
    assert (totals["activities"], totals["served"], totals["trainees"]) == (132, 8_700, 269)
    assert totals["outputs"] == {"libraries_built": 12, "students_funded": 376}
    assert totals["donation_value_cny"] == 40_000
    assert len(summary["rows"]) == 6 and sum(r["activities"] for r in summary["rows"]) == 132
    assert {r["label"] for r in summary["rows"]} == {t["name"] for t in teams}
    by_month = await report(system, "/v1/reports/summary", organization_id=zibo["id"],
                            group_by="month")
    assert sum(r["served"] for r in by_month["rows"]) == 8_700
    assert by_month["totals"] == totals


async def test_zhenjiang_fair_of_51_stalls_credits_each_unit_with_its_stall(system):
    """Seed 001: one fair, 51 booths from different departments and companies."""
    s = uuid.uuid4().hex[:6]
    host = await system.register("organizations", name=f"镇江市委统战部-{s}",
                                 kind="party_organization")
    units = [await system.register("organizations", name=f"镇江市第{i}展位单位-{s}",
                                   kind="government_department", parent_id=host["id"])
             for i in range(51)]
    square = await system.register("bases", name=f"京口区大市口广场-{s}", kind="community")
    kinds = ["free_clinic", "haircut", "repair", "legal_aid", "consultation", "job_fair"]
    stalls = [{"service_type": kinds[i % 6], "served": 180 + i, "organization_id": u["id"],
               "volunteers": 3} for i, u in enumerate(units)]
    fair = activity(host["id"], square["id"], stalls=stalls, volunteers=160,
                    volunteer_hours=480, title="周末便民服务“大集市”")  # 3 h each
    fair.pop("service_types")
    fair.pop("served")
    r = await system.post_activity(fair)
    assert r.status_code == 202, r.text

    summary = await report(system, "/v1/reports/summary", organization_id=host["id"],
                           min_seq=r.json()["seq"])
    credited = {row["key"]: row for row in summary["rows"]}
    assert set(credited) == {host["id"], *(u["id"] for u in units)}
    for i, unit in enumerate(units):
        assert (credited[unit["id"]]["served"], credited[unit["id"]]["activities"]) == (
            180 + i, 1), unit["name"]
    assert summary["totals"]["activities"] == 1
    assert summary["totals"]["served"] == sum(st["served"] for st in stalls) > 10_000 - 1_000
    one = await report(system, "/v1/reports/summary", organization_id=units[9]["id"])
    assert one["totals"]["served"] == 189
    kinds_served = await report(system, "/v1/reports/summary", organization_id=host["id"],
                                group_by="service_type")
    assert {row["key"] for row in kinds_served["rows"]} == set(kinds)
    assert kinds_served["totals"]["activities"] == 1


async def test_turn_outs_and_distinct_volunteers_differ_and_corrections_restate(system):
    """Volunteers turn out again and again: turn-outs add up, people do not. A correction moves
    an activity to an earlier month; a retraction takes it out of every report."""
    s = uuid.uuid4().hex[:6]
    unit = await system.register("organizations", name=f"上虞区检察院-{s}",
                                 kind="government_department")
    base = await system.register("bases", name=f"百官街道龙山社区-{s}", kind="community")
    people = [await system.register("volunteers", name=f"志愿者{i}-{s}",
                                    organization_id=unit["id"], party_status="serving_member")
              for i in range(6)]
    saturdays = ["2013-10-05", "2013-10-12", "2013-10-19"]
    activities = [activity(unit["id"], base["id"], volunteers=5, volunteer_hours=15, served=40,
                           started_at=f"{d}T09:00:00+08:00", ended_at=f"{d}T12:00:00+08:00")
                  for d in saturdays]
    for data in activities:
        await post(system, "activity.logged", data)
    for i, data in enumerate(activities):  # five of the six each time
        for person in people[i:i + 5] if i < 2 else people[:5]:
            seq = await post(system, "attendance.recorded", {
                "activity_id": data["activity_id"], "volunteer_id": person["id"], "hours": 3,
                "method": "sign_in"})
    summary = await report(system, "/v1/reports/summary", organization_id=unit["id"],
                           group_by="month", min_seq=seq)
    assert (summary["totals"]["volunteers"], summary["totals"]["unique_volunteers"]) == (15, 6)
    assert [(r["key"], r["served"]) for r in summary["rows"]] == [("2013-10", 120)]

    first = activities[0]
    seq = await post(system, "activity.corrected", {
        **first, "served": 55, "started_at": "2013-09-28T09:00:00+08:00",
        "ended_at": "2013-09-28T12:00:00+08:00", "reason": "日期录错：实为九月最后一个周六"})
    summary = await report(system, "/v1/reports/summary", organization_id=unit["id"],
                           group_by="month", min_seq=seq)
    assert [(r["key"], r["served"]) for r in summary["rows"]] == [("2013-09", 55),
                                                                 ("2013-10", 80)]
    seq = await post(system, "activity.retracted", {"activity_id": first["activity_id"],
                                                    "reason": "重复录入"})
    for group_by in ("month", "organization", "base", "service_type", "week"):
        summary = await report(system, "/v1/reports/summary", organization_id=unit["id"],
                               group_by=group_by, min_seq=seq)
        assert (summary["totals"]["activities"], summary["totals"]["served"]) == (2, 80)
        assert "2013-09" not in {r["key"] for r in summary["rows"]}
    assert summary["totals"]["unique_volunteers"] == 6
    # ... and from every other report: hours, reports owed.
    ledger = await report(system, "/v1/reports/volunteers", organization_id=unit["id"])
    assert sum(row["activities"] for row in ledger["rows"]) == 10
    assert sum(row["hours_confirmed"] for row in ledger["rows"]) == 30
    owed = await report(system, "/v1/reports/timeliness", organization_id=unit["id"])
    assert owed["totals"]["due"] == 2


async def test_shangyu_rota_overdue_units_show_in_timeliness_and_are_notified_once(system):
    """Seed 004: units on a Saturday rota each owe the service flag's report the week after.
    One reports on time, one late, one never (missing: named in timeliness and notified
    once), one never comes (missed)."""
    s = uuid.uuid4().hex[:6]
    office = await system.register("organizations", name=f"上虞区委组织部-{s}",
                                   kind="party_organization")
    units = {k: await system.register("organizations", name=f"上虞区{k}-{s}",
                                      kind="government_department", parent_id=office["id"])
             for k in ("检察院", "法院", "财政局", "卫生局")}
    base = await system.register("bases", name=f"百官街道龙山社区-{s}", kind="community")
    saturday = "2013-10-19"
    rota = {k: {"activity_id": str(uuid.uuid4()), "organization_id": u["id"],
                "base_id": base["id"], "title": "周六服务日", "service_types": ["cleanup"],
                "theme": "city_quality", "planned_on": saturday} for k, u in units.items()}
    for plan in rota.values():
        await post(system, "activity.scheduled", plan)
    for k in ("检察院", "法院", "财政局"):  # 卫生局 never logs its Saturday
        await post(system, "activity.logged", activity(
            units[k]["id"], base["id"], activity_id=rota[k]["activity_id"],
            service_types=["cleanup"], theme="city_quality",
            started_at=f"{saturday}T08:30:00+08:00", ended_at=f"{saturday}T11:30:00+08:00"))
    report_of = {"organization_id": "", "summary": "服务小结：清理楼道杂物十二处", "photos": []}
    for unit, when in (("检察院", "2013-10-22T10:00:00+08:00"),
                       ("法院", "2013-11-04T10:00:00+08:00")):
        r = await system.post_event(envelope(
            {**report_of, "activity_id": rota[unit]["activity_id"],
             "organization_id": units[unit]["id"]}, event_type="report.submitted",
            occurred_at=when))
        assert r.status_code == 202, r.text
    seq = r.json()["seq"]

    table = await report(system, "/v1/reports/timeliness", organization_id=office["id"],
                         min_seq=seq)
    rows = {row["key"]: row for row in table["rows"]}
    missing = rows[units["财政局"]["id"]]
    assert (missing["missing"], missing["on_time"], missing["due"]) == (1, 0, 1)
    assert rows[units["法院"]["id"]]["late"] == 1
    assert rows[units["检察院"]["id"]]["on_time"] == 1
    assert rows[units["卫生局"]["id"]]["missed"] == 1
    totals = table["totals"]
    assert (totals["scheduled"], totals["missed"], totals["due"], totals["missing"]) == (
        4, 1, 3, 1)
    assert totals["on_time_rate"] == pytest.approx(1 / 3, abs=1e-3)  # missing counts against
    listed = await report(system, "/v1/reports/timeliness/missing",
                          organization_id=office["id"])
    assert [row["organization_id"] for row in listed["rows"]] == [units["财政局"]["id"]]

    # The deadline sweep publishes report.overdue; the notifier tells the unit, once.
    async def overdue_notices() -> list[dict]:
        got = await report(system, "/v1/notifications", organization_id=units["财政局"]["id"])
        return [n for n in got["items"] if n["kind"] == "report_overdue"]

    deadline = asyncio.get_running_loop().time() + 30
    while not await overdue_notices():
        assert asyncio.get_running_loop().time() < deadline, "no report_overdue notification"
        await asyncio.sleep(0.5)
    system.restart("reporting")
    await system.settled("reporting")  # caught up, a sweep since, its outbox published
    [notice] = await overdue_notices()
    assert notice["subject"] == {"type": "activity", "id": rota["财政局"]["activity_id"]}
    assert "财政局" in notice["message_zh"]
