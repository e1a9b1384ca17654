"""The needs read model (按需点单) against real streams and a real database (each back-end):
needs at Chizhou and Jinan bases through several channels, claimed, returned, re-claimed,
resolved, closed and reopened; counts by state, medians, overdue follow-ups, items with their
history, scope by unit subtree, base, region and period, and the spreadsheet export."""

from __future__ import annotations

import csv
import io
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import select

from services.reporting import store
from services.reporting.models import labels, needs
from services.reporting.scope import Scope
from shared.settings import Settings
from tests.factories import need
from tests.integration.readmodels import Reporting, admin_app

pytestmark = pytest.mark.asyncio(loop_scope="session")
CST = ZoneInfo("Asia/Shanghai")
T0 = datetime(2013, 10, 20, 9, 0, tzinfo=CST)


def app_for(rep: Reporting) -> FastAPI:
    app = admin_app()
    app.include_router(needs.router)
    app.state.engine = rep.engine
    app.state.settings = Settings()
    app.state.projections = rep.projections
    app.state.registry = rep.projections[labels.MODEL.name]
    return app


async def seed(rep: Reporting) -> dict[str, str]:
    """Chizhou: the city's United Front department with a unit under it, paired with 秋浦社区;
    another Chizhou community not paired; Jinan: a unit paired with a village."""
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
    b2 = await rep.registry("base", name="杏花村", kind="village", region_code="341702")
    b3 = await rep.registry("base", name="柳埠村", kind="village", region_code="370100")
    p1 = await rep.registry("pairing", name="池州市工商联 ↔ 秋浦社区", starts_on="2013-01-01",
                            organization_id=unit["id"], base_id=b1["id"])
    p2 = await rep.registry("pairing", name="济南市民建 ↔ 柳埠村", starts_on="2013-01-01",
                            organization_id=jinan["id"], base_id=b3["id"])
    return {"root": root["id"], "unit": unit["id"], "jinan": jinan["id"], "b1": b1["id"],
            "b2": b2["id"], "b3": b3["id"], "p1": p1["id"], "p2": p2["id"]}


async def life(rep: Reporting, ids: dict[str, str]) -> None:
    unit, jinan = ids["unit"], ids["jinan"]

    async def at(hours: float, kind: str, data: dict, start: datetime = T0) -> None:
        await rep.event(kind, data, occurred_at=start + timedelta(hours=hours))

    # n1: claimed after 2 h, returned (退单), claimed again, resolved after 10 h, confirmed.
    await at(0, "need.submitted", need(ids["b1"], need_id="n1", pairing_id=ids["p1"],
                                       title="老旧小区路灯维修", channel="hotline"))
    await at(2, "need.claimed", {"need_id": "n1", "organization_id": unit})
    await at(3, "need.returned", {"need_id": "n1", "organization_id": unit,
                                  "reason": "缺少维修工具"})
    await at(5, "need.claimed", {"need_id": "n1", "organization_id": unit})
    await at(10, "need.resolved", {"need_id": "n1", "organization_id": unit, "note": "已修好"})
    await at(12, "need.closed", {"need_id": "n1", "outcome": "confirmed"})
    # n2: a resident's need, claimed after 4 h, resolved after 20 h; its follow-up is done.
    await at(0, "need.submitted", need(ids["b1"], need_id="n2", channel="resident",
                                       title="独居老人助餐", category="other"))
    await at(4, "need.claimed", {"need_id": "n2", "organization_id": unit})
    await at(6, "need.followup_assigned", {"need_id": "n2", "assignee_id": "v-li",
                                           "due_on": "2013-10-25"})
    await at(20, "need.resolved", {"need_id": "n2", "organization_id": unit})
    # n3: tutoring asked at a community meeting, claimed after 6 h, follow-up due 1 Nov.
    await at(0, "need.submitted", need(ids["b1"], need_id="n3", channel="community",
                                       title="四点半课堂辅导", category="tutoring"))
    await at(6, "need.claimed", {"need_id": "n3", "organization_id": unit})
    await at(7, "need.followup_assigned", {"need_id": "n3", "assignee_id": "v-wang",
                                           "due_on": "2013-11-01", "note": "每周回访"})
    # n4: at an unpaired village, from the fair, withdrawn.
    await at(1, "need.submitted", need(ids["b2"], need_id="n4", channel="fair"))
    await at(2, "need.closed", {"need_id": "n4", "outcome": "withdrawn"})
    # n5: Jinan, submitted at 01:00 local on 21 Oct; resolved, confirmed, then reopened.
    late = datetime(2013, 10, 21, 1, 0, tzinfo=CST)
    await at(0, "need.submitted", need(ids["b3"], need_id="n5", pairing_id=ids["p2"],
                                       channel="unit", category="legal_aid",
                                       title="土地承包法律咨询"), late)
    await at(1, "need.claimed", {"need_id": "n5", "organization_id": jinan}, late)
    await at(2, "need.followup_assigned", {"need_id": "n5", "assignee_id": "v-zhao",
                                           "due_on": "2013-10-25"}, late)
    await at(3, "need.resolved", {"need_id": "n5", "organization_id": jinan}, late)
    await at(4, "need.closed", {"need_id": "n5", "outcome": "confirmed"}, late)
    await at(30, "need.reopened", {"need_id": "n5", "reason": "群众反映仍未解决"}, late)
    # n6: a duplicate of n1.
    await at(1, "need.submitted", need(ids["b1"], need_id="n6", pairing_id=ids["p1"]))
    await at(2, "need.closed", {"need_id": "n6", "outcome": "duplicate"})


async def test_needs_counts_medians_followups_and_scope(nc, names, engine):
    async with Reporting(nc, names, engine, models=[labels.MODEL, needs.MODEL]) as rep:
        ids = await seed(rep)
        await life(rep, ids)
        await rep.caught_up()
        on = needs.today(CST, datetime(2013, 11, 2, 8, 0, tzinfo=CST))
        async with engine.connect() as conn:
            rows, totals = await needs.report_rows(conn, "base", Scope(), on)
            by_unit, _ = await needs.report_rows(conn, "organization", Scope(), on)
            subtree = await needs.report_rows(conn, "category", Scope(ids["root"]), on)
            region = await needs.report_rows(conn, "base", Scope(region="341700"), on)
            jinan = await needs.report_rows(conn, "base", Scope(base_id=ids["b3"]), on)
            period = await needs.report_rows(
                conn, "base", Scope(date_from=datetime(2013, 10, 21).date()), on)
            earlier = await needs.report_rows(conn, "base", Scope(),
                                              needs.today(CST, datetime(2013, 10, 31, 12)))
            figures = await needs.unit_figures(conn, Scope(), datetime(2013, 11, 2, tzinfo=CST))

    assert {k: v for k, v in totals.items() if k in (*needs.COUNTS[:-len(needs.RATE_COUNTS)],
                                                     "median_hours_to_claim",
                                                     "median_hours_to_resolve")} == {
                      "possible_duplicates": 0, "total": 6, "open": 1, "claimed": 1,
                      "resolved": 1, "closed": 3,
                      "closed_confirmed": 1, "closed_unresolved": 0, "closed_withdrawn": 1,
                      "closed_duplicate": 1, "followups_overdue": 2,
                      "median_hours_to_claim": 3.0,      # 1, 2, 4, 6: first claims
                      "median_hours_to_resolve": 15.0}   # 10, 20 (n5 was reopened)
    b1 = next(r for r in rows if r["key"] == ids["b1"])
    assert (b1["label"], b1["total"], b1["claimed"], b1["resolved"], b1["closed"]) == (
        "秋浦社区", 4, 1, 1, 2)
    assert (b1["median_hours_to_claim"], b1["median_hours_to_resolve"],
            b1["followups_overdue"]) == (4.0, 15.0, 1)
    b3 = next(r for r in rows if r["key"] == ids["b3"])
    assert (b3["open"], b3["median_hours_to_claim"], b3["median_hours_to_resolve"],
            b3["followups_overdue"]) == (1, 1.0, None, 1)
    # The current claimer: n5 was reopened, so it is unclaimed now.
    assert {r["key"]: r["total"] for r in by_unit} == {ids["unit"]: 3, None: 3}
    assert next(r for r in by_unit if r["key"] is None)["label"] == "（未填）"
    # The Chizhou department's subtree: what its unit claimed, its pairing's needs, its base's.
    rows_c, totals_c = subtree
    assert totals_c["total"] == 4 and totals_c["median_hours_to_claim"] == 4.0
    assert {r["key"]: r["total"] for r in rows_c} == {"repair": 2, "other": 1, "tutoring": 1}
    assert {r["key"]: r["label"] for r in rows_c}["tutoring"] == "义教"
    assert region[1]["total"] == 5 and {r["key"] for r in region[0]} == {ids["b1"], ids["b2"]}
    assert jinan[1]["total"] == 1 and jinan[1]["closed_confirmed"] == 0
    assert period[1]["total"] == 1 and period[0][0]["key"] == ids["b3"]  # 01:00 local, 21 Oct
    assert earlier[1]["followups_overdue"] == 1  # on 31 Oct only n5's (due 25 Oct) is late
    assert figures == {ids["unit"]: {"needs_claimed": 3.0, "needs_resolved": 2.0,
                                     "followups_overdue": 1.0, "need_response_rate": 1.0,
                                     "need_resolution_rate": 1.0,
                                     "need_satisfaction_rate": 0.0}}


async def test_needs_over_http_items_history_and_export(nc, names, engine):
    async with Reporting(nc, names, engine, models=[labels.MODEL, needs.MODEL]) as rep:
        ids = await seed(rep)
        await life(rep, ids)
        seq = rep.last_seq["events"]
        transport = httpx.ASGITransport(app=app_for(rep))
        async with httpx.AsyncClient(transport=transport, base_url="http://r") as client:
            report = (await client.get("/v1/reports/needs", params={
                "group_by": "organization", "at": "2013-11-02T08:00:00+08:00",
                "min_seq": seq})).json()
            items = (await client.get("/v1/reports/needs/items", params={
                "at": "2013-11-02T08:00:00", "limit": 2, "offset": 0})).json()
            open_ = (await client.get("/v1/reports/needs/items",
                                      params={"state": "open"})).json()
            tutoring = (await client.get("/v1/reports/needs/items", params={
                "category": "tutoring", "at": "2013-11-02T08:00:00"})).json()
            early = (await client.get("/v1/reports/needs/items", params={
                "category": "tutoring", "at": "2013-10-31T08:00:00"})).json()
            scoped = (await client.get("/v1/reports/needs/items", params={
                "organization_id": ids["root"], "limit": 100})).json()
            overdue = (await client.get("/v1/reports/needs/items", params={
                "followup": "overdue", "at": "2013-11-02T08:00:00"})).json()
            overdue_early = (await client.get("/v1/reports/needs/items", params={
                "followup": "overdue", "at": "2013-10-31T08:00:00"})).json()
            overdue_bad = await client.get("/v1/reports/needs/items",
                                           params={"followup": "late"})
            sheet = await client.get("/v1/reports/needs", params={
                "format": "csv", "at": "2013-11-02T08:00:00"})
            items_sheet = await client.get("/v1/reports/needs/items", params={"format": "csv"})
            xlsx = await client.get("/v1/reports/needs/items", params={"format": "xlsx"})

    assert report["as_of"] >= seq and report["group_by"] == "organization"
    unit_row = next(r for r in report["rows"] if r["key"] == ids["unit"])
    assert (unit_row["label"], unit_row["total"], unit_row["followups_overdue"]) == (
        "池州市工商联", 3, 1)
    assert report["totals"]["median_hours_to_claim"] == 3.0

    assert items["total"] == 6 and [i["need_id"] for i in items["rows"]] == ["n1", "n2"]
    n1 = items["rows"][0]
    assert (n1["state"], n1["outcome"], n1["organization_id"], n1["base_label"]) == (
        "closed", "confirmed", ids["unit"], "秋浦社区")
    assert n1["submitted_at"] == "2013-10-20T09:00:00+08:00"
    assert n1["claimed_at"] == "2013-10-20T11:00:00+08:00"  # the first claim
    assert n1["closed_at"] == "2013-10-20T21:00:00+08:00"
    assert [h["type"] for h in n1["history"]] == [
        "need.submitted", "need.claimed", "need.returned", "need.claimed", "need.resolved",
        "need.closed"]
    assert n1["history"][2] == {"type": "need.returned", "at": "2013-10-20T12:00:00+08:00",
                                "organization_id": ids["unit"], "reason": "缺少维修工具"}
    assert n1["history"][5]["outcome"] == "confirmed"
    assert all("description" not in i for i in items["rows"])
    assert "description" not in str(items)

    assert [(i["need_id"], i["organization_id"], i["resolved_at"], i["closed_at"])
            for i in open_["rows"]] == [("n5", None, None, None)]
    assert open_["rows"][0]["history"][-1] == {
        "type": "need.reopened", "at": "2013-10-22T07:00:00+08:00", "reason": "群众反映仍未解决"}
    assert tutoring["rows"][0]["followup"] == {"assignee_id": "v-wang", "due_on": "2013-11-01",
                                               "note": "每周回访", "overdue": True}
    assert early["rows"][0]["followup"]["overdue"] is False
    assert {i["need_id"] for i in scoped["rows"]} == {"n1", "n2", "n3", "n6"}
    # followup=overdue: the follow-ups overdue on that day (as followups_overdue counts
    # them), the longest overdue first: n5's (due 25 Oct, reopened), then n3's (due 1 Nov).
    assert [i["need_id"] for i in overdue["rows"]] == ["n5", "n3"] and overdue["total"] == 2
    assert all(i["followup"]["overdue"] for i in overdue["rows"])
    assert [i["need_id"] for i in overdue_early["rows"]] == ["n5"]
    assert overdue_bad.status_code == 422 and "followup" in overdue_bad.text

    assert sheet.status_code == 200
    lines = list(csv.reader(io.StringIO(sheet.content.decode("utf-8-sig"))))[1:]
    assert lines[0][:3] == ["名称", "编码", "需求总数"] and "跟踪逾期" in lines[0]
    assert lines[-1][0] == "合计" and lines[-1][2] == "6"
    assert {ln[0] for ln in lines[1:-1]} == {"秋浦社区", "杏花村", "柳埠村"}
    rows = list(csv.reader(io.StringIO(items_sheet.content.decode("utf-8-sig"))))[1:]
    assert rows[0][0] == "需求编号" and len(rows) == 7  # every need, header first
    assert not any("need.submitted" in cell for row in rows for cell in row)  # no history
    assert xlsx.status_code == 200 and xlsx.content[:2] == b"PK"


async def test_needs_rebuild_alone_gives_the_same(nc, names, engine):
    """Replayed from 0 into fresh tables (events the handler has seen are not applied twice)."""
    async with Reporting(nc, names, engine, models=[labels.MODEL, needs.MODEL]) as rep:
        ids = await seed(rep)
        await life(rep, ids)
        await rep.caught_up()
        on = datetime(2013, 11, 2).date()
        async with engine.connect() as conn:
            first = await needs.report_rows(conn, "pairing", Scope(), on)
        async with engine.begin() as conn:
            for table in needs.MODEL.tables:
                await conn.execute(table.delete())
            await conn.execute(store.positions.delete().where(
                store.positions.c.name == needs.NAME))
    async with Reporting(nc, names, engine, models=[labels.MODEL, needs.MODEL]) as rep:
        rep.last_seq = {"events": (await nc.jetstream().stream_info(
            names.events_stream)).state.last_seq, "registry": 0}
        await rep.caught_up()
        async with engine.connect() as conn:
            again = await needs.report_rows(conn, "pairing", Scope(), on)
    assert again == first
    assert {r["key"]: r["total"] for r in first[0]} == {ids["p1"]: 2, ids["p2"]: 1, None: 3}


async def test_a_claim_read_before_its_submission_waits_for_it_and_is_not_parked(
        nc, names, engine):
    """TONGXIN_EVENTS keeps each need's events in acceptance order, but the model does not
    rely on it: steps read before the submission are held and applied when it comes, whether
    it comes in a later batch or in the same one; nothing is parked."""
    async with Reporting(nc, names, engine, models=[labels.MODEL, needs.MODEL]) as rep:
        ids = await seed(rep)
        unit = ids["unit"]
        at = T0 + timedelta(hours=1)
        # Later batch: the claim and a return are read, then (caught up) the submission.
        await rep.event("need.claimed", {"need_id": "e1", "organization_id": unit}, at)
        await rep.event("need.returned", {"need_id": "e1", "organization_id": unit,
                                          "reason": "人手不足"}, at + timedelta(hours=1))
        await rep.event("need.claimed", {"need_id": "e1", "organization_id": unit},
                        at + timedelta(hours=2))
        await rep.caught_up()
        async with engine.connect() as conn:
            assert (await conn.execute(select(needs.needs))).all() == []
            assert len((await conn.execute(select(needs.early))).all()) == 3
        await rep.event("need.submitted", need(ids["b1"], need_id="e1"), T0)
        # Same batch: the claim, then the submission of another need.
        await rep.event("need.claimed", {"need_id": "e2", "organization_id": unit}, at)
        await rep.event("need.submitted", need(ids["b1"], need_id="e2"), T0)
        await rep.caught_up()
        async with engine.connect() as conn:
            rows = {r.need_id: r for r in await conn.execute(select(needs.needs))}
            assert (await conn.execute(select(needs.early))).all() == []
            assert (await conn.execute(select(store.parked))).all() == []
            history = [(r.need_id, r.type) for r in await conn.execute(
                select(needs.history).order_by(needs.history.c.need_id, needs.history.c.seq))]
        assert {n: (r.state, r.claimer_id) for n, r in rows.items()} == {
            "e1": ("claimed", unit), "e2": ("claimed", unit)}
        assert rows["e1"].hours_to_claim == 1.0  # from the submission to the first claim
        assert sorted(history) == sorted([
            ("e1", "need.claimed"), ("e1", "need.returned"), ("e1", "need.claimed"),
            ("e1", "need.submitted"), ("e2", "need.claimed"), ("e2", "need.submitted")])
