"""The year-end assessment (年终考核, seed 004's 先进集体 / 先进个人) over HTTP, against real
streams and a real database (each back-end): units scored from the activity cube, timeliness
and needs models under rules version 1 (the default) and a posted version 2, individuals by
confirmed hours with star levels, a volunteer moved to another unit (转移接续) ranked once with
every hour (scoped to the old unit: only the hours served there, under it); the rules'
validation; version 1 from the migration."""

from __future__ import annotations

import asyncio
import io
from datetime import UTC, datetime

import httpx
import openpyxl
import pytest
from alembic import command
from sqlalchemy import select

from services.reporting.models import (
    activities,
    assessment,
    labels,
    memberships,
    needs,
    timeliness,
    volunteers,
)
from shared.db import alembic_config
from shared.http import install_error_handlers
from tests.factories import activity, need, schedule
from tests.integration.conftest import create_schema, db_for, drop_schema
from tests.integration.readmodels import Reporting, admin_app

pytestmark = pytest.mark.asyncio(loop_scope="session")

MODELS = [labels.MODEL, activities.MODEL, timeliness.MODEL, needs.MODEL, volunteers.MODEL,
          assessment.MODEL]


def client_for(rep: Reporting) -> httpx.AsyncClient:
    app = admin_app()
    install_error_handlers(app)
    app.include_router(assessment.router)
    app.state.projections = rep.projections
    app.state.registry = rep.projections[labels.MODEL.name]
    app.state.settings = rep.settings
    app.state.engine = rep.engine
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test")


def at(day: str) -> datetime:
    return datetime.fromisoformat(f"{day}T10:00:00+08:00").astimezone(UTC)


async def shangyu_year(rep: Reporting) -> dict:
    """Seed 004's 上虞 Saturday service: 市卫健委 serves much and reports on time but misses a
    rota entry; 市教育局 funds students and resolves a need but owes a report; 市司法局 only
    served the year before."""
    for org_id, name in (("org-a", "上虞市卫健委"), ("org-b", "上虞市教育局"),
                         ("org-c", "上虞市司法局")):
        await rep.registry("organization", id=org_id, name=name, kind="government_department")
    base = (await rep.registry("base", name="金桂苑社区", kind="community"))["id"]
    await rep.registry("volunteer", id="v-zhang", name="张伟", organization_id="org-a")
    await rep.registry("volunteer", id="v-li", name="李娜", organization_id="org-b")
    await rep.registry("volunteer", id="v-wang", name="王芳", organization_id="org-b")

    a1 = activity("org-a", base, served=600, volunteer_hours=50)
    a2 = activity("org-a", base, served=600, volunteer_hours=400, title="三下乡",
                  started_at="2013-07-01T08:00:00+08:00", ended_at="2013-07-06T18:00:00+08:00")
    a3 = activity("org-a", base, served=5000, volunteer_hours=900)  # retracted
    b1 = activity("org-b", base, served=100, volunteer_hours=50,
                  outputs=[{"indicator": "students_funded", "quantity": 30}])
    c1 = activity("org-c", base, served=900, started_at="2012-12-01T09:00:00+08:00",
                  ended_at="2012-12-01T12:00:00+08:00")
    for data in (a1, a2, a3, b1, c1):
        await rep.event("activity.logged", data)
    await rep.event("activity.retracted", {"activity_id": a3["activity_id"], "reason": "重复"})
    for data, day in ((a1, "2013-10-21"), (a2, "2013-07-08")):  # each within its 7 days
        await rep.event("report.submitted", {
            "activity_id": data["activity_id"], "organization_id": "org-a",
            "summary": "服务旗帜已归还，小结附后"}, occurred_at=at(day))
    await rep.event("report.overdue", {"activity_id": b1["activity_id"],
                                       "organization_id": "org-b",
                                       "due_at": "2013-10-27T12:00:00+08:00"})
    await rep.event("activity.scheduled", schedule("org-a", base, planned_on="2013-10-05"))

    n1, n2 = need(base), need(base, title="助学结对")
    for n in (n1, n2):
        await rep.event("need.submitted", n, occurred_at=at("2013-05-01"))
        await rep.event("need.claimed", {"need_id": n["need_id"], "organization_id": "org-b"},
                        occurred_at=at("2013-05-02"))
    await rep.event("need.resolved", {"need_id": n1["need_id"], "organization_id": "org-b"},
                    occurred_at=at("2013-05-10"))

    for activity_id, volunteer, hours, method in (
            (a1["activity_id"], "v-zhang", 3, "organiser"),
            (a2["activity_id"], "v-zhang", 120, "sign_in"),
            (a3["activity_id"], "v-zhang", 500, "organiser"),  # retracted: counts nowhere
            (b1["activity_id"], "v-li", 3, "self"),
            (b1["activity_id"], "v-wang", 3, "self")):
        await rep.event("attendance.recorded", {"activity_id": activity_id,
                                                "volunteer_id": volunteer, "hours": hours,
                                                "method": method})
    await rep.event("attendance.confirmed", {"activity_id": b1["activity_id"],
                                             "volunteer_id": "v-li", "organization_id": "org-b"})
    await rep.caught_up()
    return {"base": base}


def by_figure(row: dict) -> dict:
    return {c["figure"]: (c["value"], c["points"]) for c in row["components"]}


def assert_adds_up(rows: list[dict]) -> None:
    for row in rows:
        assert sum(c["points"] for c in row["components"]) == pytest.approx(row["score"])


async def test_units_and_individuals_ranked_under_each_rules_version(nc, names, engine):
    async with Reporting(nc, names, engine, models=MODELS) as rep:
        await shangyu_year(rep)
        async with client_for(rep) as http:
            res = await http.get("/v1/reports/assessment", params={
                "year": 2013, "min_seq": rep.last_seq["events"]})
            assert res.status_code == 200, res.text
            v1 = res.json()
            assert v1["rules_version"] == 1 and v1["year"] == 2013
            assert v1["as_of"] == rep.last_seq["events"]
            assert [(r["rank"], r["label"]) for r in v1["rows"]] == [
                (1, "上虞市卫健委"), (2, "上虞市教育局")]  # 司法局 served only in 2012
            a, b = v1["rows"]
            assert by_figure(a) == {
                "activities": (2, 1.67), "served": (1200, 20.0), "volunteer_hours": (450, 13.5),
                "on_time_rate": (1.0, 20.0), "needs_resolved": (0, 0.0),
                "missed": (1, 7.5)}
            assert a["score"] == 62.67
            assert by_figure(b) == {
                "activities": (1, 0.83), "served": (100, 2.0), "volunteer_hours": (50, 1.5),
                "on_time_rate": (0.0, 0.0), "needs_resolved": (1, 1.5),
                "missed": (0, 10.0)}
            assert b["score"] == 15.83
            assert {k: a["components"][0][k] for k in ("figure", "weight", "target")} == {
                "figure": "activities", "weight": 20.0, "target": 24.0}
            assert_adds_up(v1["rows"])
            assert [(p["rank"], p["name"], p["hours_confirmed"], p["star_level"])
                    for p in v1["individuals"]] == [(1, "张伟", 123.0, 1), (2, "李娜", 3.0, 0)]

            posted = await http.post("/v1/assessment/rules", json={
                "note": "突出助学与需求办结", "components": [
                    {"figure": "outputs.students_funded", "weight": 60, "target": 20},
                    {"figure": "needs_resolved", "weight": 30, "target": 1},
                    {"figure": "missed", "weight": 10, "target": 2, "invert": True}]})
            assert posted.status_code == 201, posted.text
            assert posted.json()["version"] == 2
            assert posted.json()["note"] == "突出助学与需求办结"

            v2 = (await http.get("/v1/reports/assessment", params={"year": 2013})).json()
            assert v2["rules_version"] == 2
            assert [(r["label"], r["score"]) for r in v2["rows"]] == [
                ("上虞市教育局", 100.0), ("上虞市卫健委", 5.0)]
            assert by_figure(v2["rows"][1])["missed"] == (1, 5.0)
            assert_adds_up(v2["rows"])

            again = (await http.get("/v1/reports/assessment", params={
                "year": 2013, "rules_version": 1})).json()
            assert again["rules_version"] == 1
            assert [r["score"] for r in again["rows"]] == [62.67, 15.83]

            earlier = (await http.get("/v1/reports/assessment", params={"year": 2012})).json()
            assert [r["label"] for r in earlier["rows"]] == ["上虞市司法局"]
            assert earlier["individuals"] == []

            rules = (await http.get("/v1/assessment/rules")).json()
            assert [v["version"] for v in rules["items"]] == [1, 2]
            assert rules["current"] == 2 and rules["total"] == 2
            # When each was kept, with its UTC offset (SQLite keeps none: read back as UTC).
            assert all(datetime.fromisoformat(v["created_at"]).utcoffset() is not None
                       for v in rules["items"])
            assert rules["items"][0]["rules"]["components"] == [
                c.model_dump() for c in assessment.DEFAULT_RULES.components]

            missing = await http.get("/v1/reports/assessment", params={
                "year": 2013, "rules_version": 7})
            assert missing.status_code == 404
            assert missing.json()["errors"][0]["field"] == "rules_version"

            sheet = await http.get("/v1/reports/assessment", params={
                "year": 2013, "format": "xlsx"})
            assert sheet.status_code == 200
            book = openpyxl.load_workbook(io.BytesIO(sheet.content), read_only=True)
            units, people = (list(ws.iter_rows(values_only=True)) for ws in book.worksheets)
            assert units[1][:3] == ("名次", "单位", "编码") and units[1][-1] == "总分"
            assert "资助学生得分" in units[1]
            assert units[2][1] == "上虞市教育局" and units[2][-1] == 100
            assert people[1][:2] == ("名次", "姓名") and people[2][1] == "张伟"


async def test_a_moved_volunteer_is_ranked_once_with_every_hour(nc, names, engine):
    """刘春梅 serves 5 h with 区民宗局 (A) and moves to 区教育局 (B) on 1 May 2024, where she
    serves 4 h more; 王建国 serves 6 h with A. Over the programme (and under 上虞区委统战部,
    above both) she is one person with 9 h, B's (she is B's now); A's ranking has her 5 h
    under A, and never says where she went."""
    async with Reporting(nc, names, engine, models=[memberships.MODEL, *MODELS]) as rep:
        await rep.registry("organization", id="sy", name="上虞区委统战部",
                           kind="party_organization")
        for unit, name in (("A", "区民宗局"), ("B", "区教育局")):
            await rep.registry("organization", id=unit, name=name, parent_id="sy",
                               kind="government_department")
        await rep.registry("volunteer", id="v1", name="刘春梅", organization_id="A",
                           phone="13800138000", updated_at="2024-01-02T08:00:00+00:00")
        await rep.registry("volunteer", id="v2", name="王建国", organization_id="A",
                           updated_at="2024-01-02T08:00:00+00:00")
        await rep.registry("volunteer", "updated", id="v1", name="刘春梅", organization_id="B",
                           organization_since="2024-05-01", phone="13800138000",
                           updated_at="2024-05-01T02:00:00+00:00")
        # No wait for the move here: a report asked with `min_seq` waits until every model of
        # the registry's stream (memberships too, not only labels) has applied all it holds.
        for unit, day, attended in (("A", "2024-03-10", (("v1", 3), ("v2", 6))),
                                    ("A", "2024-04-05", (("v1", 2),)),
                                    ("B", "2024-07-02", (("v1", 4),))):
            act = activity(unit, "b1", started_at=f"{day}T09:00:00+08:00",
                           ended_at=f"{day}T13:00:00+08:00")
            await rep.event("activity.logged", act)
            for volunteer, hours in attended:
                await rep.event("attendance.recorded", {
                    "activity_id": act["activity_id"], "volunteer_id": volunteer,
                    "hours": hours, "method": "organiser"})
        async with client_for(rep) as http:
            seen = {}
            for key, scope in (("all", {}), ("sy", {"organization_id": "sy"}),
                               ("A", {"organization_id": "A"}),
                               ("B", {"organization_id": "B"})):
                res = await http.get("/v1/reports/assessment", params={
                    "year": 2024, "min_seq": rep.last_seq["events"], **scope})
                assert res.status_code == 200, res.text
                seen[key] = res.json()["individuals"]
            sheet = await http.get("/v1/reports/assessment", params={
                "year": 2024, "format": "xlsx"})

    def people(rows: list[dict]) -> list[tuple]:
        return [(p["rank"], p["volunteer_id"], p["name"], p["organization_id"],
                 p["organization_name"], p["hours_confirmed"]) for p in rows]

    assert people(seen["all"]) == [(1, "v1", "刘春梅", "B", "区教育局", 9.0),
                                   (2, "v2", "王建国", "A", "区民宗局", 6.0)]
    assert seen["sy"] == seen["all"]  # both units are under 上虞区委统战部
    assert people(seen["A"]) == [(1, "v2", "王建国", "A", "区民宗局", 6.0),
                                 (2, "v1", "刘春梅", "A", "区民宗局", 5.0)]
    assert people(seen["B"]) == [(1, "v1", "刘春梅", "B", "区教育局", 4.0)]
    # What a row shows and nothing more: no phone, no other unit.
    assert set(seen["all"][0]) == {"rank", "volunteer_id", "name", "organization_id",
                                   "organization_name", "hours_confirmed", "star_level"}
    assert "区教育局" not in str(seen["A"]) and "13800138000" not in str(seen)
    book = openpyxl.load_workbook(io.BytesIO(sheet.content), read_only=True)
    rows = list(book.worksheets[1].iter_rows(values_only=True))
    assert [r[1:] for r in rows[2:]] == [("刘春梅", "v1", "区教育局", 9, 0),
                                         ("王建国", "v2", "区民宗局", 6, 0)]


@pytest.mark.parametrize(("body", "field"), [
    ({"components": [{"figure": "smiles", "weight": 1, "target": 1}]}, "components[0].figure"),
    ({"components": [{"figure": "served", "weight": 1, "target": 1},
                     {"figure": "served", "weight": -5, "target": 1}]}, "components[1].weight"),
    ({"components": []}, "components"),
    ({"note": "空"}, "components"),
    ({"components": [{"figure": "served", "weight": 1, "target": 0}]}, "components[0].target"),
    ({"components": [{"figure": "served", "weight": 1, "target": 1},
                      {"figure": "served", "weight": 2, "target": 1}]}, "components"),
])
async def test_rules_are_validated_naming_the_field(nc, names, engine, body, field):
    async with Reporting(nc, names, engine, models=[labels.MODEL]) as rep:
        async with client_for(rep) as http:
            res = await http.post("/v1/assessment/rules", json=body)
            assert res.status_code == 422, res.text
            assert field in [e["field"] for e in res.json()["errors"]]
            # Nothing kept: version 1 (the default) is still the only one.
            rules = (await http.get("/v1/assessment/rules")).json()
            assert [v["version"] for v in rules["items"]] == [1]


async def test_the_migration_brings_version_1(backend, tag):
    db = db_for(backend, "reporting", tag)
    (backend.root / tag).mkdir(parents=True, exist_ok=True)
    await create_schema(db)
    try:
        cfg = alembic_config("reporting", db.url, db.schema)
        await asyncio.to_thread(command.upgrade, cfg, "0009_assessment")
        engine = db.engine()
        async with engine.connect() as conn:
            version = await assessment.find_version(conn)
            count = len((await conn.execute(select(assessment.rules_table))).all())
        await engine.dispose()
        assert count == 1 and version is not None and version.created_at is not None
        assert (version.version, version.rules) == (1, assessment.DEFAULT_RULES)
    finally:
        await drop_schema(db)
