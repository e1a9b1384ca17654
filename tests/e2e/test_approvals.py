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

from tests.e2e.test_dashboard import SHOWN_MS, account, logged_in, only_own_hosts
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


async def test_the_breakdown_screen_says_a_month_is_approved_then_restated(system: System):
    """In the browser: the month's breakdown by unit says 已审定 once approved, and 有更正 after
    a unit's later correction (the server's words, in the page's language)."""
    p = await programme(system)
    unit_a = (await new_key(system, "unit", p.a["id"]))["key"]
    organiser = (await new_key(system, "organiser", p.city["id"]))["key"]
    seq = await accepted(await offer(system, organiser, "period.approved", {
        "period": "2013-10", "organization_id": p.city["id"], "as_of": p.seq}))
    r = await get(system, "reporting", "/v1/reports/approvals", organiser, min_seq=seq)
    assert r.status_code == 200, r.text

    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=str(installed_chromium()),
                                           headless=True, args=CHROMIUM_ARGS)
        try:
            session = await logged_in(browser, system, await account(system, "organiser",
                                                                     p.city["id"]))
            october = (f"dist?by=organization&org={p.city['id']}"
                       "&from=2013-10-01&to=2013-10-31")
            await session.show(october, "#approval")
            await expect(session.text("#approval")).to_have_text(re.compile(r"^已审定 \d{4}-"))
            seq = await accepted(await offer(system, unit_a, "activity.corrected", {
                **p.activity_a, "served": 15, "reason": "漏记五人"}))
            r = await get(system, "reporting", "/v1/reports/approvals", organiser, min_seq=seq)
            assert r.json()["rows"][0]["status"] == "restated", r.text
            await session.show(october, "#approval")
            await expect(session.text("#approval")).to_have_text(
                re.compile(r"^有更正（\d{4}-\d{2}-\d{2} 审定后 1 项变更）$"), timeout=SHOWN_MS)
            only_own_hosts(session)
            await session.context.close()
        finally:
            await browser.close()
