"""The volunteer ledger (`/v1/reports/volunteers`): each volunteer's hours, confirmed or not, by
how they were recorded, the activities attended and a star level by confirmed hours.

Hours live per (activity, volunteer): recorded (self-reported hours wait for their unit; other
methods are confirmed as recorded; a sign-in without its sign-out stays open, with no hours, and
is counted apart; recording again replaces hours, method and status), then
confirmed or declined (declined hours count nowhere). The model keeps its own small table of
activities (unit, base, local day, retracted), so the period and base/region scope apply on the
activity's day and base, a correction moving the activity moves its hours to that period, and a
retracted activity's hours count nowhere. The organisation scope, and the unit a row is under,
is the volunteer's unit on the activity's day (`memberships`: a volunteer moved to another unit
has a row under each, with the hours served there), else the volunteer's unit now.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from pydantic import Field
from sqlalchemy import (
    Boolean,
    Column,
    Date,
    Float,
    Select,
    String,
    Table,
    and_,
    case,
    distinct,
    func,
    or_,
    select,
    tuple_,
    update,
)
from sqlalchemy.ext.asyncio import AsyncConnection

from services.reporting.models.labels import label_map, registry_entities
from services.reporting.models.memberships import EVER, memberships
from services.reporting.readmodel import Batch, ReadModel
from services.reporting.reports import Column as Col
from services.reporting.reports import (
    FormatQuery,
    HeadersQuery,
    MinSeq,
    Report,
    answer,
    documented,
)
from services.reporting.scope import Scope, scope_query
from services.reporting.store import metadata
from shared.http import Offset
from shared.projection import upsert
from shared.responses import Answer, Number
from shared.settings import get_settings

NAME = "reporting-volunteers"
METHODS = ("self", "organiser", "sign_in", "import")

activities = Table(
    "vol_activities", metadata,
    Column("activity_id", String(36), primary_key=True),
    Column("organization_id", String(64), nullable=False),
    Column("base_id", String(64), nullable=False, index=True),
    Column("day", Date, nullable=False, index=True),  # the activity's local day
    Column("retracted", Boolean, nullable=False, server_default="0"),
)

attendance = Table(
    "vol_attendance", metadata,
    Column("activity_id", String(36), primary_key=True),
    Column("volunteer_id", String(64), primary_key=True, index=True),
    Column("hours", Float, nullable=False),
    Column("method", String(16), nullable=False),
    Column("status", String(16), nullable=False),  # open, unconfirmed, confirmed, declined
)


# -- handlers ---------------------------------------------------------------------------------

def _activity_rows(batch: Batch, newest: bool) -> list[dict]:
    """One row per activity in the batch: its first version (logged) or newest (corrected)."""
    rows: dict[str, dict] = {}
    for e in batch.events:
        key = str(e.data.activity_id)
        if newest or key not in rows:
            rows[key] = {"activity_id": key, "organization_id": e.data.organization_id,
                         "base_id": e.data.base_id, "day": batch.local_day(e.data.started_at),
                         "retracted": False}
    return list(rows.values())


async def on_logged(batch: Batch) -> None:
    """The first logging wins (the events service accepts one)."""
    stmt = upsert(batch.conn, activities)
    await batch.conn.execute(stmt.on_conflict_do_nothing(index_elements=["activity_id"]),
                             _activity_rows(batch, newest=False))


async def on_corrected(batch: Batch) -> None:
    """The newest correction moves the activity (and so its hours) to its unit, base and day;
    a retracted activity stays retracted."""
    stmt = upsert(batch.conn, activities)
    await batch.conn.execute(stmt.on_conflict_do_update(
        index_elements=["activity_id"],
        set_={c: stmt.excluded[c] for c in ("organization_id", "base_id", "day")},
        where=activities.c.retracted.is_(False)), _activity_rows(batch, newest=True))


async def on_retracted(batch: Batch) -> None:
    ids = list({str(e.data.activity_id) for e in batch.events})
    await batch.conn.execute(update(activities).where(activities.c.activity_id.in_(ids))
                             .values(retracted=True))


async def on_recorded(batch: Batch) -> None:
    """Recording again replaces hours, method and status (the last in the batch wins)."""
    rows: dict[tuple[str, str], dict] = {}
    for e in batch.events:
        d = e.data
        rows[(str(d.activity_id), d.volunteer_id)] = {
            "activity_id": str(d.activity_id), "volunteer_id": d.volunteer_id,
            "hours": d.hours or 0.0, "method": d.method,
            # A sign-in without its sign-out has no hours and is not confirmed: it is
            # counted as open (flagged), never filled in with the activity's hours.
            "status": "open" if d.open else "unconfirmed" if d.method == "self"
            else "confirmed"}
    stmt = upsert(batch.conn, attendance)
    await batch.conn.execute(stmt.on_conflict_do_update(
        index_elements=["activity_id", "volunteer_id"],
        set_={c: stmt.excluded[c] for c in ("hours", "method", "status")}), list(rows.values()))


def _judged(status: str):
    async def handler(batch: Batch) -> None:
        # One type per batch, so one status: a single UPDATE for every pair.
        pairs = list({(str(e.data.activity_id), e.data.volunteer_id) for e in batch.events})
        a = attendance
        await batch.conn.execute(update(a).where(tuple_(a.c.activity_id, a.c.volunteer_id)
                                                 .in_(pairs)).values(status=status))
    return handler


# -- the ledger -------------------------------------------------------------------------------

def star_level(hours: float, thresholds: Sequence[float]) -> int:
    """Level n when confirmed hours reach the nth threshold."""
    hours = round(hours, 6)  # a sum of floats a hair under a threshold still reaches it
    return sum(1 for t in thresholds if hours >= t)


_vol = registry_entities.alias("volunteer")
_org = registry_entities.alias("unit")
_member = memberships.alias("member")
# The volunteer's unit on the activity's day (a move between units, 转移接续), else now.
_unit = func.coalesce(_member.c.organization_id, _vol.c.organization_id)


def _counted(scope: Scope) -> tuple[Any, list]:
    """Attendance that counts within the scope: not declined, at an activity not retracted."""
    a, act = attendance, activities
    source = (a.join(act, act.c.activity_id == a.c.activity_id)
              .outerjoin(_vol, and_(_vol.c.kind == "volunteer", _vol.c.id == a.c.volunteer_id))
              .outerjoin(_member, and_(_member.c.volunteer_id == a.c.volunteer_id,
                                       _member.c.valid_from <= act.c.day,
                                       or_(_member.c.valid_to.is_(None),
                                           act.c.day < _member.c.valid_to))))
    where = [act.c.retracted.is_(False), a.c.status != "declined",
             *scope.where(organization=_unit, base=act.c.base_id,
                          day=act.c.day)]
    return source, where


def _sums() -> list:
    a = attendance

    def hours(cond) -> Any:
        return func.coalesce(func.sum(case((cond, a.c.hours), else_=0.0)), 0.0)

    return [hours(a.c.status == "confirmed").label("hours_confirmed"),
            hours(a.c.status == "unconfirmed").label("hours_unconfirmed"),
            *(hours(a.c.method == m).label(f"by_{m}") for m in METHODS),
            func.count(distinct(a.c.activity_id)).label("activities"),
            func.coalesce(func.sum(case((a.c.status == "open", 1), else_=0)), 0)
            .label("open_sign_ins")]


def _ledger(scope: Scope, limit: int | None = None, offset: int = 0) -> Select:
    source, where = _counted(scope)
    a = attendance
    grouped = [a.c.volunteer_id, _vol.c.name, _unit, _org.c.name]
    stmt = (select(a.c.volunteer_id, _vol.c.name.label("name"),
                   _unit.label("organization_id"),
                   _org.c.name.label("organization_name"), *_sums())
            .select_from(source.outerjoin(_org, and_(_org.c.kind == "organization",
                                                     _org.c.id == _unit)))
            .where(*where).group_by(*grouped)
            .order_by(func.sum(case((a.c.status == "confirmed", a.c.hours), else_=0.0)).desc(),
                      a.c.volunteer_id, _unit))
    if limit is not None:
        stmt = stmt.limit(limit)
    return stmt.offset(offset) if offset else stmt


def _figures(r: Any) -> dict:
    return {"hours_confirmed": round(float(r.hours_confirmed), 2),
            "hours_unconfirmed": round(float(r.hours_unconfirmed), 2),
            "hours_by_method": {m: round(float(getattr(r, f"by_{m}")), 2) for m in METHODS},
            "activities": int(r.activities), "open_sign_ins": int(r.open_sign_ins)}


def _row(r: Any, thresholds: Sequence[float]) -> dict:
    return {"volunteer_id": r.volunteer_id, "name": r.name or r.volunteer_id,
            "organization_id": r.organization_id, "organization_name": r.organization_name,
            **_figures(r), "star_level": star_level(float(r.hours_confirmed), thresholds)}


async def ranking(conn: AsyncConnection, scope: Scope, limit: int | None = None,
                  thresholds: Sequence[float] | None = None) -> list[dict]:
    """Ledger rows, most confirmed hours first (a moved volunteer has a row under each unit)."""
    thresholds = thresholds or get_settings().star_thresholds
    return [_row(r, thresholds) for r in await conn.execute(_ledger(scope, limit))]


async def individuals(conn: AsyncConnection, scope: Scope,
                      thresholds: Sequence[float] | None = None) -> list[dict]:
    """One row per volunteer with confirmed hours in the scope, most first (ties by name, then
    id): the year-end assessment's individuals. A volunteer moved between units (转移接续) is
    one person, with the confirmed hours served under every unit within the scope added up:
    over the whole programme, all of them; scoped to a unit's subtree, only those served
    there. The row's unit is the one the volunteer belongs to now when that is within the
    scope (always, over the whole programme), else the unit they last served under within it,
    so a unit's ranking shows its own units, never where the volunteer went."""
    thresholds = thresholds or get_settings().star_thresholds
    source, where = _counted(scope)
    a, act, now = attendance, activities, _vol.c.organization_id
    now_within = now.in_(scope.units()) if scope.organization_id else now.is_not(None)
    found = await conn.execute(
        select(a.c.volunteer_id, _vol.c.name, now.label("now"),
               now_within.label("now_within"),
               _unit.label("unit"), func.sum(a.c.hours).label("hours"),
               func.max(act.c.day).label("last_day"))
        .select_from(source).where(*where, a.c.status == "confirmed")
        .group_by(a.c.volunteer_id, _vol.c.name, now, _unit))
    people: dict[str, dict] = {}
    for r in found:
        person = people.setdefault(r.volunteer_id, {
            "volunteer_id": r.volunteer_id, "name": r.name or r.volunteer_id,
            "now": r.now if r.now_within else None, "hours": 0.0, "last": (EVER, "")})
        person["hours"] += float(r.hours)
        person["last"] = max(person["last"], (r.last_day, r.unit or ""))
    units = {p["now"] or p["last"][1] or None for p in people.values()}
    names = await label_map(conn, "organization", sorted(u for u in units if u))
    rows = []
    for p in people.values():
        unit = p["now"] or p["last"][1] or None
        rows.append({"volunteer_id": p["volunteer_id"], "name": p["name"],
                     "organization_id": unit, "organization_name": names.get(unit),
                     "hours_confirmed": round(p["hours"], 2),
                     "star_level": star_level(p["hours"], thresholds)})
    rows.sort(key=lambda r: (-r["hours_confirmed"], r["name"], r["volunteer_id"]))
    return [r for r in rows if r["hours_confirmed"] > 0]


async def totals(conn: AsyncConnection, scope: Scope) -> dict:
    """Over the whole scope: hours summed, activities and volunteers distinct (never summed
    from rows: two volunteers at one activity are one activity)."""
    source, where = _counted(scope)
    r = (await conn.execute(select(*_sums(), func.count(distinct(attendance.c.volunteer_id))
                                   .label("volunteers")).select_from(source).where(*where))).one()
    return {"volunteer_id": None, "name": None, "organization_id": None,
            "organization_name": None, "volunteers": int(r.volunteers), **_figures(r),
            "star_level": None}


async def _stream(conn: AsyncConnection, stmt: Select,
                  thresholds: Sequence[float]) -> AsyncIterator[dict]:
    """Rows from the database cursor as they come: an export of every volunteer never sits in
    memory whole."""
    result = await conn.stream(stmt)
    async for r in result:
        yield _row(r, thresholds)


COLUMNS = [
    Col("name", "姓名", "Name"), Col("volunteer_id", "志愿者编号", "Volunteer"),
    Col("organization_name", "所属单位", "Unit"), Col("organization_id", "单位编码", "Unit code"),
    Col("hours_confirmed", "已确认时长(小时)", "Confirmed hours"),
    Col("hours_unconfirmed", "待确认时长(小时)", "Unconfirmed hours"),
    Col("hours_by_method.self", "本人申报(小时)", "Self-reported (h)"),
    Col("hours_by_method.organiser", "组织者录入(小时)", "By organiser (h)"),
    Col("hours_by_method.sign_in", "签到(小时)", "Sign-in (h)"),
    Col("hours_by_method.import", "导入(小时)", "Imported (h)"),
    Col("activities", "参加活动(次)", "Activities"), Col("star_level", "星级", "Star level"),
    Col("open_sign_ins", "未签退(次)", "Not signed out"),
]


async def ledger_report(conn: AsyncConnection, scope: Scope, thresholds: Sequence[float],
                        limit: int | None = None, offset: int = 0) -> Report:
    total = await totals(conn, scope)
    return Report("志愿者服务时长台账", "Volunteer hours ledger", COLUMNS,
                  _stream(conn, _ledger(scope, limit, offset), thresholds), total,
                  extra={"total": total["volunteers"], "limit": limit, "offset": offset,
                         "star_thresholds": list(thresholds)})



# -- what the routes answer -------------------------------------------------------------------

# (Fields in the order the dicts have them: the answer keeps its order.)
class VolunteerRow(Answer):
    volunteer_id: str
    name: str | None
    organization_id: str | None
    organization_name: str | None
    hours_confirmed: float
    hours_unconfirmed: float
    hours_by_method: dict[str, float] = Field(description="self, organiser, sign_in, import")
    activities: int
    open_sign_ins: int = Field(description="sign-ins never signed out: no hours, unconfirmed")
    star_level: int = Field(description="0-5 by confirmed hours")


class VolunteerTotals(Answer):
    """Over the whole scope: hours summed, activities and volunteers distinct."""

    volunteer_id: None
    name: None
    organization_id: None
    organization_name: None
    volunteers: int
    hours_confirmed: float
    hours_unconfirmed: float
    hours_by_method: dict[str, float]
    activities: int
    open_sign_ins: int
    star_level: None


class Volunteers(Answer):
    rows: list[VolunteerRow]
    totals: VolunteerTotals
    total: int = Field(description="volunteers in scope")
    limit: int | None
    offset: int
    star_thresholds: list[Number]
    as_of: int

router = APIRouter(tags=["reports"])


@router.get("/v1/reports/volunteers", summary="Each volunteer's hours and star level",
            **documented(Volunteers))
async def get_volunteers(
    request: Request,
    scope: Annotated[Scope, Depends(scope_query)],
    limit: Annotated[int | None, Query(ge=1, le=100_000)] = None,
    offset: Offset = 0,
    min_seq: MinSeq = None, format: FormatQuery = "json", headers: HeadersQuery = "zh",
) -> Any:
    """One row per volunteer, most confirmed hours first: confirmed and unconfirmed hours,
    hours by method (not declined), activities attended, star level 0-5 by confirmed hours.
    The organisation scope is the subtree of the volunteer's unit on the activity's day (a
    volunteer moved between units has a row under each); period, base and region apply on
    the activity's day and base."""
    thresholds = request.app.state.settings.star_thresholds
    return await answer(request, lambda conn: ledger_report(conn, scope, thresholds, limit,
                                                            offset),
                        models=(NAME,), min_seq=min_seq, format=format, headers=headers,
                        filename="volunteers", scope=scope)


MODEL = ReadModel(
    name=NAME, tables=(activities, attendance),
    handlers={"activity.logged": on_logged, "activity.corrected": on_corrected,
              "activity.retracted": on_retracted, "attendance.recorded": on_recorded,
              "attendance.confirmed": _judged("confirmed"),
              "attendance.declined": _judged("declined")},
    router=router, description="volunteers' hours and star levels",
    separate=frozenset({"attendance"}))
