"""Figures that add up on every screen: the pairing, coverage and region screens of the
dashboard, in Debian's Chromium on a system of its own with the demo loaded (both database
back-ends), read cell by cell and checked against the API's JSON for the same view.

- Pairing: an activity logged under a pairing without a project (the issue's 95 served, 48 h)
  shows as a row of its own (未归入项目); every row's figures are the API's, the 合计 row is the
  API's totals and the sum of the rows shown; fulfilment is on screen with its definition.
- Coverage: Zhenjiang's door-knocked communities are not idle (a visit is a day served); the
  idle list is the API's, counted to the day stated on the screen with its definition.
- Region: Zhenjiang's city-level fair (9,860 served, 鉴园广场) is the city's own row, not
  （未填）, and drills to its base and its activities; outputs (problems solved) are columns,
  labelled from the taxonomy in both languages; totals are the rows' sums."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import date
from decimal import ROUND_HALF_UP, Decimal

import pytest
import pytest_asyncio
from playwright.async_api import expect

from tests.e2e import test_dashboard as dash
from tests.e2e.test_dashboard import SHOWN_MS, Session, account, logged_in, shoot
from tests.e2e.test_demo import report
from tests.factories import activity
from tongxin.demo import zhenjiang

pytestmark = pytest.mark.asyncio(loop_scope="session")

# The demo's own system and load, and a browser, for this module.
system = dash.system
loaded = dash.loaded
browser = dash.browser
shots = dash.shots


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def admin(browser, system, loaded) -> AsyncIterator[Session]:
    for path in ("/v1/reports/summary", "/v1/reports/pairings", "/v1/reports/coverage"):
        await report(system, loaded, path)
    session = await logged_in(browser, system, await account(system, "admin", None))
    yield session
    await session.context.close()


def shown(value, kind: str = "number") -> str:
    """A figure as the dashboard writes it (zh-CN grouping, at most two decimals)."""
    if value is None:
        return "—"
    if kind == "pct":  # toFixed(1): the double's exact value, halves away from zero
        return f"{Decimal(value * 100).quantize(Decimal('0.1'), ROUND_HALF_UP)}%"
    number = Decimal(repr(float(value))).quantize(Decimal("0.01"), ROUND_HALF_UP)
    if number == number.to_integral_value():
        return f"{int(number):,}"
    return f"{number:,.2f}".rstrip("0")


def written(day: str) -> str:
    """A day as the Chinese screens write it: 2021年8月31日."""
    found = date.fromisoformat(day)
    return f"{found.year}年{found.month}月{found.day}日"


async def grid(session: Session, selector: str) -> list[list[str]]:
    """The cells of a table's rows, as text."""
    return await session.page.eval_on_selector_all(
        selector, "rows => rows.map(r => [...r.cells].map(c => c.innerText.trim()))")


def column_sums(rows: list[list[str]], columns: list[int]) -> list[float]:
    return [round(sum(float(r[i].replace(",", "") or 0) for r in rows), 2) for i in columns]


def as_numbers(cells: list[str]) -> list[float]:
    return [float(c.replace(",", "")) for c in cells]


async def known_pairing(system, loaded, pairing_id: str, seq: int) -> dict:
    """The pairing's report, once the reporting service's replica has the pairing."""
    deadline = asyncio.get_running_loop().time() + SHOWN_MS / 1000
    async with system.client(timeout=60) as http:
        while True:
            r = await http.get(f"{system.url('reporting')}/v1/reports/pairings/{pairing_id}",
                               params={"min_seq": seq})
            if r.status_code == 200:
                return r.json()
            assert r.status_code == 404, r.text
            assert asyncio.get_running_loop().time() < deadline, "the pairing never arrived"
            await asyncio.sleep(0.2)


async def test_pairing_rows_add_up_to_the_total_with_the_unassigned_row(admin, system, loaded,
                                                                         shots):
    """The issue's case: a project marked done with no activity, and an activity under the
    pairing without a project (95 served, 48 h)."""
    org, base = loaded.ids["organizations"]["jn-tianqiao"], loaded.ids["bases"]["jn-linxiang"]
    pairing = await system.register(
        "pairings", organization_id=org, base_id=base, starts_on="2019-01-01",
        projects=[{"id": "p1", "title": "春节送福进社区", "status": "done"}])
    pid = pairing["id"]
    r = await system.post_activity(activity(
        org, base, pairing_id=pid, title="社区便民服务（未填项目）", served=95, volunteers=16,
        volunteer_hours=48, started_at="2019-08-03T09:00:00+08:00",
        ended_at="2019-08-03T12:00:00+08:00"))
    assert r.status_code == 202, r.text
    seq = r.json()["seq"]
    expected = await known_pairing(system, loaded, pid, seq)
    listed = await report(system, loaded, "/v1/reports/pairings", min_seq=seq)
    assert [row["unassigned"] for row in expected["rows"]] == [False, True], expected["rows"]
    assert [(row["activities"], row["served"], row["volunteer_hours"])
            for row in expected["rows"]] == [(0, 0, 0), (1, 95, 48)]
    assert expected["totals"]["fulfilment_rate"] == 0

    await admin.show(f"pairing?pairing={pid}", "#projects tbody tr")
    await expect(admin.text("#projects tbody")).to_contain_text("未归入项目", timeout=SHOWN_MS)
    body = await grid(admin, "#projects tbody tr")
    foot = (await grid(admin, "#projects tfoot tr"))[0]
    # Project, status, activities, served, hours: each row the API's, in its order.
    assert [r[0] for r in body] == [row["title"] for row in expected["rows"][:-1]] + ["未归入项目"]
    assert body[0][1] == "已完成 · 无活动记录"  # done, says the registry; nothing logged
    assert [r[2:] for r in body] == [[shown(row[k]) for k in ("activities", "served",
                                                                "volunteer_hours")]
                                     for row in expected["rows"]]
    tot = expected["totals"]
    assert foot[0] == "合计" and foot[2:] == [shown(tot["activities"]), shown(tot["served"]),
                                             shown(tot["volunteer_hours"])]
    assert column_sums(body, [2, 3, 4]) == as_numbers(foot[2:])
    for figure, value, kind in (("activities", tot["activities"], "number"),
                                ("served", tot["served"], "number"),
                                ("fulfilment", tot["fulfilment_rate"], "pct"),
                                ("projectsRun", tot["projects_fulfilled"], "number")):
        await expect(admin.text(f"#pairing-totals [data-figure={figure}] .v")).to_have_text(
            shown(value, kind))
    await expect(admin.text("#fulfilment-definition")).to_contain_text("履约率 = 已开展项目")

    # The list of pairings: each row the API's, the 合计 row its totals and the rows' sum.
    table = "#screen section:last-of-type"
    body = await grid(admin, f"{table} tbody tr")
    foot = (await grid(admin, f"{table} tfoot tr"))[0]
    assert len(body) == len(listed["rows"])
    for cells, row in zip(body, listed["rows"], strict=True):
        assert cells[0] == row["name"]
        assert cells[3:] == [shown(row["projects"]), shown(row["projects_fulfilled"]),
                             shown(row["fulfilment_rate"], "pct"), shown(row["activities"]),
                             shown(row["served"])]
    assert column_sums(body, [3, 4, 6, 7]) == as_numbers([foot[i] for i in (3, 4, 6, 7)])
    assert foot[7] == shown(listed["totals"]["served"])
    await shoot(admin, shots, "pairing-unassigned")

    await admin.show(f"pairing?pairing={pid}&lang=en", "#projects tbody tr")
    await expect(admin.text("#projects tbody")).to_contain_text("Not under a project",
                                                                timeout=SHOWN_MS)
    await expect(admin.text("#fulfilment-definition")).to_contain_text("Fulfilment = projects run")


async def test_door_knocked_communities_are_not_idle(admin, system, loaded, shots):
    region, day = "321100", "2021-08-31"
    campaign = loaded.ids["campaigns"][zhenjiang.CAMPAIGN]
    idle = await report(system, loaded, "/v1/reports/coverage", region=region, to=day,
                        idle_days=90, at=day)
    visited = await report(system, loaded, "/v1/reports/coverage", region=region, to=day,
                           campaign_id=campaign)
    knocked = {row["label"] for row in visited["rows"] if row["visits"]}
    assert len(knocked) >= 140, knocked
    assert not knocked & {row["label"] for row in idle["rows"]}
    assert idle["totals"]["active_bases"] >= len(knocked)

    await admin.show(f"coverage?region={region}&to={day}&idle=90", "#idle-bases tbody tr")
    await expect(admin.text("#as-at")).to_contain_text(written(day), timeout=SHOWN_MS)
    await expect(admin.text("#idle-definition")).to_contain_text(written(day))
    await expect(admin.text("#idle-definition")).to_contain_text("入户走访")
    body = await grid(admin, "#idle-bases tbody tr")
    assert [r[0] for r in body] == [row["label"] for row in idle["rows"]]
    assert [r[-1] for r in body] == [shown(row["days_idle"]) for row in idle["rows"]]
    assert not [r for r in body if r[0] in knocked]
    for cells, row in zip(body, idle["rows"], strict=True):
        if row["last_served"]:  # counted to the day the screen states
            assert int(cells[-1]) == (date.fromisoformat(day)
                                      - date.fromisoformat(row["last_served"])).days
    await shoot(admin, shots, "coverage-visited")

    # Without a period: counted to the clock's today, as the screen says.
    await admin.show(f"coverage?region={region}", "#idle-bases tbody tr")
    today = await admin.page.evaluate("choices.today")
    await expect(admin.text("#as-at")).to_contain_text(written(today), timeout=SHOWN_MS)
    now = await report(system, loaded, "/v1/reports/coverage", region=region, idle_days=90,
                       at=today)
    body = await grid(admin, "#idle-bases tbody tr")
    assert [r[-1] for r in body] == [shown(row["days_idle"]) for row in now["rows"]]


async def breakdown_matches(session: Session, expected: dict, labels: list[str],
                            shared: tuple[str, ...] = ()) -> None:
    """The breakdown table: the API's rows and totals, the outputs as columns, totals the
    rows' sums (but distinct volunteers, and the `shared` figures: a fair's activity is each
    taking unit's, once in the total, as the screen says)."""
    head = (await grid(session, "#breakdown thead tr"))[0]
    body = await grid(session, "#breakdown tbody tr")
    foot = (await grid(session, "#breakdown tfoot tr"))[0]
    indicators = sorted({k for r in expected["rows"] for k in r["outputs"]}
                        | set(expected["totals"]["outputs"]))
    assert len(head) == 8 + len(indicators) and head[8:] == labels, head
    figures = ["activities", "served", "volunteers", "unique_volunteers", "volunteer_hours",
               "trainees", "donation_value_cny"]
    assert len(body) == len(expected["rows"])
    for cells, row in zip(body, expected["rows"], strict=True):
        assert cells[1:] == [shown(row[f]) for f in figures] + [
            shown(row["outputs"].get(k, 0)) for k in indicators], (cells, row)
    tot = expected["totals"]
    assert foot[1:] == [shown(tot[f]) for f in figures] + [
        shown(tot["outputs"].get(k, 0)) for k in indicators]
    summed = [i for i, f in enumerate(figures + indicators, 1)
              if f != "unique_volunteers" and f not in shared]
    assert column_sums(body, summed) == as_numbers([foot[i] for i in summed])


async def test_a_city_level_fair_shows_under_its_city_and_drills(admin, system, loaded, shots):
    city = "321100"
    expected = await report(system, loaded, "/v1/reports/summary", group_by="region",
                            region=city, region_level="district")
    own = [row for row in expected["rows"] if row["key"] == city]
    assert own and own[0]["served"] >= zhenjiang.FAIR_SERVED, expected["rows"]
    assert None not in {row["key"] for row in expected["rows"]}

    await admin.show(f"dist?by=region&region={city}", "#breakdown tbody tr")
    await expect(admin.text("#breakdown tbody")).to_contain_text("镇江市（本级）",
                                                                 timeout=SHOWN_MS)
    await expect(admin.text("#breakdown tbody")).not_to_contain_text("未填")
    await breakdown_matches(admin, expected, ["解决问题(个)"])
    await shoot(admin, shots, "region-city-level")

    await admin.text("#breakdown tbody tr.drill").filter(has_text="镇江市（本级）").click()
    await expect(admin.text("#breakdown tbody")).to_contain_text("鉴园广场", timeout=SHOWN_MS)
    assert "own=1" in admin.page.url
    bases = await report(system, loaded, "/v1/reports/summary", group_by="base", region=city,
                         region_exact="true")
    assert [row["label"] for row in bases["rows"]] == ["鉴园广场"]
    assert bases["totals"]["served"] == own[0]["served"]
    await breakdown_matches(admin, bases, [])
    await expect(admin.text(".crumbs")).to_contain_text("本级登记的服务基地")

    await admin.text("#breakdown tbody tr.drill").filter(has_text="鉴园广场").click()
    listed = admin.text("#activity-list tbody tr")
    await listed.first.wait_for(timeout=SHOWN_MS)
    await expect(admin.text("#activity-list tbody")).to_contain_text("市县联动聚合力")
    await expect(admin.text("#screen [data-figure=served] .v")).to_have_text(
        shown(own[0]["served"]))

    # The programme's whole breakdown by unit, in English: outputs labelled from the taxonomy.
    everything = await report(system, loaded, "/v1/reports/summary", group_by="organization",
                              region=city)
    await admin.show(f"dist?by=organization&region={city}&lang=en", "#breakdown tbody tr")
    await expect(admin.text("#breakdown thead")).to_contain_text("Problems solved",
                                                                 timeout=SHOWN_MS)
    await breakdown_matches(admin, everything, ["Problems solved"], shared=("activities",))
    await expect(admin.text("#counted-once")).to_contain_text("counts once")
    assert everything["totals"]["outputs"]["problems_solved"] == zhenjiang.PROBLEMS_SOLVED
    await shoot(admin, shots, "outputs-en")
