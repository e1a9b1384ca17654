"""The pairing fulfilment read model (结对共建) against real streams and a real database (each
back-end): a Chizhou pairing with three projects, activities fulfilling two of them, a
correction moving an activity to the third (both restated), a retraction removing one, needs
under the pairing by state, the list of pairings in scope, 404 and the spreadsheet export."""

from __future__ import annotations

import csv
import io
import uuid
from datetime import date

import httpx
import pytest
from fastapi import FastAPI

from services.reporting.models import labels, pairings
from services.reporting.scope import Scope
from shared.settings import Settings
from tests.factories import activity, need
from tests.integration.readmodels import Reporting, admin_app

pytestmark = pytest.mark.asyncio(loop_scope="session")


def app_for(rep: Reporting) -> FastAPI:
    app = admin_app()
    app.include_router(pairings.router)
    app.state.engine = rep.engine
    app.state.settings = Settings()
    app.state.projections = rep.projections
    app.state.registry = rep.projections[labels.MODEL.name]
    return app


PROJECTS = [{"id": "p1", "title": "四点半课堂", "status": "planned"},
            {"id": "p2", "title": "义诊进社区", "status": "planned"},
            {"id": "p3", "title": "法律咨询进村居", "status": "planned"}]


async def seed(rep: Reporting) -> dict[str, str]:
    await rep.registry("region", id="341700", name="池州市", level="city")
    await rep.registry("region", id="341702", name="贵池区", level="district",
                       parent_id="341700")
    await rep.registry("region", id="370100", name="济南市", level="city")
    root = await rep.registry("organization", name="池州市委统战部",
                              kind="party_organization")
    unit = await rep.registry("organization", name="池州市工商联", kind="social_organization",
                              parent_id=root["id"])
    jinan = await rep.registry("organization", name="济南市民建", kind="democratic_party")
    b1 = await rep.registry("base", name="秋浦社区", kind="community", region_code="341702")
    b2 = await rep.registry("base", name="柳埠村", kind="village", region_code="370100")
    p = await rep.registry(
        "pairing", name="池州市工商联 ↔ 秋浦社区", organization_id=unit["id"], base_id=b1["id"],
        starts_on="2013-01-01", status="active",
        needs=[{"id": "n1", "title": "课业辅导"}, {"id": "n2", "title": "老人义诊"}],
        resources=[{"id": "r1", "title": "律师志愿者", "status": "open"}], projects=PROJECTS)
    q = await rep.registry("pairing", name="济南市民建 ↔ 柳埠村", organization_id=jinan["id"],
                           base_id=b2["id"], starts_on="2013-03-01", needs=[], resources=[],
                           projects=[{"id": "p1", "title": "法律进村"}])
    return {"root": root["id"], "unit": unit["id"], "jinan": jinan["id"], "b1": b1["id"],
            "b2": b2["id"], "pairing": p["id"], "other": q["id"]}


async def log(rep: Reporting, ids: dict, project: str | None, served: int, **changes) -> dict:
    data = activity(ids["unit"], ids["b1"], pairing_id=ids["pairing"], project_id=project,
                    served=served, volunteer_hours=10.0, **changes)
    await rep.event("activity.logged", data)
    return data


async def report(rep: Reporting, ids: dict, scope: Scope = Scope()):
    await rep.caught_up()
    async with rep.engine.connect() as conn:
        return await pairings.pairing_report(conn, ids["pairing"], scope)


def by_project(rows: list[dict]) -> dict:
    return {r["project_id"]: (r["activities"], r["served"]) for r in rows}


async def test_projects_fulfilled_corrections_and_retractions(nc, names, engine):
    async with Reporting(nc, names, engine, models=[labels.MODEL, pairings.MODEL]) as rep:
        ids = await seed(rep)
        await log(rep, ids, "p1", 100)
        a2 = await log(rep, ids, "p2", 50)
        await log(rep, ids, None, 30, started_at="2013-11-05T09:00:00+08:00",
                  ended_at="2013-11-05T11:00:00+08:00")
        a4 = await log(rep, ids, "p1", 20)
        # Another unit's activity at the same base, outside the pairing: not counted.
        await rep.event("activity.logged", activity(ids["jinan"], ids["b1"], served=999))
        first = await report(rep, ids)

        await rep.event("activity.corrected", {**a4, "project_id": "p3", "served": 25,
                                               "reason": "项目填错"})
        corrected = await report(rep, ids)

        await rep.event("activity.retracted", {"activity_id": a2["activity_id"],
                                               "reason": "重复录入"})
        await rep.event("activity.corrected", {**a2, "served": 500, "reason": "迟到的更正"})
        retracted = await report(rep, ids)
        november = await report(rep, ids, Scope(date_from=date(2013, 11, 1)))

    assert by_project(first.rows) == {"p1": (2, 120), "p2": (1, 50), "p3": (0, 0),
                                      None: (1, 30)}
    assert first.extra["unassigned"] == {"activities": 1, "served": 30, "volunteer_hours": 10.0}
    assert first.totals is not None
    assert {k: first.totals[k] for k in ("activities", "served", "volunteer_hours", "projects",
                                         "projects_fulfilled", "fulfilment_rate")} == {
        "activities": 4, "served": 200, "volunteer_hours": 40.0, "projects": 3,
        "projects_fulfilled": 2, "fulfilment_rate": 0.6667}
    assert [r["title"] for r in first.rows] == ["四点半课堂", "义诊进社区", "法律咨询进村居",
                                                "（未归入项目）"]
    assert first.extra["needs_list"] == [{"id": "n1", "title": "课业辅导"},
                                         {"id": "n2", "title": "老人义诊"}]
    assert first.extra["resources"] == [{"id": "r1", "title": "律师志愿者", "status": "open"}]
    assert first.extra["pairing"]["organization_label"] == "池州市工商联"
    assert first.extra["pairing"]["base_label"] == "秋浦社区"

    # The correction moves an activity from p1 to p3: both restate, all three are fulfilled.
    assert by_project(corrected.rows) == {"p1": (1, 100), "p2": (1, 50), "p3": (1, 25),
                                          None: (1, 30)}
    assert corrected.totals is not None
    assert (corrected.totals["served"], corrected.totals["fulfilment_rate"]) == (205, 1.0)
    # The retraction removes it for good (a later correction does not bring it back).
    assert by_project(retracted.rows) == {"p1": (1, 100), "p2": (0, 0), "p3": (1, 25),
                                          None: (1, 30)}
    assert retracted.totals is not None
    assert (retracted.totals["activities"], retracted.totals["served"],
            retracted.totals["projects_fulfilled"]) == (3, 155, 2)
    assert november.totals is not None
    assert (november.totals["activities"], november.totals["served"],
            november.totals["fulfilment_rate"]) == (1, 30, 0.0)


async def test_pairings_over_http_needs_list_scope_and_export(nc, names, engine):
    async with Reporting(nc, names, engine, models=[labels.MODEL, pairings.MODEL]) as rep:
        ids = await seed(rep)
        await log(rep, ids, "p1", 100)
        await log(rep, ids, "p2", 60)
        await rep.event("activity.logged", activity(
            ids["jinan"], ids["b2"], pairing_id=ids["other"], project_id="p1", served=40,
            volunteer_hours=5.0))
        unit = ids["unit"]
        for n in ("w1", "w2", "w3", "w4"):
            await rep.event("need.submitted", need(ids["b1"], need_id=n,
                                                   pairing_id=ids["pairing"]))
        await rep.event("need.submitted", need(ids["b1"], need_id="w5"))  # not under it
        await rep.event("need.claimed", {"need_id": "w1", "organization_id": unit})
        await rep.event("need.claimed", {"need_id": "w2", "organization_id": unit})
        await rep.event("need.claimed", {"need_id": "w5", "organization_id": unit})
        await rep.event("need.resolved", {"need_id": "w2", "organization_id": unit})
        await rep.event("need.closed", {"need_id": "w3", "outcome": "withdrawn"})
        await rep.event("need.reopened", {"need_id": "w3", "reason": "重新提出"})
        await rep.event("need.closed", {"need_id": "w4", "outcome": "duplicate"})
        seq = rep.last_seq["events"]
        transport = httpx.ASGITransport(app=app_for(rep))
        async with httpx.AsyncClient(transport=transport, base_url="http://r") as client:
            one = (await client.get(f"/v1/reports/pairings/{ids['pairing']}",
                                    params={"min_seq": seq})).json()
            missing = await client.get("/v1/reports/pairings/no-such-pairing")
            every = (await client.get("/v1/reports/pairings")).json()
            subtree = (await client.get("/v1/reports/pairings",
                                        params={"organization_id": ids["root"]})).json()
            jinan = (await client.get("/v1/reports/pairings",
                                      params={"region": "370100"})).json()
            sheet = await client.get("/v1/reports/pairings", params={"format": "csv"})
            english = await client.get(f"/v1/reports/pairings/{ids['pairing']}",
                                       params={"format": "csv", "headers": "en"})

    assert one["as_of"] >= seq
    assert one["needs"] == {"open": 1, "claimed": 1, "resolved": 1, "closed": 1, "total": 4}
    assert one["totals"]["needs"] == one["needs"]
    assert (one["totals"]["activities"], one["totals"]["served"],
            one["totals"]["fulfilment_rate"]) == (2, 160, 0.6667)
    assert missing.status_code == 404
    assert missing.json() == {"errors": [{"field": "id", "message": (
        "pairing no-such-pairing is not known (not registered, or not yet replicated)")}]}

    rows = {r["pairing_id"]: r for r in every["rows"]}
    assert set(rows) == {ids["pairing"], ids["other"]}
    assert (rows[ids["other"]]["organization_label"], rows[ids["other"]]["base_label"],
            rows[ids["other"]]["served"], rows[ids["other"]]["fulfilment_rate"]) == (
        "济南市民建", "柳埠村", 40, 1.0)
    assert every["totals"]["projects"] == 4 and every["totals"]["projects_fulfilled"] == 3
    assert every["totals"]["fulfilment_rate"] == 0.75 and every["totals"]["served"] == 200
    assert every["totals"]["needs"]["total"] == 4
    assert [r["pairing_id"] for r in subtree["rows"]] == [ids["pairing"]]
    assert [r["pairing_id"] for r in jinan["rows"]] == [ids["other"]]

    lines = list(csv.reader(io.StringIO(sheet.content.decode("utf-8-sig"))))[1:]
    assert lines[0][:4] == ["结对", "结对编号", "结对单位", "服务基地"] and "履约率" in lines[0]
    assert {ln[0] for ln in lines[1:-1]} == {"池州市工商联 ↔ 秋浦社区", "济南市民建 ↔ 柳埠村"}
    total = dict(zip(lines[0], lines[-1], strict=True))
    assert (total["结对"], total["服务群众(人次)"], total["履约率"]) == ("合计", "200", "0.75")
    projects = list(csv.reader(io.StringIO(english.content.decode("utf-8-sig"))))[1:]
    assert projects[0][0] == "Project" and projects[-1][0] == "Total"
    assert [p[0] for p in projects[1:-1]] == ["四点半课堂", "义诊进社区", "法律咨询进村居"]


async def test_unknown_project_is_shown_not_counted(nc, names, engine):
    async with Reporting(nc, names, engine, models=[labels.MODEL, pairings.MODEL]) as rep:
        ids = await seed(rep)
        await log(rep, ids, "p9", 10, activity_id=str(uuid.uuid4()))
        result = await report(rep, ids)
    assert result.rows[-1] == {"project_id": "p9", "title": None, "status": None,
                               "listed": False, "activities": 1, "served": 10,
                               "volunteer_hours": 10.0, "unassigned": False}
    assert result.totals is not None
    assert (result.totals["projects_fulfilled"], result.totals["fulfilment_rate"]) == (0, 0.0)


FIGURES = ("activities", "served", "volunteer_hours")


def add_up(rows: list[dict], totals: dict) -> None:
    """Every total of a table is the sum of its rows."""
    for figure in FIGURES:
        assert round(sum(r[figure] for r in rows), 2) == totals[figure], (figure, rows, totals)


async def test_every_total_is_the_sum_of_the_rows_shown(nc, names, engine):
    """A project marked done with no activity, an activity under the pairing without a project
    (the issue's 95 served, 48 h), one naming an unlisted project: the unassigned row is
    shown, each table's totals are its rows' sums (one pairing, the list, their CSV), and
    fulfilment counts what was logged, not the status a project was given."""
    async with Reporting(nc, names, engine, models=[labels.MODEL, pairings.MODEL]) as rep:
        ids = await seed(rep)
        done = await rep.registry(
            "pairing", name="池州市工商联 ↔ 柳埠村", organization_id=ids["unit"],
            base_id=ids["b2"], starts_on="2013-01-01",
            projects=[{"id": "p1", "title": "送福进村", "status": "done"}, "口头约定的项目"])
        await rep.event("activity.logged", activity(
            ids["unit"], ids["b2"], pairing_id=done["id"], served=95, volunteers=16,
            volunteer_hours=48.0))
        await log(rep, ids, "p1", 100)
        await log(rep, ids, None, 30)
        await log(rep, ids, "p9", 7)
        await rep.caught_up()
        transport = httpx.ASGITransport(app=app_for(rep))
        async with httpx.AsyncClient(transport=transport, base_url="http://r") as client:
            one = (await client.get(f"/v1/reports/pairings/{done['id']}")).json()
            other = (await client.get(f"/v1/reports/pairings/{ids['pairing']}")).json()
            every = (await client.get("/v1/reports/pairings")).json()
            sheet = await client.get(f"/v1/reports/pairings/{done['id']}",
                                     params={"format": "csv"})

    assert [(r["title"], r["status"], r["activities"], r["unassigned"]) for r in one["rows"]] == [
        ("送福进村", "done", 0, False), ("口头约定的项目", None, 0, False),
        ("（未归入项目）", None, 1, True)]
    add_up(one["rows"], one["totals"])
    assert (one["totals"]["activities"], one["totals"]["served"],
            one["totals"]["volunteer_hours"]) == (1, 95, 48.0)
    assert (one["totals"]["projects_fulfilled"], one["totals"]["fulfilment_rate"]) == (0, 0.0)
    assert one["unassigned"] == {"activities": 1, "served": 95, "volunteer_hours": 48.0}
    add_up(other["rows"], other["totals"])
    assert [r["project_id"] for r in other["rows"]] == ["p1", "p2", "p3", "p9", None]
    assert (other["totals"]["served"], other["totals"]["projects_fulfilled"]) == (137, 1)
    add_up(every["rows"], every["totals"])
    for key in ("projects", "projects_fulfilled"):
        assert sum(r[key] for r in every["rows"]) == every["totals"][key]
    assert every["totals"]["served"] == 95 + 137 + 0
    lines = list(csv.reader(io.StringIO(sheet.content.decode("utf-8-sig"))))[1:]
    served = lines[0].index("服务群众(人次)")
    assert [ln[0] for ln in lines[1:]] == ["送福进村", "口头约定的项目", "（未归入项目）", "合计"]
    assert sum(int(ln[served]) for ln in lines[1:-1]) == int(lines[-1][served]) == 95
