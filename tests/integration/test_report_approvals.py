"""Approved periods (`period.approved`) against real streams and a real database (each
back-end): the approved figures stay readable as approved; later events that change them are
counted in the current figures and listed as the restatement's causes (event, unit, time), and
only those; approving again clears the restatement; redelivered events count once; the ledger's
title line says which figures it shows."""

from __future__ import annotations

import io
import json
import uuid
from datetime import UTC, datetime

import httpx
import openpyxl
import pytest
from fastapi import FastAPI

from services.reporting import document, store
from services.reporting.models import BY_NAME, labels
from services.reporting.models import activities as cube
from shared.http import install_error_handlers
from shared.settings import Settings
from tests.factories import activity
from tests.integration.readmodels import Reporting, admin_app
from tests.integration.test_report_document import pdftotext

pytestmark = pytest.mark.asyncio(loop_scope="session")

MODELS = [labels.MODEL, BY_NAME[cube.NAME]]  # the cube as the service runs it: with approvals
NOVEMBER = {"from": "2026-11-01", "to": "2026-11-30"}
APPROVED_AT = datetime(2026, 12, 1, 1, 30, tzinfo=UTC)  # 09:30 on 1 December in Beijing


def app_for(rep: Reporting) -> FastAPI:
    app = admin_app()
    install_error_handlers(app)
    app.include_router(cube.router)
    app.include_router(document.router)
    app.state.engine = rep.engine
    app.state.projections = rep.projections
    app.state.registry = rep.projections[labels.MODEL.name]
    app.state.settings = Settings()
    return app


def on(day: str, org: str, base: str, **changes) -> dict:
    return activity(org, base, started_at=f"{day}T09:00:00+08:00",
                    ended_at=f"{day}T12:00:00+08:00", **changes)


async def seed(rep: Reporting) -> dict:
    city = await rep.registry("organization", name="淄博市委统战部", kind="party_organization")
    unit = await rep.registry("organization", name="淄博市第一单位", kind="government_department",
                              parent_id=city["id"])
    other = await rep.registry("organization", name="东营市委统战部", kind="party_organization")
    base = await rep.registry("base", name="张店区和平社区", kind="community")
    return {"city": city["id"], "unit": unit["id"], "other": other["id"], "base": base["id"]}


async def approvals(http: httpx.AsyncClient, rep: Reporting, org: str) -> dict:
    r = await http.get("/v1/reports/approvals", params={
        "organization_id": org, "period": "2026-11", "min_seq": rep.last_seq["events"]})
    assert r.status_code == 200, r.text
    return r.json()


async def ledger_title(http: httpx.AsyncClient, params: dict) -> list:
    r = await http.get("/v1/reports/summary", params={**params, "format": "xlsx"})
    assert r.status_code == 200, r.text
    sheet = openpyxl.load_workbook(io.BytesIO(r.content)).active
    return [c.value for c in next(sheet.iter_rows(max_row=1)) if c.value is not None]


async def test_approved_figures_stay_and_later_changes_show_as_a_restatement(rep_factory,
                                                                            tmp_path):
    async with rep_factory() as rep:
        ids = await seed(rep)
        city, unit, other, base = ids["city"], ids["unit"], ids["other"], ids["base"]
        await rep.caught_up()  # the registry (the units' tree) is in before the figures
        a1 = on("2026-11-10", unit, base, served=100)
        a2 = on("2026-11-20", city, base, served=50)
        outside = on("2026-11-12", other, base, served=7)     # another unit's subtree
        october = on("2026-10-30", unit, base, served=9)      # another month
        for a in (a1, a2, outside, october):
            await rep.event("activity.logged", a)
        seen = rep.last_seq["events"]
        approval_id = str(uuid.uuid4())
        approval = {"period": "2026-11", "organization_id": city, "as_of": seen}
        approval_seq = await rep.event("period.approved", approval, occurred_at=APPROVED_AT,
                                       event_id=approval_id)

        transport = httpx.ASGITransport(app=app_for(rep))
        async with httpx.AsyncClient(transport=transport, base_url="http://r") as http:
            scope = {"organization_id": city, **NOVEMBER}
            first = (await approvals(http, rep, city))["rows"]
            assert [r["status"] for r in first] == ["approved"]
            assert first[0]["causes"] == [] and first[0]["seen_as_of"] == seen
            assert first[0]["unseen"] == []  # seen: every activity in scope is older
            assert first[0]["approved"]["totals"]["served"] == 150
            assert first[0]["approved_seq"] == approval_seq
            assert (await ledger_title(http, scope))[-1] == "已审定 2026-12-01"

            # After the approval: a correction and a new activity in the month, in scope;
            # changes outside the scope or the month are no cause.
            corrected_at = datetime(2026, 12, 3, 2, 0, tzinfo=UTC)
            correction = str(uuid.uuid4())
            await rep.event("activity.corrected", {**a1, "served": 130, "reason": "漏记"},
                            occurred_at=corrected_at, event_id=correction)
            a3 = on("2026-11-25", unit, base, served=40)
            logged_at = datetime(2026, 12, 4, 3, 0, tzinfo=UTC)
            new = str(uuid.uuid4())
            await rep.event("activity.logged", a3, occurred_at=logged_at, event_id=new)
            await rep.event("activity.corrected", {**outside, "served": 8, "reason": "更正"})
            await rep.event("activity.corrected", {**october, "served": 10, "reason": "更正"})
            await rep.event("activity.logged", on("2026-12-02", unit, base))

            rows = (await approvals(http, rep, city))["rows"]
            assert len(rows) == 1
            row = rows[0]
            assert row["status"] == "restated"
            assert row["approved"]["totals"]["served"] == 150       # as approved, still
            assert row["approved"]["totals"]["activities"] == 2
            assert {r["key"]: r["served"] for r in row["approved"]["rows"]} == {
                city: 50, unit: 100}
            assert row["current"]["totals"]["served"] == 220        # 50 + 130 + 40
            assert row["difference"]["served"] == 70 and row["difference"]["activities"] == 1
            assert [(c["event_id"], c["type"], c["activity_id"], c["organization_id"],
                     c["organization_label"], c["occurred_at"]) for c in row["causes"]] == [
                (correction, "activity.corrected", a1["activity_id"], unit, "淄博市第一单位",
                 corrected_at.isoformat()),
                (new, "activity.logged", a3["activity_id"], unit, "淄博市第一单位",
                 logged_at.isoformat())]

            # The summary: now, and as approved; each ledger says which it shows.
            now = (await http.get("/v1/reports/summary", params=scope)).json()
            assert now["totals"]["served"] == 220 and now["approval"]["state"] == "restated"
            kept = (await http.get("/v1/reports/summary",
                                   params={**scope, "approved": "true"})).json()
            assert kept["totals"]["served"] == 150
            assert kept["rows"] == row["approved"]["rows"]
            assert (await ledger_title(http, scope))[-1] == "有更正（2026-12-01 审定后 2 项变更）"
            assert (await ledger_title(http, {**scope, "approved": "true"}))[-1] == (
                "已审定 2026-12-01（审定数据，之后有更正 2 项）")
            english = await http.get("/v1/reports/summary", params={
                **scope, "format": "csv", "headers": "en"})
            assert "restated (2 changes since approved 2026-12-01)" in english.text
            # The report document says so too, in its JSON and on the PDF's first page.
            month = {"period": "2026-11", "organization_id": city}
            said = (await http.get("/v1/reports/document",
                                   params={**month, "format": "json"})).json()["approval"]
            assert said["state"] == "restated" and said["approved_on"] == "2026-12-01"
            pdf = tmp_path / "restated.pdf"
            pdf.write_bytes((await http.get("/v1/reports/document", params=month)).content)
            first = await pdftotext(pdf, "-f", "1", "-l", "1")
            assert "审定状态：有更正（2026-12-01 审定后 2 项变更）" in first, first
            # Not approved: another scope, or no exact period.
            assert (await ledger_title(http, {"organization_id": other, **NOVEMBER}))[-1] == (
                "未审定")
            refused = await http.get("/v1/reports/summary", params={
                "organization_id": other, **NOVEMBER, "approved": "true"})
            assert refused.status_code == 422
            assert refused.json()["errors"][0]["field"] == "approved"

            # Approved again: no restatement, the new figures are the approved ones.
            await rep.event("period.approved", {**approval, "as_of": rep.last_seq["events"]},
                            occurred_at=datetime(2026, 12, 7, 2, 0, tzinfo=UTC))
            again = (await approvals(http, rep, city))["rows"]
            assert [(r["status"], r["causes"]) for r in again] == [("approved", [])]
            assert again[0]["approved"]["totals"]["served"] == 220
            assert again[0]["difference"]["served"] == 0
            assert (await ledger_title(http, scope))[-1] == "已审定 2026-12-07"
            pdf = tmp_path / "approved.pdf"
            pdf.write_bytes((await http.get("/v1/reports/document",
                                            params={**month, "lang": "en"})).content)
            assert "Approval: approved 2026-12-07" in await pdftotext(pdf, "-f", "1", "-l", "1")
            async with rep.engine.connect() as conn:
                kept_rows = (await conn.execute(store.metadata.tables["approval_causes"]
                                                .select())).all()
            assert len(kept_rows) == 2  # the first approval's causes, kept

            # A correction after the second approval is its cause only.
            await rep.event("activity.retracted", {"activity_id": a2["activity_id"],
                                                   "reason": "重复登记"})
            last = (await approvals(http, rep, city))["rows"][0]
            assert [c["type"] for c in last["causes"]] == ["activity.retracted"]
            assert last["causes"][0]["organization_id"] == city
            assert last["current"]["totals"]["served"] == 170

    # Redelivered: the cube's position forgotten, its rows kept, every event handed again.
    async with rep_factory.engine.begin() as conn:
        await conn.execute(store.positions.delete().where(store.positions.c.name == cube.NAME))
    async with rep_factory() as rep:
        rep.last_seq = {"events": (await rep.js.stream_info(
            rep.names.events_stream)).state.last_seq, "registry": 0}
        await rep.caught_up()
        transport = httpx.ASGITransport(app=app_for(rep))
        async with httpx.AsyncClient(transport=transport, base_url="http://r") as http:
            replayed = (await approvals(http, rep, city))["rows"][0]
        async with rep.engine.connect() as conn:
            causes = (await conn.execute(store.metadata.tables["approval_causes"]
                                         .select())).all()
    assert replayed == last
    assert len(causes) == 3


@pytest.fixture
def rep_factory(nc, names, engine):
    class Factory:
        def __init__(self) -> None:
            self.engine = engine

        def __call__(self) -> Reporting:
            return Reporting(nc, names, engine, models=MODELS)

    return Factory()


async def test_a_region_approval_lists_changes_at_its_bases_only(rep_factory):
    async with rep_factory() as rep:
        region = f"r-{uuid.uuid4().hex[:6]}"
        await rep.registry("region", id=region, name="张店区", level="district")
        ids = await seed(rep)
        far = await rep.registry("base", name="东营区某社区", kind="community")
        inside = await rep.registry("base", name="张店区某社区", kind="community",
                                    region_code=region)
        await rep.caught_up()  # the registry (regions, bases) is in before the figures
        a1 = on("2026-11-03", ids["unit"], inside["id"], served=11)
        await rep.event("activity.logged", a1)
        seen = rep.last_seq["events"]
        a0 = on("2026-10-03", ids["unit"], inside["id"], served=2)  # logged after `seen`
        await rep.event("activity.logged", a0)
        await rep.event("period.approved", {"period": "2026-Q4", "region": region,
                                            "as_of": seen})
        await rep.event("activity.logged", on("2026-11-04", ids["unit"], far["id"]))
        moved = str(uuid.uuid4())
        # Moved to a base outside the region: the approved figure changes, so it is a cause.
        await rep.event("activity.corrected", {**a1, "base_id": far["id"], "reason": "基地填错"},
                        event_id=moved)
        transport = httpx.ASGITransport(app=app_for(rep))
        async with httpx.AsyncClient(transport=transport, base_url="http://r") as http:
            r = await http.get("/v1/reports/approvals", params={
                "region": region, "min_seq": rep.last_seq["events"]})
            row, = r.json()["rows"]
            assert (row["period"], row["status"]) == ("2026-Q4", "restated")
            assert [c["event_id"] for c in row["causes"]] == [moved]
            assert row["approved"]["totals"]["served"] == 13
            assert row["current"]["totals"]["served"] == 2
            assert row["unseen"] == [a0["activity_id"]]  # approved, though not seen
            bad = await http.get("/v1/reports/approvals", params={"period": "2026-13"})
            assert bad.status_code == 422 and bad.json()["errors"][0]["field"] == "period"


GROUPINGS = [(g, None) for g in ("organization", "base", "team", "region", "theme",
                                 "service_type", "month", "pairing", "project", "week",
                                 "quarter", "year")] + [("region", "district")]


async def test_every_grouping_answers_as_approved(rep_factory):
    """`approved=true` answers every group_by (and a region level): the rows the summary gave
    when the period was approved, after a later correction changed them."""
    async with rep_factory() as rep:
        region = f"r-{uuid.uuid4().hex[:6]}"
        await rep.registry("region", id=region, name="张店区", level="district")
        ids = await seed(rep)
        inside = await rep.registry("base", name="张店区某社区", kind="community",
                                    region_code=region)
        await rep.caught_up()
        a1 = on("2026-11-10", ids["unit"], inside["id"], served=100)
        await rep.event("activity.logged", a1)
        await rep.event("activity.logged", on("2026-11-20", ids["city"], ids["base"], served=50))
        await rep.event("period.approved", {"period": "2026-11", "organization_id": ids["city"],
                                            "as_of": rep.last_seq["events"]})
        transport = httpx.ASGITransport(app=app_for(rep))
        async with httpx.AsyncClient(transport=transport, base_url="http://r") as http:
            scope = {"organization_id": ids["city"], **NOVEMBER,
                     "min_seq": rep.last_seq["events"]}

            async def summary(group_by: str, level: str | None, **more) -> httpx.Response:
                return await http.get("/v1/reports/summary", params={
                    **scope, "group_by": group_by, **({"region_level": level} if level else {}),
                    **more})

            before = {g: (await summary(*g)).json() for g in GROUPINGS}
            await rep.event("activity.corrected", {**a1, "served": 130, "reason": "漏记"})
            scope["min_seq"] = rep.last_seq["events"]
            for grouping in GROUPINGS:
                now = (await summary(*grouping)).json()
                assert now["totals"]["served"] == 180, grouping
                kept = await summary(*grouping, approved="true")
                assert kept.status_code == 200, (grouping, kept.text)
                assert kept.json()["rows"] == before[grouping]["rows"], grouping
                assert kept.json()["totals"]["served"] == 150, grouping
                assert kept.json()["approval"]["state"] == "restated", grouping
            # What each grouping answers as approved is its own: by base, the two bases.
            assert {r["key"]: r["served"] for r in before[("base", None)]["rows"]} == {
                inside["id"]: 100, ids["base"]: 50}

        # An approval applied before every grouping was kept (its figures by unit only):
        # by unit it answers, by anything else 422 naming group_by.
        t = store.metadata.tables["approvals"]
        async with rep.engine.begin() as conn:
            row = (await conn.execute(t.select())).one()
            figures = row.figures if isinstance(row.figures, dict) else json.loads(row.figures)
            await conn.execute(t.update().values(figures={
                k: v for k, v in figures.items() if k != "by"}))
        async with httpx.AsyncClient(transport=transport, base_url="http://r") as http:
            params = {"organization_id": ids["city"], **NOVEMBER, "approved": "true"}
            assert (await http.get("/v1/reports/summary", params=params)).status_code == 200
            old = await http.get("/v1/reports/summary", params={**params, "group_by": "base"})
            assert old.status_code == 422, old.text
            assert old.json()["errors"][0]["field"] == "group_by"
