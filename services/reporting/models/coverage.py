"""Coverage (`/v1/reports/coverage`): which bases nobody has served lately, and how far a
door-knocking campaign (敲门行动, "不漏一户、不漏一人") has reached into each base's households.

Idle bases. A base counts as served on a local day when an activity logged there started that
day, or a campaign visit (敲门行动) was recorded there for that day: a door-knocked community
is not idle. The newest correction moves the activity (base and day); a retraction removes it
for good. Which unit served does not matter: a base is idle or not for everyone. "The last N
days" are the N days ending with `at` (the programme's today by the clock, or the day asked),
so a base is idle when the later of its last activity and last visit is N or more days before
`at`, or it never had either. Activities and visits after `at` are not counted.

Campaign coverage. `visited` at a base counts households, never visits:
- each household key counts once per campaign and base, however often it was visited;
- a visit's households without a key (its `households_visited` beyond its distinct keys) are
  added as they come, since nothing tells them apart;
- so unkeyed counts cannot push it past the base's households, `visited` is capped at
  max(households, distinct keys): the keys are certain, the unkeyed remainder is not.
`coverage` = visited ÷ households (null when the base has no household count). The totals'
coverage is over the bases with a household count only, so a base without one adds to neither
side. A campaign's bases are its `base_ids`, else the active bases of its `region_code` (any depth),
and any other base with visits recorded for it.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Any
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import JSONResponse
from pydantic import Field
from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    ColumnElement,
    Date,
    Integer,
    String,
    Table,
    and_,
    distinct,
    false,
    func,
    or_,
    select,
    update,
)
from sqlalchemy.ext.asyncio import AsyncConnection

from services.reporting.models.labels import region_ancestors, registry_entities
from services.reporting.readmodel import Batch, ReadModel
from services.reporting.reports import Column as Col
from services.reporting.reports import (
    FormatQuery,
    HeadersQuery,
    MinSeq,
    Report,
    answer,
    documented,
    wait_for,
)
from services.reporting.scope import Scope, scope_query
from services.reporting.store import metadata
from shared.dates import Day
from shared.http import Errors
from shared.projection import upsert
from shared.replica import record_json
from shared.responses import Answer, DateText

NAME = "reporting-coverage"

# Each logged activity's base and local day, as its newest version says.
base_days = Table(
    "coverage_activities", metadata,
    Column("activity_id", String(36), primary_key=True),
    Column("base_id", String(64), nullable=False),
    Column("day", Date, nullable=False),
    Column("retracted", Boolean, nullable=False, server_default="0"),
    Column("seq", BigInteger, nullable=False),
)

visits = Table(
    "coverage_visits", metadata,
    Column("event_id", String(36), primary_key=True),
    Column("campaign_id", String(64), nullable=False, index=True),
    Column("base_id", String(64), nullable=False),
    Column("visited_on", Date, nullable=False),
    Column("unkeyed", Integer, nullable=False),  # households_visited beyond its distinct keys
    Column("volunteers", Integer, nullable=False),
    Column("problems_found", Integer, nullable=False),
)

# Each visit's distinct household keys; distinct across visits at query time (within a scope).
household_keys = Table(
    "coverage_household_keys", metadata,
    Column("event_id", String(36), primary_key=True),
    Column("household_key", String(64), primary_key=True),
    Column("campaign_id", String(64), nullable=False, index=True),
    Column("base_id", String(64), nullable=False),
    Column("visited_on", Date, nullable=False),
)


# -- handlers ---------------------------------------------------------------------------------

def _row(batch: Batch, event: Any) -> dict:
    return {"activity_id": str(event.data.activity_id), "base_id": event.data.base_id,
            "day": batch.local_day(event.data.started_at), "retracted": False,
            "seq": event.seq}


async def on_logged(batch: Batch) -> None:
    """The first logging counts (the events service accepts one per activity)."""
    rows: dict[str, dict] = {}
    for event in batch.events:
        rows.setdefault(str(event.data.activity_id), _row(batch, event))
    stmt = upsert(batch.conn, base_days).on_conflict_do_nothing(index_elements=["activity_id"])
    await batch.conn.execute(stmt, list(rows.values()))


async def on_corrected(batch: Batch) -> None:
    """The newest correction moves the activity; a retracted one stays retracted."""
    rows = {str(e.data.activity_id): _row(batch, e) for e in batch.events}
    stmt = upsert(batch.conn, base_days)
    await batch.conn.execute(stmt.on_conflict_do_update(
        index_elements=["activity_id"],
        set_={c: stmt.excluded[c] for c in ("base_id", "day", "seq")},
        where=base_days.c.retracted == false()), list(rows.values()))


async def on_retracted(batch: Batch) -> None:
    ids = list({str(e.data.activity_id) for e in batch.events})
    await batch.conn.execute(update(base_days).where(base_days.c.activity_id.in_(ids))
                             .values(retracted=True))


async def on_visit(batch: Batch) -> None:
    visit_rows: list[dict] = []
    key_rows: list[dict] = []
    for event in batch.events:
        d = event.data
        keys = sorted(set(d.household_keys))
        common = {"event_id": event.event_id, "campaign_id": d.campaign_id,
                  "base_id": d.base_id, "visited_on": d.visited_on}
        visit_rows.append({**common, "unkeyed": max(d.households_visited - len(keys), 0),
                           "volunteers": d.volunteers or 0,
                           "problems_found": d.problems_found or 0})
        key_rows.extend({**common, "household_key": k} for k in keys)
    await batch.conn.execute(
        upsert(batch.conn, visits).on_conflict_do_nothing(index_elements=["event_id"]),
        visit_rows)
    if key_rows:
        await batch.conn.execute(upsert(batch.conn, household_keys).on_conflict_do_nothing(
            index_elements=["event_id", "household_key"]), key_rows)


# -- idle bases -------------------------------------------------------------------------------

reg = registry_entities
IDLE_COLUMNS = [
    Col("label", "服务基地", "Base"), Col("base_id", "编码", "Key"),
    Col("region_code", "区域", "Region"),
    Col("last_activity", "最近活动日期", "Last activity"),
    Col("last_visit", "最近走访日期", "Last campaign visit"),
    Col("days_idle", "未开展活动天数", "Days idle"),
]


async def idle_bases(conn: AsyncConnection, scope: Scope, idle_days: int,
                     at: date) -> tuple[list[dict], dict]:
    """The active bases in scope with no activity and no campaign visit in the N days ending
    with `at`, most idle first (never served before all), and the counts."""
    a, v = base_days, visits
    last = (select(a.c.base_id, func.max(a.c.day).label("last"))
            .where(a.c.retracted == false(), a.c.day <= at,
                   *scope.where(base=a.c.base_id, day=a.c.day))
            .group_by(a.c.base_id).subquery())
    visited = (select(v.c.base_id, func.max(v.c.visited_on).label("last"))
               .where(v.c.visited_on <= at, *scope.where(base=v.c.base_id, day=v.c.visited_on))
               .group_by(v.c.base_id).subquery())
    result = await conn.execute(
        select(reg.c.id, reg.c.name, reg.c.region_code, last.c.last, visited.c.last)
        .select_from(reg.outerjoin(last, last.c.base_id == reg.c.id)
                     .outerjoin(visited, visited.c.base_id == reg.c.id))
        .where(reg.c.kind == "base", reg.c.active.is_(True), *scope.where(base=reg.c.id)))
    bases = result.all()
    idle = []
    for base_id, name, region_code, last_day, last_visit in bases:
        served = max(filter(None, (last_day, last_visit)), default=None)
        days = (at - served).days if served is not None else None
        if days is None or days >= idle_days:
            idle.append({"base_id": base_id, "label": name or base_id,
                         "region_code": region_code,
                         "last_activity": last_day.isoformat() if last_day else None,
                         "days_idle": days,
                         "last_visit": last_visit.isoformat() if last_visit else None,
                         "last_served": served.isoformat() if served else None})
    idle.sort(key=lambda r: (r["days_idle"] is not None, -(r["days_idle"] or 0), r["label"],
                             r["base_id"]))
    counts = {"bases": len(bases), "active_bases": len(bases) - len(idle),
              "idle_bases": len(idle)}
    return idle, counts


async def idle_report(conn: AsyncConnection, scope: Scope, idle_days: int, at: date) -> Report:
    rows, counts = await idle_bases(conn, scope, idle_days, at)
    return Report(f"服务基地活动覆盖（{idle_days}天内无活动）",
                  f"Bases idle for {idle_days} days", IDLE_COLUMNS, rows, counts,
                  extra={"idle_days": idle_days, "at": at.isoformat()})


# -- campaign coverage ------------------------------------------------------------------------

CAMPAIGN_COLUMNS = [
    Col("label", "服务基地", "Base"), Col("base_id", "编码", "Key"),
    Col("households", "户数", "Households"), Col("visited", "已走访户数", "Households visited"),
    Col("coverage", "覆盖率", "Coverage"), Col("visits", "走访次数", "Visits"),
    Col("volunteers", "志愿者(人次)", "Volunteer turn-outs"),
    Col("problems_found", "发现问题", "Problems found"),
]
NOT_VISITED_COLUMNS = [Col("label", "服务基地", "Base"), Col("base_id", "编码", "Key"),
                       Col("households", "户数", "Households")]


async def campaign_record(conn: AsyncConnection, campaign_id: str) -> dict | None:
    record = (await conn.execute(select(reg.c.record).where(
        reg.c.kind == "campaign", reg.c.id == campaign_id))).scalar()
    return None if record is None else record_json(record)


def _households(record: Any) -> int | None:
    value = record_json(record).get("households")
    return int(value) if isinstance(value, int | float) else None


def _ratio(part: int, whole: int | None) -> float | None:
    return round(part / whole, 4) if whole else None


async def campaign_coverage(conn: AsyncConnection, campaign_id: str, campaign: dict,
                            scope: Scope) -> tuple[list[dict], dict, list[dict]]:
    """Per base of the campaign (within the scope): households, visited, coverage, visits,
    volunteers, problems found; the totals; and the bases not yet visited."""
    v, k = visits, household_keys
    in_visits = [v.c.campaign_id == campaign_id,
                 *scope.where(base=v.c.base_id, day=v.c.visited_on)]
    per_base = {r.base_id: r for r in await conn.execute(
        select(v.c.base_id, func.count().label("visits"),
               func.sum(v.c.unkeyed).label("unkeyed"),
               func.sum(v.c.volunteers).label("volunteers"),
               func.sum(v.c.problems_found).label("problems_found"))
        .where(*in_visits).group_by(v.c.base_id))}
    keyed = dict((await conn.execute(
        select(k.c.base_id, func.count(distinct(k.c.household_key)))
        .where(k.c.campaign_id == campaign_id,
               *scope.where(base=k.c.base_id, day=k.c.visited_on))
        .group_by(k.c.base_id))).tuples().all())

    named = [str(b) for b in campaign.get("base_ids") or []]
    covers: list[ColumnElement[bool]] = [reg.c.id.in_(named)] if named else []
    if not named and campaign.get("region_code"):
        ra = region_ancestors
        covers.append(and_(reg.c.active.is_(True), reg.c.region_code.in_(
            select(ra.c.code).where(ra.c.ancestor == campaign["region_code"]))))
    covers.append(reg.c.id.in_(select(v.c.base_id).where(*in_visits)))
    bases = (await conn.execute(
        select(reg.c.id, reg.c.name, reg.c.record)
        .where(reg.c.kind == "base", or_(*covers), *scope.where(base=reg.c.id)))).all()

    rows = []
    for base_id, name, record in bases:
        households = _households(record)
        got = per_base.get(base_id)
        keys = int(keyed.get(base_id, 0))
        visited = keys + int(got.unkeyed if got else 0)
        if households is not None:
            visited = min(visited, max(households, keys))
        rows.append({"base_id": base_id, "label": name or base_id, "households": households,
                     "visited": visited, "coverage": _ratio(visited, households),
                     "visits": int(got.visits) if got else 0,
                     "volunteers": int(got.volunteers) if got else 0,
                     "problems_found": int(got.problems_found) if got else 0})
    rows.sort(key=lambda r: (r["label"], r["base_id"]))  # the same on every back-end
    counted = [r for r in rows if r["households"] is not None]
    households_total = sum(r["households"] for r in counted)
    totals = {"base_id": None, "label": None, "bases": len(rows),
              "visited_bases": sum(1 for r in rows if r["visits"]),
              "households": households_total,
              "visited": sum(r["visited"] for r in rows),
              "coverage": _ratio(sum(r["visited"] for r in counted), households_total),
              **{f: sum(r[f] for r in rows) for f in ("visits", "volunteers", "problems_found")}}
    not_visited = [{"base_id": r["base_id"], "label": r["label"], "households": r["households"]}
                   for r in rows if not r["visits"]]
    return rows, totals, not_visited


async def campaign_report(conn: AsyncConnection, campaign_id: str, scope: Scope) -> Report:
    campaign = await campaign_record(conn, campaign_id) or {}
    rows, totals, not_visited = await campaign_coverage(conn, campaign_id, campaign, scope)
    name = campaign.get("name") or campaign_id
    facts = {"campaign": {"id": campaign_id, "name": name,
                          "starts_on": campaign.get("starts_on"),
                          "ends_on": campaign.get("ends_on")},
             "not_visited": not_visited}
    return Report(f"{name}入户覆盖", f"{name}: household coverage", CAMPAIGN_COLUMNS, rows,
                  totals, extra=facts, sheets=[Report(
                      "尚未走访的服务基地", "Bases not yet visited", NOT_VISITED_COLUMNS,
                      not_visited)])


# -- route ------------------------------------------------------------------------------------


# -- what the routes answer -------------------------------------------------------------------

class IdleBase(Answer):
    base_id: str
    label: str | None
    region_code: str | None
    last_activity: DateText | None = Field(description=(
        "the last activity logged at the base up to `at` (null: none)"))
    days_idle: int | None = Field(description=(
        "days from the later of last_activity and last_visit to `at`; null: never served"))
    last_visit: DateText | None = Field(None, description=(
        "the last campaign visit (敲门行动) recorded at the base up to `at`: a visit counts "
        "as activity"))
    last_served: DateText | None = Field(None, description=(
        "the later of last_activity and last_visit"))


class IdleCounts(Answer):
    bases: int = Field(description="active bases in scope")
    active_bases: int = Field(description=(
        "those with an activity or a campaign visit in the last idle_days"))
    idle_bases: int


class IdleCoverage(Answer):
    """Without `campaign_id`: the idle bases, most idle first."""

    rows: list[IdleBase]
    totals: IdleCounts
    idle_days: int
    at: DateText
    as_of: int


class CampaignBase(Answer):
    base_id: str
    label: str | None
    households: int | None = Field(description="the base's households, if registered")
    visited: int = Field(description="distinct households visited")
    coverage: float | None = Field(description="visited / households")
    visits: int
    volunteers: int
    problems_found: int


class CampaignTotals(Answer):
    base_id: None
    label: None
    bases: int
    visited_bases: int
    households: int = Field(description="of the bases whose households are registered")
    visited: int
    coverage: float | None
    visits: int
    volunteers: int
    problems_found: int


class NotVisited(Answer):
    base_id: str
    label: str | None
    households: int | None


class CampaignFacts(Answer):
    id: str
    name: str
    starts_on: DateText | None
    ends_on: DateText | None


class CampaignCoverage(Answer):
    """With `campaign_id`: per base of the campaign, household coverage."""

    rows: list[CampaignBase]
    totals: CampaignTotals
    campaign: CampaignFacts
    not_visited: list[NotVisited]
    as_of: int

router = APIRouter(tags=["reports"])


@router.get("/v1/reports/coverage", summary="Idle bases, or a campaign's household coverage",
            **documented(IdleCoverage | CampaignCoverage,
                         {404: {"model": Errors,
                                "description": "no campaign has `campaign_id`"}}))
async def get_coverage(
    request: Request,
    scope: Annotated[Scope, Depends(scope_query)],
    idle_days: Annotated[int, Query(ge=1, le=3660, description=(
        "a base is idle with no activity in this many days, ending with `at`"))] = 30,
    at: Annotated[Day | None, Query(description="today, for idle days (default: the "
                                     "programme's local today)")] = None,
    campaign_id: Annotated[str | None, Query(max_length=64, description=(
        "a registry campaign: its bases' household coverage instead"))] = None,
    min_seq: MinSeq = None, format: FormatQuery = "json", headers: HeadersQuery = "zh",
) -> Any:
    """Without `campaign_id`: the active bases in scope with no activity in the last
    `idle_days` days, each with its last activity date (null if never) and days idle, and the
    counts. With it: per base households, distinct households visited, coverage, visits,
    turn-outs and problems found; the bases not yet visited; totals."""
    if campaign_id is None:
        today = at or datetime.now(ZoneInfo(request.app.state.settings.timezone)).date()
        return await answer(request, lambda conn: idle_report(conn, scope, idle_days, today),
                            models=(NAME,), min_seq=min_seq, format=format, headers=headers,
                            filename="coverage-idle", scope=scope, varies=(today,))
    # Waited for first, so a campaign just registered is found; then one snapshot.
    await wait_for(request, (NAME,), min_seq)
    async with request.app.state.engine.connect() as conn:
        known = await campaign_record(conn, campaign_id) is not None
    if not known:
        return JSONResponse({"errors": [{"field": "campaign_id", "message": (
            f"no campaign with id {campaign_id!r}")}]}, status_code=404)
    return await answer(request, lambda conn: campaign_report(conn, campaign_id, scope),
                        models=(NAME,), format=format, headers=headers,
                        filename="coverage-campaign", scope=scope)


MODEL = ReadModel(
    name=NAME, tables=(base_days, visits, household_keys),
    handlers={"activity.logged": on_logged, "activity.corrected": on_corrected,
              "activity.retracted": on_retracted, "campaign.visit_recorded": on_visit},
    router=router, description="idle bases and campaign household coverage")
