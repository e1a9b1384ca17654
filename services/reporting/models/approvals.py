"""Approved periods (数据审定, as DHIS2's data approval): an organiser approves a period's figures
for a scope (`period.approved`), the month's ledger handed upward. The approval keeps the
figures as they stood then (the summary by unit, by every other grouping, and its totals), so
they stay readable as approved; every later event that changes an activity in that scope and
period is still counted in the current figures and listed as a cause of the restatement (which
event, which unit, when) until the same scope and period is approved again.

The approvals are applied by the activity cube's own projection (`extend`): an approval's
snapshot is taken in stream order, from the cube exactly as every event before it left it, in
the same transaction; and an event's cause is recorded in the transaction that applies it.
(`as_of` in the approval is what the organiser saw; the snapshot is the figures at the
approval's own seq, and both are reported, with the activities changed between them.)
Which units and bases are in the scope is read from the registry replica as it stands when the
approval is applied (as every report reads it): a unit registered moments before an approval
may not be in it yet.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Annotated, Any, get_args

from fastapi import APIRouter, Depends, HTTPException, Query, Request
from pydantic import Field
from sqlalchemy import (
    JSON,
    BigInteger,
    Column,
    Date,
    DateTime,
    String,
    Table,
    func,
    select,
)
from sqlalchemy.ext.asyncio import AsyncConnection

from services.reporting import period as periods
from services.reporting.models import activities as cube
from services.reporting.models.labels import organization_ancestors, region_ancestors
from services.reporting.models.labels import registry_entities as reg
from services.reporting.readmodel import Batch, Event, ReadModel
from services.reporting.reports import Column as Col
from services.reporting.reports import MinSeq, Report, answer, documented
from services.reporting.scope import Scope, scope_query
from services.reporting.store import metadata
from shared.projection import upsert
from shared.responses import Answer
from shared.settings import Settings

APPROVED = "period.approved"

approvals = Table(
    "approvals", metadata,
    Column("event_id", String(36), primary_key=True),
    Column("seq", BigInteger, nullable=False),
    # organization|region|period: approved again, the newest approval of a key is the one.
    Column("scope_key", String(200), nullable=False, index=True),
    Column("period", String(7), nullable=False),
    Column("organization_id", String(64), nullable=True),
    Column("region", String(64), nullable=True),
    Column("date_from", Date, nullable=False),
    Column("date_to", Date, nullable=False),
    Column("as_of", BigInteger, nullable=False),
    Column("approved_at", DateTime(timezone=True), nullable=False),  # UTC
    Column("approved_on", Date, nullable=False),  # its local day, as a ledger names it
    Column("figures", JSON, nullable=False),  # {"rows": [...], "totals": {...}} by unit
)

# The later events that changed an approved scope and period: one row per approval and event.
approval_causes = Table(
    "approval_causes", metadata,
    Column("approval_id", String(36), primary_key=True),
    Column("event_id", String(36), primary_key=True),
    Column("seq", BigInteger, nullable=False),
    Column("type", String(100), nullable=False),
    Column("activity_id", String(36), nullable=False),
    Column("organization_id", String(64), nullable=True),  # the unit that sent it
    Column("occurred_at", DateTime(timezone=True), nullable=False),
)

TABLES = (approvals, approval_causes)


def _utc(moment: datetime) -> datetime:
    """A moment in UTC (SQLite keeps no offset: every moment is stored in UTC)."""
    if moment.tzinfo is None:
        return moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)


def scope_key(organization_id: str | None, region: str | None, period: str) -> str:
    return f"{organization_id or ''}|{region or ''}|{period}"


def _scope(row: Any) -> Scope:
    return Scope(organization_id=row.organization_id, region=row.region,
                 date_from=row.date_from, date_to=row.date_to)


# -- applying ---------------------------------------------------------------------------------

async def on_approved(batch: Batch) -> None:
    """Snapshot the scope's figures by unit, as the cube stands at the approval."""
    for event in batch.events:
        d = event.data
        period = periods.Period.parse(d.period)
        scope = Scope(organization_id=d.organization_id, region=d.region,
                      date_from=period.first, date_to=period.last)
        rows, totals = await cube.summary(batch.conn, "organization", scope)
        figures = json.loads(json.dumps({"rows": rows, "totals": totals,
                                         "by": await _every_grouping(batch.conn, scope),
                                         "unseen": await _unseen(batch.conn, scope, d.as_of)},
                                        default=str))
        await batch.conn.execute(upsert(batch.conn, approvals).values(
            event_id=event.event_id, seq=event.seq,
            scope_key=scope_key(d.organization_id, d.region, period.code()),
            period=period.code(), organization_id=d.organization_id, region=d.region,
            date_from=period.first, date_to=period.last, as_of=d.as_of,
            approved_at=_utc(event.envelope.occurred_at),
            approved_on=batch.local_day(event.envelope.occurred_at), figures=figures,
        ).on_conflict_do_nothing())


REGION_LEVELS = ("city", "district", "town", "community")


def grouping_key(group_by: str, region_level: str | None = None) -> str:
    """Where an approval keeps a grouping's rows: `base`, `month`, …, `region:district`."""
    return f"{group_by}:{region_level}" if region_level else group_by


async def _every_grouping(conn: AsyncConnection, scope: Scope) -> dict[str, list[dict]]:
    """The rows of every other grouping the summary answers (each region level too), as the
    cube stands at the approval: the totals are the same whichever the grouping."""
    out = {}
    for group_by in get_args(cube.GroupBy):
        for level in (None, *REGION_LEVELS) if group_by == "region" else (None,):
            if group_by != "organization":
                out[grouping_key(group_by, level)] = (
                    await cube.summary(conn, group_by, scope, level))[0]
    return out


async def _unseen(conn: AsyncConnection, scope: Scope, as_of: int) -> list[str]:
    """The activities in the approved figures logged or corrected after the `as_of` the
    organiser saw (between it and the approval): approved, though not seen."""
    s, a = cube.shares, cube.activities
    return list((await conn.execute(
        select(s.c.activity_id).distinct().join(a, a.c.activity_id == s.c.activity_id)
        .where(a.c.seq > as_of, *scope.where(organization=s.c.organization_id,
                                             base=s.c.base_id, day=s.c.day))
        .order_by(s.c.activity_id))).scalars())


async def _placements(conn: AsyncConnection, ids: list[str]) -> list[tuple[str, str, str, date]]:
    s = cube.shares
    return [tuple(r) for r in await conn.execute(  # type: ignore[misc]
        select(s.c.activity_id, s.c.organization_id, s.c.base_id, s.c.day)
        .where(s.c.activity_id.in_(ids)))]


async def _newest(conn: AsyncConnection, first: date, last: date) -> list[Any]:
    """The newest approval of each scope and period that overlaps first..last."""
    a = approvals
    newest = (select(a.c.scope_key, func.max(a.c.seq).label("seq"))
              .group_by(a.c.scope_key).subquery())
    return list(await conn.execute(
        select(a).join(newest, (newest.c.scope_key == a.c.scope_key) & (newest.c.seq == a.c.seq))
        .where(a.c.date_from <= last, a.c.date_to >= first)))


async def _touched(conn: AsyncConnection, approval: Any,
                   places: list[tuple[str, str, str, date]]) -> set[str]:
    """The activities with a share in the approval's scope and period (before or after)."""
    places = [p for p in places if approval.date_from <= p[3] <= approval.date_to]
    if approval.organization_id and places:
        oa = organization_ancestors
        inside = set((await conn.execute(select(oa.c.code).where(
            oa.c.ancestor == approval.organization_id,
            oa.c.code.in_({p[1] for p in places})))).scalars())
        places = [p for p in places if p[1] in inside]
    if approval.region and places:
        ra = region_ancestors
        inside = set((await conn.execute(select(reg.c.id).where(
            reg.c.kind == "base", reg.c.id.in_({p[2] for p in places}),
            reg.c.region_code.in_(select(ra.c.code).where(
                ra.c.ancestor == approval.region))))).scalars())
        places = [p for p in places if p[2] in inside]
    return {p[0] for p in places}


async def _record_causes(conn: AsyncConnection, events: list[Event],
                         before: list[tuple[str, str, str, date]]) -> None:
    ids = sorted({e.envelope.data["activity_id"] for e in events})
    places = before + await _placements(conn, ids)
    if not places:
        return
    candidates = await _newest(conn, min(p[3] for p in places), max(p[3] for p in places))
    if not candidates:
        return
    a = cube.activities
    units = dict((await conn.execute(select(a.c.activity_id, a.c.organization_id)
                                      .where(a.c.activity_id.in_(ids)))).tuples().all())
    for approval in candidates:
        touched = await _touched(conn, approval, places)
        rows = [{"approval_id": approval.event_id, "event_id": e.event_id, "seq": e.seq,
                 "type": e.type, "activity_id": e.envelope.data["activity_id"],
                 "organization_id": (e.envelope.data.get("organization_id")
                                     or units.get(e.envelope.data["activity_id"])),
                 "occurred_at": _utc(e.envelope.occurred_at)}
                for e in events
                if e.envelope.data["activity_id"] in touched and e.seq > approval.seq]
        if rows:
            await conn.execute(upsert(conn, approval_causes).values(rows)
                               .on_conflict_do_nothing())


@dataclass(frozen=True)
class WithApprovals(ReadModel):
    """The activity cube, applying approvals too: each approval after every event before it
    and before every event after it; each other event's cause recorded as it is applied."""

    def make_apply(self, settings: Settings) -> Callable[[AsyncConnection, list[Event]],
                                                         Awaitable[None]]:
        inner = super().make_apply(settings)

        async def segment(conn: AsyncConnection, events: list[Event]) -> None:
            if not events:
                return
            if (await conn.execute(select(approvals.c.event_id).limit(1))).first() is None:
                await inner(conn, events)
                return
            before = await _placements(
                conn, sorted({e.envelope.data["activity_id"] for e in events}))
            await inner(conn, events)
            await _record_causes(conn, events, before)

        async def apply(conn: AsyncConnection, events: list[Event]) -> None:
            pending: list[Event] = []
            for event in events:
                if event.type == APPROVED:
                    await segment(conn, pending)
                    pending = []
                    await on_approved(Batch(conn, [event], settings))
                else:
                    pending.append(event)
            await segment(conn, pending)

        return apply


def extend(model: ReadModel) -> WithApprovals:
    """The cube's read model with approvals: its tables, the approval handler, its route."""
    assert model.router is not None
    model.router.include_router(router)
    return WithApprovals(
        name=model.name, tables=(*model.tables, *TABLES),
        handlers={**model.handlers, APPROVED: on_approved}, stream=model.stream,
        router=model.router, description=f"{model.description}; approved periods",
        reads=model.reads, separate=model.separate)


# -- reading ----------------------------------------------------------------------------------

FIGURES = ("activities", "served", "volunteers", "unique_volunteers", "volunteer_hours",
           "trainees", "donation_value_cny")


async def newest_for(conn: AsyncConnection, scope: Scope) -> Any | None:
    """The newest approval of exactly this scope and period, if there is one."""
    exact = periods.exact(scope.date_from, scope.date_to)
    if exact is None or scope.base_id or scope.region_exact:
        return None
    key = scope_key(scope.organization_id, scope.region, exact.code())
    a = approvals
    return (await conn.execute(select(a).where(a.c.scope_key == key)
                               .order_by(a.c.seq.desc()).limit(1))).first()


async def causes_of(conn: AsyncConnection, approval_id: str) -> list[dict]:
    c = approval_causes
    found = await conn.execute(select(c).where(c.c.approval_id == approval_id).order_by(c.c.seq))
    units = {}
    rows = found.all()
    if rows:
        from services.reporting.models.labels import label_map

        units = await label_map(conn, "organization",
                                list({r.organization_id for r in rows if r.organization_id}))
    return [{"event_id": r.event_id, "seq": r.seq, "type": r.type,
             "activity_id": r.activity_id, "organization_id": r.organization_id,
             "organization_label": units.get(r.organization_id, r.organization_id),
             "occurred_at": _utc(r.occurred_at).isoformat()} for r in rows]


def status_of(approval: Any | None, causes: list[dict], showing_approved: bool = False) -> dict:
    """What a ledger says it shows: approved (on a day), restated since, or not approved.
    Showing the figures as approved, it says so, and how many changes came after."""
    if approval is None:
        return {"state": "not_approved", "zh": "未审定", "en": "not approved"}
    day = approval.approved_on.isoformat()
    state = "restated" if causes else "approved"
    if showing_approved:
        later_zh = f"，之后有更正 {len(causes)} 项" if causes else ""
        later_en = f"; {len(causes)} changes since" if causes else ""
        return {"state": state, "approved_on": day,
                "zh": f"已审定 {day}（审定数据{later_zh}）",
                "en": f"approved {day} (figures as approved{later_en})"}
    if causes:
        return {"state": state, "approved_on": day,
                "zh": f"有更正（{day} 审定后 {len(causes)} 项变更）",
                "en": f"restated ({len(causes)} changes since approved {day})"}
    return {"state": state, "approved_on": day, "zh": f"已审定 {day}", "en": f"approved {day}"}


async def status(conn: AsyncConnection, scope: Scope, showing_approved: bool = False) -> dict:
    approval = await newest_for(conn, scope)
    causes = await causes_of(conn, approval.event_id) if approval is not None else []
    return status_of(approval, causes, showing_approved)


async def approved_figures(conn: AsyncConnection, scope: Scope, group_by: str = "organization",
                           region_level: str | None = None) -> tuple[list[dict], dict]:
    """The rows (by unit, or by `group_by`) and the totals of the newest approval of exactly
    this scope."""
    approval = await newest_for(conn, scope)
    if approval is None:
        raise LookupError("no approval of this scope and period")
    figures = _figures(approval)
    rows = _rows_of(figures, group_by, region_level)
    if rows is None:
        raise LookupError(f"the approval keeps no rows by {group_by}")
    return rows, figures["totals"]  # (and "unseen": not a figure)


def _rows_of(figures: dict, group_by: str, region_level: str | None) -> list[dict] | None:
    if group_by == "organization":
        return figures["rows"]
    return figures.get("by", {}).get(grouping_key(group_by, region_level))


def _figures(approval: Any) -> dict:
    return approval.figures if isinstance(approval.figures, dict) else json.loads(
        approval.figures)


async def must_be_approved(request: Request, scope: Scope, group_by: str,
                           region_level: str | None = None) -> None:
    """422 naming `approved` unless this scope and period has an approval; naming `group_by`
    if that approval keeps no rows by it (one applied before every grouping was kept)."""
    async with request.app.state.engine.connect() as conn:
        found = await newest_for(conn, scope)
    if found is None:
        raise HTTPException(422, detail=[{"field": "approved", "message": (
            "this scope's month, quarter or year has not been approved (name the scope's "
            "organization_id or region and an exact period with from and to)")}])
    if _rows_of(_figures(found), group_by, region_level) is None:
        raise HTTPException(422, detail=[{"field": "group_by", "message": (
            f"this approval kept its figures by unit only, not by {group_by}: use "
            "group_by=organization, or approve the period again")}])


def _difference(approved: dict, current: dict) -> dict:
    return {k: round(float(current.get(k, 0)) - float(approved.get(k, 0)), 2) for k in FIGURES}


async def approvals_report(conn: AsyncConnection, scope: Scope) -> Report:
    """The newest approval of each scope and period inside `scope`: approved and current
    figures, their difference, and the events that caused it."""
    a = approvals
    newest = (select(a.c.scope_key, func.max(a.c.seq).label("seq"))
              .group_by(a.c.scope_key).subquery())
    stmt = select(a).join(newest, (newest.c.scope_key == a.c.scope_key)
                          & (newest.c.seq == a.c.seq))
    if scope.organization_id:
        stmt = stmt.where(a.c.organization_id.in_(scope.units()))
    if scope.region:
        stmt = stmt.where(a.c.region.in_(select(region_ancestors.c.code).where(
            region_ancestors.c.ancestor == scope.region)))
    if scope.date_from:
        stmt = stmt.where(a.c.date_to >= scope.date_from)
    if scope.date_to:
        stmt = stmt.where(a.c.date_from <= scope.date_to)
    rows = []
    for row in await conn.execute(stmt.order_by(a.c.date_from.desc(), a.c.scope_key)):
        causes = await causes_of(conn, row.event_id)
        current_rows, current_totals = await cube.summary(conn, "organization", _scope(row))
        current = json.loads(json.dumps({"rows": current_rows, "totals": current_totals},
                                        default=str))
        approved = _figures(row)
        state = status_of(row, causes)
        rows.append({
            "approval_id": row.event_id, "period": row.period,
            "organization_id": row.organization_id, "region": row.region,
            "approved_at": _utc(row.approved_at).isoformat(), "approved_seq": row.seq,
            "seen_as_of": row.as_of, "unseen": approved.get("unseen", []),
            "status": state["state"], "status_zh": state["zh"],
            "status_en": state["en"], "approved": {k: approved[k] for k in ("rows", "totals")},
            "current": current,
            "difference": _difference(approved["totals"], current["totals"]),
            "causes": causes})
    return Report("数据审定", "Approved periods", APPROVAL_COLUMNS, rows)


APPROVAL_COLUMNS = [
    Col("period", "期间", "Period"), Col("organization_id", "单位", "Unit"),
    Col("region", "区域", "Region"), Col("status_zh", "状态", "Status"),
    Col("approved_at", "审定时间", "Approved at"),
    Col("approved.totals.served", "审定服务群众(人次)", "Approved served", "count"),
    Col("current.totals.served", "当前服务群众(人次)", "Current served", "count"),
    Col("approved.totals.volunteer_hours", "审定服务时长(小时)", "Approved hours", "hours"),
    Col("current.totals.volunteer_hours", "当前服务时长(小时)", "Current hours", "hours"),
]


class Cause(Answer):
    """A later event that changed an approved figure: which, from which unit, when."""

    event_id: str
    seq: int
    type: str
    activity_id: str
    organization_id: str | None = Field(description="the unit the event is from")
    organization_label: str | None
    occurred_at: str


class Figures(Answer):
    rows: list[dict[str, Any]] = Field(description="the summary's rows by unit")
    totals: dict[str, Any]


class ApprovalRow(Answer):
    approval_id: str = Field(description="the period.approved event's id")
    period: str
    organization_id: str | None
    region: str | None
    approved_at: str
    approved_seq: int = Field(description="the approval's own seq: the figures as of it")
    seen_as_of: int = Field(description="the as_of the organiser approved")
    unseen: list[str] = Field(description=(
        "activities in the approved figures logged or corrected after seen_as_of (before "
        "the approval): approved, though the organiser had not seen them"))
    status: str = Field(description="approved, or restated: changed since")
    status_zh: str
    status_en: str
    approved: Figures
    current: Figures
    difference: dict[str, float] = Field(description="current minus approved totals")
    causes: list[Cause]


class Approvals(Answer):
    rows: list[ApprovalRow]
    as_of: int


router = APIRouter(tags=["reports"])


@router.get("/v1/reports/approvals", summary="Approved periods: approved and current figures",
            **documented(Approvals))
async def get_approvals(
    request: Request,
    scope: Annotated[Scope, Depends(scope_query)],
    min_seq: MinSeq = None,
    period: Annotated[str | None, Query(description="narrow to this month, quarter or year",
                                        max_length=7)] = None,
) -> Any:
    """The newest approval of each scope and period within the scope: the figures as approved
    (by unit, and totals), the current figures, their difference, and the later events that
    caused it (event, type, activity, unit, time). An approval with no later change is
    `approved`; approving the same scope and period again clears its restatement."""
    if period:
        try:
            p = periods.Period.parse(period)
        except ValueError as e:
            raise HTTPException(422, detail=[{"field": "period", "message": str(e)}]) from e
        scope = Scope(scope.organization_id, scope.region, scope.base_id, p.first, p.last,
                      scope.region_exact).within(scope)
    return await answer(request, lambda conn: approvals_report(conn, scope),
                        models=(cube.NAME,), min_seq=min_seq, scope=scope)
