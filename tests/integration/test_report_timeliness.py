"""Report timeliness (服务旗帜接传) against a real stream and a real database (each back-end):
seed 004's Saturday rota in Shangyu — units scheduled, some log and report in time, one late, one
never reports, one never logs; a correction moves a deadline, a retraction removes an activity
from every count; scope by unit subtree and period; the overdue list; the spreadsheet."""

from __future__ import annotations

import csv
import io
from datetime import datetime

import httpx
import pytest

from services.reporting import reports
from services.reporting.models import labels, timeliness
from services.reporting.scope import Scope
from shared.settings import Settings
from tests.factories import activity, schedule
from tests.integration.readmodels import Reporting, admin_app

pytestmark = pytest.mark.asyncio(loop_scope="session")

SATURDAY = "2013-10-19"
AT = datetime.fromisoformat("2013-11-05T12:00:00+08:00")


def at(text: str) -> datetime:
    return datetime.fromisoformat(text)


def report(activity_id: str, org: str) -> dict:
    return {"activity_id": activity_id, "organization_id": org,
            "summary": "服务旗帜接传：本周六义诊小结", "photos": []}


def figures(row: dict) -> tuple:
    return tuple(row[k] for k in ("scheduled", "missed", "on_time", "late", "missing",
                                  "pending", "due", "on_time_rate"))


async def shangyu(rep: Reporting) -> dict[str, str]:
    """The units, a base, and the Saturday rota with what became of each entry. Returns the
    ids by name; leaves unit R's activity logged, unreported and not yet retracted."""
    await rep.registry("organization", id="sy", name="上虞区委统战部", kind="party_organization")
    for code, name in [("A", "区民宗局"), ("B", "区工商联"), ("C", "民革上虞支部"),
                       ("D", "区侨联"), ("E", "区台办"), ("R", "区知联会")]:
        await rep.registry("organization", id=code, name=name, kind="government_department",
                           parent_id="sy")
    await rep.registry("organization", id="X", name="虞舜集团", kind="enterprise")
    await rep.registry("base", id="b1", name="百官街道龙山社区", kind="community")

    ids: dict[str, str] = {}
    for unit in "ABCDER":
        rota = schedule(unit, "b1", planned_on=SATURDAY)
        ids[unit] = rota["activity_id"]
        await rep.event("activity.scheduled", rota)

    def done(unit: str, **changes) -> dict:
        return activity(unit, "b1", **{"activity_id": ids[unit],
                                       "started_at": f"{SATURDAY}T09:00:00+08:00",
                                       "ended_at": f"{SATURDAY}T12:00:00+08:00", **changes})

    # Due a week after the end: 2013-10-26 12:00 local.
    for unit in "ABCER":
        await rep.event("activity.logged", done(unit))
    await rep.event("report.submitted", report(ids["A"], "A"), at("2013-10-22T20:00:00+08:00"))
    await rep.event("report.submitted", report(ids["B"], "B"), at("2013-10-28T09:00:00+08:00"))
    # A second report adds to the first; the first counts.
    await rep.event("report.submitted", report(ids["A"], "A"), at("2013-11-01T09:00:00+08:00"))
    # E's activity really ended a day later: corrected before its report, the deadline moves
    # (10-27 18:00), so a report on 10-27 morning is on time, not late.
    await rep.event("activity.corrected", {
        **done("E", started_at="2013-10-20T09:00:00+08:00",
               ended_at="2013-10-20T18:00:00+08:00"), "reason": "日期填错"})
    await rep.event("report.submitted", report(ids["E"], "E"), at("2013-10-27T10:00:00+08:00"))
    # B's deadline is fixed once its report is in (as the events service holds it): a later
    # correction of the end does not turn a late report into an on-time one.
    await rep.event("activity.corrected", {
        **done("B", started_at="2013-10-21T09:00:00+08:00",
               ended_at="2013-10-21T12:00:00+08:00"), "reason": "日期更正"})
    # A unit outside the district committee's subtree, in November: still pending.
    x = activity("X", "b1", started_at="2013-11-02T09:00:00+08:00",
                 ended_at="2013-11-02T11:00:00+08:00")
    ids["X"] = x["activity_id"]
    await rep.event("activity.logged", x)
    return ids


async def test_shangyu_rota_on_time_late_missing_missed(nc, names, engine):
    async with Reporting(nc, names, engine, models=[labels.MODEL, timeliness.MODEL]) as rep:
        ids = await shangyu(rep)
        await rep.caught_up()
        async with engine.connect() as conn:
            rows, totals = await timeliness.timeliness(conn, Scope(), at=AT)
        by = {r["key"]: r for r in rows}
        assert by["R"]["missing"] == 1  # before its retraction, R owes a report

        await rep.event("activity.retracted", {"activity_id": ids["R"], "reason": "重复录入"})
        await rep.caught_up()
        async with engine.connect() as conn:
            rows, totals = await timeliness.timeliness(conn, Scope(), at=AT)
            in_district, district = await timeliness.timeliness(
                conn, Scope(organization_id="sy"), at=AT)
            november, _ = await timeliness.timeliness(
                conn, Scope(date_from=at("2013-11-01T00:00:00").date()), at=AT)
            months, month_totals = await timeliness.timeliness(conn, Scope(), "month", at=AT)
            units = await timeliness.unit_figures(conn, Scope(), at=AT)
            overdue = await timeliness.missing(conn, Scope(), at=AT)

    #                     scheduled missed on_time late missing pending due rate
    assert {r["key"]: figures(r) for r in rows} == {
        "A": (1, 0, 1, 0, 0, 0, 1, 1.0),
        "B": (1, 0, 0, 1, 0, 0, 1, 0.0),
        "C": (1, 0, 0, 0, 1, 0, 1, 0.0),   # never reported: counts against the rate
        "D": (1, 1, 0, 0, 0, 0, 0, None),  # never logged: missed, owes no report
        "E": (1, 0, 1, 0, 0, 0, 1, 1.0),
        "X": (0, 0, 0, 0, 0, 1, 0, None),
    }  # R, retracted, counts nowhere: not scheduled, not missing
    assert {r["key"]: r["label"] for r in rows}["C"] == "民革上虞支部"
    # The rate from the totals (2 of 4), never an average of the rows' rates.
    assert figures(totals) == (5, 1, 2, 1, 1, 1, 4, 0.5)

    assert {r["key"] for r in in_district} == set("ABCDE")
    assert figures(district) == (5, 1, 2, 1, 1, 0, 4, 0.5)
    assert [(r["key"], figures(r)) for r in november] == [("X", (0, 0, 0, 0, 0, 1, 0, None))]

    assert {r["key"]: figures(r) for r in months} == {
        "2013-10": (5, 1, 2, 1, 1, 0, 4, 0.5), "2013-11": (0, 0, 0, 0, 0, 1, 0, None)}
    assert figures(month_totals) == figures(totals)

    assert units["D"] == {"on_time": 0.0, "late": 0.0, "missing": 0.0, "due": 0.0,
                          "on_time_rate": 0.0, "scheduled": 1.0, "missed": 1.0}
    assert units["A"]["on_time_rate"] == 1.0 and units["C"]["missing"] == 1.0

    # The overdue notice names C only (R retracted, D never logged, X not yet due).
    assert [(o["organization_id"], o["organization_name"], o["base_name"], o["due_at"],
             o["days_overdue"]) for o in overdue] == [
        ("C", "民革上虞支部", "百官街道龙山社区", "2013-10-26T12:00:00+08:00", 10.0)]
    assert overdue[0]["activity_id"] == ids["C"]


async def test_at_decides_what_is_due_and_what_was_missed(nc, names, engine):
    async with Reporting(nc, names, engine, models=[labels.MODEL, timeliness.MODEL]) as rep:
        await shangyu(rep)
        await rep.caught_up()
        async with engine.connect() as conn:
            before, before_totals = await timeliness.timeliness(
                conn, Scope(), at=at("2013-10-26T11:59:00+08:00"))
            # Rota entries have until the end of planned_on + 7 days to be logged.
            grace = {r["key"]: r for r in (await timeliness.timeliness(
                conn, Scope(), at=at("2013-10-26T23:59:00+08:00")))[0]}
            after = {r["key"]: r for r in (await timeliness.timeliness(
                conn, Scope(), at=at("2013-10-27T00:01:00+08:00")))[0]}
            naive_local = {r["key"]: r for r in (await timeliness.timeliness(
                conn, Scope(), at=datetime(2013, 10, 27, 0, 1)))[0]}
            none_yet = await timeliness.missing(conn, Scope(),
                                                at=at("2013-10-26T11:59:00+08:00"))
    by = {r["key"]: r for r in before}
    # Before the deadline, C's and R's reports are pending, not missing; reports already in
    # count as they were judged.
    assert (by["C"]["pending"], by["C"]["missing"], by["C"]["due"]) == (1, 0, 0)
    assert (by["A"]["on_time"], by["B"]["late"]) == (1, 1)
    assert before_totals["missing"] == 0 and before_totals["pending"] == 3  # C, R, X
    assert none_yet == []
    assert grace["D"]["missed"] == 0 and grace["C"]["missing"] == 1
    assert after["D"]["missed"] == 1
    assert naive_local["D"]["missed"] == 1  # a moment without an offset is local time


async def test_overdue_notice_fixes_the_deadline(nc, names, engine):
    """Once the events service has named a report overdue, a correction of the activity's end
    no longer moves its deadline: the notice and the report agree."""
    async with Reporting(nc, names, engine, models=[labels.MODEL, timeliness.MODEL]) as rep:
        early = activity("F", "b1", started_at="2013-10-19T09:00:00+08:00",
                         ended_at="2013-10-19T12:00:00+08:00")
        late = activity("G", "b1", started_at="2013-10-19T09:00:00+08:00",
                        ended_at="2013-10-19T12:00:00+08:00")
        for a in (early, late):
            await rep.event("activity.logged", a)
        await rep.event("report.overdue", {"activity_id": early["activity_id"],
                                           "organization_id": "F",
                                           "due_at": "2013-10-26T12:00:00+08:00"})
        for a in (early, late):
            await rep.event("activity.corrected", {
                **a, "started_at": "2013-11-01T09:00:00+08:00",
                "ended_at": "2013-11-01T12:00:00+08:00", "reason": "日期更正"})
        await rep.caught_up()
        async with engine.connect() as conn:
            rows, _ = await timeliness.timeliness(conn, Scope(), at=AT)
    by = {r["key"]: r for r in rows}
    assert (by["F"]["missing"], by["F"]["pending"]) == (1, 0)  # due 10-26, as noticed
    assert (by["G"]["missing"], by["G"]["pending"]) == (0, 1)  # due 11-08, moved


async def test_spreadsheets_have_chinese_headers_and_totals(nc, names, engine):
    async with Reporting(nc, names, engine, models=[labels.MODEL, timeliness.MODEL]) as rep:
        await shangyu(rep)
        await rep.caught_up()

    async def sheet(build) -> list[list[str]]:
        chunks = [c async for c in reports._csv(engine, build,
                                                (timeliness.NAME,), "zh")]
        return list(csv.reader(io.StringIO(b"".join(chunks).decode("utf-8-sig"))))[1:]

    table = await sheet(lambda conn: timeliness.timeliness_report(
        conn, Scope(), "organization", AT, "Asia/Shanghai"))
    assert table[0] == ["名称", "编码", "排班活动(次)", "排班未开展(次)", "应报送(次)", "按时报送",
                        "逾期报送", "逾期未报送", "待报送(未到期)", "按时报送率"]
    assert table[-1][0] == "合计"
    assert table[-1][2:] == ["6", "1", "5", "2", "1", "2", "1", "0.4"]  # R not yet retracted
    assert ["区民宗局", "A", "1", "0", "1", "1", "0", "0", "0", "1.0"] in table

    notice = await sheet(lambda conn: timeliness.missing_report(conn, Scope(), AT,
                                                                "Asia/Shanghai"))
    assert notice[0][:3] == ["单位", "单位编码", "活动"]
    assert sorted(row[1] for row in notice[1:]) == ["C", "R"]

    # Over HTTP: the query parameters, English headers, the JSON shape.
    app = admin_app()
    app.include_router(timeliness.router)
    app.state.engine = engine
    app.state.settings = Settings()
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                 base_url="http://reporting") as client:
        answer = (await client.get("/v1/reports/timeliness", params={
            "at": "2013-11-05T12:00:00+08:00", "organization_id": "sy"})).json()
        english = await client.get("/v1/reports/timeliness/missing", params={
            "at": "2013-11-05T12:00:00+08:00", "format": "csv", "headers": "en"})
        wrong = await client.get("/v1/reports/timeliness", params={"group_by": "base"})
    assert answer["totals"]["due"] == 5 and answer["totals"]["on_time_rate"] == 0.4
    assert answer["group_by"] == "organization" and "as_of" in answer
    assert english.headers["content-type"].startswith("text/csv")
    assert english.text.lstrip("\ufeff").splitlines()[1].startswith("Unit,Unit code,Activity,")
    assert wrong.status_code == 422
