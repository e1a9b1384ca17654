"""Report timeliness read from rollups equals the same figures computed from the activities'
rows (`timeliness_raw`), for random programmes (hypothesis) fed through the real projection on
real streams and each back-end: rota entries re-planned, logged or never, activities logged
(again: ignored), corrected to another unit, base, day or end, retracted (and corrected after),
reports submitted on time, late or twice, overdue notices fixing deadlines, units re-parented,
at several moments ("now") and scopes of every kind, by unit and by month."""

from __future__ import annotations

import uuid
from datetime import date, datetime
from typing import Any

import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from sqlalchemy import select

from services.reporting import store
from services.reporting.models import labels, timeliness
from services.reporting.models import timeliness_rollups as rollups
from services.reporting.scope import Scope
from tests.factories import activity, schedule
from tests.integration.readmodels import Reporting, registry_places

pytestmark = pytest.mark.asyncio(loop_scope="session")

PROPERTIES = settings(
    max_examples=10, derandomize=True, database=None, deadline=None,
    phases=[Phase.explicit, Phase.generate],
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                           HealthCheck.data_too_large])
MOMENTS = ("2013-01-20T12:00:00+08:00", "2013-02-14T08:00:00+08:00",
           "2013-03-30T23:00:00+08:00", "2013-06-01T00:00:00+08:00")

days = st.builds(lambda m, d: f"2013-{m:02d}-{d:02d}", st.integers(1, 4),
                 st.sampled_from([1, 2, 15, 24, 28]))
places = st.tuples(st.integers(0, 3), st.integers(0, 2))  # unit (mod units), base


@st.composite
def programmes(draw) -> dict:
    units = draw(st.integers(1, 4))
    parents = [None] + [draw(st.none() | st.integers(0, i - 1)) for i in range(1, units)]
    n = draw(st.integers(1, 6))
    index = st.integers(0, n - 1)
    ops = draw(st.lists(st.one_of(
        st.tuples(st.just("schedule"), index, places, days),
        st.tuples(st.just("log"), index, places, days, st.integers(0, 30)),
        st.tuples(st.just("correct"), index, places, days, st.integers(0, 30)),
        st.tuples(st.just("retract"), index),
        st.tuples(st.just("submit"), index, days),
        st.tuples(st.just("overdue"), index, days),
        st.tuples(st.just("reparent"), st.integers(0, units - 1),
                  st.none() | st.integers(0, units - 1)),
    ), max_size=30))
    scopes = draw(st.lists(st.integers(0, 6 + 3 * units - 1), min_size=3, max_size=3,
                           unique=True))
    return {"units": units, "parents": parents, "ops": ops, "scopes": scopes}


@pytest.fixture
async def rep(nc, names, engine):
    async with Reporting(nc, names, engine, models=[labels.MODEL, timeliness.MODEL]) as rep:
        yield rep


def _scopes(units: list[str], regions: dict[str, str], bases: list[str]) -> list[Scope]:
    whole: dict[str, Any] = {"date_from": date(2013, 2, 1), "date_to": date(2013, 3, 31)}
    out = [Scope(), Scope(**whole), Scope(date_to=date(2013, 2, 28)),
           Scope(region=regions["city"]), Scope(region=regions["district"], **whole),
           Scope(base_id=bases[0])]
    for unit in units:
        out += [Scope(organization_id=unit), Scope(organization_id=unit, **whole),
                Scope(organization_id=unit, base_id=bases[1], date_from=date(2013, 3, 1))]
    return out


def _moment(day: str, hour: int) -> str:
    return f"{day}T{hour % 24:02d}:00:00+08:00"


@given(programme=programmes())
@PROPERTIES
async def test_timeliness_from_rollups_equals_the_figures_from_raw_rows(rep, programme):
    made = await registry_places(
        rep, programme["parents"], "绍兴市", "上虞区",
        (("龙山社区", "community"), ("东关街道", "community"), ("百官街道", "community")))
    regions, units, bases = made.regions, made.units, made.bases
    ids = [str(uuid.uuid4()) for _ in range(6)]
    unit_of: dict[int, str] = {}

    def place(p: tuple[int, int]) -> tuple[str, str]:
        return units[p[0] % len(units)], bases[p[1]]

    for op in programme["ops"]:
        kind, i = op[0], op[1]
        if kind == "reparent":
            parent = op[2] if op[2] is not None and op[2] != i else None
            await rep.registry("organization", "updated", id=units[i], name=f"第{i}单位",
                               kind="democratic_party",
                               parent_id=units[parent] if parent is not None else None)
        elif kind == "schedule":
            unit, base = place(op[2])
            await rep.event("activity.scheduled", schedule(unit, base, activity_id=ids[i],
                                                           planned_on=op[3]))
        elif kind in ("log", "correct"):
            unit, base = place(op[2])
            data = activity(unit, base, activity_id=ids[i], started_at=_moment(op[3], 9),
                            ended_at=_moment(op[3], 9 + 1 + op[4] % 12))
            if kind == "log":
                await rep.event("activity.logged", data)
                unit_of.setdefault(i, unit)
            else:
                await rep.event("activity.corrected", {**data, "reason": "更正"})
                unit_of[i] = unit
        elif kind == "retract":
            await rep.event("activity.retracted", {"activity_id": ids[i], "reason": "重复录入"})
        elif kind == "submit":
            await rep.event("report.submitted", {
                "activity_id": ids[i], "organization_id": unit_of.get(i, units[0]),
                "summary": "服务小结", "photos": []},
                datetime.fromisoformat(_moment(op[2], 20)))
        elif kind == "overdue":
            await rep.event("report.overdue", {"activity_id": ids[i],
                                               "organization_id": unit_of.get(i, units[0]),
                                               "due_at": _moment(op[2], 12)})
    await rep.caught_up()

    async with rep.engine.connect() as conn:
        parked = (await conn.execute(select(store.parked.c.event_type))).scalars().all()
        assert parked == [], parked  # every event was read: the figures are the programme's
        empty = (await conn.execute(select(rollups.rollup).where(rollups.rollup.c.entries <= 0)
                                    )).all()
        assert empty == []  # a row with no entries is deleted, as a rebuild would leave it
        candidates = _scopes(units, regions, bases)
        for scope in [candidates[i] for i in sorted({0, *programme["scopes"]})]:
            for group_by in ("organization", "month"):
                for moment in MOMENTS:
                    at = datetime.fromisoformat(moment)
                    fast = await timeliness.timeliness(conn, scope, group_by, at)
                    slow = await timeliness.timeliness_raw(conn, scope, group_by, at)
                    assert fast == slow, (scope, group_by, moment)
