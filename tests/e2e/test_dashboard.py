"""The dashboard at the reporting service's `/`, in Debian's Chromium driven by Playwright, on a
system of its own with the demo loaded (both database back-ends).

A person logs in through the registry's `/login` page (the dashboard sends a browser without a
session there and back), then visits every screen and sees the demo's true figures: Zibo's 132
activities and 8,700 served, the Shangyu units that owe reports named, Chizhou's needs backlog,
Zhenjiang's door-knocking drive covering every household, Shangyu's 2010 leaderboard, Jinan's
pairing with its four needs; follows a drill-down region → district → base → activities;
switches to English; downloads a table as XLSX; and, with the page open, sees the overview
total change when an activity is logged through the API. A unit's account sees only its own
subtree's figures. No request of any page goes to a host but the services' own.

A screenshot of each screen is kept under $TONGXIN_ARTIFACTS (else the test's tmp dir)."""

from __future__ import annotations

import asyncio
import os
import re
import subprocess
from collections.abc import AsyncIterator
from itertools import pairwise
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import pytest_asyncio
from playwright.async_api import Browser, BrowserContext, Page, async_playwright, expect

from tests.e2e import test_demo
from tests.e2e.test_demo import final_states, report
from tests.e2e.test_offline_pages import CHROMIUM_ARGS, foreign, installed_chromium
from tests.factories import activity
from tests.harness import System
from tongxin.demo import chizhou, shangyu
from tongxin.demo.build import register

pytestmark = pytest.mark.asyncio(loop_scope="session")

# The demo's own system and load (module-scoped fixtures): this module gets a system of its own.
system = test_demo.system
loaded = test_demo.loaded

SHOWN_MS = 60_000   # a screen's figures, read from a database on a shared 2-core machine
LIVE_MS = 90_000    # a new activity: accepted, projected, then the page's next 10 s poll
PASSWORD = "同心-dashboard-pw"


def artefacts(tmp_path_factory) -> Path:
    where = os.environ.get("TONGXIN_ARTIFACTS")
    path = Path(where) / "dashboard" if where else tmp_path_factory.mktemp("dashboard")
    path.mkdir(parents=True, exist_ok=True)
    return path


@pytest.fixture(scope="module")
def shots(tmp_path_factory) -> Path:
    return artefacts(tmp_path_factory)


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def browser() -> AsyncIterator[Browser]:
    chromium = installed_chromium()
    async with async_playwright() as pw:
        found = await pw.chromium.launch(executable_path=str(chromium), headless=True,
                                         args=CHROMIUM_ARGS)
        yield found
        await found.close()


async def account(system: System, role: str, organization_id: str | None) -> str:
    """A new account (by the admin's key), once the reporting service knows it."""
    username = f"dash-{role}-{os.urandom(3).hex()}"
    async with system.client() as http:
        r = await http.post(f"{system.url('registry')}/v1/accounts", json={
            "username": username, "password": PASSWORD, "name": f"王科长-{role}",
            "role": role, "organization_id": organization_id})
        assert r.status_code == 201, r.text
        login = await http.post(f"{system.url('registry')}/login",
                                data={"username": username, "password": PASSWORD})
        assert login.status_code == 303, login.text
        cookie = login.cookies["tongxin_session"]
    deadline = asyncio.get_running_loop().time() + 30
    async with system.client(headers={"Cookie": f"tongxin_session={cookie}",
                                      "Authorization": ""}) as http:
        while (await http.get(f"{system.url('reporting')}/v1/whoami")).status_code != 200:
            assert asyncio.get_running_loop().time() < deadline, "reporting never knew it"
            await asyncio.sleep(0.2)
    return username


class Session:
    """A logged-in browser on the dashboard, recording every URL it asks for."""

    def __init__(self, context: BrowserContext, page: Page, origin: str):
        self.context, self.page, self.origin = context, page, origin
        self.seen: list[str] = []
        self.refused: list[str] = []
        self.logged_in_at = 0  # how many requests the login took (to the registry's page)

    async def show(self, hash_: str, ready: str) -> None:
        """Open `#hash_` and wait until `ready` (a selector) is on screen."""
        await self.page.goto(f"{self.origin}/#{hash_}")
        await self.page.locator(ready).first.wait_for(timeout=SHOWN_MS)

    def text(self, selector: str):
        return self.page.locator(selector)


async def logged_in(browser: Browser, system: System, username: str) -> Session:
    origin = system.url("reporting")
    # The login page is the registry's; the dashboard's own writes (an approval) go to the
    # events service: the programme's hosts, all three.
    services = {f"{urlsplit(system.url(s)).scheme}://{urlsplit(system.url(s)).netloc}"
                for s in ("registry", "reporting", "events")}
    context = await browser.new_context(viewport={"width": 1280, "height": 900}, locale="zh-CN")
    page = await context.new_page()
    session = Session(context, page, origin)
    context.on("request", lambda request: session.seen.append(request.url))

    async def unplugged(route) -> None:
        # What a government intranet does to a request for another host: refuse it.
        if all(foreign(route.request.url, o) for o in services):
            session.refused.append(route.request.url)
            await route.abort("internetdisconnected")
        else:
            await route.continue_()

    await context.route("**/*", unplugged)
    await page.goto(f"{origin}/")  # no session: the registry's login page, then back
    assert urlsplit(page.url).path == "/login", page.url
    await page.fill("#username", username)
    await page.fill("#password", PASSWORD)
    await page.click("button[type=submit]")
    await page.wait_for_url(f"{origin}/**", timeout=SHOWN_MS)
    session.logged_in_at = len(session.seen)
    await page.locator("#screen [data-figure]").first.wait_for(timeout=SHOWN_MS)
    return session


async def shoot(session: Session, shots: Path, name: str) -> Path:
    path = shots / f"{name}.png"
    await session.page.screenshot(path=str(path), full_page=True)
    return path


def only_own_hosts(session: Session) -> None:
    """After the login page, every request went to the reporting service itself."""
    assert not session.refused, session.refused
    after_login = session.seen[session.logged_in_at:]
    assert after_login and [u for u in after_login if foreign(u, session.origin)] == []


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def admin(browser, system, loaded) -> AsyncIterator[Session]:
    # Every read model has the whole demo before the first screen is read.
    await report(system, loaded, "/v1/reports/summary")
    await report(system, loaded, "/v1/reports/needs")
    await report(system, loaded, "/v1/reports/timeliness")
    session = await logged_in(browser, system, await account(system, "admin", None))
    yield session
    await session.context.close()


def number(n: int) -> str:
    return f"{n:,}"


async def test_overview_shows_zibo_and_every_request_stays_home(admin, loaded, shots):
    await admin.show("overview?region=370300", "#totals")
    await expect(admin.text("#totals [data-figure=served] .v")).to_have_text(
        number(8_700), timeout=SHOWN_MS)
    await expect(admin.text("#totals [data-figure=activities] .v")).to_have_text("132")
    await expect(admin.text("#totals [data-figure=trainees] .v")).to_have_text("269")
    assert await admin.text("#screen .chart rect.bar").count() >= 8  # months with activities
    assert await admin.text("#filters select[name=region]").input_value() == "370300"
    assert await admin.text("#who").inner_text()  # who is logged in
    assert (await admin.text("#forms").get_attribute("href")).endswith("/forms/")
    await shoot(admin, shots, "overview")
    only_own_hosts(admin)


async def test_drill_region_district_base_activities(admin, system, loaded, shots):
    await admin.show("dist?by=region", "#breakdown tbody tr.drill")
    await admin.text("#breakdown tbody tr.drill").filter(has_text="淄博市").click()
    await expect(admin.text("#breakdown tbody")).to_contain_text("高青县", timeout=SHOWN_MS)
    assert "region=370300" in admin.page.url
    await admin.text("#breakdown tbody tr.drill").filter(has_text="高青县").click()
    await expect(admin.text("#breakdown tbody")).to_contain_text("刘春村", timeout=SHOWN_MS)
    await shoot(admin, shots, "breakdown")
    await admin.text("#breakdown tbody tr.drill").filter(has_text="刘春村").click()
    listed = admin.text("#activity-list tbody tr")
    await listed.first.wait_for(timeout=SHOWN_MS)
    liuchun = loaded.ids["bases"]["zb-liuchun"]
    expected = await report(system, loaded, "/v1/reports/activities", base_id=liuchun)
    assert expected["rows"] and await listed.count() == len(expected["rows"])
    await expect(admin.text("#activity-list tbody")).to_contain_text(expected["rows"][0]["title"])
    await expect(admin.text(".crumbs")).to_contain_text("淄博市")
    await shoot(admin, shots, "activities")
    only_own_hosts(admin)


async def test_every_breakdown_has_a_chart_and_a_table(admin, shots):
    for by in ("organization", "base", "theme", "service_type"):
        await admin.show(f"dist?by={by}&region=341700", "#breakdown tbody tr")
        assert await admin.text("#screen .chart rect.bar").count() >= 1, by
        await expect(admin.text("#breakdown tfoot")).to_contain_text("合计")
    await shoot(admin, shots, "service-types")


async def test_needs_backlog_of_chizhou(admin, shots):
    expected = final_states(chizhou.history())
    await admin.show("needs?region=341700", "#need-states")
    for state in ("open", "claimed", "resolved", "closed"):
        await expect(admin.text(f"#need-states [data-figure={state}] .v")).to_have_text(
            number(expected[state]), timeout=SHOWN_MS)
    assert await admin.text("#oldest-needs tbody tr").count() == min(expected["open"], 20)
    await shoot(admin, shots, "needs")


def percent(rate: float | None) -> str:
    return "—" if rate is None else f"{rate * 100:.1f}%"


async def test_needs_rates_of_chizhou(admin, system, loaded, shots):
    """The three rates as the needs report gives them, as cards and by month, in either
    language."""
    expected = await report(system, loaded, "/v1/reports/needs", region="341700",
                            group_by="month")
    tot = expected["totals"]
    assert tot["response_due"] > 0 and tot["settled"] > 0  # the demo's needs are due
    await admin.show("needs?region=341700", "#need-rates")
    for figure, key in (("responseRate", "response_rate"), ("resolutionRate", "resolution_rate"),
                        ("satisfactionRate", "satisfaction_rate")):
        await expect(admin.text(f"#need-rates [data-figure={figure}] .v")).to_have_text(
            percent(tot[key]), timeout=SHOWN_MS)
    await expect(admin.text("#need-rates [data-figure=responseRate] .k")).to_have_text(
        "按时响应率")
    months = admin.text("#need-rates-by-month tbody tr")
    assert await months.count() == len(expected["rows"])
    await expect(admin.text("#need-rates-by-month tfoot")).to_contain_text(
        percent(tot["response_rate"]))
    await shoot(admin, shots, "needs-rates")
    await admin.show("needs?region=341700&lang=en", "#need-rates")
    await expect(admin.text("#need-rates [data-figure=satisfactionRate] .k")).to_have_text(
        "Satisfaction rate", timeout=SHOWN_MS)
    heads = await cells(admin, "#need-rates-by-month thead th")
    assert "Response rate" in heads and not [h for h in heads if CJK.search(h)], heads


async def test_timeliness_names_shangyu_overdue_units(admin, loaded, shots):
    await admin.show("timeliness?region=330604", "#overdue-units")
    names = {r["单位编码"]: r["单位名称"] for r in register("tongxin.demo.shangyu",
                                                           "organizations")}
    shown = await admin.text("#overdue-units").inner_text()
    overdue = {names[c] for c in shangyu.overdue_units()}
    assert overdue and all(name in shown for name in overdue), (overdue, shown)
    await expect(admin.text("#screen [data-figure=missing] .v")).to_have_text(
        str(len(shangyu.MISSING)))
    await expect(admin.text("#screen [data-figure=scheduled] .v")).to_have_text(
        str(shangyu.ROTA_UNITS))
    await shoot(admin, shots, "timeliness")


async def test_coverage_of_zhenjiang_door_knocking(admin, system, loaded, shots):
    from tongxin.demo import zhenjiang
    campaign = loaded.ids["campaigns"][zhenjiang.CAMPAIGN]
    expected = await report(system, loaded, "/v1/reports/coverage", campaign_id=campaign)
    await admin.show(f"coverage?campaign={campaign}", "#campaign-totals")
    await expect(admin.text("#campaign-totals [data-figure=bases] .v")).to_have_text("142")
    await expect(admin.text("#campaign-totals [data-figure=households] .v")).to_have_text(
        number(expected["totals"]["households"]))
    await expect(admin.text("#campaign-totals [data-figure=coverageRate] .v")).to_have_text(
        "100.0%")
    assert await admin.text("#idle-bases tbody tr").count() >= 1
    await shoot(admin, shots, "coverage")


async def test_assessment_leaderboard_with_breakdown(admin, system, loaded, shots):
    expected = await report(system, loaded, "/v1/reports/assessment", year="2010",
                            region="330604")
    await admin.show("assessment?year=2010&region=330604", "#leaderboard tbody tr")
    first = admin.text("#leaderboard tbody tr").first
    await expect(first).to_contain_text(expected["rows"][0]["label"])
    assert await first.locator(".parts span").count() == len(expected["rows"][0]["components"])
    await expect(admin.text("#screen")).to_contain_text(expected["individuals"][0]["name"])
    await shoot(admin, shots, "assessment")


async def test_pairing_with_its_three_lists(admin, loaded, shots):
    shanda = loaded.ids["pairings"]["jn-p-shanda"]
    await admin.show(f"pairing?pairing={shanda}", "#pairing-totals")
    for need in ("助学", "送医", "法律援助", "家政服务"):
        await expect(admin.text("#screen")).to_contain_text(need)
    await expect(admin.text("#pairing-totals [data-figure=projectsRun] .v")).to_have_text("4")
    await shoot(admin, shots, "pairing")


async def test_english_and_an_xlsx_export(admin, shots):
    await admin.show("overview?region=370300&lang=en", "#totals")
    await expect(admin.text("#tabs a[data-screen=overview]")).to_have_text("Overview")
    await expect(admin.text("#totals [data-figure=served] .k")).to_have_text("People served")
    await expect(admin.text("#lang")).to_have_text("中文")
    href = await admin.text("#screen a.xlsx").first.get_attribute("href")
    assert href and "format=xlsx" in href and "headers=en" in href
    r = await admin.page.request.get(f"{admin.origin}{href}")
    assert r.status == 200 and r.headers["content-type"].startswith(
        "application/vnd.openxmlformats-officedocument.spreadsheetml"), r.headers
    assert (await r.body())[:2] == b"PK"
    csv = await admin.text("#screen a.csv").first.get_attribute("href")
    assert (await admin.page.request.get(f"{admin.origin}{csv}")).status == 200
    await shoot(admin, shots, "overview-en")


async def test_the_report_document_from_the_dashboard(admin, shots):
    """The header's 报告 link: the PDF report for the filters' period and scope, its first page
    drawn by poppler (kept beside the screenshots as report-document.png)."""
    await admin.show("overview?region=370300&from=2013-01-01&to=2013-12-31", "#totals")
    await expect(admin.text("#totals [data-figure=served] .v")).to_have_text(
        number(8_700), timeout=SHOWN_MS)
    href = await admin.text("#report").get_attribute("href")
    assert href and "period=2013&" in href and "region=370300" in href and "format=pdf" in href
    r = await admin.page.request.get(f"{admin.origin}{href}")
    assert r.status == 200 and r.headers["content-type"] == "application/pdf", r.headers
    pdf = shots / "report-document.pdf"
    pdf.write_bytes(await r.body())
    await asyncio.to_thread(subprocess.run, [
        "pdftoppm", "-f", "1", "-l", "1", "-r", "90", "-png", "-singlefile", str(pdf),
        str(shots / "report-document")], check=True)
    first = (await asyncio.to_thread(subprocess.run, [
        "pdftotext", "-f", "1", "-l", "1", "-layout", str(pdf), "-"], check=True,
        capture_output=True, text=True)).stdout
    for text in ("同心结对服务工作年度报告", "2013年", "区域 淄博市", "8,700", "132"):
        assert text in first, (text, first)


async def test_phone_width_is_one_column(admin, shots):
    await admin.page.set_viewport_size({"width": 390, "height": 844})
    try:
        await admin.show("timeliness?region=330604", "#timeliness-table")
        aside = await admin.text("aside.notices").bounding_box()
        main = await admin.text("#screen").bounding_box()
        assert aside and main and aside["y"] >= main["y"] + main["height"] - 1  # below, not beside
        width = await admin.page.evaluate("document.documentElement.scrollWidth")
        assert width <= 390, width  # the tables scroll inside their box, not the page
        await shoot(admin, shots, "phone")
    finally:
        await admin.page.set_viewport_size({"width": 1280, "height": 900})


async def test_a_logged_activity_shows_without_reload(admin, system, loaded, shots):
    await admin.show("overview", "#totals")
    total = admin.text("#totals [data-figure=activities] .v")
    await expect(total).to_have_text(number(demo_activities()), timeout=SHOWN_MS)
    await admin.page.evaluate("window.__loaded = 'still this page'")  # gone on a reload
    org, base = loaded.ids["organizations"]["zb-tzb"], loaded.ids["bases"]["zb-liuchun"]
    r = await system.post_activity(activity(org, base, title="义诊 live"))
    assert r.status_code == 202, r.text
    await expect(total).to_have_text(number(demo_activities() + 1), timeout=LIVE_MS)
    assert await admin.page.evaluate("window.__loaded") == "still this page"
    await shoot(admin, shots, "overview-live")


def demo_activities() -> int:
    from tongxin import demo
    return demo.totals()[0]


async def test_a_unit_sees_only_its_own_figures(browser, system, loaded, shots):
    unit = loaded.ids["organizations"]["zb-minmeng"]  # 民盟淄博市委 and its 淄川区 committee
    own = await report(system, loaded, "/v1/reports/summary", organization_id=unit)
    everything = await report(system, loaded, "/v1/reports/summary")
    assert 0 < own["totals"]["served"] < everything["totals"]["served"]
    session = await logged_in(browser, system, await account(system, "unit", unit))
    try:
        await session.show("overview", "#totals")
        await expect(session.text("#totals [data-figure=served] .v")).to_have_text(
            number(own["totals"]["served"]), timeout=SHOWN_MS)
        options = await session.text("#filters select[name=org] option").all_inner_texts()
        assert set(options[1:]) == {"民盟淄博市委", "民盟淄川区基层委员会"}, options
        await expect(session.text("#who")).to_contain_text("民盟淄博市委")
        await shoot(session, shots, "unit")
        only_own_hosts(session)
    finally:
        await session.context.close()


CJK = re.compile(r"[\u4e00-\u9fff]")


async def cells(session: Session, selector: str) -> list[str]:
    return [c.strip() for c in await session.text(selector).all_inner_texts()]


async def test_codes_and_categories_in_the_pages_language(admin, loaded, shots):
    """Chinese screens show no English code (normal, done, open); English screens no
    Chinese category."""
    await admin.show("needs?region=341700", "#oldest-needs tbody tr")
    for column in (4, 5):  # category, urgency
        found = await cells(admin, f"#oldest-needs tbody td:nth-child({column})")
        assert found and all(CJK.search(c) for c in found), (column, found)
    shanda = loaded.ids["pairings"]["jn-p-shanda"]
    await admin.show(f"pairing?pairing={shanda}", "#projects tbody tr")
    statuses = await cells(admin, "#projects tbody td:nth-child(2)")
    assert statuses and all(CJK.search(s) for s in statuses), statuses
    listed = await admin.text("#screen li").all_inner_texts()
    assert not [li for li in listed if re.search(r"· [a-z_]+$", li)], listed
    await expect(admin.text("#who")).to_contain_text("管理员")  # the role, in Chinese

    await admin.show("needs?region=341700&lang=en", "#oldest-needs tbody tr")
    for column in (4, 5):
        found = await cells(admin, f"#oldest-needs tbody td:nth-child({column})")
        assert found and not [c for c in found if CJK.search(c)], (column, found)
    await expect(admin.text("#screen table").last).to_contain_text("Other")
    categories = await cells(admin, "#screen section:last-of-type tbody td:first-child")
    assert categories and not [c for c in categories if CJK.search(c)], categories
    await shoot(admin, shots, "needs-en")
    for by in ("service_type", "theme"):
        await admin.show(f"dist?by={by}&lang=en", "#breakdown tbody tr")
        labels = await cells(admin, "#breakdown tbody td:first-child")
        assert labels and not [c for c in labels if CJK.search(c)], (by, labels)
    await shoot(admin, shots, "themes-en")


def month_index(month: str) -> int:
    year, number = month.split("-")
    return int(year) * 12 + int(number) - 1


MEASURE_TREND = """() => {
  const svg = document.querySelector('.chart.trend svg');
  const b = svg.getBoundingClientRect();
  const ticks = [...svg.querySelectorAll('text.tick')];
  return {
    first: svg.dataset.first, last: svg.dataset.last, months: svg.dataset.months,
    bars: [...svg.querySelectorAll('rect.bar')].map((r) => [r.dataset.month,
      Number(r.dataset.slot), r.x.baseVal.value + r.width.baseVal.value / 2]),
    box: {x: b.left, width: b.width},
    labels: ticks.map((t) => { const r = t.getBoundingClientRect();
                               return [t.textContent, r.left, r.right]; }),
    font: ticks.length ? ticks[0].getBoundingClientRect().height : 0,
  };
}"""


async def test_the_trend_has_a_real_time_axis(admin, system, loaded, shots):
    """One slot per calendar month from the first to the last: the months between the demo's
    programmes (years apart) are gaps, not neighbours; at a phone's width every tick label is
    inside the chart and none overlaps another."""
    for width in (1280, 390):
        await admin.page.set_viewport_size({"width": width, "height": 900})
        try:
            await admin.show("overview", ".chart.trend svg rect.bar")
            # Drawn for this width (a resize redraws a moment later): measure that drawing.
            await admin.page.wait_for_function(
                "w => document.querySelector('#screen').dataset.width === String(w)",
                arg=width, timeout=SHOWN_MS)
            expected = await report(system, loaded, "/v1/reports/summary", group_by="month")
            months = [r["key"] for r in expected["rows"]]
            # One reading of the drawing, in one turn of the page's own loop: the screen's
            # 10 s refresh redraws the chart, and must not fall between two reads.
            drawn = await admin.page.evaluate(MEASURE_TREND)
            first, last = months[0], months[-1]
            assert drawn["first"] == first
            assert drawn["last"] == last
            slots = month_index(last) - month_index(first) + 1
            assert int(drawn["months"] or 0) == slots
            assert slots > len(months) + 12  # years without activities between programmes
            bars = drawn["bars"]
            assert [b[0] for b in bars] == months
            assert [b[1] for b in bars] == [month_index(m) - month_index(first) for m in months]
            # Each bar at its month's place on the axis: x in proportion to the slot.
            step = (bars[-1][2] - bars[0][2]) / (bars[-1][1] - bars[0][1])
            assert all(abs(x - (bars[0][2] + step * (s - bars[0][1]))) < 0.5 for _, s, x in bars)
            box, labels = drawn["box"], drawn["labels"]
            assert len(labels) >= 3, labels
            assert all(box["x"] - 0.5 <= left and right <= box["x"] + box["width"] + 0.5
                       for _, left, right in labels), (box, labels)
            assert all(a[2] <= b[1] for a, b in pairwise(labels)), labels
            assert drawn["font"] >= 10, drawn  # drawn to the width there is: readable, not shrunk
            await admin.page.locator(".chart.trend").screenshot(
                path=str(shots / f"trend-{width}.png"))
        finally:
            await admin.page.set_viewport_size({"width": 1280, "height": 900})


async def test_a_years_trend_names_its_months_as_people_write_them(admin, system, loaded, shots):
    """Over one year (Chizhou's 2022) the ticks are months, written 2022年3月 (Mar 2022 in
    English), never 2022-03; at a phone's width too, each inside the chart and apart."""
    for lang, pattern in (("zh", r"^2022年\d{1,2}月$"), ("en", r"^[A-Z][a-z]{2} 2022$")):
        for width in (1280, 390):
            await admin.page.set_viewport_size({"width": width, "height": 900})
            try:
                query = "from=2022-01-01&to=2022-12-31" + ("&lang=en" if lang == "en" else "")
                await admin.show(f"overview?{query}", ".chart.trend svg rect.bar")
                await admin.page.wait_for_function(
                    "w => document.querySelector('#screen').dataset.width === String(w)",
                    arg=width, timeout=SHOWN_MS)
                drawn = await admin.page.evaluate(MEASURE_TREND)
                assert drawn["first"].startswith("2022-") and drawn["last"].startswith("2022-")
                labels = [label for label in drawn["labels"] if label[0]]
                assert len(labels) >= 2, drawn
                assert all(re.match(pattern, text) for text, _, _ in labels), labels
                box = drawn["box"]
                assert all(box["x"] - 0.5 <= left and right <= box["x"] + box["width"] + 0.5
                           for _, left, right in labels), (box, labels)
                assert all(a[2] <= b[1] for a, b in pairwise(labels)), labels
                await admin.page.locator(".chart.trend").screenshot(
                    path=str(shots / f"trend-2022-{lang}-{width}.png"))
            finally:
                await admin.page.set_viewport_size({"width": 1280, "height": 900})


async def test_days_overdue_count_to_the_day_coverage_counts_to(admin, system, loaded, shots):
    """Timeliness and coverage count to one day, said on both screens: today, or the end of a
    chosen period's last day when that is earlier. Shangyu's reports missing at the end of
    2010 are overdue by days counted to then, not to today."""
    end = "2010-12-31"
    expected = await report(system, loaded, "/v1/reports/timeliness/missing",
                            region="330604", to=end, at="2011-01-01T00:00:00")
    assert expected["rows"] and all(r["days_overdue"] < 366 for r in expected["rows"])
    await admin.show(f"timeliness?region=330604&to={end}", "#missing-list .pager")
    await expect(admin.text("#overdue-definition")).to_contain_text("截至 2010年12月31日")
    shown = await admin.text("#missing-list tbody tr td:nth-child(5)").all_inner_texts()
    assert [float(x.replace(",", "")) for x in shown] == sorted(
        (float(r["days_overdue"]) for r in expected["rows"]), reverse=True)[:25]
    await admin.show(f"coverage?to={end}", "#as-at")
    await expect(admin.text("#as-at")).to_contain_text("2010年12月31日")
    # With no period: now, said so.
    await admin.show("timeliness?region=330604", "#missing-list .pager")
    await expect(admin.text("#overdue-definition")).to_contain_text("截至 现在")
    await shoot(admin, shots, "timeliness-to-2010")
