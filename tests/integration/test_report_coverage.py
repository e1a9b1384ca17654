"""Coverage over HTTP, against real streams and a real database (each back-end): a Zhenjiang
door-knocking campaign (敲门行动, seed 001) over the communities of a district, households
visited twice counted once, a base not yet visited; idle bases at a given day, restated when an
activity is retracted or corrected to another base; "as at" days from the clock, never from
the newest data."""

from __future__ import annotations

import csv
import io
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

import httpx
import pytest

from services.reporting.dashboard import routes as dashboard
from services.reporting.models import activities, coverage, labels
from shared.http import install_error_handlers
from shared.settings import Settings
from tests.factories import activity
from tests.integration.readmodels import Reporting, admin_app

pytestmark = pytest.mark.asyncio(loop_scope="session")


def client_for(rep: Reporting) -> httpx.AsyncClient:
    app = admin_app()
    install_error_handlers(app)
    app.include_router(coverage.router)
    app.state.projections = rep.projections
    app.state.registry = rep.projections[labels.MODEL.name]
    app.state.settings = rep.settings
    app.state.engine = rep.engine
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test")


async def zhenjiang(rep: Reporting) -> dict[str, str]:
    """镇江市 > 润州区 (the campaign's district) and 京口区; a base per community."""
    await rep.registry("region", id="321100", code="321100", name="镇江市", level="city")
    await rep.registry("region", id="321111", code="321111", name="润州区", level="district",
                       parent_code="321100")
    await rep.registry("region", id="321102", code="321102", name="京口区", level="district",
                       parent_code="321100")
    await rep.registry("region", id="321111001", code="321111001", name="宝塔路街道",
                       level="town", parent_code="321111")
    bases = {}
    for key, name, region, households in [
        ("xijindu", "西津渡社区", "321111001", 120),
        ("hongdou", "红豆江南府邸小区", "321111", 80),
        ("jinshan", "金山社区", "321111", 50),
        ("jiangbin", "江滨社区", "321111", 10),
        ("baota", "宝塔社区", "321111001", None),
        ("jingkou", "京口区正东路社区", "321102", 300),
    ]:
        record: dict[str, object] = {"name": name, "kind": "community", "region_code": region}
        if households is not None:
            record["households"] = households
        bases[key] = (await rep.registry("base", **record))["id"]
    await rep.registry("base", verb="deactivated", name="已撤并社区", kind="community",
                       region_code="321111", households=30, active=False)
    return bases


def visit(campaign_id: str, base_id: str, households: int, keys: list[str] | None = None,
          **more) -> dict:
    data = {"campaign_id": campaign_id, "base_id": base_id, "visited_on": "2021-08-01",
            "households_visited": households, **more}
    if keys is not None:
        data["household_keys"] = keys
    return data


async def test_campaign_coverage_counts_households_once(nc, names, engine):
    models = [labels.MODEL, coverage.MODEL]
    async with Reporting(nc, names, engine, models=models) as rep:
        b = await zhenjiang(rep)
        campaign = await rep.registry(
            "campaign", code="ZJ-2021-KM", name="敲门行动", starts_on="2021-08-01",
            ends_on="2021-08-03", region_code="321111")
        cid = campaign["id"]
        listed = await rep.registry(
            "campaign", code="ZJ-2021-JK", name="京口入户", starts_on="2021-08-01",
            ends_on="2021-08-03", base_ids=[b["jingkou"]])
        # 红豆: 1-1-103 visited twice, counted once.
        await rep.event("campaign.visit_recorded", visit(
            cid, b["hongdou"], 3, ["1-1-101", "1-1-102", "1-1-103"], volunteers=5,
            problems_found=1))
        await rep.event("campaign.visit_recorded", visit(
            cid, b["hongdou"], 2, ["1-1-103", "1-1-104"], volunteers=3, problems_found=0,
            visited_on="2021-08-02"))
        # 西津渡: a visit without keys, and one with 2 keys out of 5 households.
        await rep.event("campaign.visit_recorded", visit(cid, b["xijindu"], 40, volunteers=10,
                                                         problems_found=2))
        await rep.event("campaign.visit_recorded", visit(cid, b["xijindu"], 5, ["a", "b"]))
        # 江滨: unkeyed visits beyond its 10 households: capped.
        await rep.event("campaign.visit_recorded", visit(cid, b["jiangbin"], 8))
        await rep.event("campaign.visit_recorded", visit(cid, b["jiangbin"], 7))
        # 宝塔: no household count, so no coverage.
        await rep.event("campaign.visit_recorded", visit(cid, b["baota"], 1, ["9-9-909"]))
        # Another campaign's visit at a campaign base changes nothing here.
        await rep.event("campaign.visit_recorded", visit(listed["id"], b["hongdou"], 9))
        await rep.event("campaign.visit_recorded", visit(listed["id"], b["jingkou"], 30,
                                                         [f"k{i}" for i in range(30)]))
        await rep.caught_up()

        async with client_for(rep) as http:
            res = await http.get("/v1/reports/coverage", params={
                "campaign_id": cid, "min_seq": rep.last_seq["events"]})
            assert res.status_code == 200, res.text
            body = res.json()
            rows = {r["label"]: r for r in body["rows"]}
            assert set(rows) == {"西津渡社区", "红豆江南府邸小区", "金山社区", "江滨社区",
                                 "宝塔社区"}  # the district's active bases, not 京口
            assert {k: rows["红豆江南府邸小区"][k] for k in (
                "households", "visited", "coverage", "visits", "volunteers",
                "problems_found")} == {"households": 80, "visited": 4, "coverage": 0.05,
                                       "visits": 2, "volunteers": 8, "problems_found": 1}
            assert (rows["西津渡社区"]["visited"], rows["西津渡社区"]["coverage"]) == (45, 0.375)
            assert (rows["江滨社区"]["visited"], rows["江滨社区"]["coverage"]) == (10, 1.0)
            assert (rows["宝塔社区"]["visited"], rows["宝塔社区"]["coverage"]) == (1, None)
            assert (rows["金山社区"]["visited"], rows["金山社区"]["visits"]) == (0, 0)
            assert [n["label"] for n in body["not_visited"]] == ["金山社区"]
            totals = body["totals"]
            assert {k: totals[k] for k in ("bases", "visited_bases", "households", "visited",
                                           "visits", "volunteers", "problems_found")} == {
                "bases": 5, "visited_bases": 4, "households": 260, "visited": 60,
                "visits": 7, "volunteers": 18, "problems_found": 3}
            # Over the bases with a household count only: 宝塔's one household is left out.
            assert totals["coverage"] == round((4 + 45 + 10) / 260, 4)
            assert body["campaign"]["name"] == "敲门行动"
            assert body["as_of"] == rep.last_seq["events"]

            # A campaign listing its bases; a scope narrowing the district one.
            res = await http.get("/v1/reports/coverage", params={"campaign_id": listed["id"]})
            assert [(r["label"], r["visited"], r["coverage"]) for r in res.json()["rows"]] == [
                ("京口区正东路社区", 30, 0.1), ("红豆江南府邸小区", 9, 0.1125)]
            res = await http.get("/v1/reports/coverage", params={
                "campaign_id": cid, "region": "321111001"})
            assert [r["label"] for r in res.json()["rows"]] == ["宝塔社区", "西津渡社区"]
            res = await http.get("/v1/reports/coverage", params={
                "campaign_id": cid, "from": "2021-08-02"})
            assert {r["label"]: r["visited"] for r in res.json()["rows"]}[
                "红豆江南府邸小区"] == 2

            res = await http.get("/v1/reports/coverage", params={"campaign_id": "no-such"})
            assert res.status_code == 404
            assert res.json()["errors"][0]["field"] == "campaign_id"

            res = await http.get("/v1/reports/coverage", params={
                "campaign_id": cid, "format": "csv"})
            lines = list(csv.reader(io.StringIO(res.content.decode("utf-8-sig"))))[1:]
            assert lines[0][:5] == ["服务基地", "编码", "户数", "已走访户数", "覆盖率"]
            assert lines[-1][0] == "合计" and lines[-1][3] == "60"


async def test_idle_bases_restate_on_retraction_and_correction(nc, names, engine):
    models = [labels.MODEL, coverage.MODEL]
    async with Reporting(nc, names, engine, models=models,
                         settings=Settings(timezone="Asia/Shanghai")) as rep:
        b = await zhenjiang(rep)
        recent = activity("org-zj", b["xijindu"], started_at="2021-10-20T09:00:00+08:00",
                          ended_at="2021-10-20T11:00:00+08:00")
        older = activity("org-zj", b["hongdou"], started_at="2021-09-01T09:00:00+08:00",
                         ended_at="2021-09-01T11:00:00+08:00")
        # 23:30 UTC on 30 Sep is 1 Oct in Zhenjiang: the local day counts.
        late = activity("org-zj", b["jiangbin"], started_at="2021-09-30T23:30:00+00:00",
                        ended_at="2021-09-30T23:59:00+00:00")
        after = activity("org-zj", b["jinshan"], started_at="2021-11-20T09:00:00+08:00",
                         ended_at="2021-11-20T11:00:00+08:00")
        for data in (recent, older, late, after):
            await rep.event("activity.logged", data)
        await rep.caught_up()

        async def idle(**params) -> dict:
            async with client_for(rep) as http:
                res = await http.get("/v1/reports/coverage", params=params)
            assert res.status_code == 200, res.text
            return res.json()

        body = await idle(at="2021-10-31")
        assert body["idle_days"] == 30 and body["at"] == "2021-10-31"
        assert [(r["label"], r["last_activity"], r["days_idle"]) for r in body["rows"]] == [
            ("京口区正东路社区", None, None), ("宝塔社区", None, None),
            ("金山社区", None, None),  # its activity is after `at`
            ("红豆江南府邸小区", "2021-09-01", 60), ("江滨社区", "2021-10-01", 30)]
        assert body["totals"] == {"bases": 6, "active_bases": 1, "idle_bases": 5}

        body = await idle(at="2021-10-31", idle_days=31, region="321111")
        assert [r["label"] for r in body["rows"]] == ["宝塔社区", "金山社区", "红豆江南府邸小区"]
        assert body["totals"] == {"bases": 5, "active_bases": 2, "idle_bases": 3}

        # Retracted: 西津渡 was never served. Corrected: 红豆's activity was at 宝塔, later.
        await rep.event("activity.retracted", {"activity_id": recent["activity_id"],
                                               "reason": "重复录入"})
        moved = {**older, "base_id": b["baota"], "started_at": "2021-10-25T09:00:00+08:00",
                 "ended_at": "2021-10-25T11:00:00+08:00", "reason": "基地填错"}
        await rep.event("activity.corrected", moved)
        # A correction after the retraction does not bring it back.
        await rep.event("activity.corrected", {**recent, "reason": "晚到的更正"})
        await rep.caught_up()

        body = await idle(at="2021-10-31", region="321111")
        assert [(r["label"], r["last_activity"]) for r in body["rows"]] == [
            ("红豆江南府邸小区", None), ("西津渡社区", None), ("金山社区", None),
            ("江滨社区", "2021-10-01")]
        assert body["totals"] == {"bases": 5, "active_bases": 1, "idle_bases": 4}

        async with client_for(rep) as http:
            res = await http.get("/v1/reports/coverage", params={
                "at": "2021-10-31", "format": "xlsx", "headers": "en"})
        assert res.status_code == 200
        assert res.headers["content-type"].startswith(
            "application/vnd.openxmlformats-officedocument")


async def test_as_at_dates_come_from_the_clock_not_from_the_newest_data(nc, names, engine):
    """An activity dated 2099 (accepted before such dates were refused) moves no date: idle
    bases count to the clock's today, and the dashboard offers today, no year past it."""
    models = [labels.MODEL, coverage.MODEL, activities.MODEL]
    async with Reporting(nc, names, engine, models=models,
                         settings=Settings(timezone="Asia/Shanghai")) as rep:
        b = await zhenjiang(rep)
        await rep.event("activity.logged", activity(
            "org-zj", b["xijindu"], started_at="2021-10-20T09:00:00+08:00",
            ended_at="2021-10-20T11:00:00+08:00"))
        await rep.event("activity.logged", activity(
            "org-zj", b["hongdou"], started_at="2099-10-20T09:00:00+08:00",
            ended_at="2099-10-20T11:00:00+08:00"))
        await rep.caught_up()
        app = admin_app()
        install_error_handlers(app)
        app.include_router(coverage.router)
        app.include_router(dashboard.router)
        app.state.settings, app.state.engine = rep.settings, rep.engine
        app.state.projections = rep.projections
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                     base_url="http://test") as http:
            choices = (await http.get("/v1/dashboard/choices")).json()
            idle = (await http.get("/v1/reports/coverage")).json()
        today = datetime.now(ZoneInfo("Asia/Shanghai")).date()
        assert choices["today"] in {today.isoformat(), (today + timedelta(days=1)).isoformat()}
        assert (choices["years"], choices["last_day"]) == ([2021], "2021-10-20"), choices
        assert idle["at"] == choices["today"], idle
        days = {r["label"]: r["days_idle"] for r in idle["rows"]}
        assert days["西津渡社区"] == (date.fromisoformat(idle["at"]) - date(2021, 10, 20)).days


async def test_a_door_knocked_community_is_not_idle(nc, names, engine):
    """Campaign visits count as activity: a community the drive visited (and no activity was
    logged at) is served on the visit's day, with its last visit shown; one visited after
    `at` or never is idle; the days are counted to `at`, the same day for every row."""
    models = [labels.MODEL, coverage.MODEL]
    async with Reporting(nc, names, engine, models=models,
                         settings=Settings(timezone="Asia/Shanghai")) as rep:
        b = await zhenjiang(rep)
        campaign = (await rep.registry("campaign", name="敲门行动", starts_on="2021-08-01",
                                       region_code="321111"))["id"]
        await rep.event("campaign.visit_recorded", visit(campaign, b["jinshan"], 50))
        await rep.event("campaign.visit_recorded", visit(campaign, b["baota"], 20,
                                                         visited_on="2021-08-03"))
        await rep.event("campaign.visit_recorded", visit(campaign, b["jiangbin"], 10,
                                                         visited_on="2021-12-01"))
        await rep.event("activity.logged", activity(
            "org-zj", b["baota"], started_at="2021-07-01T09:00:00+08:00",
            ended_at="2021-07-01T11:00:00+08:00"))
        await rep.caught_up()
        async with client_for(rep) as http:
            res = await http.get("/v1/reports/coverage", params={
                "at": "2021-08-31", "idle_days": 90, "region": "321111"})
            short = await http.get("/v1/reports/coverage", params={
                "at": "2021-08-31", "idle_days": 30, "region": "321111"})
        assert res.status_code == 200, res.text
        body = res.json()
        shown = {r["label"]: (r["last_activity"], r["last_visit"], r["days_idle"])
                 for r in body["rows"]}
        # 金山 and 宝塔 were door-knocked within 90 days: not idle, not "never".
        assert "金山社区" not in shown and "宝塔社区" not in shown, shown
        assert shown == {"西津渡社区": (None, None, None), "红豆江南府邸小区": (None, None, None),
                         "江滨社区": (None, None, None)}  # its visit is after `at`
        assert body["totals"] == {"bases": 5, "active_bases": 2, "idle_bases": 3}
        rows = {r["label"]: r for r in short.json()["rows"]}
        assert (rows["金山社区"]["last_visit"], rows["金山社区"]["last_activity"],
                rows["金山社区"]["days_idle"], rows["金山社区"]["last_served"]) == (
            "2021-08-01", None, 30, "2021-08-01")
        # The later of its activity and its visit: 3 Aug, 28 days before `at`.
        assert "宝塔社区" not in rows
