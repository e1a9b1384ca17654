"""A need that may repeat another, linked from the units' forms (both database back-ends), in
Debian's Chromium as a unit's person would:

- two needs of one category at one base, a few hours apart, come from the hotline: the forms'
  choices flag the second as a possible duplicate of the first, and name the first;
- the dashboard's oldest needs list it with a "去关联" action for the unit (none for a reader),
  which opens the forms' link form with that need chosen and the unit to link it as;
- in the forms, the second shows beside the claim picker as "可能与…重复", naming the original by
  its title, category, base and date (no id), and in English too;
- with no network, one click links it: the link waits on the device (and is not offered again),
  and is sent on its own, once, when the network returns;
- the link stands once in TONGXIN_EVENTS;
- once reporting has applied it (`min_seq`), the needs report shows it closed as a duplicate,
  linked to the original, no longer a possible duplicate, and counted once: the original alone
  is due a response."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from playwright.async_api import async_playwright, expect

from tests.e2e.test_forms import (
    LIVE_MS,
    PASSWORD,
    TIMEOUT_MS,
    a_unit_with_an_account,
    artifacts,
    logged_in,
    tab,
)
from tests.e2e.test_forms_offline import NO_BACKGROUND_SYNC, SENT_MS
from tests.e2e.test_offline_pages import CHROMIUM_ARGS, installed_chromium
from tests.harness import System

pytestmark = pytest.mark.asyncio(loop_scope="session")


async def test_a_possible_duplicate_is_linked_from_the_forms(system: System, tmp_path: Path):
    chromium = installed_chromium()
    world = await a_unit_with_an_account(system)
    org, base = world["org"], world["base"]
    world["reader"] = f"reader-{uuid.uuid4().hex[:6]}"
    async with system.client() as http:
        r = await http.post(f"{system.url('registry')}/v1/accounts", json={
            "username": world["reader"], "password": PASSWORD, "name": "只读的人",
            "role": "reader", "organization_id": org["id"]})
        assert r.status_code == 201, r.text
    shots = artifacts(tmp_path)
    tag = system.backend.name
    events, reporting = system.url("events"), system.url("reporting")
    suffix = uuid.uuid4().hex[:6]
    first, second = f"hotline-{suffix}-1", f"hotline-{suffix}-2"
    now = datetime.now(UTC).replace(microsecond=0)
    for need_id, title, hours_ago in ((first, "三号楼前路灯不亮", 3),
                                      (second, "三号楼路灯又坏了", 1)):
        r = await system.post_event({
            "event_id": str(uuid.uuid4()), "type": "need.submitted", "version": 1,
            "occurred_at": (now - timedelta(hours=hours_ago)).isoformat(),
            "source": "12345-hotline",
            "data": {"need_id": need_id, "base_id": base["id"], "title": title,
                     "category": "repair", "channel": "hotline"}})
        assert r.status_code == 202, r.text

    # -- the choices flag the second, naming the first
    async with system.client() as http:
        r = await http.get(f"{events}/v1/forms/choices")
    assert r.status_code == 200, r.text
    listed = {n["need_id"]: n for n in r.json()["needs"]}
    assert listed[first]["possible_duplicate_of"] is None and listed[first]["original"] is None
    assert listed[second]["possible_duplicate_of"] == first
    assert listed[second]["original"] == {
        "need_id": first, "title": "三号楼前路灯不亮", "category": "repair",
        "base_id": base["id"],
        "submitted_at": (now - timedelta(hours=3)).isoformat().replace("+00:00", "Z")}

    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=str(chromium), headless=True,
                                           args=CHROMIUM_ARGS + NO_BACKGROUND_SYNC)
        try:
            context = await browser.new_context(viewport={"width": 1280, "height": 1000},
                                                locale="zh-CN")
            page = await logged_in(context, system, world)

            # -- the dashboard (the same login): the flag, and the action that links it
            dashboard = await context.new_page()
            dashboard.set_default_timeout(TIMEOUT_MS)
            await dashboard.goto(f"{reporting}/#needs")
            action = dashboard.locator(f'#oldest-needs a.link-duplicate[href*="link={second}"]')
            await action.wait_for(timeout=LIVE_MS)  # applied by reporting, then shown
            assert await dashboard.locator("#oldest-needs a.link-duplicate").count() == 1
            assert await action.inner_text() == "去关联"
            await action.click()
            await dashboard.wait_for_url(f"{events}/forms/**")
            await expect(dashboard.locator("#form-need-link [name=need_id]")).to_have_value(
                second)
            assert "三号楼前路灯不亮" in await dashboard.inner_text(
                "#form-need-link .original-text")
            assert await dashboard.input_value(
                "#form-need-link [name=organization_id]") == org["id"]
            await dashboard.close()

            # -- a reader sees the flag on the dashboard, and no action: it may not link
            reader = await browser.new_context(locale="zh-CN")
            looker = await reader.new_page()
            looker.set_default_timeout(TIMEOUT_MS)
            await looker.goto(f"{reporting}/#needs")
            await looker.fill("#username", world["reader"])
            await looker.fill("#password", PASSWORD)
            await looker.click("button[type=submit]")
            await looker.wait_for_url(f"{reporting}/**")
            await looker.goto(f"{reporting}/#needs")  # the login came back without the hash
            await looker.locator("#oldest-needs tbody td", has_text=first).wait_for(
                timeout=LIVE_MS)  # the flag: the original's id
            assert await looker.locator("#oldest-needs a.link-duplicate").count() == 0
            await reader.close()

            await tab(page, "need")

            # -- picked to claim, the second says what it may repeat, in words
            form = "#form-need-claim"
            await page.select_option(f"{form} [name=need_id]", second)
            note = page.locator(f"{form} [data-duplicate]")
            await expect(note).to_be_visible()
            date = (now - timedelta(hours=3)).astimezone().strftime("%Y-%m-%d")
            text = await note.locator(".duplicate-text").inner_text()
            assert text.startswith("可能与「三号楼前路灯不亮」") and text.endswith("重复"), text
            assert base["name"] in text and "义修" in text and date in text, text
            assert first not in text and second not in text, text
            option = await page.locator(f"{form} [name=need_id] option[value='{second}']")\
                .inner_text()
            assert "可能与" in option, option
            await page.select_option(f"{form} [name=need_id]", first)  # the original: no flag
            await expect(note).to_be_hidden()
            await page.click('[data-lang="en"]')
            await page.select_option(f"{form} [name=need_id]", second)
            text = await note.locator(".duplicate-text").inner_text()
            assert text.startswith("Possible duplicate of “三号楼前路灯不亮”"), text
            await page.click('[data-lang="zh"]')

            # -- offline, one click links it: kept on the device, not offered again
            await context.set_offline(True)
            await note.locator(".link-duplicate").click()
            outcome = page.locator("#form-need-link .outcome.kept")
            await outcome.wait_for()
            link_id = await outcome.get_attribute("data-event-id")
            assert link_id
            entry = page.locator(f'#outbox li.entry[data-id="{link_id}"]')
            await expect(entry).to_have_attribute("data-state", "waiting")
            assert "三号楼路灯又坏了" in await entry.inner_text()
            await expect(note.locator(".link-duplicate")).to_be_hidden()
            assert "尚未提交" in await note.locator(".duplicate-text").inner_text()
            assert second not in await page.locator(
                "#form-need-link [name=need_id] option").evaluate_all(
                "os => os.map(o => o.value)")
            await page.screenshot(path=str(shots / f"forms-{tag}-duplicate.png"),
                                  full_page=True)

            # -- the network returns: sent on its own, once
            await context.set_offline(False)
            await expect(entry).to_have_attribute("data-state", "sent", timeout=SENT_MS)
            seq = int(await entry.get_attribute("data-seq") or 0)
            assert seq > 0
            # Linked, the repeat is no longer offered to claim; the original still is.
            await expect(page.locator(f"{form} [name=need_id] option[value='{second}']"))\
                .to_have_count(0)
            await expect(page.locator(f"{form} [name=need_id] option[value='{first}']"))\
                .to_have_count(1)
            await context.close()

        finally:
            await browser.close()

    # -- reporting, once it has applied the link: closed as a duplicate, counted once
    async with system.client() as http:
        r = await http.get(f"{reporting}/v1/reports/needs/items",
                           params={"base_id": base["id"], "min_seq": seq})
        assert r.status_code == 200, r.text
        rows = {n["need_id"]: n for n in r.json()["rows"]}
        r = await http.get(f"{reporting}/v1/reports/needs", params={
            "base_id": base["id"], "min_seq": seq,
            "at": (now + timedelta(hours=48)).isoformat()})
        assert r.status_code == 200, r.text
        totals = r.json()["totals"]
        r = await http.get(f"{events}/v1/events/{link_id}")
        assert r.json()["envelope"]["data"] == {
            "need_id": second, "original_id": first, "organization_id": org["id"]}
    assert await system.events_published({link_id}) == {link_id: 1}
    assert (rows[second]["state"], rows[second]["outcome"], rows[second]["linked_to"],
            rows[second]["possible_duplicate_of"]) == ("closed", "duplicate", first, None)
    assert (rows[first]["state"], rows[first]["possible_duplicate_of"]) == ("open", None)
    assert (totals["total"], totals["closed_duplicate"], totals["possible_duplicates"],
            totals["never_claimed"], totals["response_due"]) == (2, 1, 0, 1, 1), totals
