"""Kept report answers (`services/reporting/answers.py`) against real streams and a real database
(each back-end): a repeated report is served from memory, as `/metrics` counts; a new event
moves `as_of` and the next answer shows it; callers of different scopes never share an answer;
fifty identical requests at once are computed once; with every connection busy past the
pool's timeout, a report answers 503 with Retry-After (reports are no longer queued)."""

from __future__ import annotations

import asyncio
import re

import httpx
import pytest
from fastapi import Depends, FastAPI, Request
from sqlalchemy.ext.asyncio import create_async_engine

from services.reporting.answers import Answers
from services.reporting.models import activities as cube
from services.reporting.models import labels
from shared.auth import Principal
from shared.http import install_error_handlers
from shared.metrics import Metrics, add_metrics
from shared.settings import Settings
from tests.factories import activity
from tests.integration.readmodels import ADMIN, Reporting

pytestmark = pytest.mark.asyncio(loop_scope="session")


@pytest.fixture
async def rep(nc, names, engine):
    async with Reporting(nc, names, engine, models=[labels.MODEL, cube.MODEL]) as rep:
        yield rep


def as_caller(request: Request) -> None:
    """The admin, or a unit's key bound to the organisation named in `X-Unit` (what
    `authenticate` sets in a service)."""
    unit = request.headers.get("x-unit")
    request.state.principal = ADMIN if unit is None else Principal(
        kind="key", id=f"key-{unit}", name="unit key", role="unit", organization_id=unit)


def app_for(rep: Reporting) -> FastAPI:
    app = FastAPI(dependencies=[Depends(as_caller)])
    app.include_router(cube.router)
    app.state.engine = rep.engine
    app.state.projections = rep.projections
    app.state.registry = rep.projections[labels.MODEL.name]
    app.state.settings = Settings()
    app.state.answers = Answers(64 * 2**20)
    metrics = Metrics()
    metrics.probe("answers", app.state.answers.probe)
    add_metrics(app, metrics)
    return app


async def counted(http: httpx.AsyncClient) -> dict[str, float]:
    """`tongxin_report_answers` by outcome, as /metrics shows it."""
    page = (await http.get("/metrics")).text
    return {outcome: float(n) for outcome, n in re.findall(
        r'^tongxin_report_answers_total\{outcome="(\w+)"\} ([0-9.e+]+)$', page, re.M)}


async def summary(http: httpx.AsyncClient, unit: str | None = None, **params) -> dict:
    r = await http.get("/v1/reports/summary", params=params,
                       headers={} if unit is None else {"X-Unit": unit})
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == "application/json"
    return r.json()


async def test_a_repeated_report_is_kept_until_a_new_event_moves_as_of(rep):
    org = await rep.registry("organization", name="淄博市委统战部", kind="party_organization")
    base = await rep.registry("base", name="高青县孟家村", kind="village")
    first = await rep.event("activity.logged", activity(org["id"], base["id"], served=120))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app_for(rep)),
                                 base_url="http://reporting") as http:
        before = await summary(http, min_seq=first)
        assert before["totals"]["served"] == 120 and before["as_of"] >= first
        assert await counted(http) == {"computed": 1, "shared": 0, "cached": 0}

        # The same question, asked again: with min_seq or without, the defaults written out
        # or left out, the parameters in another order.
        assert await summary(http) == before
        assert await summary(http, format="json", group_by="organization") == before
        assert await summary(http, min_seq=first, headers="zh") == before
        assert await counted(http) == {"computed": 1, "shared": 0, "cached": 3}
        # Another question is not that one.
        by_base = await summary(http, group_by="base")
        assert [r["label"] for r in by_base["rows"]] == ["高青县孟家村"]
        assert (await counted(http))["computed"] == 2

        # A new event: as_of moves, the kept answer is not served again.
        second = await rep.event("activity.logged", activity(org["id"], base["id"], served=30))
        after = await summary(http, min_seq=second)
        assert after["as_of"] >= second > before["as_of"]
        assert after["totals"]["served"] == 150
        assert await summary(http) == after
        assert await counted(http) == {"computed": 3, "shared": 0, "cached": 4}

        # A registry change (a unit renamed) moves the registry replica's position: the label
        # is read anew, though no event came.
        await rep.registry("organization", "updated", id=org["id"], name="淄博市委统战部（新）",
                           kind="party_organization")
        await rep.caught_up()
        renamed = await summary(http)
        assert [r["label"] for r in renamed["rows"]] == ["淄博市委统战部（新）"]
        assert renamed["as_of"] == after["as_of"]
        assert (await counted(http))["computed"] == 4


async def test_callers_of_different_scopes_never_share_an_answer(rep):
    city = await rep.registry("organization", name="淄博市委统战部", kind="party_organization")
    east = await rep.registry("organization", name="高青县委统战部", kind="party_organization",
                              parent_id=city["id"])
    west = await rep.registry("organization", name="淄川区委统战部", kind="party_organization",
                              parent_id=city["id"])
    base = await rep.registry("base", name="高青县孟家村", kind="village")
    await rep.event("activity.logged", activity(east["id"], base["id"], served=70))
    seq = await rep.event("activity.logged", activity(west["id"], base["id"], served=5))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app_for(rep)),
                                 base_url="http://reporting") as http:
        # The very same request from three callers, the admin's first (kept, whole programme).
        everyone = await summary(http, min_seq=seq)
        assert everyone["totals"]["served"] == 75
        for _ in range(2):  # asked twice each: the second answer is kept, and still theirs
            east_sees = await summary(http, unit=east["id"], min_seq=seq)
            west_sees = await summary(http, unit=west["id"], min_seq=seq)
            assert east_sees["totals"]["served"] == 70
            assert [r["key"] for r in east_sees["rows"]] == [east["id"]]
            assert west_sees["totals"]["served"] == 5
            assert [r["key"] for r in west_sees["rows"]] == [west["id"]]
        assert await summary(http) == everyone
        assert await counted(http) == {"computed": 3, "shared": 0, "cached": 3}
        # A unit naming its own organisation asks a question of its own scope too.
        named = await summary(http, unit=east["id"], organization_id=east["id"])
        assert named["totals"]["served"] == 70


async def test_fifty_identical_requests_at_once_are_computed_once(rep):
    org = await rep.registry("organization", name="淄博市委统战部", kind="party_organization")
    base = await rep.registry("base", name="高青县孟家村", kind="village")
    for served in range(1, 21):
        await rep.event("activity.logged", activity(org["id"], base["id"], served=served))
    await rep.caught_up()
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app_for(rep)),
                                 base_url="http://reporting") as http:
        answers = await asyncio.gather(*(summary(http, group_by="month") for _ in range(50)))
        assert all(a == answers[0] for a in answers)
        assert answers[0]["totals"]["served"] == sum(range(1, 21))
        counts = await counted(http)
        assert counts["computed"] == 1
        assert counts["shared"] + counts["cached"] == 49


async def test_a_report_waiting_past_the_pool_timeout_answers_503(rep):
    await rep.event("activity.logged", activity("org-1", "base-1", served=1))
    await rep.caught_up()
    app = app_for(rep)
    install_error_handlers(app)
    # One connection, held here: the report cannot have one within the pool's timeout.
    app.state.engine = create_async_engine(rep.engine.url, pool_size=1, max_overflow=0,
                                           pool_timeout=0.5)
    try:
        async with app.state.engine.connect(), httpx.AsyncClient(
                transport=httpx.ASGITransport(app=app), base_url="http://reporting") as http:
            r = await http.get("/v1/reports/summary")
        assert r.status_code == 503, r.text
        assert r.headers["retry-after"] == "5"
        assert "no database connection came free" in r.json()["errors"][0]["message"]
    finally:
        await app.state.engine.dispose()
