"""Approved periods on the real processes (both database back-ends): an organiser approves a
month for its subtree through the events service; a unit's later correction is accepted and
shows in the reporting service as a restatement naming the event and the unit; the ledger's
title says so; only an organiser approves, and only its own subtree."""

from __future__ import annotations

import io
import re

import openpyxl
import pytest
from playwright.async_api import async_playwright, expect

from tests.e2e.test_dashboard import SHOWN_MS, account, logged_in
from tests.e2e.test_offline_pages import CHROMIUM_ARGS, installed_chromium
from tests.e2e.test_trust import accepted, get, new_key, offer, programme, refused
from tests.harness import System

pytestmark = pytest.mark.asyncio(loop_scope="session")


async def test_an_organiser_approves_a_month_and_a_later_correction_restates_it(system: System):
    p = await programme(system)
    unit_a = (await new_key(system, "unit", p.a["id"]))["key"]
    organiser = (await new_key(system, "organiser", p.city["id"]))["key"]
    organiser_b = (await new_key(system, "organiser", p.b["id"]))["key"]
    month = {"period": "2013-10", "organization_id": p.city["id"], "as_of": p.seq}

    refused(await offer(system, unit_a, "period.approved", month), 403, "type")
    refused(await offer(system, organiser_b, "period.approved", month), 403, "organization_id")
    refused(await offer(system, organiser, "period.approved",
                        {**month, "organization_id": None}), 403, "organization_id")
    refused(await offer(system, organiser, "period.approved", {**month, "period": "2099-01"}),
            422, "period")
    seq = await accepted(await offer(system, organiser, "period.approved", month))

    async def approval(min_seq: int) -> dict:
        r = await get(system, "reporting", "/v1/reports/approvals", organiser,
                      period="2013-10", min_seq=min_seq)
        assert r.status_code == 200, r.text
        rows = r.json()["rows"]
        assert [x["organization_id"] for x in rows] == [p.city["id"]], rows
        return rows[0]

    first = await approval(seq)
    assert (first["status"], first["causes"]) == ("approved", [])
    assert first["approved"]["totals"]["served"] == 30 and first["seen_as_of"] == p.seq

    corrected = {**p.activity_a, "served": 15, "reason": "漏记五人"}
    seq = await accepted(await offer(system, unit_a, "activity.corrected", corrected))
    later = await approval(seq)
    assert later["status"] == "restated"
    assert later["approved"]["totals"]["served"] == 30
    assert later["current"]["totals"]["served"] == 35 and later["difference"]["served"] == 5
    assert [(c["type"], c["activity_id"], c["organization_id"], c["seq"])
            for c in later["causes"]] == [
        ("activity.corrected", p.activity_a["activity_id"], p.a["id"], seq)]

    r = await get(system, "reporting", "/v1/reports/summary", organiser, format="xlsx",
                  organization_id=p.city["id"], min_seq=seq,
                  **{"from": "2013-10-01", "to": "2013-10-31"})
    assert r.status_code == 200, r.text
    title = [c.value for c in next(openpyxl.load_workbook(io.BytesIO(r.content)).active
                                   .iter_rows(max_row=1)) if c.value is not None]
    assert title[-1].startswith("有更正") and "1 项变更" in title[-1], title


async def test_an_organiser_approves_a_month_on_the_breakdown_screen_and_again_once_restated(
        system: System):
    """In the browser: an organiser's breakdown of a month offers 审定本月数据; clicking it sends
    `period.approved` to the events service and the screen says 已审定 once reporting has
    applied it; after a unit's later correction it says 有更正, lists the change (which event,
    from which unit, when) and offers 重新审定, which approves it again. A unit's login is not
    offered the button, and the events service refuses its approval from the page (403 naming
    `type`)."""
    p = await programme(system)
    unit_a = (await new_key(system, "unit", p.a["id"]))["key"]
    organiser = (await new_key(system, "organiser", p.city["id"]))["key"]
    october = f"dist?by=organization&org={p.city['id']}&from=2013-10-01&to=2013-10-31"

    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=str(installed_chromium()),
                                           headless=True, args=CHROMIUM_ARGS)
        try:
            session = await logged_in(browser, system, await account(system, "organiser",
                                                                     p.city["id"]))
            await session.show(october, "#approve")
            assert await session.text("#approval").count() == 0  # not approved yet
            button = session.text("#approve")
            await expect(button).to_have_text("审定本月数据")
            await button.click()
            await expect(session.text("#approval")).to_have_text(
                re.compile(r"^已审定 \d{4}-\d{2}-\d{2}$"), timeout=SHOWN_MS)
            await expect(session.text("#approve")).to_have_count(0)
            r = await get(system, "reporting", "/v1/reports/approvals", organiser, period="2013-10")
            first, = r.json()["rows"]
            assert (first["status"], first["organization_id"]) == ("approved", p.city["id"])
            assert first["approved"]["totals"]["served"] == 30

            seq = await accepted(await offer(system, unit_a, "activity.corrected", {
                **p.activity_a, "served": 15, "reason": "漏记五人"}))
            r = await get(system, "reporting", "/v1/reports/approvals", organiser, min_seq=seq)
            assert r.json()["rows"][0]["status"] == "restated", r.text
            await session.show(october, "#approve")
            await expect(session.text("#approval")).to_have_text(
                re.compile(r"^有更正（\d{4}-\d{2}-\d{2} 审定后 1 项变更）$"), timeout=SHOWN_MS)
            when = r"\d{4}年\d+月\d+日 \d\d:\d\d"
            await expect(session.text("#approval-causes li")).to_have_text(
                re.compile(rf"^{when} · {re.escape(p.a['name'])} · 更正活动$"))
            await expect(session.text("#approve")).to_have_text("重新审定")
            await session.show(f"{october}&lang=en", "#approve")
            await expect(session.text("#approve")).to_have_text("Approve again")
            await expect(session.text("#approval-causes li")).to_contain_text(
                "Activity corrected")
            await session.text("#approve").click()
            await expect(session.text("#approval")).to_have_text(
                re.compile(r"^approved \d{4}-\d{2}-\d{2}$"), timeout=SHOWN_MS)
            await expect(session.text("#approve")).to_have_count(0)
            await expect(session.text("#approval-causes")).to_have_count(0)
            r = await get(system, "reporting", "/v1/reports/approvals", organiser, period="2013-10")
            again, = r.json()["rows"]
            assert (again["status"], again["causes"]) == ("approved", [])
            assert again["approved"]["totals"]["served"] == 35
            assert again["approval_id"] != first["approval_id"]
            # Every request went to the programme's own services: the reports, and the two
            # approvals to the events service.
            events = system.url("events")
            posted = [u for u in session.seen[session.logged_in_at:] if u.startswith(events)]
            assert posted and {u.removeprefix(events) for u in posted} == {"/v1/events"}
            assert not session.refused, session.refused
            await session.context.close()

            unit = await logged_in(browser, system, await account(system, "unit", p.a["id"]))
            await unit.show(october.replace(p.city["id"], p.a["id"]), "#breakdown")
            await expect(unit.text("#approve")).to_have_count(0)
            # Sent from the page all the same, the events service refuses it, naming why.
            status, body = await unit.page.evaluate("""async (data) => {
                const r = await fetch(new URL("/v1/events", data.events), {
                  method: "POST", credentials: "include",
                  headers: {"Content-Type": "application/json"},
                  body: JSON.stringify({event_id: crypto.randomUUID(), type: "period.approved",
                    version: 1, occurred_at: new Date().toISOString(), source: "test",
                    data: {period: "2013-10", organization_id: data.org, as_of: 0}})});
                return [r.status, await r.json()]; }""",
                {"events": events, "org": p.a["id"]})
            assert status == 403 and body["errors"][0]["field"] == "type", body
            await unit.context.close()
        finally:
            await browser.close()
