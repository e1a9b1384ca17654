"""The report document (`/v1/reports/document`) against real streams, a real database (each
back-end) and the real photo bucket: its figures are the summary's, and its first page, drawn
to PNG by poppler (`pdftoppm`) and read back as text (`pdftotext`), shows the title, the period,
the scope and those figures; the whole PDF names the overdue unit, the need resolved and the
notable activity with its photo."""

from __future__ import annotations

import asyncio
import io
import subprocess
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI
from PIL import Image

from services.events.photos import Photos
from services.reporting import document
from services.reporting.models import activities, labels, needs, timeliness
from shared.settings import Settings
from tests.factories import activity, need
from tests.integration.readmodels import Reporting, admin_app

# poppler-utils (pdftoppm, pdftotext, pdfimages): `make` installs it where it is missing.
pytestmark = pytest.mark.asyncio(loop_scope="session")
MODELS = [labels.MODEL, activities.MODEL, timeliness.MODEL, needs.MODEL]


@pytest.fixture
async def rep(nc, names, engine):
    async with Reporting(nc, names, engine, models=MODELS) as rep:
        yield rep


def app_for(rep: Reporting, nc, settings: Settings | None = None) -> FastAPI:
    app = admin_app()
    app.include_router(activities.router)
    app.include_router(document.router)
    app.state.engine = rep.engine
    app.state.projections = rep.projections
    app.state.registry = rep.projections[labels.MODEL.name]
    app.state.settings = settings or Settings()
    app.state.js = nc.jetstream()
    app.state.photos_bucket = rep.names.photos_bucket
    return app


def day(text: str, hour: int = 9) -> str:
    return f"{text}T{hour:02d}:00:00+08:00"


async def programme(rep: Reporting, nc) -> dict:
    """A March with two units' activities at one base (and a February before it): one report
    in with a photo, one missing; a need raised and resolved."""
    parent = await rep.registry("organization", name="淄博市委统战部", code="ZB-TZB",
                                kind="party_organization")
    child = await rep.registry("organization", name="淄博市民盟", code="ZB-MM",
                               kind="democratic_party", parent_id=parent["id"])
    base = await rep.registry("base", name="高青县孟家村", code="GQ-MJ", kind="village")
    await rep.event("activity.logged", activity(
        child["id"], base["id"], served=50, volunteers=4, volunteer_hours=8,
        started_at=day("2024-02-10"), ended_at=day("2024-02-10", 11)))
    clinic = activity(child["id"], base["id"], title="孟家村义诊送药", served=120,
                      volunteers=10, volunteer_hours=30.5, started_at=day("2024-03-05"),
                      ended_at=day("2024-03-05", 12))
    await rep.event("activity.logged", clinic)
    await rep.event("activity.logged", activity(
        parent["id"], base["id"], title="法律咨询进村", served=80, volunteers=6,
        volunteer_hours=12, donations=[], started_at=day("2024-03-20"),
        ended_at=day("2024-03-20", 11)))
    buffer = io.BytesIO()
    Image.new("RGB", (320, 200), (200, 60, 40)).save(buffer, "PNG")
    photo = await Photos(nc.jetstream(), rep.names, Settings()).put(buffer.getvalue())
    await rep.event("report.submitted", {
        "activity_id": clinic["activity_id"], "organization_id": child["id"],
        "summary": "为群众查体一百二十人次", "photos": [photo["ref"]]})
    submitted = datetime(2024, 3, 8, 2, tzinfo=UTC)
    lamp = need(base["id"], title="村口路灯维修")
    await rep.event("need.submitted", lamp, occurred_at=submitted)
    await rep.event("need.claimed", {"need_id": lamp["need_id"], "organization_id": child["id"]},
                    occurred_at=submitted.replace(hour=5))
    seq = await rep.event("need.resolved", {"need_id": lamp["need_id"],
                                            "organization_id": child["id"]},
                          occurred_at=submitted.replace(day=9))
    return {"parent": parent, "child": child, "base": base, "seq": seq, "photo": photo["ref"]}


async def poppler(*command: str) -> str:
    """A poppler-utils command's output (pdftoppm, pdftotext, pdfimages)."""
    done = await asyncio.to_thread(subprocess.run, command, check=True, capture_output=True,
                                   text=True)
    return done.stdout


async def pdftotext(pdf: Path, *pages: str) -> str:
    return await poppler("pdftotext", *pages, "-layout", str(pdf), "-")


async def test_the_report_document_shows_the_summary_s_figures_on_its_first_page(
        rep, nc, tmp_path):
    p = await programme(rep, nc)
    march = {"period": "2024-03", "organization_id": p["parent"]["id"], "min_seq": p["seq"]}
    transport = httpx.ASGITransport(app=app_for(rep, nc))
    async with httpx.AsyncClient(transport=transport, base_url="http://reporting") as http:
        summary = (await http.get("/v1/reports/summary", params={
            "from": "2024-03-01", "to": "2024-03-31",
            "organization_id": p["parent"]["id"], "min_seq": p["seq"]})).json()["totals"]
        assert (summary["activities"], summary["served"]) == (2, 200)
        figures = (await http.get("/v1/reports/document",
                                  params={**march, "format": "json"})).json()
        headlines = {h["key"]: h for h in figures["headlines"]}
        for key in ("activities", "served", "volunteers", "unique_volunteers",
                    "volunteer_hours"):
            assert headlines[key]["value"] == summary[key], key
        assert headlines["donation_value_cny"]["value"] == summary["donation_value_cny"] / 10_000
        assert headlines["served"]["previous"] == 50 and headlines["served"]["change"] == 3.0
        assert [u["code"] for u in figures["units"]] == ["ZB-MM", "ZB-TZB"]
        assert [u["name"] for u in figures["overdue"]] == ["淄博市委统战部"]
        assert [n["title"] for n in figures["resolved"]] == ["村口路灯维修"]
        assert figures["notable"][0]["title"] == "孟家村义诊送药"
        assert figures["notable"][0]["photo"] == p["photo"]

        r = await http.get("/v1/reports/document", params=march)
        assert r.status_code == 200, r.text
        assert r.headers["content-type"] == "application/pdf"
        assert "report_2024-03_" in r.headers["content-disposition"]
        english = await http.get("/v1/reports/document", params={**march, "lang": "en"})
        wrong = await http.get("/v1/reports/document", params={"period": "2024-13"})
        assert wrong.status_code == 422 and wrong.json()["errors"][0]["field"] == "period"

    pdf = tmp_path / "report.pdf"
    pdf.write_bytes(r.content)
    await poppler("pdftoppm", "-f", "1", "-l", "1", "-r", "60", "-png", "-singlefile", str(pdf),
                  str(tmp_path / "page1"))
    with Image.open(tmp_path / "page1.png") as page:
        assert page.size[1] > page.size[0] > 400  # A4, portrait
        inked = sum(page.convert("L").histogram()[:200])
        assert inked > page.size[0] * page.size[1] * 0.02  # text and charts, not a blank page
    first = await pdftotext(pdf, "-f", "1", "-l", "1")
    for text in ("同心结对服务工作月度报告", "2024年3月", "2024-03-01 至 2024-03-31",
                 "淄博市委统战部（含下级单位）", "主要数据", "较上月"):
        assert text in first, text
    numbers = [f"{summary['activities']:,}", f"{summary['served']:,}",
               f"{summary['volunteers']:,}", f"{summary['volunteer_hours']:,.1f}",
               f"{summary['donation_value_cny'] / 10_000:,.2f}"]
    for number in numbers:
        assert number in first.split(), number
    assert "▲ 300.0%" in first  # served: 200 against February's 50
    whole = await pdftotext(pdf)
    for text in ("淄博市民盟", "ZB-MM", "高青县孟家村", "逾期未报送单位", "村口路灯维修",
                 "孟家村义诊送药"):
        assert text in whole, text
    images = (await poppler("pdfimages", "-list", str(pdf))).splitlines()
    assert len(images) >= 3  # two header lines, then the photo

    (tmp_path / "en.pdf").write_bytes(english.content)
    text = await pdftotext(tmp_path / "en.pdf", "-f", "1", "-l", "1")
    assert "Monthly Report" in text and "March 2024" in text and "vs last month" in text


async def test_without_its_font_the_document_says_what_to_install(rep, nc):
    settings = Settings(pdf_font="/nowhere/wqy-zenhei.ttc")
    transport = httpx.ASGITransport(app=app_for(rep, nc, settings))
    async with httpx.AsyncClient(transport=transport, base_url="http://reporting") as http:
        r = await http.get("/v1/reports/document", params={"period": "2024-Q1"})
    assert r.status_code == 503
    error = r.json()["errors"][0]
    assert error["field"] == "format" and "fonts-wqy-zenhei" in error["message"]
    assert "TONGXIN_PDF_FONT" in error["message"]
