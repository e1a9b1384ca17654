"""The activity cube (`/v1/reports/summary`) against real streams and a real database (each
back-end): fairs credit each stall's unit, totals count an activity once, turn-outs and distinct
volunteers differ, corrections restate past periods, retractions leave every figure, the scope
narrows rows and totals alike, and the same table comes out as CSV and XLSX."""

from __future__ import annotations

import csv
import io
import uuid
from datetime import datetime
from urllib.parse import quote

import httpx
import openpyxl
import pytest
from fastapi import FastAPI

from services.reporting.models import activities as cube
from services.reporting.models import labels
from services.reporting.scope import Scope
from shared.settings import Settings
from tests.factories import activity
from tests.integration.readmodels import Reporting, admin_app

pytestmark = pytest.mark.asyncio(loop_scope="session")


@pytest.fixture
async def rep(nc, names, engine):
    async with Reporting(nc, names, engine, models=[labels.MODEL, cube.MODEL]) as rep:
        yield rep


async def summary(rep: Reporting, group_by: str = "organization", **scope) -> tuple[list, dict]:
    await rep.caught_up()
    async with rep.engine.connect() as conn:
        return await cube.summary(conn, group_by, Scope(**scope))  # type: ignore[arg-type]


def by_key(rows: list[dict], figure: str) -> dict:
    return {r["key"]: r[figure] for r in rows}


async def test_a_fair_credits_each_stall_to_its_unit_and_counts_once_in_the_totals(rep):
    """Zhenjiang (001): one fair, 51 booths from different units."""
    host = await rep.registry("organization", name="镇江市委统战部", kind="party_organization")
    units = [await rep.registry("organization", name=f"镇江市第{i}单位",
                                kind="government_department") for i in range(50)]
    base = await rep.registry("base", name="润州区宝塔路社区", kind="community")
    stalls = [{"service_type": "haircut" if i % 2 else "free_clinic", "served": 100 + i,
               "organization_id": u["id"], "volunteers": 2} for i, u in enumerate(units)]
    stalls.append({"service_type": "legal_aid", "served": 400})  # the host's own booth
    fair = activity(host["id"], base["id"], stalls=stalls, service_types=[], served=None,
                    volunteers=130, volunteer_hours=520, trainees=0)
    fair.pop("service_types")
    fair.pop("served")
    await rep.event("activity.logged", fair)

    rows, totals = await summary(rep)
    served = sum(s["served"] for s in stalls)
    assert (totals["activities"], totals["served"], totals["volunteers"]) == (1, served, 130)
    assert len(rows) == 51
    credited = by_key(rows, "served")
    assert credited[host["id"]] == 400
    assert all(credited[u["id"]] == 100 + i for i, u in enumerate(units))
    assert set(by_key(rows, "activities").values()) == {1}  # each unit took part in one
    assert by_key(rows, "volunteers")[host["id"]] == 130 - 2 * 50  # the rest of the turn-out
    assert by_key(rows, "volunteer_hours")[host["id"]] == 520  # hours stay with the host

    types, type_totals = await summary(rep, "service_type")
    assert by_key(types, "served") == {
        "free_clinic": sum(s["served"] for s in stalls if s["service_type"] == "free_clinic"),
        "haircut": sum(s["served"] for s in stalls if s["service_type"] == "haircut"),
        "legal_aid": 400}
    assert by_key(types, "label")["haircut"] == "义剪"
    assert type_totals["activities"] == 1 and type_totals["served"] == served

    # Scoped to one stall's unit: its row and totals are its stall alone.
    one = units[7]
    rows, totals = await summary(rep, organization_id=one["id"])
    assert [(r["key"], r["served"]) for r in rows] == [(one["id"], 107)]
    assert (totals["activities"], totals["served"]) == (1, 107)


async def test_every_group_by_totals_the_same_and_three_service_types_count_once(rep):
    org = await rep.registry("organization", name="淄博市民盟", kind="democratic_party")
    base = await rep.registry("base", name="高青县孟家村", kind="village")
    await rep.event("activity.logged", activity(
        org["id"], base["id"], served=90, service_types=["free_clinic", "haircut", "repair"]))
    await rep.event("activity.logged", activity(org["id"], base["id"], served=10,
                                                started_at="2013-11-02T09:00:00+08:00",
                                                ended_at="2013-11-02T11:00:00+08:00"))
    for group_by in ("organization", "base", "team", "region", "theme", "service_type", "month",
                     "pairing", "project", "week", "quarter", "year"):
        rows, totals = await summary(rep, group_by)
        assert (totals["activities"], totals["served"]) == (2, 100), group_by
        assert rows, group_by
    types, _ = await summary(rep, "service_type")
    assert by_key(types, "served") == {"free_clinic": 100, "haircut": 90, "repair": 90,
                                       "donation": 10}
    assert by_key(types, "activities")["free_clinic"] == 2
    months, _ = await summary(rep, "month")
    assert by_key(months, "served") == {"2013-10": 90, "2013-11": 10}
    weeks, _ = await summary(rep, "week")
    assert set(by_key(weeks, "served")) == {"2013-W42", "2013-W44"}
    quarters, _ = await summary(rep, "quarter")
    assert by_key(quarters, "served") == {"2013-Q4": 100}


async def test_turn_outs_and_distinct_volunteers_differ_where_they_should(rep):
    org = await rep.registry("organization", name="淄博市委统战部", kind="party_organization")
    base = await rep.registry("base", name="沂源县东里镇", kind="village")
    people = [f"v-{uuid.uuid4().hex[:8]}" for _ in range(12)]
    days = ["2013-10-06", "2013-10-13", "2013-10-20"]
    ids = []
    for day in days:
        data = activity(org["id"], base["id"], volunteers=10, started_at=f"{day}T09:00:00+08:00",
                        ended_at=f"{day}T12:00:00+08:00")
        ids.append(data["activity_id"])
        await rep.event("activity.logged", data)
    # 10 people each time, drawn from 12: 30 turn-outs, 12 people.
    for i, activity_id in enumerate(ids):
        for person in people[i:i + 10]:
            await rep.event("attendance.recorded", {"activity_id": activity_id,
                                                    "volunteer_id": person, "hours": 3,
                                                    "method": "sign_in"})
    rows, totals = await summary(rep)
    assert (totals["volunteers"], totals["unique_volunteers"]) == (30, 12)
    assert by_key(rows, "unique_volunteers") == {org["id"]: 12}
    weeks, _ = await summary(rep, "week")
    assert sorted(by_key(weeks, "unique_volunteers").values()) == [10, 10, 10]

    # Declined hours are not attendance; the other two activities still had them.
    await rep.event("attendance.declined", {"activity_id": ids[0], "volunteer_id": people[0],
                                            "organization_id": org["id"], "reason": "未到场"})
    _, totals = await summary(rep)
    assert totals["unique_volunteers"] == 11


async def test_a_correction_restates_a_past_month_and_a_retraction_leaves_every_report(rep):
    org = await rep.registry("organization", name="上虞区检察院", kind="government_department")
    base = await rep.registry("base", name="百官街道龙山社区", kind="community")
    data = activity(org["id"], base["id"], served=100, volunteers=8,
                    outputs=[{"indicator": "students_funded", "quantity": 6}],
                    started_at="2013-10-05T09:00:00+08:00", ended_at="2013-10-05T12:00:00+08:00")
    other = activity(org["id"], base["id"], served=5, started_at="2013-10-12T09:00:00+08:00",
                     ended_at="2013-10-12T10:00:00+08:00")
    await rep.event("activity.logged", data)
    await rep.event("activity.logged", other)
    await rep.event("attendance.recorded", {"activity_id": data["activity_id"],
                                            "volunteer_id": "v-1", "hours": 2,
                                            "method": "organiser"})
    months, totals = await summary(rep, "month")
    assert by_key(months, "served") == {"2013-10": 105}
    assert totals["outputs"] == {"students_funded": 6}

    corrected = {**data, "served": 80, "started_at": "2013-09-28T09:00:00+08:00",
                 "ended_at": "2013-09-28T12:00:00+08:00", "reason": "日期和人数录错",
                 "outputs": [{"indicator": "students_funded", "quantity": 4}]}
    await rep.event("activity.corrected", corrected)
    months, totals = await summary(rep, "month")
    assert by_key(months, "served") == {"2013-09": 80, "2013-10": 5}
    assert (totals["served"], totals["outputs"]) == (85, {"students_funded": 4})
    september, totals = await summary(rep, date_from=_d("2013-09-01"), date_to=_d("2013-09-30"))
    assert (totals["activities"], totals["served"], totals["unique_volunteers"]) == (1, 80, 1)

    await rep.event("activity.retracted", {"activity_id": data["activity_id"],
                                           "reason": "重复录入"})
    for group_by in ("organization", "month", "service_type", "base"):
        rows, totals = await summary(rep, group_by)
        assert (totals["activities"], totals["served"], totals["unique_volunteers"],
                totals["outputs"]) == (1, 5, 0, {}), group_by
        assert sum(r["served"] for r in rows) == (10 if group_by == "service_type" else 5)
    # Retracted is for good: a late correction does not bring it back.
    await rep.event("activity.corrected", {**corrected, "served": 999})
    _, totals = await summary(rep)
    assert totals["served"] == 5


async def test_the_scope_covers_a_unit_s_subtree_and_a_region_s_bases(rep):
    city = await rep.registry("region", id=f"r-{uuid.uuid4().hex[:6]}", name="淄博市",
                              level="city")
    county = await rep.registry("region", id=f"r-{uuid.uuid4().hex[:6]}", name="高青县",
                                level="district", parent_code=city["id"])
    parent = await rep.registry("organization", name="淄博市委", kind="party_organization")
    child = await rep.registry("organization", name="淄博市委统战部", kind="party_organization",
                               parent_id=parent["id"])
    outsider = await rep.registry("organization", name="济南市民建", kind="democratic_party")
    inside = await rep.registry("base", name="高青县孟家村", kind="village",
                                region_code=county["id"])
    elsewhere = await rep.registry("base", name="历下区", kind="community")
    for org, base, served in ((parent, inside, 1), (child, inside, 10), (outsider, elsewhere, 100),
                              (child, elsewhere, 1000)):
        await rep.event("activity.logged", activity(org["id"], base["id"], served=served))

    rows, totals = await summary(rep, organization_id=parent["id"])
    assert by_key(rows, "served") == {parent["id"]: 1, child["id"]: 1010}
    assert totals["served"] == 1011
    _, totals = await summary(rep, region=city["id"])
    assert totals["served"] == 11
    rows, totals = await summary(rep, "region", region=city["id"])
    assert by_key(rows, "served") == {county["id"]: 11}
    assert by_key(rows, "label") == {county["id"]: "高青县"}
    await rep.caught_up()
    async with rep.engine.connect() as conn:
        rows, _ = await cube.summary(conn, "region", Scope(), region_level="city")
    assert by_key(rows, "served") == {city["id"]: 11, None: 1100}


def app_for(rep: Reporting) -> FastAPI:
    app = admin_app()
    app.include_router(cube.router)
    app.state.engine = rep.engine
    app.state.projections = rep.projections
    app.state.registry = rep.projections[labels.MODEL.name]
    app.state.settings = Settings()
    return app


async def test_the_summary_exports_as_a_ledger_in_csv_and_xlsx(rep):
    org = await rep.registry("organization", name="=淄博市民盟", kind="democratic_party")
    base = await rep.registry("base", name="高青县孟家村", kind="village")
    await rep.event("activity.logged", activity(
        org["id"], base["id"], served=120, outputs=[{"indicator": "libraries_built",
                                                     "quantity": 12}]))
    seq = await rep.event("activity.logged", activity(org["id"], base["id"], served=30))
    transport = httpx.ASGITransport(app=app_for(rep))
    async with httpx.AsyncClient(transport=transport, base_url="http://reporting") as http:
        r = await http.get("/v1/reports/summary", params={"min_seq": seq, "format": "csv"})
        assert r.status_code == 200, r.text
        assert r.headers["content-type"].startswith("text/csv")
        assert r.content.startswith(b"\xef\xbb\xbf")  # Excel reads UTF-8 with a BOM
        title, *table = list(csv.reader(io.StringIO(r.content.decode("utf-8-sig"))))
        assert title[:3] == ["服务活动台账（按单位）", "期间：全部时间", "范围：全部单位"]
        assert table[0][:4] == ["名称", "编码", "活动(次)", "服务群众(人次)"]
        assert table[0][-1] == "农家书屋/村级图书室(个)"
        assert table[1][0] == "'=淄博市民盟"  # never run as a formula
        assert table[1][2:4] == ["2", "150"]
        assert table[-1][0] == "合计" and table[-1][3] == "150" and table[-1][-1] == "12"

        r = await http.get("/v1/reports/summary", params={"format": "xlsx", "headers": "en",
                                                          "group_by": "month"})
        assert r.status_code == 200, r.text
        sheet = openpyxl.load_workbook(io.BytesIO(r.content)).active
        values = [[c.value for c in row] for row in sheet.iter_rows()]
        assert values[0][0] == "Service activities (by month)"
        assert values[1][:4] == ["Name", "Code", "Activities (times)", "Served (person-times)"]
        assert values[2][1:4] == ["2013-10", 2, 150]
        assert values[-1][0] == "Total" and values[-1][3] == 150

        r = await http.get("/v1/reports/summary", params={"group_by": "galaxy"})
        assert r.status_code == 422 and "group_by" in r.text

        r = await http.get("/v1/reports/summary")
        body = r.json()
        assert body["as_of"] >= seq and body["group_by"] == "organization"
        assert body["rows"][0]["outputs"] == {"libraries_built": 12}


def _d(text: str):
    from datetime import date
    return date.fromisoformat(text)



async def test_a_ledger_names_its_period_and_scope_and_shows_codes_dates_and_units(rep):
    """The 台账 a unit hands upward: title row and file name with the period and the scope,
    registry codes (never UUIDs), real date cells, a unit in every figure's header."""
    parent = await rep.registry("organization", name="淄博市委统战部", code="ZB-TZB",
                                kind="party_organization")
    child = await rep.registry("organization", name="淄博市民盟", code="ZB-MM",
                               kind="democratic_party", parent_id=parent["id"])
    base = await rep.registry("base", name="高青县孟家村", code="GQ-MJ", kind="village")
    await rep.event("activity.logged", activity(child["id"], base["id"], served=40,
                                                started_at="2024-03-05T09:00:00+08:00",
                                                ended_at="2024-03-05T11:00:00+08:00"))
    await rep.event("activity.logged", activity(child["id"], base["id"], served=7,
                                                started_at="2024-04-02T09:00:00+08:00",
                                                ended_at="2024-04-02T11:00:00+08:00"))
    seq = await rep.event("activity.logged", activity(
        parent["id"], base["id"], served=60, started_at="2024-03-20T09:00:00+08:00",
        ended_at="2024-03-20T11:00:00+08:00"))
    march = {"from": "2024-03-01", "to": "2024-03-31", "organization_id": parent["id"],
             "min_seq": seq}
    transport = httpx.ASGITransport(app=app_for(rep))
    async with httpx.AsyncClient(transport=transport, base_url="http://reporting") as http:
        r = await http.get("/v1/reports/summary", params={**march, "format": "xlsx"})
        assert r.status_code == 200, r.text
        disposition = r.headers["content-disposition"]
        assert "filename*=UTF-8''" + quote("summary-organization_2024-03_淄博市委统战部含下级单位"
                                           ".xlsx") in disposition
        assert 'filename="summary-organization_2024-03_' in disposition  # an ASCII fallback
        book = openpyxl.load_workbook(io.BytesIO(r.content))
        sheet = book.active
        values = [[c.value for c in row] for row in sheet.iter_rows()]
        assert values[0][:3] == ["服务活动台账（按单位）", "期间：2024年3月",
                                 "范围：淄博市委统战部（含下级单位）"]
        header = values[1]
        assert header[:2] == ["名称", "编码"]
        for figure in header[2:]:  # every figure says its unit
            assert figure.endswith(("(次)", "(人次)", "(人)", "(小时)", "(元)")), figure
        assert {tuple(v[:3]) for v in values[2:-1]} == {("淄博市委统战部", "ZB-TZB", 1),
                                                        ("淄博市民盟", "ZB-MM", 1)}
        uuids = {parent["id"], child["id"], base["id"]}
        assert not uuids & {v for row in values for v in row}
        assert values[-1][0] == "合计" and values[-1][3] == 100
        assert sheet.column_dimensions["A"].width >= 10
        assert sheet.column_dimensions["E"].width > len("志愿者参与(人次)")
        assert sheet.cell(3, 9).number_format == "#,##0.00"  # 元

        r = await http.get("/v1/reports/activities", params={**march, "format": "xlsx",
                                                             "headers": "en"})
        assert r.status_code == 200, r.text
        assert "activities_2024-03_" in r.headers["content-disposition"]
        sheet = openpyxl.load_workbook(io.BytesIO(r.content)).active
        assert sheet.cell(1, 2).value == "Period: March 2024"
        assert sheet.cell(2, 1).value == "Date"
        days = [sheet.cell(row, 1) for row in (3, 4)]
        assert [c.value for c in days] == [datetime(2024, 3, 20), datetime(2024, 3, 5)]
        assert all(c.is_date and c.number_format == "yyyy-mm-dd" for c in days)

        odd = await rep.registry("base", name="孟家村\x0b西", kind="village")  # a pasted tab
        r = await http.get("/v1/reports/summary", params={
            "base_id": odd["id"], "format": "xlsx", "min_seq": seq})
        assert r.status_code == 200
        title = openpyxl.load_workbook(io.BytesIO(r.content)).active.cell(1, 3).value
        assert title == "范围：服务基地 孟家村\ufffd西"

        r = await http.get("/v1/reports/summary", params={
            "from": "2024-01-01", "to": "2024-03-31", "format": "csv", "headers": "en"})
        title, header = list(csv.reader(io.StringIO(r.content.decode("utf-8-sig"))))[:2]
        assert title[:3] == ["Service activities (by unit)", "Period: Q1 2024",
                             "Scope: all units"]
        assert title[3].startswith("as of event ")
        assert header[:3] == ["Name", "Code", "Activities (times)"]
        assert "summary-organization_2024-Q1.csv" in r.headers["content-disposition"]


async def test_a_city_level_base_shows_under_its_city_and_drills(rep):
    """Zhenjiang's fair at 鉴园广场, a base registered at the city itself: by district it is
    the city's own row (镇江市（本级）), not "not filled in"; its key drills (the city's bases,
    then the base); each breakdown's totals are its rows' sums, from the rollups and from the
    cube's rows (a period cutting a month) alike."""
    city = await rep.registry("region", id=f"r-{uuid.uuid4().hex[:6]}", name="镇江市",
                              level="city")
    district = await rep.registry("region", id=f"r-{uuid.uuid4().hex[:6]}", name="润州区",
                                  level="district", parent_code=city["id"])
    org = await rep.registry("organization", name="镇江市级机关工委", kind="party_organization")
    square = await rep.registry("base", name="鉴园广场", kind="other", region_code=city["id"])
    community = await rep.registry("base", name="西津渡社区", kind="community",
                                   region_code=district["id"])
    await rep.event("activity.logged", activity(
        org["id"], square["id"], served=9_860, started_at="2021-06-18T08:30:00+08:00",
        ended_at="2021-06-18T16:30:00+08:00",
        outputs=[{"indicator": "problems_solved", "quantity": 4}]))
    await rep.event("activity.logged", activity(
        org["id"], community["id"], served=60, started_at="2021-06-10T09:00:00+08:00",
        ended_at="2021-06-10T11:00:00+08:00"))
    await rep.caught_up()
    figures = ("activities", "served", "volunteers", "volunteer_hours", "trainees",
               "donation_value_cny")
    for period in ({}, {"date_from": datetime(2021, 6, 2).date()}):  # rollups; cube rows
        async with rep.engine.connect() as conn:
            top, top_totals = await cube.summary(conn, "region", Scope(**period),
                                                 region_level="city")
            rows, totals = await cube.summary(conn, "region", Scope(region=city["id"], **period),
                                              region_level="district")
            bases, base_totals = await cube.summary(conn, "base",
                                                    Scope(region=city["id"], **period))
            # The city's own row drills to the bases registered at the city itself.
            own, own_totals = await cube.summary(
                conn, "base", Scope(region=city["id"], region_exact=True, **period))
        assert by_key(top, "served") == {city["id"]: 9_920}, period
        assert by_key(top, "label") == {city["id"]: "镇江市"}
        assert by_key(rows, "served") == {city["id"]: 9_860, district["id"]: 60}, period
        assert by_key(rows, "label") == {city["id"]: "镇江市（本级）", district["id"]: "润州区"}
        assert None not in by_key(rows, "served")
        assert by_key(rows, "outputs")[city["id"]] == {"problems_solved": 4}
        assert by_key(own, "served") == {square["id"]: 9_860}, period
        assert own_totals["served"] == by_key(rows, "served")[city["id"]]
        for table, sums in ((top, top_totals), (rows, totals), (bases, base_totals),
                            (own, own_totals)):
            for figure in figures:
                assert round(sum(r[figure] for r in table), 2) == sums[figure], (figure, period)
            assert {k: sum(r["outputs"].get(k, 0) for r in table)
                    for k in sums["outputs"]} == sums["outputs"]
        assert by_key(bases, "served") == {square["id"]: 9_860, community["id"]: 60}
    # Over HTTP, the ledger of the city's own bases says so in its title.
    transport = httpx.ASGITransport(app=app_for(rep))
    async with httpx.AsyncClient(transport=transport, base_url="http://r") as client:
        r = await client.get("/v1/reports/summary", params={
            "group_by": "base", "region": city["id"], "region_exact": "true", "format": "csv"})
        plain = (await client.get("/v1/reports/summary", params={
            "group_by": "base", "region": city["id"]})).json()
    title, header, *table = list(csv.reader(io.StringIO(r.content.decode("utf-8-sig"))))
    assert title[2] == "范围：区域 镇江市（本级）"
    assert [row[0] for row in table] == ["鉴园广场", "合计"]
    assert len(plain["rows"]) == 2
