"""Service certificates and records that move (志愿服务记录证明, 转移接续), against a real stream
and a real database (each back-end): a certificate's figures are the volunteer's confirmed
hours (self-reported hours still waiting, declined hours and retracted activities left out);
its PDF, read back by poppler, lists each activity and the totals; the public check needs no
login and shows only the name's first character, the totals and the issuing unit, and a wrong
code is a 404; a volunteer moved to another unit has their hours under each unit in the right
periods, in the ledger and its XLSX, and keeps every hour on the certificate."""

from __future__ import annotations

import asyncio
import io
import subprocess
from datetime import date
from pathlib import Path

import httpx
import openpyxl
import pytest
from fastapi import Depends, FastAPI

from services.reporting import certificates
from services.reporting.models import activities, labels, memberships, volunteers
from services.reporting.scope import Scope
from shared.auth import Gate, authenticate
from shared.settings import Settings
from tests.factories import activity
from tests.integration.readmodels import Reporting, admin_app

pytestmark = pytest.mark.asyncio(loop_scope="session")
MODELS = [labels.MODEL, memberships.MODEL, activities.MODEL, volunteers.MODEL]


def day_activity(unit: str, day: str, title: str) -> dict:
    return activity(unit, "b1", title=title, started_at=f"{day}T09:00:00+08:00",
                    ended_at=f"{day}T13:00:00+08:00")


async def story(rep: Reporting) -> dict[str, dict]:
    """刘春梅 serves with 区民宗局 (A) until she moves to 区教育局 (B) on 1 May 2024; in June she
    serves at a fair run by 虞舜集团 (X): those hours are B's, the unit she then belonged to."""
    await rep.registry("organization", id="sy", name="上虞区委统战部", kind="party_organization")
    await rep.registry("organization", id="A", name="区民宗局", kind="government_department",
                       parent_id="sy")
    await rep.registry("organization", id="B", name="区教育局", kind="government_department")
    await rep.registry("organization", id="X", name="虞舜集团", kind="enterprise")
    await rep.registry("volunteer", id="v1", name="刘春梅", organization_id="A",
                       party_status="serving_member", phone="13800138000",
                       updated_at="2024-01-02T08:00:00+00:00")
    await rep.registry("volunteer", id="v2", name="王建国", organization_id="A",
                       updated_at="2024-01-02T08:00:00+00:00")
    acts = {"mar": day_activity("A", "2024-03-10", "三月义诊"),
            "apr": day_activity("A", "2024-04-05", "四月义教"),
            "jun": day_activity("X", "2024-06-08", "六月便民大集市"),
            "jul": day_activity("B", "2024-07-02", "七月义修"),
            "aug": day_activity("B", "2024-08-03", "八月义剪"),
            "gone": day_activity("B", "2024-06-20", "重复录入的活动")}
    for act in acts.values():
        await rep.event("activity.logged", act)

    async def attend(event_type: str, key: str, volunteer: str, **more) -> None:
        await rep.event(event_type, {"activity_id": acts[key]["activity_id"],
                                     "volunteer_id": volunteer, **more})

    await attend("attendance.recorded", "mar", "v1", hours=3, method="organiser")
    await attend("attendance.recorded", "mar", "v2", hours=4, method="organiser")
    await attend("attendance.recorded", "apr", "v1", hours=2, method="self")
    await attend("attendance.confirmed", "apr", "v1", organization_id="A")
    await attend("attendance.recorded", "jun", "v1", hours=4, method="sign_in")
    await attend("attendance.recorded", "jul", "v1", hours=1.5, method="self")  # waits
    await attend("attendance.recorded", "aug", "v1", hours=2, method="organiser")
    await attend("attendance.declined", "aug", "v1", organization_id="B", reason="未到场")
    await attend("attendance.recorded", "gone", "v1", hours=3, method="organiser")
    await rep.event("activity.retracted", {"activity_id": acts["gone"]["activity_id"],
                                           "reason": "重复录入"})
    # The move (转移接续), published by the registry after all of it (it may come any time).
    await rep.registry("volunteer", "updated", id="v1", name="刘春梅", organization_id="B",
                       organization_since="2024-05-01", party_status="serving_member",
                       updated_at="2024-05-01T02:00:00+00:00")
    return acts


def app_for(engine) -> FastAPI:
    app = admin_app()
    app.include_router(certificates.router)
    app.include_router(volunteers.router)
    app.state.engine = engine
    app.state.settings = Settings()
    return app


async def poppler(*command: str) -> str:
    """A poppler-utils command's output (pdftoppm, pdftotext)."""
    done = await asyncio.to_thread(subprocess.run, command, check=True, capture_output=True,
                                   text=True)
    return done.stdout


async def test_a_moved_volunteer_s_hours_are_under_each_unit_in_its_period(nc, names, engine):
    async with Reporting(nc, names, engine, models=MODELS) as rep:
        await story(rep)
        await rep.caught_up()
    async with engine.connect() as conn:
        ledger = await volunteers.ranking(conn, Scope())
        at_a = await volunteers.ranking(conn, Scope(organization_id="sy"))
        at_b = await volunteers.ranking(conn, Scope(organization_id="B"))
        since_may = await volunteers.ranking(conn, Scope(date_from=date(2024, 5, 1)))
        before_may = await volunteers.ranking(conn, Scope(date_to=date(2024, 4, 30)))

    def rows(ledger: list[dict]) -> list[tuple]:
        return [(r["volunteer_id"], r["organization_id"], r["organization_name"],
                 r["hours_confirmed"], r["hours_unconfirmed"], r["activities"])
                for r in ledger]

    # Every hour kept: A's before the move, B's after (the fair run by X included).
    assert rows(ledger) == [("v1", "A", "区民宗局", 5.0, 0.0, 2),
                            ("v1", "B", "区教育局", 4.0, 1.5, 2),
                            ("v2", "A", "区民宗局", 4.0, 0.0, 1)]
    assert rows(at_a) == [("v1", "A", "区民宗局", 5.0, 0.0, 2),
                          ("v2", "A", "区民宗局", 4.0, 0.0, 1)]
    assert rows(at_b) == [("v1", "B", "区教育局", 4.0, 1.5, 2)]
    assert rows(since_may) == [("v1", "B", "区教育局", 4.0, 1.5, 2)]
    assert [r[:2] for r in rows(before_may)] == [("v1", "A"), ("v2", "A")]

    # The XLSX ledger shows both units, each with its hours.
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app_for(engine)),
                                 base_url="http://reporting") as http:
        xlsx = await http.get("/v1/reports/volunteers", params={"format": "xlsx"})
    assert xlsx.status_code == 200
    sheet = openpyxl.load_workbook(io.BytesIO(xlsx.content)).active
    cells = [[c for c in row] for row in sheet.iter_rows(values_only=True)]
    head = next(i for i, row in enumerate(cells) if row[0] == "姓名")
    found = {(row[0], row[2]): row[4] for row in cells[head + 1:] if row[1] == "v1"}
    assert found == {("刘春梅", "区民宗局"): 5.0, ("刘春梅", "区教育局"): 4.0}


async def test_certificate_figures_pdf_and_public_check(nc, names, engine, tmp_path: Path):
    async with Reporting(nc, names, engine, models=MODELS) as rep:
        await story(rep)
        await rep.caught_up()
    async with engine.connect() as conn:
        ledger = [r for r in await volunteers.ranking(conn, Scope()) if r["volunteer_id"] == "v1"]

    app = app_for(engine)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                 base_url="http://reporting") as http:
        made = await http.post("/v1/certificates", json={"volunteer_id": "v1"})
        assert made.status_code == 201, made.text
        cert = made.json()
        may_on = (await http.post("/v1/certificates", json={
            "volunteer_id": "v1", "from": "2024-05-01", "to": "2024-12-31"})).json()
        unknown = await http.post("/v1/certificates", json={"volunteer_id": "nobody"})
        nothing = await http.post("/v1/certificates", json={
            "volunteer_id": "v1", "from": "2025-01-01"})
        pdf = await http.get(cert["pdf"])
        page = await http.get(cert["verify"], headers={"accept": "text/html"})
        seen = (await http.get(cert["verify"])).json()
        typed = await http.get(f"/verify/{cert['code'].lower().replace('-', '')}")
        wrong = await http.get("/verify/AAAA-BBBB-CCCC-DDDD", headers={"accept": "text/html"})
        wrong_json = await http.get("/verify/AAAA-BBBB-CCCC-DDDD")

    # Confirmed hours only, each activity with its day, unit, hours and method.
    assert [(line["day"], line["title"], line["organization_name"], line["hours"],
             line["method"]) for line in cert["lines"]] == [
        ("2024-03-10", "三月义诊", "区民宗局", 3.0, "organiser"),
        ("2024-04-05", "四月义教", "区民宗局", 2.0, "self"),
        ("2024-06-08", "六月便民大集市", "虞舜集团", 4.0, "sign_in")]
    assert cert["totals"] == {"hours": 9.0, "activities": 3, "hours_by_method": {
        "self": 2.0, "organiser": 3.0, "sign_in": 4.0, "import": 0.0}}
    # The same figures as the ledger's confirmed hours, over both units.
    assert cert["totals"]["hours"] == sum(r["hours_confirmed"] for r in ledger)
    assert (cert["name"], cert["organization_name"]) == ("刘春梅", "区教育局")  # she is B's now
    assert may_on["totals"]["hours"] == 4.0 and len(may_on["lines"]) == 1
    assert unknown.status_code == 404
    assert nothing.status_code == 422 and "volunteer_id" in nothing.text
    assert cert["code"] != may_on["code"]

    # The PDF, drawn by poppler and read back: the activities, the totals, the code.
    assert pdf.status_code == 200 and pdf.headers["content-type"] == "application/pdf"
    path = tmp_path / "certificate.pdf"
    path.write_bytes(pdf.content)
    await poppler("pdftoppm", "-png", "-r", "50", "-f", "1", "-l", "1", str(path),
                  str(tmp_path / "page"))
    assert (tmp_path / "page-1.png").stat().st_size > 0  # noqa: ASYNC240 (a test's file)
    text = await poppler("pdftotext", "-layout", str(path), "-")
    for words in ("志愿服务记录证明", "刘春梅", "三月义诊", "四月义教", "六月便民大集市",
                  "区民宗局", "虞舜集团", "2024-03-10", "签到", "本人申报", "组织者录入",
                  "9 小时", "活动 3 次", cert["code"], "出具单位：区教育局"):
        assert words in text, words
    for left_out in ("七月义修", "八月义剪", "重复录入的活动", "13800138000"):
        assert left_out not in text

    # The public check: the first character, the totals and the issuing unit only.
    assert seen == {"code": cert["code"], "name": "刘**", "date_from": None, "date_to": None,
                    "hours": 9.0, "activities": 3, "organization_name": "区教育局",
                    "issued_at": cert["issued_at"]}
    assert typed.status_code == 200 and typed.json()["code"] == cert["code"]
    assert page.status_code == 200 and "刘**" in page.text and "9 小时" in page.text
    assert "区教育局" in page.text
    for private in ("春梅", "v1", "三月义诊", "虞舜集团", "区民宗局"):
        assert private not in page.text and private not in str(seen)
    assert wrong.status_code == 404 and "未找到该证明" in wrong.text
    assert wrong_json.status_code == 404
    assert wrong_json.json()["detail"][0]["field"] == "code"


async def test_the_check_needs_no_login_and_the_pdf_does(nc, names, engine):
    async with Reporting(nc, names, engine, models=MODELS) as rep:
        await story(rep)
        await rep.caught_up()
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app_for(engine)),
                                 base_url="http://reporting") as http:
        cert = (await http.post("/v1/certificates", json={"volunteer_id": "v1"})).json()

    # The service's own gate: no key, no cookie.
    public = FastAPI(dependencies=[Depends(authenticate)])
    public.include_router(certificates.router)
    public.state.engine = engine
    public.state.settings = Settings()

    async def nobody(kind: str, id_: str) -> dict | None:
        return None

    public.state.gate = Gate(nobody, "a test secret", 1.0)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=public),
                                 base_url="http://reporting") as http:
        page = await http.get(cert["verify"])
        wrong = await http.get("/verify/2222-3333-4444-5555")
        pdf = await http.get(cert["pdf"])
        issue = await http.post("/v1/certificates", json={"volunteer_id": "v1"})
    assert page.status_code == 200 and page.json()["name"] == "刘**"
    assert page.json()["hours"] == 9.0 and page.json()["organization_name"] == "区教育局"
    assert wrong.status_code == 404
    assert pdf.status_code == 401 and issue.status_code == 401
