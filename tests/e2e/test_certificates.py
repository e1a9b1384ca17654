"""Service certificates and records that move, as organisers and strangers meet them (services
as processes, both database back-ends): a volunteer moved to another unit in the registry has
her hours under each unit in the right periods; her new unit's organiser issues a certificate
of every confirmed hour; anyone checks its code at the public page without a key."""

from __future__ import annotations

import uuid

import httpx
import pytest
from playwright.async_api import async_playwright, expect

from tests.e2e.test_offline_pages import CHROMIUM_ARGS, foreign, installed_chromium
from tests.factories import activity, envelope

pytestmark = pytest.mark.asyncio(loop_scope="session")


async def test_a_moved_volunteer_keeps_her_hours_and_her_certificate_can_be_checked(system):
    s = uuid.uuid4().hex[:6]
    a = await system.register("organizations", name=f"区民宗局-{s}", kind="government_department")
    b = await system.register("organizations", name=f"区教育局-{s}", kind="government_department")
    base = await system.register("bases", name=f"刘春村-{s}", kind="village")
    her = await system.register("volunteers", name="刘春梅", organization_id=a["id"],
                                party_status="serving_member", phone="13805331234")
    other = await system.register("volunteers", name="王建国", organization_id=a["id"],
                                  organization_since="2020-01-01")
    registry, reporting = system.url("registry"), system.url("reporting")

    async def served(unit: dict, day: str, title: str, hours: float, method: str,
                     status_by: dict | None = None) -> int:
        act = activity(unit["id"], base["id"], title=title, started_at=f"{day}T09:00:00+08:00",
                       ended_at=f"{day}T13:00:00+08:00")
        assert (await system.post_activity(act)).status_code == 202
        r = await system.post_event(envelope({
            "activity_id": act["activity_id"], "volunteer_id": her["id"], "hours": hours,
            "method": method}, "attendance.recorded"))
        assert r.status_code == 202, r.text
        if status_by:
            r = await system.post_event(envelope({
                "activity_id": act["activity_id"], "volunteer_id": her["id"], **status_by},
                "attendance.confirmed" if "reason" not in status_by else "attendance.declined"))
            assert r.status_code == 202, r.text
        return r.json()["seq"]

    await served(a, "2024-03-10", "三月义诊", 3, "organiser")
    await served(a, "2024-04-05", "四月义教", 2, "self", {"organization_id": a["id"]})
    async with system.client() as http:
        moved = await http.patch(f"{registry}/v1/volunteers/{her['id']}", json={
            "organization_id": b["id"], "organization_since": "2024-05-01"})
        # A move without its day: the old day goes, the move counts from the day it is made.
        today_move = await http.patch(f"{registry}/v1/volunteers/{other['id']}",
                                      json={"organization_id": b["id"]})
    assert moved.status_code == 200 and moved.json()["organization_since"] == "2024-05-01"
    assert today_move.json()["organization_since"] is None
    await served(b, "2024-06-08", "六月义修", 4, "organiser")
    await served(b, "2024-07-02", "七月义剪", 1.5, "self")  # waits for its unit
    last = await served(b, "2024-08-03", "八月义诊", 2, "organiser",
                        {"organization_id": b["id"], "reason": "未到场"})

    async def ledger(**params) -> list[tuple]:
        async with system.client() as http:
            r = await http.get(f"{reporting}/v1/reports/volunteers",
                               params={"min_seq": last, **params})
        assert r.status_code == 200, r.text
        return [(row["organization_name"], row["hours_confirmed"], row["hours_unconfirmed"])
                for row in r.json()["rows"] if row["volunteer_id"] == her["id"]]

    # The move reaches reporting on the registry's stream, which `min_seq` waits for too.
    found = await ledger()
    assert sorted(found) == sorted([(a["name"], 5.0, 0.0), (b["name"], 4.0, 1.5)])
    assert await ledger(to="2024-04-30") == [(a["name"], 5.0, 0.0)]
    assert await ledger(**{"from": "2024-05-01"}) == [(b["name"], 4.0, 1.5)]
    assert await ledger(organization_id=a["id"]) == [(a["name"], 5.0, 0.0)]

    # Her new unit's organiser issues the certificate: every confirmed hour, both units.
    organiser_b = await system.issue_key("organiser", b["id"])
    organiser_a = await system.issue_key("organiser", a["id"])
    async with system.client(organiser_b) as http:
        made = await http.post(f"{reporting}/v1/certificates", params={"min_seq": last},
                               json={"volunteer_id": her["id"]})
        assert made.status_code == 201, made.text
        cert = made.json()
        pdf = await http.get(f"{reporting}{cert['pdf']}")
    async with system.client(organiser_a) as http:
        not_hers = await http.post(f"{reporting}/v1/certificates",
                                   json={"volunteer_id": her["id"]})
    assert [(line["title"], line["hours"]) for line in cert["lines"]] == [
        ("三月义诊", 3.0), ("四月义教", 2.0), ("六月义修", 4.0)]
    assert cert["totals"]["hours"] == 9.0 and cert["organization_name"] == b["name"]
    assert pdf.status_code == 200 and pdf.content.startswith(b"%PDF")
    assert not_hers.status_code == 403
    assert not_hers.json()["errors"][0]["field"] == "volunteer_id"

    # Anyone, with no key: the first character, the totals and the issuing unit.
    async with httpx.AsyncClient(timeout=30) as stranger:
        page = await stranger.get(f"{reporting}{cert['verify']}",
                                  headers={"accept": "text/html"})
        seen = await stranger.get(f"{reporting}{cert['verify']}")
        wrong = await stranger.get(f"{reporting}/verify/2222-3333-4444-5555")
        no_key_pdf = await stranger.get(f"{reporting}{cert['pdf']}")
    assert page.status_code == 200 and "刘**" in page.text and b["name"] in page.text
    assert "春梅" not in page.text and "三月义诊" not in page.text and her["id"] not in page.text
    assert seen.json()["name"] == "刘**" and seen.json()["hours"] == 9.0
    assert wrong.status_code == 404 and wrong.json()["errors"][0]["field"] == "code"
    assert no_key_pdf.status_code == 401

    # In a browser with no login: the page, and nothing loaded from another host.
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=str(installed_chromium()),
                                           headless=True, args=CHROMIUM_ARGS)
        try:
            page_in = await browser.new_page()
            asked: list[str] = []
            page_in.on("request", lambda request: asked.append(request.url))
            await page_in.goto(f"{reporting}{cert['verify'].lower()}")
            await expect(page_in.locator("table")).to_contain_text("刘**")
            await expect(page_in.locator("table")).to_contain_text("9 小时")
            await expect(page_in.locator("table")).to_contain_text(b["name"])
            assert "春梅" not in await page_in.content()
            await page_in.goto(f"{reporting}/verify/2222-3333-4444-5555")
            await expect(page_in.locator("h1")).to_contain_text("未找到该证明")
        finally:
            await browser.close()
    assert [u for u in asked if foreign(u, reporting)] == []
