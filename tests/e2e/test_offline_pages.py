"""Every page Tongxin serves works with the network unplugged (both database back-ends):
Swagger UI at each service's `/docs` and the AsyncAPI page at the events service's
`/asyncapi`, opened in headless Chromium (Debian's, driven by Playwright) as a browser on a
government intranet would, with the admin key.

It proves that
- no request of the page goes to any host but the service's own (requests elsewhere are
  recorded, and refused as the intranet would refuse them);
- the page renders: Swagger UI's operations list, the AsyncAPI component's title and channels;
- the HTML names no other host in any `src` or `href`;
- the files under `/static/` are served without a key, while the pages and the specs they show
  still want one, and nothing but the listed files is served there.

A screenshot of each page is saved in the test's tmp dir (its path is printed)."""

from __future__ import annotations

import os
import re
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest
from playwright.async_api import Browser, BrowserContext, Page, Route, async_playwright

from shared.webassets import FILES
from tests.harness import System

pytestmark = pytest.mark.asyncio(loop_scope="session")

CHROMIUM = Path("/usr/bin/chromium")
PAGES = [("registry", "/docs"), ("events", "/docs"), ("reporting", "/docs"),
         ("events", "/asyncapi")]
RENDER_TIMEOUT_MS = 60_000  # a 3 MB script parsed on a loaded 2-core machine
# The flags this machine's Chromium wants: root has no sandbox, and Chromium's own background
# traffic (updates, sync) is refused by the closed network over and over.
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update",
                 "--disable-sync"]


def installed_chromium() -> Path:
    """Debian's Chromium: a missing one fails the test (a skip would pass unproved)."""
    if not os.access(CHROMIUM, os.X_OK):
        pytest.fail(f"{CHROMIUM} is missing: install Debian's Chromium with "
                    "`apt-get install -y chromium` (as root, `make .venv/.installed-stamp` does "
                    "it); Playwright downloads no browser of its own here", pytrace=False)
    return CHROMIUM


class Links(HTMLParser):
    """Every `src` and `href` of a page."""

    def __init__(self) -> None:
        super().__init__()
        self.found: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.found += [v for k, v in attrs if k in ("src", "href") and v]


def foreign(url: str, origin: str) -> bool:
    """Whether loading `url` would leave the machine: anything but the service's own origin.
    A `data:` or `blob:` URL is made in the page itself and never goes out."""
    parts = urlsplit(url)
    if parts.scheme in ("data", "blob"):
        return False
    return f"{parts.scheme}://{parts.netloc}" != origin


async def open_page(browser: Browser, system: System, service: str, path: str,
                    ) -> tuple[BrowserContext, Page, str, list[str], list[str]]:
    """The page opened as the admin: its HTML, every URL it asked for, and those of them
    that were foreign."""
    origin = system.url(service)
    context = await browser.new_context(extra_http_headers=system.auth(),
                                        viewport={"width": 1280, "height": 900})
    seen: list[str] = []
    refused: list[str] = []
    context.on("request", lambda request: seen.append(request.url))

    async def unplugged(route: Route) -> None:
        # What the intranet does to a request for another host; it is recorded either way.
        if foreign(route.request.url, origin):
            refused.append(route.request.url)
            await route.abort("internetdisconnected")
        else:
            await route.continue_()

    await context.route("**/*", unplugged)
    page = await context.new_page()
    response = await page.goto(origin + path, wait_until="load")
    assert response is not None and response.status == 200, (
        response and response.status, await page.content())
    return context, page, await response.text(), seen, refused


async def rendered(page: Page, path: str, system: System) -> str:
    """Wait for the page's own content; what it shows, as evidence."""
    if path == "/docs":
        await page.wait_for_selector(".opblock", timeout=RENDER_TIMEOUT_MS)
        return f"{await page.locator('.opblock').count()} operations"
    # The AsyncAPI component: its introduction with the title, and the channels (each shown
    # with its operation): where outside systems offer events, where accepted ones go out.
    intro = page.locator(".aui-root #introduction")
    await intro.wait_for(timeout=RENDER_TIMEOUT_MS)
    assert "Tongxin events" in await intro.inner_text()
    operations = page.locator(".aui-root #operations li[id^='operation-']")
    await operations.first.wait_for(timeout=RENDER_TIMEOUT_MS)
    shown = await page.locator(".aui-root #operations").inner_text()
    for channel in (system.names.ingest("activity.logged"),
                    system.names.events("activity.logged")):
        assert channel in shown, (channel, shown[:2000])
    return f"{await operations.count()} operations on the channels"


@pytest.mark.parametrize(("service", "path"), PAGES, ids=[f"{s}{p}" for s, p in PAGES])
async def test_page_loads_nothing_from_another_host(system: System, tmp_path: Path,
                                                     service: str, path: str):
    chromium = installed_chromium()
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=str(chromium), headless=True,
                                           args=CHROMIUM_ARGS)
        try:
            context, page, html, seen, refused = await open_page(browser, system, service,
                                                                 path)
            shown = await rendered(page, path, system)
            await page.wait_for_load_state("networkidle")  # what loads late is counted too
            shot = tmp_path / f"{service}{path.replace('/', '-')}.png"
            await page.screenshot(path=str(shot), full_page=False)
            await context.close()
        finally:
            await browser.close()

    origin = system.url(service)
    assert not refused, f"{service}{path} asked other hosts for: {refused}"
    assert seen and all(not foreign(url, origin) for url in seen), seen
    links = Links()
    links.feed(html)
    assert links.found and not [u for u in links.found if foreign(u, origin)
                                and urlsplit(u).scheme], links.found
    assert shot.stat().st_size > 10_000
    print(f"\n{service}{path}: {shown}; {len(seen)} requests, all to {origin}: "
          f"{[urlsplit(u).path for u in seen]}; screenshot {shot}")


async def test_static_files_are_open_and_the_pages_are_not(system: System):
    """A browser fetches a page's scripts without the key (they are public code); the pages
    and the specs behind them want it, and /static/ serves nothing but the listed files."""
    async with httpx.AsyncClient(timeout=30) as anonymous:
        for service in ("registry", "events", "reporting"):
            base = system.url(service)
            for name in FILES:
                r = await anonymous.get(f"{base}/static/{name}")
                assert r.status_code == 200 and r.content, (service, name, r.status_code)
            assert (await anonymous.get(f"{base}/static/package.json")).status_code == 404
            assert (await anonymous.get(f"{base}/static/../openapi.json")).status_code in (
                401, 404)
            for path in ("/docs", "/openapi.json") + (
                    ("/asyncapi", "/asyncapi.json") if service == "events" else ()):
                r = await anonymous.get(base + path)
                assert r.status_code == 401, (service, path, r.status_code)


async def test_every_service_serves_the_icon_every_page_names(system: System):
    """Tongxin's own icon (an SVG) at each service's /static/favicon.svg, without a key; the
    dashboard, the forms, the login page and the docs pages all name it (and no other)."""
    async with httpx.AsyncClient(timeout=30) as anonymous:
        for service in ("registry", "events", "reporting"):
            r = await anonymous.get(f"{system.url(service)}/static/favicon.svg")
            assert r.status_code == 200, (service, r.status_code)
            assert r.headers["content-type"].startswith("image/svg+xml"), r.headers
            assert r.content.lstrip().startswith(b"<svg"), r.content[:100]
        login = await anonymous.get(f"{system.url('registry')}/login")
    pages = [login.text]
    async with system.client() as http:
        for service, path in PAGES + [("events", "/forms/"), ("reporting", "/")]:
            r = await http.get(system.url(service) + path)
            assert r.status_code == 200, (service, path, r.status_code)
            pages.append(r.text)
    for html in pages:
        icons = re.findall(r'<link[^>]*rel="(?:shortcut )?icon"[^>]*>', html)
        assert len(icons) == 1 and "favicon.svg" in icons[0], (icons, html[:400])
