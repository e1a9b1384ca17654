"""The dashboard's overview answers "what needs my attention" first, and every screen speaks as
people write: in Debian's Chromium driven by Playwright, on a system of its own with the demo
loaded (both database back-ends).

Each attention block (overdue reports by unit, needs waiting longest, follow-ups overdue, idle
bases), this period against the last, and the outputs show the reports' own figures; at a
phone's 390 px nothing overflows sideways; the long lists (timeliness, the overdue reports, the
volunteers) page, sort and filter; the volunteers narrow to a unit; no screen shows a UUID, an
ISO date or timestamp, or an event sequence number. And in the units' forms, a unit's base
picker widened to every base narrows as a name is typed.

The overview's screenshots (desktop and phone) are kept under $TONGXIN_ARTIFACTS (else the
test's tmp dir) as overview-desktop.png and overview-phone.png: the README's docs/overview*.png
are those."""

from __future__ import annotations

import re
from calendar import monthrange
from datetime import date, timedelta
from itertools import pairwise

import pytest
from playwright.async_api import expect

from services.reporting.models.activities import indicator_column
from shared.taxonomy import INDICATORS
from tests.e2e import test_dashboard
from tests.e2e.test_dashboard import PASSWORD, SHOWN_MS, Session, account, number, shoot
from tests.e2e.test_demo import report

pytestmark = pytest.mark.asyncio(loop_scope="session")

# The demo's own system and load, the browser and the admin's session (module-scoped).
system = test_dashboard.system
loaded = test_dashboard.loaded
browser = test_dashboard.browser
admin = test_dashboard.admin
shots = test_dashboard.shots

ZIBO = "370300"
SHANGYU = "330604"
UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}", re.I)
ISO_DAY = re.compile(r"\b\d{4}-\d{2}-\d{2}\b")
ISO_MOMENT = re.compile(r"\d{2}T\d{2}:\d{2}")


async def figure(session: Session, block: str, name: str) -> str:
    return (await session.text(f"{block} [data-figure='{name}'] .v").inner_text()).strip()


async def choices(system) -> dict:
    async with system.client() as http:
        r = await http.get(f"{system.url('reporting')}/v1/dashboard/choices")
    assert r.status_code == 200, r.text
    return r.json()


def month_before(first: date) -> tuple[date, date]:
    last = first - timedelta(days=1)
    return last.replace(day=1), last


async def test_attention_blocks_show_the_reports_figures(admin, system, loaded, shots):
    """Shangyu: overdue reports by unit (most overdue first), the open needs waiting longest,
    follow-ups overdue, idle bases; each block's figure is the report's."""
    scope = {"region": SHANGYU}
    today = (await choices(system))["today"]
    late = await report(system, loaded, "/v1/reports/timeliness", **scope)
    needs = await report(system, loaded, "/v1/reports/needs", group_by="category", **scope)
    waiting = await report(system, loaded, "/v1/reports/needs/items", state="open", limit=5,
                           **scope)
    followups = await report(system, loaded, "/v1/reports/needs/items", followup="overdue",
                             limit=5, **scope)
    idle = await report(system, loaded, "/v1/reports/coverage", idle_days=90, at=today, **scope)
    await admin.show(f"overview?region={SHANGYU}", "#attn-overdue")

    assert late["totals"]["missing"] > 0
    assert await figure(admin, "#attn-overdue", "missing") == number(late["totals"]["missing"])
    owing = sorted((r for r in late["rows"] if r["missing"]),
                   key=lambda r: (-r["missing"], r["label"]))
    await expect(admin.text("#attn-overdue .headline .k")).to_contain_text(
        f"{len(owing)} 个单位")
    listed = await admin.text("#attn-overdue li").all_inner_texts()
    assert len(listed) == min(5, len(owing))
    assert owing[0]["label"] in listed[0] and str(owing[0]["missing"]) in listed[0], listed

    assert await figure(admin, "#attn-waiting", "open") == number(needs["totals"]["open"])
    titles = await admin.text("#attn-waiting li .what").all_inner_texts()
    assert [t.split(" · ")[0] for t in titles] == [n["title"] for n in waiting["rows"]]

    assert await figure(admin, "#attn-followups", "followups_overdue") == number(
        needs["totals"]["followups_overdue"])
    assert followups["total"] == needs["totals"]["followups_overdue"]
    assert await admin.text("#attn-followups li").count() == len(followups["rows"])

    assert idle["totals"]["idle_bases"] > 0
    assert await figure(admin, "#attn-idle", "idle_bases") == number(idle["totals"]["idle_bases"])
    bases = await admin.text("#attn-idle li .what").all_inner_texts()
    assert bases == [b["label"] for b in idle["rows"][:5]]

    await admin.text("#attn-followups a.more").click()  # 查看全部: the needs screen, listing them
    every = (await report(system, loaded, "/v1/reports/needs/items", followup="overdue",
                          limit=1000, **scope))["rows"]
    listed = admin.text("#followups-overdue tbody tr")
    await expect(listed).to_have_count(min(len(every), 25), timeout=SHOWN_MS)
    await expect(admin.text("#followups-overdue .pager")).to_have_attribute(
        "data-rows", str(followups["total"]))
    for row, need in zip(await listed.all_inner_texts(), every, strict=False):
        assert need["title"] in row, (row, need)  # the longest overdue first
    await admin.show(f"overview?region={SHANGYU}", "#attn-overdue")
    await admin.text("#attn-overdue a.more").click()  # 查看全部: the timeliness screen
    await admin.text("#timeliness-table").wait_for(timeout=SHOWN_MS)
    assert "#timeliness?" in admin.page.url and f"region={SHANGYU}" in admin.page.url


async def test_this_period_against_the_last_and_the_outputs(admin, system, loaded, shots):
    """Zibo: the last month with activities against the month before, each figure and its
    change; the outputs labelled from the taxonomy, in Chinese, then in English."""
    months = await report(system, loaded, "/v1/reports/summary", group_by="month", region=ZIBO)
    last = months["rows"][-1]["key"]
    first = date(int(last[:4]), int(last[5:]), 1)
    end = first.replace(day=monthrange(first.year, first.month)[1])
    before = month_before(first)
    now = await report(system, loaded, "/v1/reports/summary", group_by="year", region=ZIBO,
                       **{"from": first.isoformat(), "to": end.isoformat()})
    prev = await report(system, loaded, "/v1/reports/summary", group_by="year", region=ZIBO,
                        **{"from": before[0].isoformat(), "to": before[1].isoformat()})
    await admin.show(f"overview?region={ZIBO}", "#compare")
    await expect(admin.text("#compare h2")).to_contain_text(
        f"{first.year}年{first.month}月 / {before[0].year}年{before[0].month}月")
    assert now["totals"]["served"] > 0
    for key in ("activities", "served", "volunteers", "volunteer_hours", "trainees"):
        card = admin.text(f"#compare [data-figure={key}]")
        assert (await card.locator(".v").inner_text()) == number_like(now["totals"][key]), key
        assert number_like(prev["totals"][key]) in await card.locator(".was").inner_text()
        was, is_ = prev["totals"][key], now["totals"][key]
        if was:
            shown = float(await card.locator(".d").get_attribute("data-change") or "nan")
            assert abs(shown - (is_ - was) / was) < 1e-9, key

    outputs = (await report(system, loaded, "/v1/reports/summary", group_by="month",
                            region=ZIBO))["totals"]["outputs"]
    assert outputs, "the demo's Zibo programme has outputs"
    for code, quantity in outputs.items():
        card = admin.text(f"#outputs [data-figure='outputs.{code}']")
        assert await card.locator(".v").inner_text() == number_like(quantity), code
        assert await card.locator(".k").inner_text() == indicator_column(code).zh, code
        assert INDICATORS[code][0] in indicator_column(code).zh  # the taxonomy's label
    await admin.show(f"overview?region={ZIBO}&lang=en", "#outputs")
    await expect(admin.text("#compare h2")).to_contain_text("This period against the last")
    for code in outputs:
        await expect(admin.text(f"#outputs [data-figure='outputs.{code}'] .k")).to_have_text(
            indicator_column(code).en)


def number_like(v: float) -> str:
    """As the page writes a figure: thousands separated, at most two decimals."""
    text = f"{v:,.2f}".rstrip("0").rstrip(".")
    return text


async def test_overview_screenshots_and_the_phone_width(admin, shots):
    """The README's pictures: the overview on a desktop, then at 390 px, where the page does
    not scroll sideways and the attention blocks stack in one column."""
    await admin.page.set_viewport_size({"width": 1280, "height": 1180})
    await admin.show("overview", "#outputs")
    await admin.page.wait_for_function(
        "() => document.querySelector('#screen').dataset.width === '1280'", timeout=SHOWN_MS)
    await admin.page.screenshot(path=str(shots / "overview-desktop.png"), full_page=False)
    await admin.page.set_viewport_size({"width": 390, "height": 844})
    try:
        await admin.show("overview", "#outputs")
        await admin.page.wait_for_function(
            "() => document.querySelector('#screen').dataset.width === '390'", timeout=SHOWN_MS)
        width = await admin.page.evaluate("document.documentElement.scrollWidth")
        assert width <= 390, width
        found = [await admin.text(f"#{b}").bounding_box() for b in
                 ("attn-overdue", "attn-waiting", "attn-followups", "attn-idle")]
        boxes = [b for b in found if b]
        assert len(boxes) == 4 and all(b["x"] >= 0 and b["x"] + b["width"] <= 390
                                       for b in boxes), found
        assert all(a["y"] + a["height"] <= b["y"] for a, b in pairwise(boxes)), boxes  # stacked
        await shoot(admin, shots, "overview-phone-full")
        # The README's picture: the phone's first screens (attention, then the comparison).
        await admin.page.screenshot(path=str(shots / "overview-phone.png"), full_page=True,
                                    clip={"x": 0, "y": 0, "width": 390, "height": 1500})
        for hash_ in ("overview?lang=en", "volunteers", "timeliness?lang=en"):
            name = hash_.split("?")[0]
            await admin.page.evaluate("() => { document.querySelector('#screen')"
                                      ".dataset.screen = ''; }")
            await admin.show(hash_, f"#screen[data-screen={name}] section")
            width = await admin.page.evaluate("document.documentElement.scrollWidth")
            assert width <= 390, (hash_, width)
        await shoot(admin, shots, "timeliness-phone-en")
    finally:
        await admin.page.set_viewport_size({"width": 1280, "height": 900})


async def test_timeliness_rows_page_sort_and_filter(admin, system, loaded, shots):
    everything = await report(system, loaded, "/v1/reports/timeliness")
    rows = everything["rows"]
    assert len(rows) > 25
    await admin.show("timeliness", "#timeliness-table .pager")
    table = admin.text("#timeliness-table")
    pager = table.locator(".pager")
    assert await pager.get_attribute("data-rows") == str(len(rows))
    assert await table.locator("tbody tr").count() == 25
    # First the most missing, then (a click on 单位) by name, then the second page.
    first = await table.locator("tbody tr td:nth-child(7)").all_inner_texts()
    assert first[0] == number(max(r["missing"] for r in rows))
    assert [int(x.replace(",", "")) for x in first] == sorted(
        (int(x.replace(",", "")) for x in first), reverse=True)
    await table.locator("th[data-col='0']").click()
    await expect(table.locator("th[data-col='0']")).to_have_attribute("aria-sort", "ascending")
    names = await table.locator("tbody tr td:first-child").all_inner_texts()
    in_order = await admin.page.evaluate(
        "ns => [...ns].sort(new Intl.Collator('zh-CN', {numeric: true}).compare)", names)
    assert len(names) == 25 and names == in_order and names != first
    await table.locator(".pager button[data-step='1']").click()
    await expect(pager).to_have_attribute("data-page", "2")
    second = await table.locator("tbody tr td:first-child").all_inner_texts()
    assert not set(second) & set(names)
    # A unit's name, typed: only its rows, the totals row gone (it is not their total).
    unit = rows[0]["label"]
    await table.locator("input.find").fill(unit)
    await expect(pager).to_have_attribute("data-page", "1")
    kept = [r for r in rows if unit.lower() in (r["label"] or "").lower()]
    await expect(pager).to_have_attribute("data-rows", str(len(kept)))
    assert await table.locator("tbody tr").count() == len(kept)
    assert await table.locator("tfoot").count() == 0
    await shoot(admin, shots, "timeliness-filtered")
    await table.locator("input.find").fill("")
    await expect(pager).to_have_attribute("data-rows", str(len(rows)))


async def test_volunteers_filtered_by_unit(admin, system, loaded, shots):
    everyone = await report(system, loaded, "/v1/reports/volunteers")
    unit = everyone["rows"][0]["organization_id"]  # the unit of the most hours
    theirs = await report(system, loaded, "/v1/reports/volunteers", organization_id=unit)
    assert 0 < theirs["total"] < everyone["total"]
    await admin.show("volunteers", "#volunteer-list .pager")
    pager = admin.text("#volunteer-list .pager")
    assert await pager.get_attribute("data-rows") == str(everyone["total"])
    await admin.text("#volunteer-list select[data-param=org]").select_option(unit)
    await expect(pager).to_have_attribute("data-rows", str(theirs["total"]), timeout=SHOWN_MS)
    assert f"org={unit}" in admin.page.url
    hours = await admin.text("#volunteer-list tbody td:nth-child(3)").all_inner_texts()
    assert hours[0] == number_like(theirs["rows"][0]["hours_confirmed"])
    units = set(await admin.text("#volunteer-list tbody td:nth-child(2)").all_inner_texts())
    assert units <= {r["organization_name"] for r in theirs["rows"]}
    name = theirs["rows"][0]["name"]
    await admin.text("#volunteer-list input.find").fill(name)
    await expect(admin.text("#volunteer-list tbody tr").first).to_contain_text(name)
    await shoot(admin, shots, "volunteers")


SCREENS = ["overview", "overview?lang=en", "dist?by=region", "dist?by=base&region=370300",
           "needs?region=341700", "needs?region=341700&lang=en", "timeliness",
           "timeliness?lang=en", "coverage", "coverage?lang=en", "assessment", "pairing",
           "volunteers"]


async def test_no_uuid_iso_date_or_event_sequence_on_any_screen(admin, system, loaded):
    """Names, not codes: no UUID, no 2013-04-05 or 2013-04-05T09:00 in the text of any screen,
    the notifications or the footer, which says when the figures were read, in words."""
    liuchun = loaded.ids["bases"]["zb-liuchun"]
    for hash_ in [*SCREENS, f"dist?by=base&region=370300&base={liuchun}"]:
        # This screen's drawing, not the last one's: the marks are wiped before it is asked for.
        await admin.page.evaluate(
            "() => { const s = document.querySelector('#screen'); s.dataset.screen = '';"
            " document.querySelector('#asof').textContent = ''; }")
        name = hash_.split("?")[0]
        await admin.show(hash_, f"#screen[data-screen={name}] section")
        await expect(admin.text("#asof")).not_to_be_empty(timeout=SHOWN_MS)
        text = "\n".join([await admin.text("#screen").inner_text(),
                          await admin.text("#notices").inner_text(),
                          await admin.text("#asof").inner_text()])
        for pattern in (UUID, ISO_DAY, ISO_MOMENT):
            assert not pattern.search(text), (hash_, pattern.pattern, pattern.search(text))
        footer = await admin.text("#asof").inner_text()
        assert "序号" not in footer and "event" not in footer.lower(), footer
        assert re.search(r"\d{4}年\d{1,2}月\d{1,2}日|\d{1,2} [A-Z][a-z]{2} \d{4}", footer), footer


async def test_a_units_base_picker_of_every_base_narrows_as_it_types(browser, system, loaded,
                                                                     shots):
    """The units' forms (events service), at a phone's width: a unit's base picker offers its
    pairings' bases and "another base…", which widens it to every base of the demo; the
    filter box under it then narrows those hundreds to the ones whose name has what is typed,
    and picks the first."""
    pairing = loaded.ids["pairings"]["jn-p-shanda"]
    unit = next(p["organization_id"] for p in (await choices(system))["pairings"]
                if p["id"] == pairing)
    username = await account(system, "unit", unit)
    events = system.url("events")
    context = await browser.new_context(viewport={"width": 390, "height": 844}, locale="zh-CN")
    try:
        page = await context.new_page()
        await page.goto(f"{events}/forms/")
        await page.fill("#username", username)
        await page.fill("#password", PASSWORD)
        await page.click("button[type=submit]")
        await page.wait_for_url(f"{events}/forms/**", timeout=SHOWN_MS)
        offered = (await (await page.request.get(f"{events}/v1/forms/choices")).json())["bases"]
        assert len(offered) > 200, len(offered)  # the demo's every base
        picker = page.locator("#form-activity [name=base_id]")
        await expect(picker.locator("option[value='*all-bases*']")).to_have_count(
            1, timeout=SHOWN_MS)
        assert await picker.locator("option").count() < 10  # its pairings' bases, first
        await picker.select_option("*all-bases*")
        await expect(picker.locator("option")).to_have_count(len(offered) + 1)  # and "—"
        box = page.locator("#form-activity [data-path=base_id] .filter")
        await expect(box).to_be_visible()
        word = "刘春"
        await box.fill(word)
        shown = await picker.locator("option").evaluate_all(
            "os => os.filter(o => !o.hidden && o.value).map(o => o.value)")
        expected = [b["id"] for b in offered if word in b["name"]]
        assert expected and shown == expected, (shown, expected)
        assert await picker.input_value() == expected[0]
        width = await page.evaluate("document.documentElement.scrollWidth")
        assert width <= 390, width
        await page.screenshot(path=str(shots / "forms-base-picker.png"))
    finally:
        await context.close()
