"""The summary read from rollups equals the same figures computed from the cube's rows
(`summary_raw`), for random programmes (hypothesis) fed through the real projection on real
streams and each back-end: fairs with stalls of several units, corrections that move an activity
to another month, unit or base, retractions, late corrections of retracted activities, repeated
loggings, attendance recorded, confirmed and declined (before or after its activity), units
re-parented in the registry, and scopes of every kind (a unit's subtree, a region, a base,
whole and cut months, and their combinations), every grouping."""

from __future__ import annotations

import uuid
from datetime import date

import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from sqlalchemy import select

from services.reporting import store
from services.reporting.models import activities as cube
from services.reporting.models import activity_rollups as rollups
from services.reporting.models import labels
from services.reporting.scope import Scope
from tests.factories import activity
from tests.integration.readmodels import Reporting, registry_places

pytestmark = pytest.mark.asyncio(loop_scope="session")

GROUPINGS = ("organization", "base", "team", "region", "theme", "service_type", "month",
             "pairing", "project", "week", "quarter", "year")
TYPES = ("free_clinic", "haircut", "legal_aid", "repair")
INDICATORS = ("students_funded", "households_visited")

# Each example is a whole programme through NATS and the database: a modest number of them,
# deterministic, drawn as they are (no shrinking: a failure names the scope and grouping).
ROLLUP_PROPERTIES = settings(
    max_examples=10, derandomize=True, database=None, deadline=None,
    phases=[Phase.explicit, Phase.generate],
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                           HealthCheck.data_too_large])


@st.composite
def figures(draw, units: int) -> dict:
    """What an activity says it did: an ordinary activity or a fair, in early 2013."""
    month, day = draw(st.integers(1, 4)), draw(st.sampled_from([1, 2, 15, 27, 28]))
    out = {
        "unit": draw(st.integers(0, units - 1)), "base": draw(st.integers(0, 2)),
        "day": f"2013-{month:02d}-{day:02d}",
        "volunteers": draw(st.integers(0, 30)),
        "volunteer_hours": draw(st.integers(0, 200)) / 4,
        "trainees": draw(st.integers(0, 5)),
        "donation": draw(st.sampled_from([None, "0.10", "12.35", "400"])),
        "team": draw(st.sampled_from([None, "team-a", "team-b"])),
        "pairing": draw(st.sampled_from([None, "pair-a"])),
        "project": draw(st.sampled_from([None, "proj-a"])),
        "theme": draw(st.sampled_from(["new_countryside", "harmonious_society"])),
        "outputs": draw(st.lists(st.tuples(st.sampled_from(INDICATORS),
                                           st.integers(0, 40).map(lambda q: q / 8)),
                                 max_size=2, unique_by=lambda t: t[0])),
    }
    if draw(st.booleans()):  # a fair: stalls of several units (None: the organiser's own)
        out["stalls"] = draw(st.lists(st.tuples(
            st.sampled_from(TYPES), st.integers(0, 90),
            st.none() | st.integers(0, units - 1), st.none() | st.integers(0, 4)),
            min_size=1, max_size=5))
    else:
        out["types"] = draw(st.lists(st.sampled_from(TYPES), min_size=1, max_size=3,
                                     unique=True))
        out["served"] = draw(st.integers(0, 300))
    return out


@st.composite
def programmes(draw) -> dict:
    units = draw(st.integers(1, 4))
    parents = [None] + [draw(st.none() | st.integers(0, i - 1)) for i in range(1, units)]
    n = draw(st.integers(1, 6))
    ops = draw(st.lists(st.one_of(
        st.tuples(st.just("log"), st.integers(0, n - 1), figures(units)),  # again: ignored
        st.tuples(st.just("correct"), st.integers(0, n - 1), figures(units)),
        st.tuples(st.just("retract"), st.integers(0, n - 1)),
        st.tuples(st.just("attend"), st.integers(0, n - 1), st.integers(0, 5),
                  st.sampled_from(["recorded", "confirmed", "declined"])),
        st.tuples(st.just("reparent"), st.integers(0, units - 1),
                  st.none() | st.integers(0, units - 1)),
    ), max_size=25))
    for i in range(n):  # each activity is logged somewhere in the programme
        ops.insert(draw(st.integers(0, len(ops))), ("log", i, draw(figures(units))))
    scopes = draw(st.lists(st.integers(0, 8 + 4 * units - 1), min_size=4, max_size=4,
                           unique=True))
    return {"units": units, "parents": parents, "ops": ops, "scopes": scopes}


def _activity_data(activity_id: str, spec: dict, units: list[str], bases: list[str]) -> dict:
    unit = units[spec["unit"]]
    changes: dict = {
        "activity_id": activity_id, "started_at": f"{spec['day']}T09:00:00+08:00",
        "ended_at": f"{spec['day']}T11:00:00+08:00", "volunteers": spec["volunteers"],
        "volunteer_hours": spec["volunteer_hours"], "trainees": spec["trainees"],
        "team_id": spec["team"], "pairing_id": spec["pairing"], "project_id": spec["project"],
        "theme": spec["theme"],
        "donations": [] if spec["donation"] is None else [
            {"item": "药品", "quantity": 1, "unit": "批", "value_cny": spec["donation"]}],
        "outputs": [{"indicator": i, "quantity": q} for i, q in spec["outputs"]],
    }
    if "stalls" in spec:
        changes.update(served=None, service_types=[], stalls=[
            {"service_type": t, "served": s,
             **({"organization_id": units[u]} if u is not None else {}),
             **({"volunteers": v} if v is not None else {})}
            for t, s, u, v in spec["stalls"]])
        changes["volunteers"] = max(changes["volunteers"],
                                    sum(v or 0 for *_, v in spec["stalls"]))
    else:
        changes.update(served=spec["served"], service_types=spec["types"])
    data = activity(unit, bases[spec["base"]], **changes)
    if "stalls" in spec:
        data.pop("served")
    return data


@pytest.fixture
async def rep(nc, names, engine):
    async with Reporting(nc, names, engine, models=[labels.MODEL, cube.MODEL]) as rep:
        yield rep


def _scopes(units: list[str], regions: dict[str, str], bases: list[str]) -> list[Scope]:
    whole = {"date_from": date(2013, 2, 1), "date_to": date(2013, 3, 31)}
    cut = {"date_from": date(2013, 1, 2), "date_to": date(2013, 3, 27)}
    out = [Scope(), Scope(**whole), Scope(**cut), Scope(date_to=date(2013, 2, 28)),
           Scope(region=regions["city"]), Scope(region=regions["district"]),
           Scope(base_id=bases[0]), Scope(base_id=bases[2], **whole)]
    for unit in units:
        out += [Scope(organization_id=unit), Scope(organization_id=unit, **whole),
                Scope(organization_id=unit, region=regions["district"]),
                Scope(organization_id=unit, base_id=bases[1], date_from=date(2013, 3, 1))]
    return out


@given(programme=programmes())
@ROLLUP_PROPERTIES
async def test_every_summary_from_rollups_equals_the_figures_from_raw_rows(rep, programme):
    tag = uuid.uuid4().hex[:6]  # the volunteers' ids, new in each example
    made = await registry_places(
        rep, programme["parents"], "淄博市", "高青县",
        (("孟家村", "village"), ("东里镇", "village"), ("历下区", "community")))
    regions, units, bases = made.regions, made.units, made.bases
    ids = [str(uuid.uuid4()) for _ in range(6)]
    logged: dict[int, dict] = {}
    for op in programme["ops"]:
        kind, index = op[0], op[1]
        if kind == "reparent":
            parent = op[2] if op[2] is not None and op[2] != index else None
            await rep.registry("organization", "updated", id=units[index], name=f"第{index}单位",
                               kind="democratic_party",
                               parent_id=units[parent] if parent is not None else None)
        elif kind == "attend":
            ref = {"activity_id": ids[index], "volunteer_id": f"v{op[2]}-{tag}"}
            if op[3] == "recorded":
                await rep.event("attendance.recorded", {**ref, "hours": 2, "method": "sign_in"})
            else:
                unit = units[logged[index]["unit"]] if index in logged else units[0]
                await rep.event(f"attendance.{op[3]}", {
                    **ref, "organization_id": unit,
                    **({"reason": "未到场"} if op[3] == "declined" else {})})
        elif kind == "log":  # the first logging counts (a repeated one is ignored)
            await rep.event("activity.logged", _activity_data(ids[index], op[2], units, bases))
            logged.setdefault(index, op[2])
        elif kind == "retract" and index in logged:
            await rep.event("activity.retracted", {"activity_id": ids[index],
                                                   "reason": "重复录入"})
        elif kind == "correct" and index in logged:
            data = _activity_data(ids[index], op[2], units, bases)
            await rep.event("activity.corrected", {**data, "reason": "更正"})
            logged[index] = op[2]
    await rep.caught_up()

    async with rep.engine.connect() as conn:
        parked = (await conn.execute(select(store.parked.c.event_type))).scalars().all()
        assert parked == [], parked  # every event was read: the figures are the programme's
        candidates = _scopes(units, regions, bases)
        for scope in [candidates[i] for i in sorted({0, *programme["scopes"]})]:
            for group_by in GROUPINGS:
                fast = await cube.summary(conn, group_by, scope)
                slow = await cube.summary_raw(conn, group_by, scope)
                assert _canonical(fast) == _canonical(slow), (group_by, scope)
            levelled = await cube.summary(conn, "region", scope, region_level="city")
            assert _canonical(levelled) == _canonical(
                await cube.summary_raw(conn, "region", scope, region_level="city")), scope


def _canonical(answer: tuple[list[dict], dict]) -> tuple:
    rows, totals = answer
    return sorted((repr(r["key"]), sorted(r.items())) for r in rows), sorted(totals.items())


async def test_a_decline_leaves_a_volunteer_counted_where_another_activity_keeps_them(rep):
    """Distinct volunteers stay exact as sets: declining one of two activities in a month
    keeps the volunteer in that month; declining both takes them out, and only there."""
    org = await rep.registry("organization", name="淄博市民盟", kind="democratic_party")
    base = await rep.registry("base", name="高青县孟家村", kind="village")
    first, second, later = (activity(org["id"], base["id"], started_at=f"2013-10-{d}T09:00+08:00",
                                     ended_at=f"2013-10-{d}T10:00+08:00") for d in (5, 12, 19))
    later["started_at"], later["ended_at"] = "2013-11-02T09:00+08:00", "2013-11-02T10:00+08:00"
    for data in (first, second, later):
        await rep.event("activity.logged", data)
        await rep.event("attendance.recorded", {"activity_id": data["activity_id"],
                                                "volunteer_id": "v-1", "hours": 1,
                                                "method": "sign_in"})

    async def months() -> dict:
        await rep.caught_up()
        async with rep.engine.connect() as conn:
            rows, totals = await cube.summary(conn, "month", Scope())
        return {**{r["key"]: r["unique_volunteers"] for r in rows},
                "total": totals["unique_volunteers"]}

    assert await months() == {"2013-10": 1, "2013-11": 1, "total": 1}
    declined = {"volunteer_id": "v-1", "organization_id": org["id"], "reason": "未到场"}
    await rep.event("attendance.declined", {"activity_id": first["activity_id"], **declined})
    assert await months() == {"2013-10": 1, "2013-11": 1, "total": 1}
    await rep.event("attendance.declined", {"activity_id": second["activity_id"], **declined})
    assert await months() == {"2013-10": 0, "2013-11": 1, "total": 1}
    await rep.event("activity.retracted", {"activity_id": later["activity_id"], "reason": "重复"})
    assert await months() == {"2013-10": 0, "total": 0}
    async with rep.engine.connect() as conn:  # every row of the month's people is empty
        people = (await conn.execute(select(rollups.rollup.c.people)
                                     .where(rollups.rollup.c.month == "2013-10"))).scalars()
        assert all(rollups.unpack(p) == set() for p in people)
