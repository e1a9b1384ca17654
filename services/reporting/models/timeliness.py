"""Report timeliness (服务旗帜接传, `/v1/reports/timeliness`): after an activity its unit owes a
report (a summary with photos) by a deadline, its end + `report_due_days`. Per unit or month:
reports on time, late, missing (deadline passed, none yet) and pending (deadline still ahead),
and the rota: entries scheduled and entries missed (never logged within a week).

One row per activity, as a rota entry (planned day) and once logged (local day, end, deadline,
first report's time). "Now" is a parameter (`at`), so an answer for a given moment is
reproducible. The deadline moves with a correction of the activity's end until the report is in
or its overdue notice has gone out; then it stays, as the events service holds it (the notice
and this report never disagree). A retracted activity owes nothing and counts nowhere.

The report (and the assessment's on_time_rate and missed) read rollups the handlers keep in the
same transaction (`timeliness_rollups`); a period cutting a month is computed from the rows
(`timeliness_raw`, the oracle the rollups are tested against).
"""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Depends, Query, Request
from pydantic import Field
from sqlalchemy import (
    Boolean,
    Column,
    ColumnElement,
    Date,
    DateTime,
    String,
    Table,
    and_,
    bindparam,
    case,
    func,
    select,
    update,
)
from sqlalchemy.ext.asyncio import AsyncConnection

from services.reporting.models import timeliness_rollups as rollups
from services.reporting.models.labels import label_map, registry_entities
from services.reporting.readmodel import Batch, Handler, ReadModel
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
from shared.dates import Instant
from shared.projection import upsert
from shared.responses import Answer, DateTimeText
from shared.settings import get_settings

NAME = "reporting-timeliness"
GroupBy = Literal["organization", "month"]
FIGURES = ("scheduled", "missed", "on_time", "late", "missing", "pending", "due")
GRACE_DAYS = 7  # a rota entry not logged by the end of planned_on + 7 days is missed

activities = Table(
    "tl_activities", metadata,
    Column("activity_id", String(36), primary_key=True),
    Column("organization_id", String(64), nullable=False, index=True),
    Column("base_id", String(64), nullable=False, index=True),
    Column("title", String(200), nullable=False, server_default=""),
    Column("planned_on", Date, nullable=True, index=True),   # a rota entry's day
    Column("planned_month", String(7), nullable=True),
    Column("logged", Boolean, nullable=False, server_default="0"),
    Column("day", Date, nullable=True, index=True),          # logged: the local day it began
    Column("month", String(7), nullable=True),
    # Moments in UTC (SQLite compares them as text).
    Column("ended_at", DateTime(timezone=True), nullable=True),
    Column("due_at", DateTime(timezone=True), nullable=True, index=True),
    Column("due_fixed", Boolean, nullable=False, server_default="0"),
    Column("reported_at", DateTime(timezone=True), nullable=True),  # the first report
    # The first photo of the first report that had one (an object store ref): the report
    # document shows it beside the activity.
    Column("photo", String(64), nullable=True),
    Column("retracted", Boolean, nullable=False, server_default="0"),
)


def _utc(moment: datetime) -> datetime:
    return moment.astimezone(UTC)


def _aware(moment: datetime) -> datetime:
    """A stored moment (SQLite gives it back naive, in UTC)."""
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


# -- handlers ---------------------------------------------------------------------------------

async def on_scheduled(batch: Batch) -> None:
    """A rota entry, re-planned until logged (the newest plan in the batch wins)."""
    rows: dict[str, dict] = {}
    for e in batch.events:
        d = e.data
        rows[str(d.activity_id)] = {
            "activity_id": str(d.activity_id), "organization_id": d.organization_id,
            "base_id": d.base_id, "title": d.title, "planned_on": d.planned_on,
            "planned_month": f"{d.planned_on:%Y-%m}", "logged": False, "due_fixed": False,
            "retracted": False}
    t = activities
    stmt = upsert(batch.conn, t)
    await batch.conn.execute(stmt.on_conflict_do_update(
        index_elements=["activity_id"],
        set_={c: stmt.excluded[c] for c in ("organization_id", "base_id", "title", "planned_on",
                                            "planned_month")},
        where=and_(t.c.logged.is_(False), t.c.retracted.is_(False))), list(rows.values()))


def _figures(batch: Batch, newest: bool) -> list[dict]:
    """The logged activity's row per activity: its first version or its newest."""
    due = timedelta(days=batch.settings.report_due_days)
    rows: dict[str, dict] = {}
    for e in batch.events:
        d = e.data
        key = str(d.activity_id)
        if newest or key not in rows:
            day = batch.local_day(d.started_at)
            rows[key] = {"activity_id": key, "organization_id": d.organization_id,
                         "base_id": d.base_id, "title": d.title, "logged": True, "day": day,
                         "month": f"{day:%Y-%m}", "ended_at": _utc(d.ended_at),
                         "due_at": _utc(d.ended_at + due), "due_fixed": False,
                         "retracted": False}
    return list(rows.values())


_LOGGED = ("organization_id", "base_id", "title", "logged", "day", "month", "ended_at")


async def on_logged(batch: Batch) -> None:
    """Fulfils its rota entry, if any; the first logging wins (the events service accepts
    one)."""
    t = activities
    stmt = upsert(batch.conn, t)
    await batch.conn.execute(stmt.on_conflict_do_update(
        index_elements=["activity_id"],
        set_={**{c: stmt.excluded[c] for c in _LOGGED}, "due_at": stmt.excluded.due_at},
        where=and_(t.c.logged.is_(False), t.c.retracted.is_(False))),
        _figures(batch, newest=False))


async def on_corrected(batch: Batch) -> None:
    """The newest correction restates unit, base, day and end; the deadline follows the end
    unless it is fixed (report in, or overdue notice out)."""
    t = activities
    stmt = upsert(batch.conn, t)
    await batch.conn.execute(stmt.on_conflict_do_update(
        index_elements=["activity_id"],
        set_={**{c: stmt.excluded[c] for c in _LOGGED},
              "due_at": case((t.c.due_fixed.is_(True), t.c.due_at),
                             else_=stmt.excluded.due_at)},
        where=t.c.retracted.is_(False)), _figures(batch, newest=True))


async def on_retracted(batch: Batch) -> None:
    ids = list({str(e.data.activity_id) for e in batch.events})
    await batch.conn.execute(update(activities).where(activities.c.activity_id.in_(ids))
                             .values(retracted=True))


async def on_submitted(batch: Batch) -> None:
    """The first report counts, at its envelope's occurred_at; it fixes the deadline. The
    first photo any report of the activity cites is its photo."""
    first: dict[str, datetime] = {}
    photo: dict[str, str] = {}
    for e in batch.events:
        first.setdefault(str(e.data.activity_id), _utc(e.envelope.occurred_at))
        if e.data.photos:
            photo.setdefault(str(e.data.activity_id), e.data.photos[0])
    t = activities
    await batch.conn.execute(
        update(t).where(t.c.activity_id == bindparam("aid"), t.c.reported_at.is_(None))
        .values(reported_at=bindparam("moment"), due_fixed=True),
        [{"aid": k, "moment": v} for k, v in first.items()])
    if photo:
        await batch.conn.execute(
            update(t).where(t.c.activity_id == bindparam("aid"), t.c.photo.is_(None))
            .values(photo=bindparam("ref")), [{"aid": k, "ref": v} for k, v in photo.items()])


async def on_overdue(batch: Batch) -> None:
    """The events service named the report overdue: its deadline stands from now on."""
    due = {str(e.data.activity_id): _utc(e.data.due_at) for e in batch.events}
    t = activities
    await batch.conn.execute(
        update(t).where(t.c.activity_id == bindparam("aid"), t.c.reported_at.is_(None))
        .values(due_at=bindparam("moment"), due_fixed=True),
        [{"aid": k, "moment": v} for k, v in due.items()])


# -- the report -------------------------------------------------------------------------------

def _now(at: datetime | None, tz: ZoneInfo) -> datetime:
    """`at` in UTC; a moment without an offset is the programme's local time."""
    if at is None:
        return datetime.now(UTC)
    return _utc(at if at.tzinfo else at.replace(tzinfo=tz))


def _tz(tz: str | None) -> ZoneInfo:
    return ZoneInfo(tz or get_settings().timezone)


def _count(cond: ColumnElement[bool]) -> Any:
    return func.coalesce(func.sum(case((cond, 1), else_=0)), 0)


def _reports(scope: Scope, now: datetime) -> tuple[list, list]:
    """Columns and conditions for reports owed by logged activities in the scope."""
    t = activities
    unreported = t.c.reported_at.is_(None)
    columns = [_count(t.c.reported_at <= t.c.due_at).label("on_time"),
               _count(t.c.reported_at > t.c.due_at).label("late"),
               _count(and_(unreported, t.c.due_at <= now)).label("missing"),
               _count(and_(unreported, t.c.due_at > now)).label("pending")]
    where = [t.c.logged.is_(True), t.c.retracted.is_(False),
             *scope.where(organization=t.c.organization_id, base=t.c.base_id, day=t.c.day)]
    return columns, where


def _rota(scope: Scope, today: date) -> tuple[list, list]:
    """Columns and conditions for rota entries planned in the scope (by their planned day)."""
    t = activities
    last_missable = today - timedelta(days=GRACE_DAYS + 1)
    columns = [func.count().label("scheduled"),
               _count(and_(t.c.logged.is_(False), t.c.planned_on <= last_missable))
               .label("missed")]
    where = [t.c.planned_on.is_not(None), t.c.retracted.is_(False),
             *scope.where(organization=t.c.organization_id, base=t.c.base_id,
                          day=t.c.planned_on)]
    return columns, where


def _with_rate(figures: dict[str, int]) -> dict[str, Any]:
    out: dict[str, Any] = {k: int(figures.get(k, 0)) for k in FIGURES if k != "due"}
    out["due"] = out["on_time"] + out["late"] + out["missing"]
    out["on_time_rate"] = round(out["on_time"] / out["due"], 4) if out["due"] else None
    return out


async def timeliness(conn: AsyncConnection, scope: Scope, group_by: GroupBy = "organization",
                     at: datetime | None = None, tz: str | None = None
                     ) -> tuple[list[dict], dict]:
    """Rows per unit or month, and totals over the whole scope (the rate from the totals): read
    from the rollups (`timeliness_rollups`) when the period is whole months, else computed from
    the activities' rows (`timeliness_raw`), with the same answer."""
    months = scope.whole_months()
    if months is None:
        return await timeliness_raw(conn, scope, group_by, at, tz)
    zone = _tz(tz)
    now = _now(at, zone)
    r = rollups.rollup
    key = r.c.organization_id if group_by == "organization" else r.c.month
    stmt = (select(key.label("key"), r.c.kind, *(func.sum(r.c[n]).label(n)
                                                 for n in rollups.FIGURES))
            .where(r.c.dimension == ("base" if scope.base_id or scope.region else ""),
                   *rollups.months(*months),
                   *replace(scope, date_from=None, date_to=None).where(
                       organization=r.c.organization_id, base=r.c.key))
            .group_by(key, r.c.kind))
    per_key: dict[str, dict[str, int]] = {}
    for row in await conn.execute(stmt):
        figures = per_key.setdefault(row.key, dict.fromkeys(FIGURES[:-1], 0))
        if row.kind == "report":
            figures["on_time"] += int(row.on_time)
            figures["late"] += int(row.late)
            figures["missing"] += int(row.open)  # less those still pending, below
        else:
            figures["scheduled"] += int(row.entries)
            figures["missed"] += int(row.open)   # less those not yet missable, below
    pending, not_missed = await _ahead(conn, scope, group_by, now, now.astimezone(zone).date())
    for k, n in pending.items():
        per_key[k]["pending"] += n
        per_key[k]["missing"] -= n
    for k, n in not_missed.items():
        per_key[k]["missed"] -= n
    totals = {f: sum(v[f] for v in per_key.values()) for f in FIGURES[:-1]}
    return await _answer(conn, group_by, per_key, totals)


async def _ahead(conn: AsyncConnection, scope: Scope, group_by: GroupBy, now: datetime,
                 today: date) -> tuple[dict[str, int], dict[str, int]]:
    """What "now" decides, from the activities' rows whose deadline or grace is still ahead
    (few: the recent ones): per key, reports still pending, and rota entries unlogged but not
    yet missed."""
    t = activities
    report_key = t.c.organization_id if group_by == "organization" else t.c.month
    rota_key = t.c.organization_id if group_by == "organization" else t.c.planned_month
    last_missable = today - timedelta(days=GRACE_DAYS + 1)
    pending = (select(report_key, func.count())
               .where(t.c.logged.is_(True), t.c.retracted.is_(False), t.c.reported_at.is_(None),
                      t.c.due_at > now,
                      *scope.where(organization=t.c.organization_id, base=t.c.base_id,
                                   day=t.c.day))
               .group_by(report_key))
    not_missed = (select(rota_key, func.count())
                  .where(t.c.planned_on > last_missable, t.c.logged.is_(False),
                         t.c.retracted.is_(False),
                         *scope.where(organization=t.c.organization_id, base=t.c.base_id,
                                      day=t.c.planned_on))
                  .group_by(rota_key))
    return ({k: int(n) for k, n in await conn.execute(pending)},
            {k: int(n) for k, n in await conn.execute(not_missed)})


async def timeliness_raw(conn: AsyncConnection, scope: Scope,
                         group_by: GroupBy = "organization", at: datetime | None = None,
                         tz: str | None = None) -> tuple[list[dict], dict]:
    """The same figures computed from the activities' rows: what the rollups must equal, and
    what answers a period that cuts a month."""
    zone = _tz(tz)
    now = _now(at, zone)
    t = activities
    reports, report_where = _reports(scope, now)
    rota, rota_where = _rota(scope, now.astimezone(zone).date())
    report_key = t.c.organization_id if group_by == "organization" else t.c.month
    rota_key = t.c.organization_id if group_by == "organization" else t.c.planned_month

    per_key: dict[str, dict[str, int]] = {}
    for key, columns, where in ((report_key, reports, report_where),
                                (rota_key, rota, rota_where)):
        stmt = select(key.label("key"), *columns).where(*where).group_by(key)
        for r in (await conn.execute(stmt)).mappings():
            per_key.setdefault(r["key"], {}).update({k: v for k, v in r.items() if k != "key"})
    totals: dict[str, int] = {}
    for columns, where in ((reports, report_where), (rota, rota_where)):
        totals.update((await conn.execute(select(*columns).where(*where))).mappings().one())
    return await _answer(conn, group_by, per_key, totals)


async def _answer(conn: AsyncConnection, group_by: GroupBy, per_key: dict[str, dict[str, int]],
                  totals: dict[str, int]) -> tuple[list[dict], dict]:
    keys = sorted(per_key)
    labels = await label_map(conn, group_by, keys) if group_by == "organization" else {}
    rows = [{"key": k, "label": labels.get(k, k), **_with_rate(per_key[k])} for k in keys]
    return rows, {"key": None, "label": None, **_with_rate(totals)}


async def unit_figures(conn: AsyncConnection, scope: Scope, at: datetime | None = None
                       ) -> dict[str, dict[str, float]]:
    """{organization_id: {figure: value}} for the year-end assessment: on_time, late, missing,
    due, on_time_rate (0 when nothing was due), scheduled, missed."""
    rows, _ = await timeliness(conn, scope, "organization", at)
    wanted = ("on_time", "late", "missing", "due", "scheduled", "missed")
    return {r["key"]: {**{k: float(r[k]) for k in wanted},
                       "on_time_rate": float(r["on_time_rate"] or 0.0)} for r in rows}


async def missing(conn: AsyncConnection, scope: Scope, at: datetime | None = None,
                  tz: str | None = None) -> list[dict]:
    """Each report missing at `at`, most overdue first: for the notice naming overdue units."""
    zone = _tz(tz)
    now = _now(at, zone)
    t = activities
    unit = registry_entities.alias("unit")
    base = registry_entities.alias("base")
    stmt = (select(t.c.activity_id, t.c.title, t.c.organization_id,
                   unit.c.name.label("organization_name"), t.c.base_id,
                   base.c.name.label("base_name"), t.c.ended_at, t.c.due_at)
            .select_from(t.outerjoin(unit, and_(unit.c.kind == "organization",
                                                unit.c.id == t.c.organization_id))
                         .outerjoin(base, and_(base.c.kind == "base", base.c.id == t.c.base_id)))
            .where(t.c.logged.is_(True), t.c.retracted.is_(False), t.c.reported_at.is_(None),
                   t.c.due_at <= now,
                   *scope.where(organization=t.c.organization_id, base=t.c.base_id,
                                day=t.c.day))
            .order_by(t.c.due_at, t.c.organization_id, t.c.activity_id))
    out = []
    for r in await conn.execute(stmt):
        due_at = _aware(r.due_at)
        out.append({"activity_id": r.activity_id, "title": r.title,
                    "organization_id": r.organization_id,
                    "organization_name": r.organization_name or r.organization_id,
                    "base_id": r.base_id, "base_name": r.base_name or r.base_id,
                    "ended_at": _aware(r.ended_at).astimezone(zone).isoformat(),
                    "due_at": due_at.astimezone(zone).isoformat(),
                    "days_overdue": round((now - due_at).total_seconds() / 86400, 1)})
    return out


async def photos(conn: AsyncConnection, activity_ids: list[str]) -> dict[str, str]:
    """{activity_id: photo ref} for those of the activities whose report cited a photo."""
    if not activity_ids:
        return {}
    t = activities
    return dict((await conn.execute(select(t.c.activity_id, t.c.photo).where(
        t.c.activity_id.in_(activity_ids), t.c.photo.is_not(None)))).tuples().all())


COLUMNS = [
    Col("label", "名称", "Name"), Col("key", "编码", "Key"),
    Col("scheduled", "排班活动(次)", "Scheduled"), Col("missed", "排班未开展(次)", "Missed"),
    Col("due", "应报送(次)", "Due"), Col("on_time", "按时报送", "On time"),
    Col("late", "逾期报送", "Late"), Col("missing", "逾期未报送", "Missing"),
    Col("pending", "待报送(未到期)", "Pending"),
    Col("on_time_rate", "按时报送率", "On-time rate", "rate"),
]

MISSING_COLUMNS = [
    Col("organization_name", "单位", "Unit"), Col("organization_id", "单位编码", "Unit code"),
    Col("title", "活动", "Activity"), Col("activity_id", "活动编号", "Activity id"),
    Col("base_name", "服务基地", "Base"), Col("base_id", "基地编码", "Base code"),
    Col("ended_at", "活动结束时间", "Ended at", "datetime"),
    Col("due_at", "报送截止时间", "Due at", "datetime"),
    Col("days_overdue", "逾期天数(天)", "Days overdue", "number"),
]


async def timeliness_report(conn: AsyncConnection, scope: Scope, group_by: GroupBy,
                            at: datetime | None, tz: str) -> Report:
    rows, totals = await timeliness(conn, scope, group_by, at, tz)
    zh, en = ("按单位", "by unit") if group_by == "organization" else ("按月", "by month")
    return Report(f"服务旗帜接传报送情况（{zh}）", f"Report timeliness ({en})", COLUMNS, rows,
                  totals, extra={"group_by": group_by, "at": _now(at, ZoneInfo(tz)).isoformat()})


async def missing_report(conn: AsyncConnection, scope: Scope, at: datetime | None,
                         tz: str) -> Report:
    rows = await missing(conn, scope, at, tz)
    return Report("逾期未报送名单", "Overdue reports", MISSING_COLUMNS, rows,
                  extra={"count": len(rows), "at": _now(at, ZoneInfo(tz)).isoformat()})



# -- what the routes answer -------------------------------------------------------------------

class TimelinessRow(Answer):
    """One unit's (or month's) reports owed and rota entries (in `totals`: the whole scope,
    key and label null)."""

    key: str | None
    label: str | None
    scheduled: int
    missed: int
    on_time: int
    late: int
    missing: int
    pending: int
    due: int = Field(description="on_time + late + missing")
    on_time_rate: float | None = Field(description="on_time / due; null when nothing was due")


class Timeliness(Answer):
    rows: list[TimelinessRow]
    totals: TimelinessRow
    group_by: str
    at: DateTimeText = Field(description="the moment deadlines were judged at")
    as_of: int


class MissingReport(Answer):
    activity_id: str
    title: str | None
    organization_id: str
    organization_name: str | None
    base_id: str
    base_name: str | None
    ended_at: DateTimeText
    due_at: DateTimeText
    days_overdue: float


class Missing(Answer):
    rows: list[MissingReport]
    count: int
    at: DateTimeText
    as_of: int

router = APIRouter(tags=["reports"])
AtQuery = Annotated[Instant | None, Query(description=(
    "the moment deadlines are judged at (ISO datetime; without an offset, local time); "
    "default: now"))]


@router.get("/v1/reports/timeliness", summary="Reports owed after service: on time, late, "
                                              "missing; rota entries scheduled and missed",
            **documented(Timeliness))
async def get_timeliness(
    request: Request,
    scope: Annotated[Scope, Depends(scope_query)],
    group_by: GroupBy = "organization", at: AtQuery = None,
    min_seq: MinSeq = None, format: FormatQuery = "json", headers: HeadersQuery = "zh",
) -> Any:
    """Per unit or month (the activity's local month; a rota entry's planned month): on_time,
    late, missing (deadline passed, no report), pending, due = on_time + late + missing,
    on_time_rate = on_time / due (null when nothing was due), scheduled and missed. Totals
    over the whole scope, the rate from the totals."""
    tz = request.app.state.settings.timezone
    return await answer(request, lambda conn: timeliness_report(conn, scope, group_by, at, tz),
                        models=(NAME,), min_seq=min_seq, format=format, headers=headers,
                        filename=f"timeliness-{group_by}", scope=scope,
                        varies=None if at is None else ())  # now: computed each time


@router.get("/v1/reports/timeliness/missing", summary="Each report missing: the overdue notice",
            **documented(Missing))
async def get_missing(
    request: Request,
    scope: Annotated[Scope, Depends(scope_query)], at: AtQuery = None,
    min_seq: MinSeq = None, format: FormatQuery = "json", headers: HeadersQuery = "zh",
) -> Any:
    """Each logged activity whose report's deadline has passed with no report: unit, base,
    end, deadline and days overdue, most overdue first."""
    tz = request.app.state.settings.timezone
    return await answer(request, lambda conn: missing_report(conn, scope, at, tz),
                        models=(NAME,), min_seq=min_seq, format=format, headers=headers,
                        filename="timeliness-missing", scope=scope,
                        varies=None if at is None else ())


def _kept(handler: Handler) -> Handler:
    return rollups.kept(activities, handler)


MODEL = ReadModel(
    name=NAME, tables=(activities, rollups.rollup),
    handlers={"activity.scheduled": _kept(on_scheduled), "activity.logged": _kept(on_logged),
              "activity.corrected": _kept(on_corrected),
              "activity.retracted": _kept(on_retracted),
              "report.submitted": _kept(on_submitted), "report.overdue": _kept(on_overdue)},
    router=router, description="reports owed after service: on time, late, missing; the rota")
