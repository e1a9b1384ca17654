"""Pairing fulfilment (结对共建): each pairing's three lists (需求清单, 资源清单, 项目清单, from
the registry replica's pairing record) beside what was done under it: activities and served per
project, activities without a project, needs submitted under it by state
(`/v1/reports/pairings`, `/v1/reports/pairings/{id}`).

It keeps its own tables (activities and needs by pairing), so it rebuilds alone. A correction
restates an activity (it may move to another project or pairing); a retraction removes it.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import replace
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse
from pydantic import Field, create_model
from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    ColumnElement,
    Date,
    Float,
    String,
    Table,
    bindparam,
    func,
    insert,
    select,
    update,
)
from sqlalchemy.ext.asyncio import AsyncConnection

from services.reporting.models.labels import label_map, registry_entities
from services.reporting.readmodel import Batch, Event, ReadModel
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
from shared.projection import upsert
from shared.replica import record_json
from shared.responses import Answer, DateText, Number

NAME = "reporting-pairings"
NEED_STATES = ("open", "claimed", "resolved", "closed")

# Every logged activity, newest version (a correction may move it into or out of a pairing).
activities = Table(
    "pairing_activities", metadata,
    Column("activity_id", String(36), primary_key=True),
    Column("seq", BigInteger, nullable=False),
    Column("pairing_id", String(64), nullable=True, index=True),
    Column("project_id", String(64), nullable=True),
    Column("day", Date, nullable=False),  # local day it started: the period
    Column("served", BigInteger, nullable=False),
    Column("volunteer_hours", Float, nullable=False),
    Column("retracted", Boolean, nullable=False, server_default="0"),
)

# Needs submitted under a pairing, with their current state.
pairing_needs = Table(
    "pairing_needs", metadata,
    Column("need_id", String(64), primary_key=True),
    Column("seq", BigInteger, nullable=False),
    Column("pairing_id", String(64), nullable=False, index=True),
    Column("day", Date, nullable=False),  # local day it was submitted
    Column("state", String(10), nullable=False),
)


# -- handlers ---------------------------------------------------------------------------------

def _activity_row(event: Event, batch: Batch) -> dict[str, Any]:
    d = event.data
    served = d.served if d.served is not None else sum(s.served for s in d.stalls or [])
    return {"activity_id": str(d.activity_id), "seq": event.seq, "pairing_id": d.pairing_id,
            "project_id": d.project_id, "day": batch.local_day(d.started_at),
            "served": served, "volunteer_hours": d.volunteer_hours, "retracted": False}


async def _retracted(conn: AsyncConnection, ids: list[str]) -> dict[str, bool]:
    """{activity_id: retracted} for the activities already known."""
    a = activities
    return dict((await conn.execute(select(a.c.activity_id, a.c.retracted)
                                    .where(a.c.activity_id.in_(ids)))).tuples().all())


async def on_logged(batch: Batch) -> None:
    """The first logging counts (the events service accepts one)."""
    new: dict[str, Event] = {}
    for event in batch.events:
        new.setdefault(str(event.data.activity_id), event)
    known = await _retracted(batch.conn, list(new))
    rows = [_activity_row(e, batch) for k, e in new.items() if k not in known]
    if rows:
        await batch.conn.execute(insert(activities), rows)


async def on_corrected(batch: Batch) -> None:
    """The newest correction restates the activity: its pairing, project, day and figures."""
    newest: dict[str, Event] = {str(e.data.activity_id): e for e in batch.events}
    known = await _retracted(batch.conn, list(newest))
    rows = [_activity_row(e, batch) for k, e in newest.items() if not known.get(k, False)]
    if not rows:
        return
    stmt = upsert(batch.conn, activities)
    await batch.conn.execute(stmt.on_conflict_do_update(
        index_elements=["activity_id"],
        set_={c: stmt.excluded[c] for c in ("seq", "pairing_id", "project_id", "day", "served",
                                            "volunteer_hours")}), rows)


async def on_retracted(batch: Batch) -> None:
    """It stops counting, for good (a later correction is not applied)."""
    ids = list({str(e.data.activity_id) for e in batch.events})
    await batch.conn.execute(update(activities).where(activities.c.activity_id.in_(ids))
                             .values(retracted=True))


async def on_need_submitted(batch: Batch) -> None:
    rows = [{"need_id": e.data.need_id, "seq": e.seq, "pairing_id": e.data.pairing_id,
             "day": batch.local_day(e.envelope.occurred_at), "state": "open"}
            for e in batch.events if e.data.pairing_id]
    if rows:
        stmt = upsert(batch.conn, pairing_needs)
        await batch.conn.execute(stmt.on_conflict_do_nothing(index_elements=["need_id"]), rows)


_STATE_AFTER = {"need.claimed": "claimed", "need.returned": "open", "need.resolved": "resolved",
                "need.closed": "closed", "need.reopened": "open", "need.linked": "closed"}


async def on_need_moved(batch: Batch) -> None:
    """A need's new state. Needs not under a pairing are not here, and the update passes them
    over; an event already applied (seq not newer) changes nothing."""
    last: dict[str, tuple[int, str]] = {}
    for event in batch.events:
        last[event.data.need_id] = (event.seq, _STATE_AFTER[event.type])
    t = pairing_needs
    await batch.conn.execute(
        update(t).where(t.c.need_id == bindparam("b_need"), t.c.seq < bindparam("b_seq"))
        .values(state=bindparam("b_state"), seq=bindparam("b_seq")),
        [{"b_need": k, "b_seq": seq, "b_state": state} for k, (seq, state) in last.items()])


# -- queries ----------------------------------------------------------------------------------

def _period(scope: Scope, day: ColumnElement[Any]) -> list[ColumnElement[bool]]:
    return Scope(date_from=scope.date_from, date_to=scope.date_to).where(day=day)


async def _figures(conn: AsyncConnection, pairing_ids: Any, scope: Scope) -> tuple[dict, dict]:
    """({pairing: {project_id: {activities, served, volunteer_hours}}},
    {pairing: {state: count}}) for the pairings selected (ids, or a subquery of them)."""
    a, n = activities, pairing_needs
    done: dict[str, dict[Any, dict[str, Any]]] = defaultdict(dict)
    for pairing, project, count, served, hours in await conn.execute(
            select(a.c.pairing_id, a.c.project_id, func.count(), func.sum(a.c.served),
                   func.sum(a.c.volunteer_hours))
            .where(a.c.pairing_id.in_(pairing_ids), a.c.retracted.is_(False),
                   *_period(scope, a.c.day))
            .group_by(a.c.pairing_id, a.c.project_id)):
        done[pairing][project] = {"activities": int(count), "served": int(served or 0),
                                  "volunteer_hours": float(hours or 0)}
    states: dict[str, dict[str, int]] = defaultdict(dict)
    for pairing, state, count in await conn.execute(
            select(n.c.pairing_id, n.c.state, func.count())
            .where(n.c.pairing_id.in_(pairing_ids), *_period(scope, n.c.day))
            .group_by(n.c.pairing_id, n.c.state)):
        states[pairing][state] = int(count)
    return done, states


def _items(record: dict, name: str) -> list[dict]:
    """A list of the pairing record: entries are objects (id, title, ...) or plain text."""
    out = []
    for item in record.get(name) or []:
        if isinstance(item, dict):
            out.append({k: item.get(k) for k in ("id", "title", "status") if k in item})
        else:
            out.append({"id": None, "title": str(item)})
    return out


def _need_counts(states: dict[str, int]) -> dict[str, int]:
    counts = {s: states.get(s, 0) for s in NEED_STATES}
    return {**counts, "total": sum(counts.values())}


UNASSIGNED_TITLE = "（未归入项目）"


def _fulfilment(record: dict, done: dict[Any, dict[str, Any]], states: dict[str, int]
                ) -> tuple[list[dict], dict[str, Any], dict[str, Any]]:
    """(project rows, activities without a project, totals) of one pairing. The rows are the
    listed projects, then projects named by activities but not listed, then (when there are
    any) the activities without a project as one row (`unassigned`): the totals are their
    sums. Fulfilment = listed projects with at least one activity in the period ÷ projects
    listed (a project's registered status does not count, only what was logged)."""
    zero = {"activities": 0, "served": 0, "volunteer_hours": 0.0}
    projects = _items(record, "projects")
    listed = {p["id"] for p in projects if p.get("id")}
    rows, counted = [], set()
    for p in projects:  # a plain-text entry (no id) or a repeated id has nothing of its own
        own = p.get("id") is not None and p["id"] not in counted
        counted.add(p.get("id"))
        rows.append({"project_id": p.get("id"), "title": p.get("title"),
                     "status": p.get("status"), "listed": True,
                     **(done.get(p["id"], zero) if own else zero), "unassigned": False})
    # Activities naming a project the list does not hold: shown, not counted as fulfilling.
    rows += [{"project_id": k, "title": None, "status": None, "listed": False, **v,
              "unassigned": False}
             for k, v in sorted(done.items(), key=lambda kv: str(kv[0]))
             if k is not None and k not in listed]
    fulfilled = sum(1 for r in rows if r["listed"] and r["activities"] > 0)
    # Activities under the pairing without a project: a row of their own, so the rows shown
    # add up to the totals.
    if None in done:
        rows.append({"project_id": None, "title": UNASSIGNED_TITLE, "status": None,
                     "listed": False, **done[None], "unassigned": True})
    totals = {key: sum(r[key] for r in rows) for key in zero}
    totals["volunteer_hours"] = round(totals["volunteer_hours"], 2)
    totals.update(projects=len(projects), projects_fulfilled=fulfilled,
                  fulfilment_rate=round(fulfilled / len(projects), 4) if projects else None,
                  needs=_need_counts(states))
    return rows, dict(done.get(None, zero)), totals


PROJECT_COLUMNS = [
    Col("title", "项目", "Project"), Col("project_id", "项目编号", "Project id"),
    Col("status", "项目状态", "Status"), Col("activities", "活动次数", "Activities"),
    Col("served", "服务群众(人次)", "Served"),
    Col("volunteer_hours", "服务时长(小时)", "Volunteer hours"),
]


async def pairing_record(conn: AsyncConnection, pairing_id: str) -> Any:
    reg = registry_entities
    return (await conn.execute(select(reg).where(reg.c.kind == "pairing",
                                                 reg.c.id == pairing_id))).first()


async def pairing_report(conn: AsyncConnection, pairing_id: str, scope: Scope) -> Report:
    """One pairing: its projects with what was done (rows), its lists and needs (JSON)."""
    found = await pairing_record(conn, pairing_id)
    if found is None:
        raise LookupError(pairing_id)
    record = record_json(found.record)
    done, states = await _figures(conn, [pairing_id], scope)
    rows, unassigned, totals = _fulfilment(record, done.get(pairing_id, {}),
                                           states.get(pairing_id, {}))
    orgs = await label_map(conn, "organization", [found.organization_id])
    bases = await label_map(conn, "base", [found.base_id])
    pairing = {"id": pairing_id, "name": found.name, "active": bool(found.active),
               "organization_id": found.organization_id,
               "organization_label": orgs.get(found.organization_id, found.organization_id),
               "base_id": found.base_id, "base_label": bases.get(found.base_id, found.base_id),
               **{k: record.get(k) for k in ("status", "starts_on", "ends_on", "code")}}
    return Report(f"结对共建履约（{found.name}）", f"Pairing fulfilment ({found.name})",
                  PROJECT_COLUMNS, rows, {"title": None, **totals},
                  extra={"pairing": pairing, "needs_list": _items(record, "needs"),
                         "resources": _items(record, "resources"), "unassigned": unassigned,
                         "needs": totals["needs"]})


LIST_COLUMNS = [
    Col("name", "结对", "Pairing"), Col("pairing_id", "结对编号", "Pairing id"),
    Col("organization_label", "结对单位", "Unit"), Col("base_label", "服务基地", "Base"),
    Col("projects", "项目数", "Projects"), Col("projects_fulfilled", "已开展项目", "Projects run"),
    Col("fulfilment_rate", "履约率", "Fulfilment rate"),
    Col("activities", "活动次数", "Activities"),
    Col("served", "服务群众(人次)", "Served"),
    Col("volunteer_hours", "服务时长(小时)", "Volunteer hours"),
    Col("needs.total", "需求数", "Needs"), Col("needs.open", "待认领", "Open"),
    Col("needs.claimed", "已认领", "Claimed"), Col("needs.resolved", "已解决", "Resolved"),
    Col("needs.closed", "已办结", "Closed"),
]


async def pairings_report(conn: AsyncConnection, scope: Scope) -> Report:
    """Every pairing in scope (its unit's subtree, its base or region), one row each; the
    period narrows the activities and needs counted."""
    reg = registry_entities
    where = [reg.c.kind == "pairing",
             *replace(scope, date_from=None, date_to=None).where(
                 organization=reg.c.organization_id, base=reg.c.base_id)]
    found = (await conn.execute(select(reg).where(*where).order_by(reg.c.name, reg.c.id))).all()
    done, states = await _figures(conn, select(reg.c.id).where(*where), scope)
    orgs = await label_map(conn, "organization", list({p.organization_id for p in found}))
    bases = await label_map(conn, "base", list({p.base_id for p in found}))
    rows = []
    for p in found:
        _, _, figures = _fulfilment(record_json(p.record), done.get(p.id, {}),
                                    states.get(p.id, {}))
        rows.append({"pairing_id": p.id, "name": p.name, "active": bool(p.active),
                     "organization_id": p.organization_id,
                     "organization_label": orgs.get(p.organization_id, p.organization_id),
                     "base_id": p.base_id, "base_label": bases.get(p.base_id, p.base_id),
                     **figures})
    totals: dict[str, Any] = {k: sum(r[k] for r in rows) for k in (
        "projects", "projects_fulfilled", "activities", "served")}
    totals["volunteer_hours"] = round(sum(r["volunteer_hours"] for r in rows), 2)
    totals["fulfilment_rate"] = (round(totals["projects_fulfilled"] / totals["projects"], 4)
                                 if totals["projects"] else None)
    totals["needs"] = {k: sum(r["needs"][k] for r in rows) for k in (*NEED_STATES, "total")}
    return Report("结对共建履约台账", "Pairings and their fulfilment", LIST_COLUMNS, rows,
                  {"name": None, "pairings": len(rows), **totals})



# -- what the routes answer -------------------------------------------------------------------

_STATES: dict[str, Any] = {state: (int, ...) for state in (*NEED_STATES, "total")}
NeedStates = create_model(
    "NeedStates", __base__=Answer, __doc__="Needs submitted under the pairing, by state.",
    **_STATES)


class Done(Answer):
    activities: int
    served: int
    volunteer_hours: Number


# (Fields in the order the dicts have them: the answer keeps its order.)
class ProjectRow(Answer):
    """A project of the pairing's list with what was done for it (`listed` false: an
    activity named a project the list does not hold; `unassigned` true: the pairing's
    activities without a project, one row, title （未归入项目）). The totals are the rows' sums."""

    project_id: str | None
    title: str | None
    status: str | None
    listed: bool
    activities: int
    served: int
    volunteer_hours: Number
    unassigned: bool = Field(False, description="the row of activities without a project")


class PairingTotals(Answer):
    title: None
    activities: int
    served: int
    volunteer_hours: Number
    projects: int = Field(description="projects listed")
    projects_fulfilled: int = Field(description="listed projects with an activity")
    fulfilment_rate: float | None = Field(description=(
        "projects_fulfilled / projects: listed projects with at least one activity in the "
        "period, over projects listed (null when none is listed)"))
    needs: NeedStates  # type: ignore[valid-type]


class ListEntry(Answer):
    """An entry of one of the pairing's lists, as the registry holds it."""

    id: str | None = None
    title: str | None = None
    status: str | None = None


class PairingFacts(Answer):
    id: str
    name: str | None
    active: bool
    organization_id: str | None
    organization_label: str | None
    base_id: str | None
    base_label: str | None
    status: str | None
    starts_on: DateText | None
    ends_on: DateText | None
    code: str | None


class Pairing(Answer):
    """One pairing: its projects (rows) with what was done, its lists, its needs."""

    rows: list[ProjectRow]
    totals: PairingTotals
    pairing: PairingFacts
    needs_list: list[ListEntry] = Field(description="需求清单, as signed")
    resources: list[ListEntry] = Field(description="资源清单")
    unassigned: Done = Field(description="activities under the pairing without a project")
    needs: NeedStates  # type: ignore[valid-type]
    as_of: int


class PairingRow(Answer):
    pairing_id: str
    name: str | None
    active: bool
    organization_id: str | None
    organization_label: str | None
    base_id: str | None
    base_label: str | None
    activities: int
    served: int
    volunteer_hours: Number
    projects: int = Field(description="projects listed")
    projects_fulfilled: int = Field(description="listed projects with an activity")
    fulfilment_rate: float | None = Field(description="projects_fulfilled / projects")
    needs: NeedStates  # type: ignore[valid-type]


class PairingsTotals(Answer):
    name: None
    pairings: int
    projects: int
    projects_fulfilled: int
    activities: int
    served: int
    volunteer_hours: Number
    fulfilment_rate: float | None
    needs: NeedStates  # type: ignore[valid-type]


class Pairings(Answer):
    rows: list[PairingRow]
    totals: PairingsTotals
    as_of: int

router = APIRouter(tags=["reports"])


@router.get("/v1/reports/pairings", summary="Every pairing in scope with its fulfilment",
            **documented(Pairings))
async def get_pairings(
    request: Request, scope: Annotated[Scope, Depends(scope_query)],
    min_seq: MinSeq = None, format: FormatQuery = "json", headers: HeadersQuery = "zh",
) -> Any:
    """One row per pairing: its unit and base, projects run ÷ projects listed (fulfilment
    rate), activities, served, hours and needs under it by state."""
    return await answer(request, lambda conn: pairings_report(conn, scope), models=(NAME,),
                        min_seq=min_seq, format=format, headers=headers,
                        filename="pairings", scope=scope)


@router.get("/v1/reports/pairings/{id}", summary="One pairing's three lists with fulfilment",
            **documented(Pairing))
async def get_pairing(
    request: Request, id: str, scope: Annotated[Scope, Depends(scope_query)],
    min_seq: MinSeq = None, format: FormatQuery = "json", headers: HeadersQuery = "zh",
) -> Any:
    """The needs, resources and projects lists; each project with its activities and served;
    activities under the pairing without a project; needs submitted under it by state; totals.
    Only the period (`from`, `to`) of the scope applies."""
    await wait_for(request, (NAME,), min_seq)
    async with request.app.state.engine.connect() as conn:
        if await pairing_record(conn, id) is None:
            return JSONResponse({"errors": [{"field": "id", "message": (
                f"pairing {id} is not known (not registered, or not yet replicated)")}]},
                status_code=404)
    return await answer(request, lambda conn: pairing_report(conn, id, scope), models=(NAME,),
                        min_seq=min_seq, format=format, headers=headers,
                        filename=f"pairing-{id}", scope=scope)


MODEL = ReadModel(
    name=NAME, tables=(activities, pairing_needs),
    handlers={"activity.logged": on_logged, "activity.corrected": on_corrected,
              "activity.retracted": on_retracted, "need.submitted": on_need_submitted,
              **{t: on_need_moved for t in _STATE_AFTER}},
    router=router, description="pairings: their three lists and what fulfilled them")
