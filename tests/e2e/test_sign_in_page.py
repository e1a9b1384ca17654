"""The sign-in pages in Debian's Chromium (both database back-ends): an organiser opens the
sign-in page of a running activity and sees its QR code (an SVG drawn by the events service)
and short code; a phone (a second browser context, with no key or login) opens the page the QR
code holds, signs in — the organiser's list flags the volunteer as not signed out — then
signs out, and the list shows the signed hours, which the volunteers report counts as signed,
confirmed hours; the dashboard's volunteers screen shows them apart from self-reported hours.
A kiosk's code box leads to the same page. No request leaves 127.0.0.1.

Screenshots of both pages are saved under TONGXIN_ARTIFACTS if set, else the test's tmp dir."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from playwright.async_api import async_playwright, expect

from services.events.forms import signing
from tests.e2e.test_forms import artifacts
from tests.e2e.test_offline_pages import CHROMIUM_ARGS, installed_chromium
from tests.factories import envelope
from tests.harness import System
from tests.integration.test_sign_in import a_unit_with_volunteers, iso, logged

pytestmark = pytest.mark.asyncio(loop_scope="session")

TIMEOUT_MS = 30_000


async def test_an_organiser_shows_a_qr_code_and_a_phone_signs_in_and_out(system: System,
                                                                         tmp_path: Path):
    chromium = installed_chromium()
    unit = await a_unit_with_volunteers(system, count=1)
    who = unit["people"][0]
    now = datetime.now(UTC)
    act = await logged(system, unit["org"], unit["base"], now - timedelta(hours=1),
                       now + timedelta(hours=2))
    events = system.url("events")
    shots = artifacts(tmp_path)
    tag = system.backend.name
    seen: list[str] = []
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=str(chromium), headless=True,
                                           args=CHROMIUM_ARGS)
        try:
            # -- the organiser (an organiser's key on every request the page makes)
            desk = await browser.new_context(viewport={"width": 1280, "height": 1000},
                                             locale="zh-CN", extra_http_headers=system.auth())
            desk.on("request", lambda request: seen.append(request.url))
            organiser = await desk.new_page()
            organiser.set_default_timeout(TIMEOUT_MS)
            await organiser.goto(f"{events}/sign-in/?activity={act['activity_id']}")
            await expect(organiser.locator("#activity")).to_have_value(act["activity_id"])
            await organiser.click("#open-page button[type=submit]")
            await expect(organiser.locator("#open-page .outcome.ok")).to_have_text("签到页已打开")
            code = organiser.locator("#code")
            await expect(code).to_have_text(re.compile(f"^[{signing.ALPHABET}]{{6}}$"))
            short = (await code.inner_text()).strip()
            # The QR code is an image the server drew, loaded and shown.
            await organiser.wait_for_function(
                "() => { const q = document.querySelector('#qr');"
                " return q.complete && q.naturalWidth > 100 }")
            qr_src = await organiser.locator("#qr").evaluate("q => q.src")
            assert qr_src.startswith(events) and qr_src.endswith(f"/{short}/qr.svg"), qr_src
            phone_url = await organiser.locator("#phone-link").get_attribute("href")
            assert phone_url == f"{events}/sign/{short}", phone_url
            await expect(organiser.locator("#page-title")).to_have_text(act["title"])

            # -- a volunteer's phone: no key, no login
            handset = await browser.new_context(
                viewport={"width": 390, "height": 844}, is_mobile=True, has_touch=True,
                locale="zh-CN")
            handset.on("request", lambda request: seen.append(request.url))
            phone = await handset.new_page()
            phone.set_default_timeout(TIMEOUT_MS)
            await phone.goto(phone_url)
            await expect(phone.locator("#activity-title")).to_have_text(act["title"])
            await phone.fill("#volunteer", who["code"])
            await phone.tap("#sign-in")
            said = phone.locator("#sign .outcome.ok[data-step=in]")
            await expect(said).to_contain_text("已签到")
            # Only the first character of the name: the page is public.
            await expect(said).to_contain_text(who["name"][0] + "*")
            assert who["name"] not in await said.inner_text()

            row = organiser.locator(f"#signed tbody tr[data-volunteer='{who['id']}']")
            await expect(row).to_have_class("open")
            await expect(row).to_contain_text("未签退")
            await expect(organiser.locator("#open-count")).to_have_text(
                "1 位志愿者未签退")
            await organiser.screenshot(path=str(shots / f"sign-in-open-{tag}.png"))

            await phone.tap("#sign-out")
            said = phone.locator("#sign .outcome.ok[data-step=out]")
            await expect(said).to_contain_text("已签退")
            seq = int(await said.get_attribute("data-seq") or 0)
            assert seq > 0
            await phone.screenshot(path=str(shots / f"sign-phone-{tag}.png"))
            await expect(row).not_to_have_class("open")
            await expect(row).to_contain_text("已确认")
            await expect(organiser.locator("#open-count")).to_be_hidden()
            await organiser.screenshot(path=str(shots / f"sign-in-done-{tag}.png"))

            # -- a kiosk: the short code typed by hand leads to the same page
            kiosk = await handset.new_page()
            await kiosk.goto(f"{events}/sign/")
            await kiosk.fill("#kiosk-code", f" {short.lower()} ")
            await kiosk.click("#kiosk button[type=submit]")
            await kiosk.wait_for_url(f"{events}/sign/{short}")
            await expect(kiosk.locator("#activity-title")).to_have_text(act["title"])

            # -- the dashboard's volunteers screen: hours by method, never added together.
            # The same volunteer's hours at two earlier activities: signed by an outside
            # volunteer app (2.5 h, with its times) and self-reported (1.5 h, unconfirmed).
            day = datetime(2013, 10, 19, 1, 0, tzinfo=UTC)
            earlier = [await logged(system, unit["org"], unit["base"],
                                    day + timedelta(days=7 * i),
                                    day + timedelta(days=7 * i, hours=3)) for i in (0, 1)]
            for data in ({"method": "sign_in", "signed_in_at": iso(day),
                          "signed_out_at": iso(day + timedelta(hours=2.5))},
                         {"method": "self", "hours": 1.5}):
                r = await system.post_event(envelope({
                    "activity_id": earlier.pop(0)["activity_id"], "volunteer_id": who["id"],
                    **data}, "attendance.recorded"))
                assert r.status_code == 202, r.text
                seq = max(seq, r.json()["seq"] or 0)
            # The screen reads what reporting has applied: first wait until that is everything
            # sent (min_seq), so the figures below are these events' and not a moment before.
            async with system.client() as http:
                caught_up = await http.get(f"{system.url('reporting')}/v1/reports/volunteers",
                                           params={"organization_id": unit["org"]["id"],
                                                   "min_seq": seq})
            assert caught_up.status_code == 200, caught_up.text
            board = await desk.new_page()
            board.set_default_timeout(TIMEOUT_MS)
            await board.goto(f"{system.url('reporting')}/#volunteers?org={unit['org']['id']}")
            ledger = board.locator("#volunteer-list")
            await expect(ledger).to_contain_text(who["name"], timeout=60_000)
            await expect(ledger.locator("thead")).to_contain_text("签到签退(小时)")
            await expect(ledger.locator("thead")).to_contain_text("本人申报(小时)")
            figure = "#screen [data-figure={}] .v".format
            await expect(board.locator(figure("bySelf"))).to_have_text("1.5")
            await expect(board.locator(figure("hoursUnconfirmed"))).to_have_text("1.5")
            await expect(board.locator(figure("openSignIns"))).to_have_text("0")
            # Signed: the 2.5 h and the phone's span (seconds, or more on a busy machine).
            async with system.client() as http:
                (phone_signed,) = (await http.get(
                    f"{events}/v1/sign-in/pages/{short}")).json()["signed"]
            shown = [float(await board.locator(figure(f)).inner_text())
                     for f in ("bySignIn", "hoursConfirmed")]
            assert shown == [pytest.approx(2.5 + phone_signed["hours"], abs=0.011)] * 2
            await board.screenshot(path=str(shots / f"dashboard-volunteers-{tag}.png"))
            await desk.close()
            await handset.close()
        finally:
            await browser.close()

    # The hours are the signed span, counted as signed, confirmed hours.
    async with system.client() as http:
        r = await http.get(f"{system.url('reporting')}/v1/reports/volunteers",
                           params={"organization_id": unit["org"]["id"], "min_seq": seq})
        assert r.status_code == 200, r.text
        (mine,) = r.json()["rows"]
        page = (await http.get(f"{events}/v1/sign-in/pages/{short}")).json()
    (signed,) = page["signed"]
    span = (datetime.fromisoformat(signed["signed_out_at"])
            - datetime.fromisoformat(signed["signed_in_at"])).total_seconds() / 3600
    assert signed["hours"] == pytest.approx(span, abs=1e-4) and span > 0
    assert mine["hours_by_method"]["sign_in"] == pytest.approx(round(span, 2) + 2.5, abs=0.01)
    assert mine["hours_by_method"]["self"] == 1.5 and mine["hours_unconfirmed"] == 1.5
    assert mine["hours_confirmed"] == mine["hours_by_method"]["sign_in"]
    assert mine["open_sign_ins"] == 0
    hosts = {urlsplit(u).hostname for u in seen if not u.startswith(("data:", "blob:"))}
    assert hosts == {"127.0.0.1"}, hosts
