"""The demo (`tongxin/demo`): the five seed programmes loaded through the public interface, and a
figure of each seed read back from the reports; loading again adds nothing.

The demo registers some 870 records and its reports are read unscoped or by region, so it gets
services of this module's own rather than the shared system (whose tests list records)."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from dataclasses import dataclass

import pytest
import pytest_asyncio

from tests.figures import say
from tests.harness import System, running
from tongxin import demo
from tongxin.demo import chizhou, shangyu, zhenjiang
from tongxin.demo.build import register

pytestmark = pytest.mark.asyncio(loop_scope="session")


@pytest.fixture(scope="module")
def system(backend, nats_url, tmp_path_factory):
    with running(System(nats_url, backend, tmp_path_factory.mktemp(f"demo-{backend.name}"),
                        settings={"TONGXIN_PREREQUISITE_WAIT": "6"})) as s:
        yield s


@dataclass
class Loaded:
    seq: int
    seconds: float
    ids: dict[str, dict[str, str]]  # collection -> code -> id


async def records(system: System, collection: str, **params) -> list[dict]:
    out: list[dict] = []
    async with system.client() as http:
        while True:
            r = await http.get(f"{system.url('registry')}/v1/{collection}",
                               params={**params, "limit": 1000, "offset": len(out)})
            assert r.status_code == 200, r.text
            page = r.json()
            out += page["items"]
            if not page["items"] or len(out) >= page["total"]:
                return out


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def loaded(system) -> Loaded:
    started = time.monotonic()
    seq = await asyncio.to_thread(demo.load, system.url("registry"), system.url("events"),
                                  system.token)
    seconds = time.monotonic() - started
    # A figure, not an assertion: speed lives in bench/, and CI machines are shared.
    say(f"\nthe five-programme demo loaded on {system.backend.name} in {seconds:.1f} s")
    ids = {c: {r["code"]: r["id"] for r in await records(system, c) if r.get("code")}
           for c in ("organizations", "bases", "teams", "pairings", "campaigns")}
    return Loaded(seq, seconds, ids)


async def report(system: System, loaded: Loaded, path: str, **params) -> dict:
    """A report once it has read the whole demo: each read model catches up on its own."""
    async with system.client(timeout=60) as http:
        r = await http.get(f"{system.url('reporting')}{path}",
                           params={"min_seq": loaded.seq, **params})
    assert r.status_code == 200, r.text
    return r.json()


async def overdue_notices(system: System, expected: int = 1, **params) -> list[dict]:
    """The `report_overdue` notifications, once the deadline sweep has raised `expected`."""
    deadline = asyncio.get_running_loop().time() + 30
    while True:
        async with system.client() as http:
            r = await http.get(f"{system.url('reporting')}/v1/notifications",
                               params={"kind": "report_overdue", **params})
        assert r.status_code == 200, r.text
        if len(items := r.json()["items"]) >= expected:
            return items
        assert asyncio.get_running_loop().time() < deadline, f"{len(items)} notices: {params}"
        await asyncio.sleep(0.5)


def final_states(history: list[dict]) -> Counter:
    """Each need's last state in a programme's history."""
    after = {"need.submitted": "open", "need.claimed": "claimed", "need.resolved": "resolved",
             "need.closed": "closed"}
    state = {e["data"]["need_id"]: after[e["type"]] for e in history if e["type"] in after}
    return Counter(state.values())


async def test_zibo_132_activities_8700_served_six_teams_of_180(system, loaded):
    summary = await report(system, loaded, "/v1/reports/summary", region="370300",
                           group_by="team")
    totals = summary["totals"]
    assert (totals["activities"], totals["served"], totals["trainees"]) == (132, 8_700, 269)
    assert (totals["outputs"]["students_funded"], totals["outputs"]["libraries_built"]) == (
        376, 12)
    assert totals["donation_value_cny"] == 40_000
    teams = {r["key"] for r in summary["rows"] if r["key"]}
    assert teams == set(loaded.ids["teams"][c] for c in loaded.ids["teams"]
                        if c.startswith("zb-"))
    members = [len(await records(system, "volunteers", team_id=t)) for t in teams]
    assert (len(members), sum(members)) == (6, 180)
    by_month = await report(system, loaded, "/v1/reports/summary", region="370300",
                            group_by="month")
    assert sum(r["activities"] for r in by_month["rows"]) == 132 and len(by_month["rows"]) >= 8


async def test_zhenjiang_51_booths_door_knocking_and_310_problems(system, loaded):
    fair = await report(system, loaded, "/v1/reports/summary", group_by="organization",
                        base_id=loaded.ids["bases"]["zj-jianyuan"])
    booths = [r for r in fair["rows"] if r["served"]]
    assert len(booths) == zhenjiang.FAIR_BOOTHS == 51
    assert all(r["activities"] == 1 for r in booths)
    assert (fair["totals"]["activities"], fair["totals"]["served"]) == (
        1, zhenjiang.FAIR_SERVED)
    assert "镇江市卫生健康委员会" in {r["label"] for r in booths}

    campaign = loaded.ids["campaigns"][zhenjiang.CAMPAIGN]
    knock = await report(system, loaded, "/v1/reports/coverage", campaign_id=campaign)
    [drive] = register("tongxin.demo.zhenjiang", "campaigns")
    covered = set(drive["覆盖基地编码"].split("、"))
    households = sum(int(r["户数"]) for r in register("tongxin.demo.zhenjiang", "bases")
                     if r["基地编码"] in covered)
    assert (knock["totals"]["bases"], knock["totals"]["households"]) == (142, households)
    assert knock["totals"]["coverage"] == 1.0 and knock["not_visited"] == []
    assert knock["totals"]["volunteers"] == zhenjiang.VOLUNTEERS

    enterprises = await report(system, loaded, "/v1/reports/summary", region="321100")
    assert enterprises["totals"]["outputs"]["problems_solved"] == 312
    alliance = await report(system, loaded,
                            f"/v1/reports/pairings/{loaded.ids['pairings']['zj-p-xijindu']}")
    assert alliance["needs"] == {"open": 0, "claimed": 0, "resolved": 0, "closed": 4, "total": 4}
    assert (alliance["totals"]["projects"], alliance["totals"]["projects_fulfilled"]) == (5, 5)
    assert len(alliance["resources"]) == 3


async def test_chizhou_fair_of_14_communities_871_projects_and_needs_by_state(system, loaded):
    fair = await report(system, loaded, "/v1/reports/summary", region="341700",
                        group_by="service_type", **{"from": "2022-10-22", "to": "2022-10-22"})
    assert (fair["totals"]["activities"], fair["totals"]["served"]) == (14, 1_236)
    assert fair["totals"]["outputs"] == {"jobs_offered": 62}
    assert len(fair["rows"]) >= 10  # 10余种摊位
    pairings = await report(system, loaded, "/v1/reports/pairings", region="341700")
    assert (pairings["totals"]["pairings"], pairings["totals"]["projects"]) == (28, 871)
    needs = await report(system, loaded, "/v1/reports/needs", region="341700",
                         group_by="category")
    expected = final_states(chizhou.history())
    assert {s: needs["totals"][s] for s in ("open", "claimed", "resolved", "closed")} == {
        s: expected[s] for s in ("open", "claimed", "resolved", "closed")}
    assert expected["open"] and expected["claimed"]  # a backlog to show
    dongliu = await report(system, loaded, "/v1/reports/summary",
                           base_id=loaded.ids["bases"]["cz-dongliu"], group_by="organization")
    assert {"菊江服饰", "汇辽新型装饰材料", "恒丰塑胶"} <= {r["label"] for r in dongliu["rows"]}


async def test_jinan_ten_paired_bases_four_needs_met_and_five_blind_spots(system, loaded):
    pairings = await report(system, loaded, "/v1/reports/pairings", region="370100")
    assert pairings["totals"]["pairings"] == 10
    shanda = await report(system, loaded,
                          f"/v1/reports/pairings/{loaded.ids['pairings']['jn-p-shanda']}")
    assert [n["title"] for n in shanda["needs_list"]] == ["助学", "送医", "法律援助", "家政服务"]
    assert shanda["needs"]["closed"] == 4
    assert shanda["totals"]["projects_fulfilled"] == 4
    idle = await report(system, loaded, "/v1/reports/coverage", region="370100", idle_days=365,
                        at="2019-12-31")
    assert idle["totals"]["bases"] == 10
    assert sorted(r["label"] for r in idle["rows"]) == sorted(
        r["基地名称"] for r in register("tongxin.demo.jinan", "bases") if "示意" in r["基地名称"])


async def test_shangyu_rota_names_the_overdue_units(system, loaded):
    table = await report(system, loaded, "/v1/reports/timeliness", region="330604")
    totals = table["totals"]
    assert (totals["scheduled"], totals["missed"]) == (shangyu.ROTA_UNITS, len(shangyu.MISSED))
    assert (totals["missing"], totals["late"]) == (len(shangyu.MISSING), len(shangyu.LATE))
    names = {r["单位编码"]: r["单位名称"] for r in register("tongxin.demo.shangyu",
                                                           "organizations")}
    overdue = {loaded.ids["organizations"][c]: names[c] for c in shangyu.overdue_units()}
    assert {r["key"]: r["label"] for r in table["rows"] if r["missing"]} == overdue
    listed = await report(system, loaded, "/v1/reports/timeliness/missing", region="330604")
    assert {r["organization_name"] for r in listed["rows"]} == set(overdue.values())

    # Posted live, so the deadline sweep names each unit in a notice.
    for unit, name in overdue.items():
        [notice] = await overdue_notices(system, organization_id=unit)
        assert name in notice["message_zh"]

    ranking = await report(system, loaded, "/v1/reports/assessment", year="2010",
                           region="330604")
    ranked = {r["organization_id"]: r["rank"] for r in ranking["rows"]}
    on_time = loaded.ids["organizations"]["sy-gsj"]
    assert all(ranked[on_time] < ranked[u] for u in overdue)
    assert ranking["individuals"] and ranking["individuals"][0]["name"].startswith("市国税局")


async def test_loading_again_adds_nothing(system, loaded):
    # The overdue notices are the last events the first load causes.
    await overdue_notices(system, expected=len(shangyu.MISSING))
    before_seq = await system.events_last_seq()
    before = {c: len(await records(system, c)) for c in (
        "regions", "organizations", "bases", "teams", "volunteers", "pairings", "campaigns")}
    summary = await report(system, loaded, "/v1/reports/summary", group_by="organization")

    seq = await asyncio.to_thread(demo.load, system.url("registry"), system.url("events"),
                                  system.token)
    assert seq == loaded.seq
    assert await system.events_last_seq() == before_seq
    assert {c: len(await records(system, c)) for c in before} == before
    again = await report(system, loaded, "/v1/reports/summary", group_by="organization")
    assert again["totals"] == summary["totals"] and again["rows"] == summary["rows"]
    assert (summary["totals"]["activities"], summary["totals"]["served"]) == demo.totals()
