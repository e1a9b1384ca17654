"""The volunteer ledger against a real stream and a real database (each back-end): hours
confirmed, unconfirmed and declined, by method; recording again replaces; a correction moves
hours to another period and base, a retraction removes them; scope by the volunteer's unit
subtree and by period; star levels; the export; a replay into fresh tables gives the same."""

from __future__ import annotations

import csv
import io
from datetime import date

import httpx
import pytest

from services.reporting import reports, store
from services.reporting.models import labels, volunteers
from services.reporting.scope import Scope
from shared.settings import Settings
from tests.factories import activity
from tests.integration.conftest import create_schema, db_for, drop_schema
from tests.integration.readmodels import Reporting, admin_app

pytestmark = pytest.mark.asyncio(loop_scope="session")

MODELS = [labels.MODEL, volunteers.MODEL]
STARS = (2, 5, 10, 20, 30)


async def _engine(backend, service: str, tag: str):
    db = db_for(backend, service, tag)
    (backend.root / tag).mkdir(parents=True, exist_ok=True)
    await create_schema(db)
    engine = db.engine()
    async with engine.begin() as conn:
        await conn.run_sync(store.metadata.create_all)
    return db, engine


@pytest.fixture
async def engine(backend, tag):
    db, engine = await _engine(backend, "reporting", tag)
    yield engine
    await engine.dispose()
    await drop_schema(db)


@pytest.fixture
async def replay_engine(backend, tag):
    db, engine = await _engine(backend, "reportingreplay", tag)
    yield engine
    await engine.dispose()
    await drop_schema(db)


def hours(row: dict) -> tuple:
    return (row["hours_confirmed"], row["hours_unconfirmed"], row["hours_by_method"],
            row["activities"])


def by_method(self=0.0, organiser=0.0, sign_in=0.0, import_=0.0) -> dict:
    return {"self": self, "organiser": organiser, "sign_in": sign_in, "import": import_}


async def attend(rep: Reporting, event_type: str, act: dict, volunteer: str, **more) -> None:
    await rep.event(event_type, {"activity_id": act["activity_id"], "volunteer_id": volunteer,
                                 **more})


async def story(rep: Reporting) -> dict[str, dict]:
    """Units (区委统战部 > 区民宗局; 虞舜集团 apart), three volunteers, three activities."""
    await rep.registry("organization", id="sy", name="上虞区委统战部", kind="party_organization")
    await rep.registry("organization", id="A", name="区民宗局", kind="government_department",
                       parent_id="sy")
    await rep.registry("organization", id="X", name="虞舜集团", kind="enterprise")
    for vid, name, unit in [("v1", "王建国", "A"), ("v2", "李秀英", "A"), ("v3", "张伟", "X")]:
        await rep.registry("volunteer", id=vid, name=name, organization_id=unit,
                           party_status="serving_member", phone="13800138000")
    acts = {
        "oct": activity("A", "b1", started_at="2013-10-19T09:00:00+08:00",
                        ended_at="2013-10-19T12:00:00+08:00"),
        "nov": activity("A", "b2", started_at="2013-11-02T09:00:00+08:00",
                        ended_at="2013-11-02T11:00:00+08:00"),
        "gone": activity("A", "b1", started_at="2013-10-26T09:00:00+08:00",
                         ended_at="2013-10-26T11:00:00+08:00"),
    }
    for act in acts.values():
        await rep.event("activity.logged", act)
    oct_, nov, gone = acts["oct"], acts["nov"], acts["gone"]
    await attend(rep, "attendance.recorded", oct_, "v1", hours=3, method="organiser")
    await attend(rep, "attendance.recorded", nov, "v1", hours=2, method="self")
    await attend(rep, "attendance.confirmed", nov, "v1", organization_id="A")
    await attend(rep, "attendance.recorded", gone, "v1", hours=2, method="sign_in")
    await attend(rep, "attendance.recorded", oct_, "v2", hours=3, method="self")
    await attend(rep, "attendance.recorded", nov, "v2", hours=2, method="import")
    await attend(rep, "attendance.declined", nov, "v2", organization_id="A", reason="未到场")
    # Recorded again: the hours, the method and so the status are replaced.
    await attend(rep, "attendance.recorded", oct_, "v3", hours=1, method="self")
    await attend(rep, "attendance.recorded", oct_, "v3", hours=2.5, method="organiser")
    return acts


async def test_ledger_hours_scope_corrections_and_retractions(nc, names, engine, replay_engine):
    async with Reporting(nc, names, engine, models=MODELS) as rep:
        acts = await story(rep)
        await rep.caught_up()
        async with engine.connect() as conn:
            before = {r["volunteer_id"]: r for r in await volunteers.ranking(conn, Scope())}
            november = await volunteers.ranking(conn, Scope(date_from=date(2013, 11, 1)))

        # The November activity really was in October, at the other base; one is retracted.
        await rep.event("activity.corrected", {
            **acts["nov"], "started_at": "2013-10-12T09:00:00+08:00",
            "ended_at": "2013-10-12T11:00:00+08:00", "reason": "日期填错"})
        await rep.event("activity.retracted", {"activity_id": acts["gone"]["activity_id"],
                                               "reason": "重复录入"})
        await rep.caught_up()
        async with engine.connect() as conn:
            ledger = await volunteers.ranking(conn, Scope(), thresholds=STARS)
            totals = await volunteers.totals(conn, Scope())
            district = await volunteers.ranking(conn, Scope(organization_id="sy"))
            district_totals = await volunteers.totals(conn, Scope(organization_id="sy"))
            moved = await volunteers.ranking(conn, Scope(date_from=date(2013, 11, 1)))
            october = await volunteers.ranking(conn, Scope(date_from=date(2013, 10, 1),
                                                           date_to=date(2013, 10, 31)))
            at_b2 = await volunteers.ranking(conn, Scope(base_id="b2"))
            top = await volunteers.ranking(conn, Scope(), limit=1)

    # Before: v1's retracted activity still counts, and November holds v1's 2 hours.
    assert hours(before["v1"]) == (7.0, 0.0, by_method(self=2, organiser=3, sign_in=2), 3)
    assert [(r["volunteer_id"], r["hours_confirmed"]) for r in november] == [("v1", 2.0)]

    assert [(r["volunteer_id"], r["name"], r["organization_id"], r["organization_name"])
            for r in ledger] == [("v1", "王建国", "A", "区民宗局"), ("v3", "张伟", "X", "虞舜集团"),
                                 ("v2", "李秀英", "A", "区民宗局")]
    rows = {r["volunteer_id"]: r for r in ledger}
    assert hours(rows["v1"]) == (5.0, 0.0, by_method(self=2, organiser=3), 2)
    # v2: self-reported hours wait; declined hours count nowhere (nor their activity).
    assert hours(rows["v2"]) == (0.0, 3.0, by_method(self=3), 1)
    assert hours(rows["v3"]) == (2.5, 0.0, by_method(organiser=2.5), 1)
    assert [rows[v]["star_level"] for v in ("v1", "v3", "v2")] == [2, 1, 0]
    assert "phone" not in str(ledger) and "13800138000" not in str(ledger)

    # Totals: hours summed, activities and volunteers distinct over the scope.
    assert hours(totals) == (7.5, 3.0, by_method(self=5, organiser=5.5), 2)
    assert totals["volunteers"] == 3

    assert [r["volunteer_id"] for r in district] == ["v1", "v2"]  # v3's unit is outside
    assert hours(district_totals) == (5.0, 3.0, by_method(self=5, organiser=3), 2)
    assert moved == []  # the correction took November's hours to October
    assert {r["volunteer_id"]: r["hours_confirmed"] for r in october} == {
        "v1": 5.0, "v2": 0.0, "v3": 2.5}
    assert [(r["volunteer_id"], r["hours_confirmed"]) for r in at_b2] == [("v1", 2.0)]
    assert [r["volunteer_id"] for r in top] == ["v1"]

    # Replayed from the start into fresh tables, the ledger is the same.
    async with Reporting(nc, names, replay_engine, models=MODELS) as again:
        again.last_seq = dict(rep.last_seq)
        await again.caught_up()
        async with replay_engine.connect() as conn:
            assert await volunteers.ranking(conn, Scope(), thresholds=STARS) == ledger


async def test_star_levels_by_default_thresholds():
    default = Settings().star_thresholds
    assert default == (100, 300, 600, 1000, 1500)
    assert [volunteers.star_level(h, default)
            for h in (0, 99.99, 100, 299, 300, 600, 999, 1000, 1499.5, 1500, 9000)] == [
        0, 0, 1, 1, 2, 3, 3, 4, 4, 5, 5]
    assert volunteers.star_level(sum([0.1] * 1000), default) == 1  # 99.9999999… is 100 h


async def test_export_streams_every_row_with_chinese_headers(nc, names, engine):
    async with Reporting(nc, names, engine, models=MODELS) as rep:
        await story(rep)
        await rep.caught_up()

    chunks = [c async for c in reports._csv(engine, lambda conn: (
        volunteers.ledger_report(conn, Scope(), STARS)), (volunteers.NAME,), "zh")]
    table = list(csv.reader(io.StringIO(b"".join(chunks).decode("utf-8-sig"))))[1:]
    assert table[0][:4] == ["姓名", "志愿者编号", "所属单位", "单位编码"]
    assert table[0][-3:] == ["参加活动(次)", "星级", "未签退(次)"]
    assert [row[1] for row in table[1:-1]] == ["v1", "v3", "v2"]
    assert table[1] == ["王建国", "v1", "区民宗局", "A", "7.0", "0.0", "2.0", "3.0", "2.0", "0.0",
                        "3", "2", "0"]
    assert table[-1][0] == "合计" and table[-1][4:6] == ["9.5", "3.0"]

    # Over HTTP: the star thresholds are the service's setting; limit and offset page.
    app = admin_app()
    app.include_router(volunteers.router)
    app.state.engine = engine
    app.state.settings = Settings(star_thresholds=(1, 3, 5, 8, 10))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                 base_url="http://reporting") as client:
        page = (await client.get("/v1/reports/volunteers",
                                 params={"limit": 1, "offset": 1})).json()
        xlsx = await client.get("/v1/reports/volunteers", params={"format": "xlsx"})
        scoped = await client.get("/v1/reports/volunteers", params={
            "organization_id": "sy", "format": "csv", "headers": "en"})
    assert [(r["volunteer_id"], r["star_level"]) for r in page["rows"]] == [("v3", 1)]
    assert page["total"] == 3 and page["totals"]["hours_confirmed"] == 9.5
    assert xlsx.status_code == 200 and xlsx.content[:2] == b"PK"
    title, *lines = scoped.text.lstrip("\ufeff").splitlines()
    assert title.startswith("Volunteer hours ledger,Period: all time,Scope: ")
    assert lines[0].startswith("Name,Volunteer,Unit,")
    assert [line.split(",")[1] for line in lines[1:-1]] == ["v1", "v2"]
    assert lines[-1].startswith("Total,")


async def test_a_sign_in_counts_its_signed_span_and_an_open_one_counts_apart(nc, names, engine):
    """A sign-in with both times counts its span as confirmed sign-in hours; one without its
    sign-out has no hours, is not confirmed, and is counted in `open_sign_ins`; signing out
    later replaces it with the span."""
    async with Reporting(nc, names, engine, models=MODELS) as rep:
        await rep.registry("organization", id="A", name="区民宗局", kind="government_department")
        for vid in ("v1", "v2"):
            await rep.registry("volunteer", id=vid, name=vid, organization_id="A")
        act = activity("A", "b1", started_at="2013-10-19T09:00:00+08:00",
                       ended_at="2013-10-19T12:00:00+08:00")
        await rep.event("activity.logged", act)
        signed = {"method": "sign_in", "signed_in_at": "2013-10-19T09:10:00+08:00"}
        await attend(rep, "attendance.recorded", act, "v1", **signed)
        await attend(rep, "attendance.recorded", act, "v2", **signed)
        await attend(rep, "attendance.recorded", act, "v1", **signed,
                     signed_out_at="2013-10-19T11:40:00+08:00")
        await rep.caught_up()
        async with engine.connect() as conn:
            rows = {r["volunteer_id"]: r for r in await volunteers.ranking(conn, Scope())}
            totals = await volunteers.totals(conn, Scope())
    assert hours(rows["v1"]) == (2.5, 0.0, by_method(sign_in=2.5), 1)
    assert hours(rows["v2"]) == (0.0, 0.0, by_method(), 1)
    assert (rows["v1"]["open_sign_ins"], rows["v2"]["open_sign_ins"]) == (0, 1)
    assert (totals["hours_confirmed"], totals["open_sign_ins"]) == (2.5, 1)
