"""The units' logging forms (`/forms/` on the events service), driven in Debian's Chromium as a
unit's person would use them (both database back-ends):

- log in through the registry's `/login` page (the forms page sends the browser there and back);
- log a fair with two stalls (one for a unit under ours) and see the success message, and the
  dashboard open beside the forms show the unit's activities and people served change live;
- log an activity with bad fields and see the Chinese messages next to those fields;
- record attendance, submit a report with a photo (uploaded first, its thumbnail shown);
- submit a need, claim it and resolve it;
- see through the reporting API that the fair's people served count for the unit: the figures
  changed;
- no request of the browser left 127.0.0.1, and the choices offered are the unit's own;
- a double click on 提交活动, a click on the form just cleared, and a retry after the answer was
  lost (the entry kept on the device and sent again on its own) each count once in the
  reports; the success shows beside the button; the form is cleared.

A screenshot of each form, as it shows its success (or errors), is saved under
TONGXIN_ARTIFACTS if set, else the test's tmp dir."""

from __future__ import annotations

import asyncio
import os
import struct
import uuid
import zlib
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from playwright.async_api import Page, async_playwright, expect

from tests.e2e.test_offline_pages import CHROMIUM_ARGS, installed_chromium
from tests.harness import System

pytestmark = pytest.mark.asyncio(loop_scope="session")

TIMEOUT_MS = 30_000
LIVE_MS = 90_000  # accepted, projected, then the dashboard's next poll or notification
PASSWORD = "tongxin-forms-密码-2013"


def png(width: int = 8, height: int = 6) -> bytes:
    """A small, real PNG (red), made here: no file from anywhere."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return (struct.pack(">I", len(data)) + kind + data
                + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF))
    rows = b"".join(b"\x00" + b"\xb2\x22\x22" * width for _ in range(height))
    return (b"\x89PNG\r\n\x1a\n"
            + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b""))


def artifacts(tmp_path: Path) -> Path:
    out = Path(os.environ["TONGXIN_ARTIFACTS"]) if os.environ.get("TONGXIN_ARTIFACTS") \
        else tmp_path
    out.mkdir(parents=True, exist_ok=True)
    return out


async def a_unit_with_an_account(system: System) -> dict:
    """A unit with a unit under it, a base it is paired with, a volunteer, and a person's
    account for the unit; also another unit with a volunteer the forms must not offer."""
    suffix = uuid.uuid4().hex[:6]
    org = await system.register("organizations", name=f"淄博市委统战部-表单-{suffix}",
                                kind="party_organization")
    child = await system.register("organizations", name=f"民盟淄博市委-{suffix}",
                                  kind="democratic_party", parent_id=org["id"])
    base = await system.register("bases", name=f"高青县刘春村-表单-{suffix}", kind="village")
    pairing = await system.register("pairings", organization_id=org["id"], base_id=base["id"],
                                    starts_on="2013-01-01")
    volunteer = await system.register("volunteers", name=f"张志愿-{suffix}",
                                      organization_id=org["id"])
    other = await system.register("organizations", name=f"别的单位-{suffix}",
                                  kind="enterprise")
    stranger = await system.register("volunteers", name=f"李外人-{suffix}",
                                      organization_id=other["id"])
    username = f"unit-{suffix}"
    async with system.client() as http:
        r = await http.post(f"{system.url('registry')}/v1/accounts", json={
            "username": username, "password": PASSWORD, "name": f"刘春村联络员-{suffix}",
            "role": "unit", "organization_id": org["id"]})
        assert r.status_code == 201, r.text
        # The events service learns the registry's records from its stream: wait for them.
        for _ in range(200):
            r = await http.get(f"{system.url('events')}/v1/forms/choices")
            assert r.status_code == 200, r.text
            known = r.json()
            if (any(v["id"] == stranger["id"] for v in known["volunteers"])
                    and any(p["id"] == pairing["id"] for p in known["pairings"])):
                break
            await asyncio.sleep(0.1)
        else:
            raise AssertionError("the events service never learnt the registered records")
    return {"org": org, "child": child, "base": base, "pairing": pairing,
            "volunteer": volunteer, "other": other, "stranger": stranger,
            "username": username}


async def accepted(page: Page, form: str) -> tuple[str, int]:
    """Submit `form` and wait for its success message: (event id, seq)."""
    await page.click(f"{form} button[type=submit]")
    ok = page.locator(f"{form} .outcome.ok")
    bad = page.locator(f"{form} .outcome.bad")
    await page.wait_for_function(
        "f => document.querySelector(f + ' .outcome.ok, ' + f + ' .outcome.bad')", arg=form,
        timeout=TIMEOUT_MS)
    assert await bad.count() == 0, await bad.inner_text()
    text = await ok.inner_text()
    event_id = await ok.get_attribute("data-event-id")
    seq = await ok.get_attribute("data-seq")
    # Said in words (ids stay on the element for scripts, not in the text a person reads).
    assert event_id and seq and "已提交" in text and event_id not in text, text
    return event_id, int(seq)


async def tab(page: Page, name: str) -> None:
    await page.click(f'.tabs a[href="#{name}"]')
    await page.locator(f"#{name}").wait_for(state="visible")


async def test_a_unit_logs_through_the_forms(system: System, tmp_path: Path):
    chromium = installed_chromium()
    world = await a_unit_with_an_account(system)
    org, base, pairing = world["org"], world["base"], world["pairing"]
    shots = artifacts(tmp_path)
    tag = system.backend.name
    before = await system.summary(organization_id=org["id"])
    assert before["totals"]["served"] == 0 and before["totals"]["activities"] == 0, before

    events, registry = system.url("events"), system.url("registry")
    seen: list[str] = []
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=str(chromium), headless=True,
                                           args=CHROMIUM_ARGS)
        try:
            context = await browser.new_context(viewport={"width": 1280, "height": 1000},
                                                locale="zh-CN")
            context.on("request", lambda request: seen.append(request.url))
            page = await context.new_page()
            page.set_default_timeout(TIMEOUT_MS)

            # -- no session: the forms send the browser to the registry's login and back
            await page.goto(f"{events}/forms/")
            assert page.url.startswith(f"{registry}/login"), page.url
            await page.fill("#username", world["username"])
            await page.fill("#password", PASSWORD)
            await page.click("button[type=submit]")
            await page.wait_for_url(f"{events}/forms/**")
            who = page.locator("#who")
            await who.wait_for()
            await page.wait_for_function("document.querySelector('#who').textContent !== ''")
            assert org["name"] in await who.inner_text()

            # -- the choices are the unit's own: its units preselected, never another's
            # volunteers
            form = "#form-activity"
            assert await page.input_value(f"{form} [name=organization_id]") == org["id"]
            units = await page.locator(
                f"{form} [name=organization_id] option").evaluate_all(
                "os => os.map(o => o.value)")
            assert set(units) == {org["id"], world["child"]["id"]}, units
            volunteers = await page.locator(
                "#form-attendance [name=volunteer_id] option").evaluate_all(
                "os => os.map(o => o.value)")
            assert world["volunteer"]["id"] in volunteers
            assert world["stranger"]["id"] not in volunteers

            # -- the dashboard, open beside the forms (the same login): the unit's figures,
            # none yet; they change there, without a reload, once the forms have logged
            dashboard = await context.new_page()
            await dashboard.goto(f"{system.url('reporting')}/#overview")
            activities = dashboard.locator("#totals [data-figure=activities] .v")
            await expect(activities).to_have_text("0", timeout=LIVE_MS)

            # -- 记录活动: a fair with two stalls, one for the unit under ours
            await page.select_option(f"{form} [name=base_id]", base["id"])
            await page.select_option(f"{form} [name=pairing_id]", pairing["id"])
            await page.fill(f"{form} [name=title]", "周末便民服务大集市")
            await page.select_option(f"{form} [name=theme]", "harmonious_society")
            await page.check(f"{form} [name=fair]")
            stalls = page.locator(f'{form} [data-rows="stalls"] .row')
            await page.select_option(f"{form} [data-path='stalls[0].service_type'] select",
                                     "haircut")
            await page.fill(f"{form} [data-path='stalls[0].served'] input", "85")
            await page.fill(f"{form} [data-path='stalls[0].title'] input", "义剪")
            await page.click(f'{form} [data-add="stalls"]')
            assert await stalls.count() == 2
            await page.select_option(f"{form} [data-path='stalls[1].service_type'] select",
                                     "repair")
            await page.fill(f"{form} [data-path='stalls[1].served'] input", "60")
            await page.select_option(f"{form} [data-path='stalls[1].organization_id'] select",
                                     world["child"]["id"])
            # The activity's served is the stalls' sum, computed as they are typed.
            assert await page.input_value(f"{form} [name=served]") == "145"
            await page.fill(f"{form} [name=volunteers]", "12")
            await page.fill(f"{form} [name=volunteer_hours]", "36")
            fair_event, fair_seq = await accepted(page, form)
            await expect(activities).to_have_text("1", timeout=LIVE_MS)
            await expect(dashboard.locator("#totals [data-figure=served] .v")).to_have_text(
                "145", timeout=LIVE_MS)
            await dashboard.screenshot(path=str(shots / f"forms-{tag}-dashboard-live.png"))
            await page.screenshot(path=str(shots / f"forms-{tag}-activity.png"), full_page=True)

            # -- the same form with bad fields: Chinese messages next to them
            await page.uncheck(f"{form} [name=fair]")
            await page.check(f"{form} [data-checks] input[value=free_clinic]")
            await page.fill(f"{form} [name=title]", "义诊")
            await page.fill(f"{form} [name=served]", "-5")
            await page.fill(f"{form} [name=started_at]", "2013-10-19T12:00")
            await page.fill(f"{form} [name=ended_at]", "2013-10-19T09:00")
            await page.click(f"{form} button[type=submit]")
            served_error = page.locator(f"{form} [data-path=served] .field-error")
            await served_error.wait_for()
            assert await served_error.inner_text() == "应不小于 0"
            ended_error = page.locator(f"{form} [data-path=ended_at] .field-error")
            assert await ended_error.inner_text() == "结束时间不能早于开始时间"
            summary = await page.locator(f"{form} .outcome.bad").inner_text()
            assert "未能提交" in summary and "服务群众（人次）：应不小于 0" in summary, summary
            await page.screenshot(path=str(shots / f"forms-{tag}-activity-errors.png"),
                                  full_page=True)

            async with system.client() as http:
                r = await http.get(f"{events}/v1/events/{fair_event}")
                assert r.status_code == 200, r.text
                fair = r.json()["envelope"]["data"]
            assert fair["served"] == 145 and fair["service_types"] == ["haircut", "repair"]
            assert [s["organization_id"] for s in fair["stalls"]] == [
                None, world["child"]["id"]], fair["stalls"]
            activity_id = fair["activity_id"]

            # -- 考勤
            await tab(page, "attendance")
            form = "#form-attendance"
            await page.select_option(f"{form} [name=activity_id]", activity_id)
            await page.select_option(f"{form} [name=volunteer_id]", world["volunteer"]["id"])
            await page.fill(f"{form} [name=hours]", "3")
            await page.select_option(f"{form} [name=method]", "organiser")
            await accepted(page, form)
            await page.screenshot(path=str(shots / f"forms-{tag}-attendance.png"),
                                  full_page=True)

            # -- 提交报告, with a photo uploaded first and shown
            await tab(page, "report")
            form = "#form-report"
            await page.select_option(f"{form} [name=activity_id]", activity_id)
            await page.fill(f"{form} [name=summary]", "大集市义剪85人次，义修60人次。")
            await page.set_input_files(f"{form} [name=photo-files]", files=[
                {"name": "集市.png", "mimeType": "image/png", "buffer": png()}])
            thumb = page.locator(f"{form} [data-thumbs] li[data-ref]")
            await thumb.wait_for()
            assert await thumb.locator("img").evaluate("i => i.naturalWidth") == 8
            ref = await thumb.get_attribute("data-ref")
            report_event, _ = await accepted(page, form)
            await page.screenshot(path=str(shots / f"forms-{tag}-report.png"), full_page=True)
            async with system.client() as http:
                r = await http.get(f"{events}/v1/events/{report_event}")
            assert r.json()["envelope"]["data"]["photos"] == [ref]

            # -- 群众需求: submit, claim, resolve
            await tab(page, "need")
            form = "#form-need-submit"
            need_id = await page.input_value(f"{form} [name=need_id]")
            await page.select_option(f"{form} [name=base_id]", base["id"])
            await page.select_option(f"{form} [name=pairing_id]", pairing["id"])
            await page.fill(f"{form} [name=title]", "三号楼前路灯维修")
            await page.select_option(f"{form} [name=category]", "repair")
            await page.select_option(f"{form} [name=urgency]", "high")
            await page.fill(f"{form} [name=description]", "路灯不亮，老人夜间出行不便")
            await accepted(page, form)
            await page.select_option("#form-need-claim [name=need_id]", need_id)
            await accepted(page, "#form-need-claim")
            form = "#form-need-resolve"
            await page.select_option(f"{form} [name=need_id]", need_id)
            assert await page.input_value(f"{form} [name=organization_id]") == org["id"]
            await page.select_option(f"{form} [name=activity_id]", activity_id)
            await page.fill(f"{form} [name=note]", "路灯已修复")
            _, last_seq = await accepted(page, form)
            await page.screenshot(path=str(shots / f"forms-{tag}-need.png"), full_page=True)

            # -- 中文/English: the page and the messages the server sends switch together
            await page.click('[data-lang="en"]')
            assert await page.inner_text('.tabs a[href="#activity"]') == "Log an activity"
            # Resolved, the need is no longer offered, and the form is cleared: filled in
            # again without one, it hears why.
            assert need_id not in await page.locator(
                f"{form} [name=need_id] option").evaluate_all("os => os.map(o => o.value)")
            assert await page.input_value(f"{form} [name=note]") == ""
            await page.fill(f"{form} [name=note]", "再次标记")
            await page.click(f"{form} button[type=submit]")
            error = page.locator(f"{form} [data-path=need_id] .field-error")
            await error.wait_for()
            assert await error.inner_text() == "Field required"
            await context.close()
        finally:
            await browser.close()

    # -- the figures changed: the fair counts for the unit (its stalls', the child's too)
    after = await system.summary(organization_id=org["id"], min_seq=max(fair_seq, last_seq))
    assert after["totals"]["activities"] == 1 and after["totals"]["served"] == 145, after
    assert after["totals"]["volunteer_hours"] == 36, after
    async with system.client() as http:
        r = await http.get(f"{system.url('reporting')}/v1/reports/needs/items",
                           params={"organization_id": org["id"], "min_seq": last_seq})
        assert r.status_code == 200, r.text
        states = {n["need_id"]: n["state"] for n in r.json()["rows"]}
    assert states.get(need_id) == "resolved", states

    # -- nothing left the machine
    assert seen
    away = [u for u in seen if urlsplit(u).scheme not in ("data", "blob")
            and urlsplit(u).hostname != "127.0.0.1"]
    assert not away, f"the forms asked other hosts for: {away}"
    print(f"\nforms ({tag}): {len(seen)} requests, all to 127.0.0.1; screenshots in {shots}")


STALLS = 51  # the largest fair in the seed articles' programmes
ROW_PX = {1280: 60, 390: 72}  # a stall's share of the section: one line; two on a phone


async def test_a_fair_of_51_stalls_fits_and_a_unit_picks_among_its_own(system: System,
                                                                        tmp_path: Path):
    chromium = installed_chromium()
    world = await a_unit_with_an_account(system)
    base, pairing = world["base"], world["pairing"]
    elsewhere = await system.register("bases", name=f"别处的村-{uuid.uuid4().hex[:6]}",
                                      kind="village")
    async with system.client() as http:  # the events service has learnt of the other base
        for _ in range(200):
            r = await http.get(f"{system.url('events')}/v1/forms/choices")
            if any(b["id"] == elsewhere["id"] for b in r.json()["bases"]):
                break
            await asyncio.sleep(0.1)
        else:
            raise AssertionError("the events service never learnt the other base")
    shots = artifacts(tmp_path)
    tag = system.backend.name
    form = "#form-activity"
    events = system.url("events")
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=str(chromium), headless=True,
                                           args=CHROMIUM_ARGS)
        try:
            context = await browser.new_context(viewport={"width": 1280, "height": 1000},
                                                locale="zh-CN")
            page = await context.new_page()
            page.set_default_timeout(TIMEOUT_MS)
            await page.goto(f"{events}/forms/")
            await page.fill("#username", world["username"])
            await page.fill("#password", PASSWORD)
            await page.click("button[type=submit]")
            await page.wait_for_url(f"{events}/forms/**")
            await page.wait_for_function("document.querySelector('#who').textContent !== ''")

            # -- the unit's base picker: its pairing's base (and a way to any other)
            values = "os => os.map(o => o.value)"
            bases = page.locator(f"{form} [name=base_id] option")
            assert await bases.evaluate_all(values) == ["", base["id"], "*all-bases*"]
            pairings = page.locator(f"{form} [name=pairing_id] option")
            assert await pairings.evaluate_all(values) == ["", pairing["id"]]
            # Another base, on request, found by its name in the filter box.
            await page.select_option(f"{form} [name=base_id]", "*all-bases*")
            assert elsewhere["id"] in await bases.evaluate_all(values)
            shown = page.locator(f"{form} [data-path=base_id] .filter")
            if await shown.is_visible():
                await shown.fill(elsewhere["name"])
            await page.select_option(f"{form} [name=base_id]", elsewhere["id"])
            assert await pairings.evaluate_all(values) == [""]  # none at that base
            # A pairing picked sets its base.
            await page.select_option(f"{form} [name=base_id]", "")
            await page.select_option(f"{form} [name=pairing_id]", pairing["id"])
            assert await page.input_value(f"{form} [name=base_id]") == base["id"]

            # -- a fair of 51 stalls: a line per stall; two on a phone
            await page.check(f"{form} [name=fair]")
            for _ in range(STALLS - 1):
                await page.click(f'{form} [data-add="stalls"]')
            rows = page.locator(f'{form} [data-rows="stalls"] .row')
            assert await rows.count() == STALLS
            await page.fill(f"{form} [data-path='stalls[50].served'] input", "7")
            assert await page.input_value(f"{form} [name=served]") == "7"
            for width in (1280, 390):
                await page.set_viewport_size({"width": width, "height": 900})
                section = await page.locator(f'{form} [data-path="stalls"]').bounding_box()
                assert section and section["height"] < STALLS * ROW_PX[width], (width, section)
                lines = await rows.nth(STALLS - 1).locator(".field, .remove").evaluate_all(
                    "els => new Set(els.map(e => Math.round(e.getBoundingClientRect().top)))"
                    ".size")
                assert lines == (1 if width > 600 else 2), (width, lines)
                wide = await page.evaluate("document.documentElement.scrollWidth")
                assert wide <= width, (width, wide)
                print(f"\n{STALLS} stalls at {width} px: {section['height']:.0f} px "
                      f"({section['height'] / STALLS:.1f} a stall)")
                await page.screenshot(path=str(shots / f"forms-{tag}-fair-{width}.png"),
                                      full_page=True)
            await context.close()
        finally:
            await browser.close()


async def logged_in(context, system: System, world: dict) -> Page:
    """A page of the forms, logged in as the unit's person through the registry's login."""
    page = await context.new_page()
    page.set_default_timeout(TIMEOUT_MS)
    await page.goto(f"{system.url('events')}/forms/")
    await page.fill("#username", world["username"])
    await page.fill("#password", PASSWORD)
    await page.click("button[type=submit]")
    await page.wait_for_url(f"{system.url('events')}/forms/**")
    await page.wait_for_function("document.querySelector('#who').textContent !== ''")
    return page


async def fill_activity(page: Page, world: dict, title: str) -> None:
    form = "#form-activity"
    await page.select_option(f"{form} [name=base_id]", world["base"]["id"])
    await page.fill(f"{form} [name=title]", title)
    await page.select_option(f"{form} [name=theme]", "new_countryside")
    await page.check(f"{form} [data-checks] input[value=free_clinic]")
    await page.fill(f"{form} [name=volunteers]", "4")
    await page.fill(f"{form} [name=volunteer_hours]", "12")
    await page.fill(f"{form} [name=served]", "30")


async def test_a_form_sent_twice_counts_once_says_so_by_its_button_and_is_cleared(
        system: System, tmp_path: Path):
    """A double click on 提交活动, a click on the cleared form, and a retry after the answer
    was lost: two activities, each counted once; the success shows beside the button."""
    chromium = installed_chromium()
    world = await a_unit_with_an_account(system)
    org = world["org"]
    shots = artifacts(tmp_path)
    tag = system.backend.name
    form = "#form-activity"
    posts: list[str | None] = []  # the Idempotency-Key of each POST /v1/activities
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=str(chromium), headless=True,
                                           args=CHROMIUM_ARGS)
        try:
            # A phone-sized window: the top of a long form is off-screen at its button.
            context = await browser.new_context(viewport={"width": 420, "height": 700},
                                                locale="zh-CN")
            context.on("request", lambda request: posts.append(
                request.headers.get("idempotency-key")) if request.method == "POST"
                and request.url.endswith("/v1/activities") else None)
            page = await logged_in(context, system, world)

            # -- a double click: one offer, one activity
            await fill_activity(page, world, "双击的义诊")
            await page.dblclick(f"{form} button[type=submit]")
            ok = page.locator(f"{form} .outcome.ok")
            await ok.wait_for()
            first_event, first_seq = await ok.get_attribute("data-event-id"), int(
                await ok.get_attribute("data-seq"))
            assert "已提交" in await ok.inner_text()
            # Seen where the person is looking: on screen, just below the button.
            await expect(ok).to_be_in_viewport()
            button = await page.locator(f"{form} button[type=submit]").bounding_box()
            shown = await ok.bounding_box()
            assert button and shown and 0 <= shown["y"] - (button["y"] + button["height"]) < 40
            await page.screenshot(path=str(shots / f"forms-{tag}-sent-once.png"))
            # ... and the form is cleared for the next one.
            assert await page.input_value(f"{form} [name=title]") == ""
            assert await page.input_value(f"{form} [name=volunteers]") == ""
            assert await page.locator(f"{form} [data-checks] input:checked").count() == 0
            assert await page.input_value(f"{form} [name=organization_id]") == org["id"]

            # -- the same button again on the cleared form: nothing is sent, the success stays
            await page.click(f"{form} button[type=submit]")
            await expect(ok).to_have_attribute("data-event-id", first_event)

            # -- the next activity; its answer is lost on the way back (the server took it)
            await fill_activity(page, world, "应答丢失的义诊")
            lost: list[int] = []

            async def lose_the_answer(route):
                if lost:  # the first answer is lost; the tries after it go through
                    await route.continue_()
                    return
                response = await route.fetch()
                lost.append((await response.json())["seq"])
                await route.abort("connectionreset")

            await context.route("**/v1/activities", lose_the_answer)
            await page.click(f"{form} button[type=submit]")
            # Kept on the device, the form cleared; sent again on its own (the same event,
            # counted once) and listed as sent.
            kept = page.locator(f"{form} .outcome.kept")
            await expect(kept).to_contain_text("已保存在本机")
            second_event = await kept.get_attribute("data-event-id")
            assert second_event and second_event != first_event
            assert await page.input_value(f"{form} [name=title]") == ""
            sent = page.locator(f'#outbox li.entry[data-id="{second_event}"]')
            await expect(sent).to_have_attribute("data-state", "sent", timeout=60_000)
            await context.unroute("**/v1/activities")
            await expect(sent).to_contain_text("只计一次")
            assert int(await sent.get_attribute("data-seq") or 0) == lost[0]
            await context.close()
        finally:
            await browser.close()

    # The double click's one POST, and the lost one with its retries (one key; the page's
    # and, where Background Sync wakes it, the service worker's).
    assert len(posts) >= 3 and posts[0] not in posts[1:] and len(set(posts[1:])) == 1, posts
    after = await system.summary(organization_id=org["id"], min_seq=max(first_seq, lost[0]))
    assert after["totals"]["activities"] == 2, after
    assert (after["totals"]["served"], after["totals"]["volunteer_hours"]) == (60, 24), after
    async with system.client() as http:
        r = await http.get(f"{system.url('reporting')}/v1/reports/activities",
                           params={"organization_id": org["id"], "min_seq": lost[0]})
    assert r.status_code == 200, r.text
    assert sorted(row["title"] for row in r.json()["rows"]) == ["双击的义诊", "应答丢失的义诊"]
