"""The forms with no network (both database back-ends), in Debian's Chromium with a profile on
disk, as a unit's person in a village with weak signal would use them:

- open the forms online once (logged in): the service worker is ready and the web app manifest
  makes them an app to install, with its icons, all from this host;
- go offline: the page opens from the service worker's cache, with its choices; log a fair,
  a report with a photo on that fair (not yet sent), and an activity the server will refuse;
  each is kept on the device and the form is cleared;
- close the browser, start it again offline with the same profile: all three wait;
- come back online, with no reload: the fair and the report are sent on their own, the refused
  one shows its reason next to its entry; the reporting service counts the fair and the report
  once each (waited for through `min_seq`), and sending the fair again changes nothing;
- no request of the browser left 127.0.0.1;
- and, the page unable to get through while the network is there, the service worker sends
  what waits on Background Sync."""

from __future__ import annotations

import hashlib
import re
import struct
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest
from playwright.async_api import BrowserContext, Page, async_playwright, expect

from tests.e2e.test_forms import (
    PASSWORD,
    TIMEOUT_MS,
    a_unit_with_an_account,
    artifacts,
    logged_in,
    png,
    tab,
)
from tests.e2e.test_offline_pages import CHROMIUM_ARGS, installed_chromium
from tests.harness import System

pytestmark = pytest.mark.asyncio(loop_scope="session")

# Background Sync asks the real network, which is up here: a worker it wakes as the browser
# starts sends before Playwright's offline (or a route) reaches it. This test is of the page's
# own sending (the `online` event, the retry while open); the worker's, on sync, is the next one.
NO_BACKGROUND_SYNC = ["--disable-features=BackgroundSync"]
SENT_MS = 60_000  # the `online` event's pass, else the next retry (every 5 s while open)


async def kept(page: Page, form: str) -> str:
    """Submit `form` with no network: it is kept on the device; its event id."""
    await page.click(f"{form} button[type=submit]")
    outcome = page.locator(f"{form} .outcome.kept")
    await outcome.wait_for()
    assert "已保存在本机" in await outcome.inner_text()
    event_id = await outcome.get_attribute("data-event-id")
    assert event_id
    return event_id


async def no_network(context: BrowserContext) -> None:
    """Offline for the service worker too: `set_offline` reaches the pages, but a worker woken
    by Background Sync (which asks the real network, not the emulated one) would still send."""
    await context.route("**/*", lambda route: route.abort("internetdisconnected"))


def entry(page: Page, event_id: str):
    return page.locator(f'#outbox li.entry[data-id="{event_id}"]')


async def test_forms_logged_offline_are_sent_once_when_the_network_returns(
        system: System, tmp_path: Path):
    chromium = installed_chromium()
    world = await a_unit_with_an_account(system)
    org, base = world["org"], world["base"]
    shots = artifacts(tmp_path)
    tag = system.backend.name
    events = system.url("events")
    profile = tmp_path / "chromium-profile"
    seen: list[str] = []
    photo = png(10, 7)

    async with async_playwright() as pw:
        async def browser(offline: bool) -> BrowserContext:
            context = await pw.chromium.launch_persistent_context(
                str(profile), executable_path=str(chromium), headless=True,
                args=CHROMIUM_ARGS, viewport={"width": 420, "height": 900}, locale="zh-CN",
                offline=offline)
            context.on("request", lambda request: seen.append(request.url))
            if offline:
                await no_network(context)
            return context

        # -- online once: logged in, the worker installed, the app's manifest and icons here
        context = await browser(offline=False)
        try:
            page = await logged_in(context, system, world)
            await page.wait_for_function("document.documentElement.dataset.offline === 'ready'")
            manifest = await page.evaluate(
                "fetch(document.querySelector('link[rel=manifest]').href).then(r => r.json())")
            assert manifest["display"] == "standalone", manifest
            assert urlsplit(manifest["start_url"]).path.endswith("forms/"), manifest
            assert {"192x192", "512x512"} <= {i["sizes"] for i in manifest["icons"]}
            for icon in manifest["icons"]:
                found = await page.evaluate(
                    "src => fetch(new URL(src, document.querySelector('link[rel=manifest]')"
                    ".href)).then(r => r.status)", icon["src"])
                assert found == 200, icon

            # -- offline: the page opens from the cache, with its choices
            await context.set_offline(True)
            await no_network(context)
            await page.reload()
            await page.wait_for_function(
                "document.querySelector('#who').textContent !== ''")
            await expect(page.locator("#network")).to_be_visible()
            assert org["name"] in await page.inner_text("#who")

            # -- a fair, kept on the device
            form = "#form-activity"
            await page.select_option(f"{form} [name=base_id]", base["id"])
            await page.fill(f"{form} [name=title]", "村里的便民大集市（离线）")
            await page.select_option(f"{form} [name=theme]", "new_countryside")
            await page.check(f"{form} [name=fair]")
            await page.select_option(f"{form} [data-path='stalls[0].service_type'] select",
                                     "haircut")
            await page.fill(f"{form} [data-path='stalls[0].served'] input", "40")
            await page.fill(f"{form} [name=volunteers]", "6")
            await page.fill(f"{form} [name=volunteer_hours]", "18")
            fair = await kept(page, form)
            assert await page.input_value(f"{form} [name=title]") == ""
            activity_id = await page.evaluate(
                "id => Outbox.all().then(es => es.find(e => e.id === id).activity_id)", fair)

            # -- a report on that fair (offered already, not yet sent), with a photo
            await tab(page, "report")
            form = "#form-report"
            await page.select_option(f"{form} [name=activity_id]", activity_id)
            await page.fill(f"{form} [name=summary]", "大集市义剪40人次（离线填写）。")
            await page.set_input_files(f"{form} [name=photo-files]", files=[
                {"name": "集市.png", "mimeType": "image/png", "buffer": photo}])
            await expect(page.locator(f"{form} [data-thumbs] li")).to_contain_text("联网后上传")
            report = await kept(page, form)

            # -- an activity the server will refuse (people served below 0)
            await tab(page, "activity")
            form = "#form-activity"
            await page.select_option(f"{form} [name=base_id]", base["id"])
            await page.fill(f"{form} [name=title]", "填错的义诊")
            await page.select_option(f"{form} [name=theme]", "new_countryside")
            await page.check(f"{form} [data-checks] input[value=free_clinic]")
            await page.fill(f"{form} [name=served]", "-5")
            wrong = await kept(page, form)
            await expect(page.locator('#outbox li.entry[data-state="waiting"]')).to_have_count(3)
            await page.close()

            # -- the page opened again, still offline: all three wait
            page = await context.new_page()
            page.set_default_timeout(TIMEOUT_MS)
            await page.goto(f"{events}/forms/")
            waiting = page.locator('#outbox li.entry[data-state="waiting"]')
            await expect(waiting).to_have_count(3)
            for event_id in (fair, report, wrong):
                await expect(entry(page, event_id)).to_contain_text("等待网络")
            await expect(entry(page, report)).to_contain_text("📷 1")
            await page.screenshot(path=str(shots / f"forms-offline-{tag}-waiting.png"),
                                  full_page=True)

            # -- online again, no reload: sent on their own; the refusal beside its entry
            await context.unroute_all()
            await context.set_offline(False)
            for event_id in (fair, report):
                await expect(entry(page, event_id)).to_have_attribute(
                    "data-state", "sent", timeout=SENT_MS)
                await expect(entry(page, event_id)).to_contain_text("已提交")
            await expect(entry(page, wrong)).to_have_attribute("data-state", "refused",
                                                               timeout=SENT_MS)
            refusal = entry(page, wrong).locator('.refusal[data-field="data.served"]')
            await expect(refusal).to_have_text("服务群众（人次）：应不小于 0")
            await expect(page.locator("#network")).to_be_hidden()
            seqs = [int(await entry(page, e).get_attribute("data-seq") or 0)
                    for e in (fair, report)]
            await page.screenshot(path=str(shots / f"forms-offline-{tag}-sent.png"),
                                  full_page=True)

            # -- the fair sent again (as a lost answer would make it): counted once
            again = await page.evaluate(
                "id => Outbox.all().then(es => Outbox.deliver(es.find(e => e.id === id)))", fair)
            assert again["outcome"] == "sent" and again["body"]["duplicate"], again
            assert again["body"]["seq"] == seqs[0], again
        finally:
            await context.close()

    # -- counted once each: the fair's figures, and its one report with the photo
    after = await system.summary(organization_id=org["id"], min_seq=max(seqs))
    assert after["totals"]["activities"] == 1, after
    assert (after["totals"]["served"], after["totals"]["volunteer_hours"]) == (40, 18), after
    async with system.client() as http:
        r = await http.get(f"{events}/v1/events/{report}")
        assert r.status_code == 200, r.text
        data = r.json()["envelope"]["data"]
        assert data["activity_id"] == activity_id
        assert data["photos"] == [hashlib.sha256(photo).hexdigest()], data
        r = await http.get(f"{system.url('reporting')}/v1/reports/timeliness",
                           params={"organization_id": org["id"], "min_seq": max(seqs)})
        assert r.status_code == 200, r.text
        totals = r.json()["totals"]
        assert totals["on_time"] + totals["late"] == 1, totals
        r = await http.get(f"{events}/v1/events/{wrong}")
        assert r.status_code == 404, r.text  # refused: never accepted

    away = [u for u in seen if urlsplit(u).scheme not in ("data", "blob")
            and urlsplit(u).hostname != "127.0.0.1"]
    assert seen and not away, f"the forms asked other hosts for: {away}"


async def test_the_service_worker_sends_what_waits_on_background_sync(system: System,
                                                                       tmp_path: Path):
    """The page cannot get through (its own requests fail) but the network is there: the entry
    is kept, Background Sync wakes the worker, and the worker sends it; the page, told over
    its channel, lists it as sent. Counted once."""
    chromium = installed_chromium()
    world = await a_unit_with_an_account(system)
    org = world["org"]
    form = "#form-activity"
    sent_by: list[str] = []  # who sent each POST /v1/activities that went through
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=str(chromium), headless=True,
                                           args=CHROMIUM_ARGS)
        try:
            context = await browser.new_context(viewport={"width": 420, "height": 900},
                                                locale="zh-CN")
            page = await logged_in(context, system, world)
            await page.wait_for_function("document.documentElement.dataset.offline === 'ready'")
            assert await page.evaluate(
                "navigator.serviceWorker.ready.then(r => 'sync' in r)"), "no Background Sync"

            async def only_the_worker(route):
                if route.request.service_worker is None:  # the page's own: no way through
                    await route.abort("internetdisconnected")
                    return
                sent_by.append("worker")
                await route.continue_()

            await context.route("**/v1/activities", only_the_worker)
            await page.fill(f"{form} [name=title]", "后台同步的义诊")
            await page.select_option(f"{form} [name=base_id]", world["base"]["id"])
            await page.select_option(f"{form} [name=theme]", "new_countryside")
            await page.check(f"{form} [data-checks] input[value=free_clinic]")
            for name, value in (("volunteers", "2"), ("volunteer_hours", "4"), ("served", "9")):
                await page.fill(f"{form} [name={name}]", value)
            event_id = await kept(page, form)
            item = entry(page, event_id)
            await expect(item).to_have_attribute("data-state", "sent", timeout=SENT_MS)
            seq = int(await item.get_attribute("data-seq") or 0)
            assert sent_by and set(sent_by) == {"worker"}, sent_by
            await context.close()
        finally:
            await browser.close()
    after = await system.summary(organization_id=org["id"], min_seq=seq)
    assert (after["totals"]["activities"], after["totals"]["served"]) == (1, 9), after


async def test_the_worker_is_behind_the_login_and_the_manifest_is_public(system: System):
    """`/forms/sw.js` like the page (a key or session; JavaScript, checked for a new version on
    each visit); the manifest and its icons public, from this host."""
    events = system.url("events")
    async with httpx.AsyncClient(timeout=30) as anonymous:
        r = await anonymous.get(f"{events}/forms/sw.js")
        assert r.status_code == 401, r.status_code
        r = await anonymous.get(f"{events}/static/forms/manifest.webmanifest")
        assert r.status_code == 200, r.status_code
        manifest = r.json()
        for icon in manifest["icons"]:
            found = await anonymous.get(f"{events}/static/forms/{icon['src']}")
            assert found.status_code == 200 and found.headers["content-type"] == icon["type"], \
                (icon, found.status_code, found.headers.get("content-type"))
            if icon["type"] == "image/png":
                width, height = struct.unpack(">II", found.content[16:24])
                assert f"{width}x{height}" == icon["sizes"], icon
    assert all(not urlsplit(i["src"]).netloc for i in manifest["icons"]), manifest
    async with system.client() as http:
        r = await http.get(f"{events}/forms/sw.js")
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("text/javascript"), r.headers
    assert r.headers["cache-control"] == "no-cache", r.headers
    assert "importScripts(\"../static/forms/outbox.js\")" in r.text


async def test_an_entry_waits_for_the_login_that_made_it(system: System):
    """A phone shared by two of a unit's people: what one kept offline is not sent while the
    other is logged in (it says so), and is sent once its maker logs in again."""
    chromium = installed_chromium()
    world = await a_unit_with_an_account(system)
    other = {**world, "username": f"{world['username']}-b"}
    async with system.client() as http:
        r = await http.post(f"{system.url('registry')}/v1/accounts", json={
            "username": other["username"], "password": PASSWORD, "name": "同一单位的另一位",
            "role": "unit", "organization_id": world["org"]["id"]})
        assert r.status_code == 201, r.text
    form = "#form-activity"
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=str(chromium), headless=True,
                                           args=CHROMIUM_ARGS)
        try:
            context = await browser.new_context(viewport={"width": 420, "height": 900},
                                                locale="zh-CN")
            page = await logged_in(context, system, world)
            await page.wait_for_function("document.documentElement.dataset.offline === 'ready'")
            await context.set_offline(True)
            await no_network(context)
            await page.fill(f"{form} [name=title]", "甲填写的义诊")
            await page.select_option(f"{form} [name=base_id]", world["base"]["id"])
            await page.select_option(f"{form} [name=theme]", "new_countryside")
            await page.check(f"{form} [data-checks] input[value=free_clinic]")
            for name, value in (("volunteers", "1"), ("volunteer_hours", "2"), ("served", "3")):
                await page.fill(f"{form} [name={name}]", value)
            event_id = await kept(page, form)
            await page.close()

            # -- online, the other person logged in: the entry is left for its maker
            await context.clear_cookies()  # logged out first: nothing is sent as the maker
            await context.unroute_all()
            await context.set_offline(False)
            page = await logged_in(context, system, other)
            item = entry(page, event_id)
            await expect(item).to_have_attribute("data-other", re.compile("^account:"),
                                                 timeout=SENT_MS)
            await expect(item).to_contain_text("由另一账号填写")
            stranger = await item.get_attribute("data-other")
            assert await item.get_attribute("data-state") == "waiting"
            async with system.client() as http:
                r = await http.get(f"{system.url('events')}/v1/events/{event_id}")
                assert r.status_code == 404, r.text
            await page.close()

            # -- its maker logs in again: sent
            await context.clear_cookies()
            page = await logged_in(context, system, world)
            item = entry(page, event_id)
            await expect(item).to_have_attribute("data-state", "sent", timeout=SENT_MS)
            seq = int(await item.get_attribute("data-seq") or 0)
            async with system.client() as http:
                r = await http.get(f"{system.url('events')}/v1/events/{event_id}")
                assert r.status_code == 200, r.text
                sent_as = r.json()["principal"]
            maker = await page.evaluate(
                "id => Outbox.all().then(es => es.find(e => e.id === id).who)", event_id)
            assert sent_as == maker and maker != stranger, (sent_as, maker, stranger)
            await context.close()
        finally:
            await browser.close()
    after = await system.summary(organization_id=world["org"]["id"], min_seq=seq)
    assert after["totals"]["activities"] == 1, after
