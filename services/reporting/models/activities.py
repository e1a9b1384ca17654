"""The activity cube: what was done, where, by whom, for how many (`/v1/reports/summary`).

Grain: one *share* per activity and credited unit. An ordinary activity has one share, its
unit's, with all its figures. A fair (大集市) has a share per unit with a stall there, holding
that unit's stalls' served and volunteers; the organising unit's share also holds the hours,
trainees and donations. So grouping by unit credits each stall to its unit, and the totals are
the activity's own figures, counted once. Each share lists its service types (a stall's type
for a stall unit), for `group_by=service_type`; an activity appears in each of its types' rows
but once in the totals. Outputs (indicators) and attendance (for distinct volunteers) belong to
the organising unit's share.

A correction replaces an activity's shares, types and outputs; a retraction removes them, so
every figure and period restates at once.
"""

from __future__ import annotations

from collections import defaultdict
from decimal import Decimal
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query, Request
from pydantic import Field
from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    ColumnElement,
    Date,
    DateTime,
    Float,
    FromClause,
    Numeric,
    String,
    Table,
    and_,
    case,
    delete,
    desc,
    distinct,
    func,
    insert,
    select,
    update,
)
from sqlalchemy.ext.asyncio import AsyncConnection

from services.reporting.models import activity_rollups as rollups
from services.reporting.models.labels import (
    code_map,
    label_map,
    region_ancestors,
    registry_entities,
)
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
from shared.events import ActivityFigures
from shared.projection import upsert
from shared.replica import record_json
from shared.responses import Answer, DateText, Number
from shared.taxonomy import INDICATORS

NAME = "reporting-activities"

GroupBy = Literal["organization", "base", "team", "region", "theme", "service_type", "month",
                  "pairing", "project", "week", "quarter", "year"]
FIGURES = ("activities", "served", "volunteers", "volunteer_hours", "trainees",
           "donation_value_cny", "unique_volunteers")


def _dimensions() -> list[Column]:
    return [
        Column("base_id", String(64), nullable=False, index=True),
        Column("team_id", String(64), nullable=True, index=True),
        Column("pairing_id", String(64), nullable=True, index=True),
        Column("project_id", String(64), nullable=True),
        Column("theme", String(40), nullable=False),
        Column("day", Date, nullable=False, index=True),        # local day, for from/to
        Column("week", String(8), nullable=False),              # ISO week, 'YYYY-Www'
        Column("month", String(7), nullable=False),             # 'YYYY-MM'
        Column("quarter", String(7), nullable=False),           # 'YYYY-Qn'
        Column("year", String(4), nullable=False),
    ]


def _figures() -> list[Column]:
    return [
        Column("served", BigInteger, nullable=False),
        Column("volunteers", BigInteger, nullable=False),
        Column("volunteer_hours", Float, nullable=False),
        Column("trainees", BigInteger, nullable=False),
        Column("donation_value_cny", Numeric(16, 2), nullable=False),
    ]


# Each logged activity, newest version: whether it counts, and what it is at a glance.
activities = Table(
    "cube_activities", metadata,
    Column("activity_id", String(36), primary_key=True),
    Column("event_id", String(36), nullable=False),
    Column("seq", BigInteger, nullable=False),
    Column("organization_id", String(64), nullable=False),
    Column("started_at", DateTime(timezone=True), nullable=False),
    Column("retracted", Boolean, nullable=False, server_default="0"),
    # What the activity was called: the last level of a drill-down lists activities by it.
    Column("title", String(200), nullable=False, server_default=""),
)

shares = Table(
    "cube_shares", metadata,
    Column("activity_id", String(36), primary_key=True),
    Column("organization_id", String(64), primary_key=True, index=True),  # a unit's scope
    Column("lead", Boolean, nullable=False),  # the organising unit's share
    *_dimensions(), *_figures(),
)

share_types = Table(
    "cube_share_types", metadata,
    Column("activity_id", String(36), primary_key=True),
    Column("organization_id", String(64), primary_key=True),
    Column("service_type", String(40), primary_key=True, index=True),
    *_figures(),
)

outputs = Table(
    "cube_outputs", metadata,
    Column("activity_id", String(36), primary_key=True),
    Column("indicator", String(40), primary_key=True),
    Column("quantity", Numeric(18, 3), nullable=False),
)

# Who attended (for distinct volunteers): declined hours are not attendance.
attendance = Table(
    "cube_attendance", metadata,
    Column("activity_id", String(36), primary_key=True),
    # Indexed: a volunteer leaving a rollup row is checked against their other attendance.
    Column("volunteer_id", String(64), primary_key=True, index=True),
    Column("declined", Boolean, nullable=False, server_default="0"),
)

_TABLES = rollups.Cube(shares, share_types, outputs, attendance)


# -- handlers ---------------------------------------------------------------------------------

def _dims(data: ActivityFigures, batch: Batch) -> dict[str, Any]:
    day = batch.local_day(data.started_at)
    iso = day.isocalendar()
    return {"base_id": data.base_id, "team_id": data.team_id, "pairing_id": data.pairing_id,
            "project_id": data.project_id, "theme": data.theme, "day": day,
            "week": f"{iso.year}-W{iso.week:02d}", "month": f"{day:%Y-%m}",
            "quarter": f"{day.year}-Q{(day.month - 1) // 3 + 1}", "year": f"{day.year}"}


def _rows(activity_id: str, data: ActivityFigures, batch: Batch) -> tuple[list, list, list]:
    """The activity's shares, share types and outputs."""
    dims = _dims(data, batch)
    lead = data.organization_id
    zero = {"served": 0, "volunteers": 0, "volunteer_hours": 0.0, "trainees": 0,
            "donation_value_cny": Decimal(0)}
    # Figures by unit and by (unit, service type), from the stalls when it is a fair.
    by_unit: dict[str, dict[str, Any]] = defaultdict(lambda: dict(zero))
    by_type: dict[tuple[str, str], dict[str, Any]] = defaultdict(lambda: dict(zero))
    by_unit[lead]  # the organising unit always has a share
    if data.stalls:
        attributed = 0
        for stall in data.stalls:
            unit = stall.organization_id or lead
            for target in (by_unit[unit], by_type[(unit, stall.service_type)]):
                target["served"] += stall.served
                target["volunteers"] += stall.volunteers or 0
            attributed += stall.volunteers or 0
        by_unit[lead]["volunteers"] += max(data.volunteers - attributed, 0)
    else:
        by_unit[lead].update(served=data.served or 0, volunteers=data.volunteers)
    rest = {"volunteer_hours": data.volunteer_hours, "trainees": data.trainees,
            "donation_value_cny": data.donation_value_cny}
    by_unit[lead].update(rest)
    lead_types = {t for (u, t) in by_type if u == lead} or set(data.service_types)
    for code in lead_types:  # the organiser's types carry what is not a stall's
        by_type[(lead, code)].update(rest)
        if not data.stalls:
            by_type[(lead, code)].update(served=data.served or 0, volunteers=data.volunteers)
    share_rows = [{"activity_id": activity_id, "organization_id": unit, "lead": unit == lead,
                   **dims, **figures} for unit, figures in by_unit.items()]
    type_rows = [{"activity_id": activity_id, "organization_id": unit, "service_type": code,
                  **figures} for (unit, code), figures in by_type.items()]
    output_rows: dict[str, Decimal] = defaultdict(Decimal)
    for output in data.outputs:
        output_rows[output.indicator] += output.quantity
    return share_rows, type_rows, [
        {"activity_id": activity_id, "indicator": k, "quantity": v}
        for k, v in output_rows.items()]


async def _replace(batch: Batch, versions: dict[str, Any], new: bool = False) -> None:
    """Write each activity's rows from its newest version in the batch (a `new` activity has
    none to delete), and add the new-minus-old difference to the rollups."""
    conn = batch.conn
    ids = list(versions)
    old = rollups.Contribution() if new else await rollups.stored(conn, _TABLES, ids)
    for table in (shares, share_types, outputs) if not new else ():
        await conn.execute(delete(table).where(table.c.activity_id.in_(ids)))
    made_rows = {activity_id: _rows(activity_id, event.data, batch)
                 for activity_id, event in versions.items()}
    for i, table in enumerate((shares, share_types, outputs)):
        made = [row for rows in made_rows.values() for row in rows[i]]
        if made:
            await conn.execute(insert(table), made)
    people = await rollups.attendees(conn, _TABLES, ids)
    contribution = rollups.Contribution()
    for activity_id, (share_rows, type_rows, output_rows) in made_rows.items():
        contribution.add(share_rows, type_rows, output_rows, people.get(activity_id, set()))
    await rollups.apply(conn, _TABLES, old, contribution)


async def _counting(conn: AsyncConnection, ids: list[str]) -> dict[str, bool]:
    """{activity_id: retracted} for the activities already known."""
    return dict((await conn.execute(select(activities.c.activity_id, activities.c.retracted)
                                    .where(activities.c.activity_id.in_(ids)))).tuples().all())


async def on_logged(batch: Batch) -> None:
    """An activity counts once: the first logging wins (the events service accepts one)."""
    new: dict[str, Any] = {}
    for event in batch.events:
        new.setdefault(str(event.data.activity_id), event)
    known = await _counting(batch.conn, list(new))
    new = {k: e for k, e in new.items() if k not in known}
    if not new:
        return
    await batch.conn.execute(insert(activities), [
        {"activity_id": k, "event_id": e.event_id, "seq": e.seq,
         "organization_id": e.data.organization_id, "started_at": e.data.started_at,
         "title": e.data.title, "retracted": False} for k, e in new.items()])
    await _replace(batch, new, new=True)


async def on_corrected(batch: Batch) -> None:
    """The newest correction replaces the figures, in every period they fall in."""
    newest: dict[str, Any] = {}
    for event in batch.events:
        newest[str(event.data.activity_id)] = event
    known = await _counting(batch.conn, list(newest))
    newest = {k: e for k, e in newest.items() if not known.get(k, False)}  # retracted: for good
    if not newest:
        return
    stmt = upsert(batch.conn, activities)
    await batch.conn.execute(stmt.on_conflict_do_update(
        index_elements=["activity_id"],
        set_={c: stmt.excluded[c] for c in ("event_id", "seq", "organization_id",
                                            "started_at", "title")}),
        [{"activity_id": k, "event_id": e.event_id, "seq": e.seq,
          "organization_id": e.data.organization_id, "started_at": e.data.started_at,
          "title": e.data.title, "retracted": False} for k, e in newest.items()])
    await _replace(batch, newest)


async def on_retracted(batch: Batch) -> None:
    ids = list({str(e.data.activity_id) for e in batch.events})
    await batch.conn.execute(update(activities).where(activities.c.activity_id.in_(ids))
                             .values(retracted=True))
    old = await rollups.stored(batch.conn, _TABLES, ids)
    for table in (shares, share_types, outputs):
        await batch.conn.execute(delete(table).where(table.c.activity_id.in_(ids)))
    await rollups.apply(batch.conn, _TABLES, old, rollups.Contribution())


async def on_attendance(batch: Batch) -> None:
    """Who attended; the rollups' `people` of the activity's rows gain or lose whoever's
    attendance changed (a decline takes them out unless another activity keeps them in)."""
    conn = batch.conn
    rows: dict[tuple[str, str], bool] = {}
    for event in batch.events:
        rows[(str(event.data.activity_id), event.data.volunteer_id)] = (
            event.type == "attendance.declined")
    numbered = await rollups.numbers(conn, [v for _, v in rows], assign=True)
    a = attendance
    ids = list({activity_id for activity_id, _ in rows})
    before = {(i, v): d for i, v, d in await conn.execute(
        select(a.c.activity_id, a.c.volunteer_id, a.c.declined).where(a.c.activity_id.in_(ids)))}
    stmt = upsert(conn, attendance)
    await conn.execute(
        stmt.on_conflict_do_update(index_elements=["activity_id", "volunteer_id"],
                                   set_={"declined": stmt.excluded.declined}),
        [{"activity_id": i, "volunteer_id": v, "declined": d} for (i, v), d in rows.items()])
    # Attending is "recorded or confirmed, not declined": only changes of it move anyone.
    changed = {k: not d for k, d in rows.items() if (k in before and not before[k]) != (not d)}
    if not changed:
        return
    leads = {r.activity_id: r._mapping for r in await conn.execute(
        select(shares).where(shares.c.activity_id.in_({i for i, _ in changed}),
                             shares.c.lead.is_(True)))}
    lead_types: dict[str, list[str]] = defaultdict(list)
    for activity_id, unit, code in await conn.execute(
            select(share_types.c.activity_id, share_types.c.organization_id,
                   share_types.c.service_type)
            .where(share_types.c.activity_id.in_(list(leads)))):
        if leads[activity_id]["organization_id"] == unit:
            lead_types[activity_id].append(code)
    added: dict[rollups.RowKey, set[int]] = defaultdict(set)
    removed: dict[rollups.RowKey, set[int]] = defaultdict(set)
    for (activity_id, volunteer_id), attends in changed.items():
        if activity_id in leads:
            for row_key in rollups.lead_rows(leads[activity_id], lead_types[activity_id]):
                (added if attends else removed)[row_key].add(numbered[volunteer_id])
    await rollups.change_people(conn, _TABLES, added, removed)


# -- the summary ------------------------------------------------------------------------------

def _sums(t: FromClause, activities: ColumnElement[Any] | None = None) -> list:
    return [
        (activities if activities is not None
         else func.count(distinct(t.c.activity_id))).label("activities"),
        func.coalesce(func.sum(t.c.served), 0).label("served"),
        func.coalesce(func.sum(t.c.volunteers), 0).label("volunteers"),
        func.coalesce(func.sum(t.c.volunteer_hours), 0).label("volunteer_hours"),
        func.coalesce(func.sum(t.c.trainees), 0).label("trainees"),
        func.coalesce(func.sum(t.c.donation_value_cny), 0).label("donation_value_cny"),
    ]


def _json(row: Any) -> dict:
    return {"activities": int(row.activities), "served": int(row.served),
            "volunteers": int(row.volunteers),
            "volunteer_hours": round(float(row.volunteer_hours), 2),
            "trainees": int(row.trainees),
            "donation_value_cny": round(float(row.donation_value_cny), 2)}


class _Query:
    """The pieces of one summary: where shares come from, the grouping key, the scope."""

    def __init__(self, group_by: GroupBy, scope: Scope, region_level: str | None):
        self.group_by = group_by
        s = shares
        base = registry_entities.alias("base_record")
        self.source: FromClause = s
        if group_by == "region":
            self.source = s.outerjoin(base, and_(base.c.kind == "base", base.c.id == s.c.base_id))
            key: ColumnElement[Any] = base.c.region_code
            if region_level:
                up = region_ancestors.alias("up")
                self.source = self.source.outerjoin(up, and_(
                    up.c.code == base.c.region_code, up.c.ancestor_level == region_level))
                # A base registered above the level (a city-level fair, by district) counts
                # under its own region, not under "not filled in".
                key = func.coalesce(up.c.ancestor, base.c.region_code)
        elif group_by == "service_type":
            st = share_types
            self.source = s.join(st, and_(st.c.activity_id == s.c.activity_id,
                                          st.c.organization_id == s.c.organization_id))
            key = st.c.service_type
        else:
            key = s.c[{"organization": "organization_id", "base": "base_id", "team": "team_id",
                       "pairing": "pairing_id", "project": "project_id"}.get(group_by, group_by)]
        self.key = key
        self.where = scope.where(organization=s.c.organization_id, base=s.c.base_id,
                                 day=s.c.day)
        # Figures of a service-type row are the type's own (a fair's stalls of that type).
        self.figures = share_types if group_by == "service_type" else shares
        # Counting activities without DISTINCT (a sort of every id) where shares allow it: a
        # unit has one share of an activity; the activity has one lead share, and all its
        # shares have the same base, day and team, so without a unit in the scope the lead
        # shares are the activities. (A service type's rows may hold several units' shares.)
        lead = func.coalesce(func.sum(case((s.c.lead, 1), else_=0)), 0)
        self.count_grouped = (func.count() if group_by == "organization"
                              else lead if not scope.organization_id and group_by != "service_type"
                              else None)
        self.count_total = None if scope.organization_id else lead

    def grouped(self):
        return (select(self.key.label("key"), *_sums(self.figures, self.count_grouped))
                .select_from(self.source).where(*self.where).group_by(self.key)
                .order_by(self.key))

    def totals(self):
        return select(*_sums(shares, self.count_total)).where(*self.where)

    def by_lead(self, table: Table, on: ColumnElement[bool], *columns) -> tuple:
        """Statements for figures of a table hung on the organising unit's share (outputs,
        attendance): per group, and over the whole scope."""
        where = [*self.where, shares.c.lead.is_(True)]
        grouped = (select(self.key.label("key"), *columns)
                   .select_from(self.source.join(table, on)).where(*where))
        total = select(*columns).select_from(shares.join(table, on)).where(*where)
        return grouped, total


async def summary_raw(conn: AsyncConnection, group_by: GroupBy, scope: Scope,
                      region_level: str | None = None) -> tuple[list[dict], dict]:
    """The summary computed from the cube's rows (joins and `DISTINCT`): what the rollups
    must equal (the property test's oracle), and the answer where they cannot serve."""
    q = _Query(group_by, scope, region_level)
    rows = (await conn.execute(q.grouped())).all()
    totals = _json((await conn.execute(q.totals())).one())

    a = attendance
    people = func.count(distinct(a.c.volunteer_id))
    grouped, total = q.by_lead(a, and_(a.c.activity_id == shares.c.activity_id,
                                       a.c.declined.is_(False)), people)
    unique = dict((await conn.execute(grouped.group_by(q.key))).tuples().all())
    totals["unique_volunteers"] = int((await conn.execute(total)).scalar() or 0)

    o = outputs
    per_key: dict[Any, dict[str, float | int]] = defaultdict(dict)
    grouped, total = q.by_lead(o, o.c.activity_id == shares.c.activity_id, o.c.indicator,
                               func.sum(o.c.quantity))
    for key, indicator, quantity in await conn.execute(grouped.group_by(q.key, o.c.indicator)):
        per_key[key][indicator] = _number(quantity)
    totals["outputs"] = {indicator: _number(quantity) for indicator, quantity in
                         await conn.execute(total.group_by(o.c.indicator)
                                            .order_by(o.c.indicator))}

    labels = await region_labels(conn, [r.key for r in rows], region_level) if (
        group_by == "region") else await label_map(conn, group_by, [r.key for r in rows])
    codes = await code_map(conn, group_by, [r.key for r in rows])
    return [{"key": r.key, "label": labels.get(r.key, r.key), "code": codes.get(r.key, ""),
             **_json(r),
             "unique_volunteers": int(unique.get(r.key, 0)),
             "outputs": dict(sorted(per_key.get(r.key, {}).items()))} for r in rows], totals


# -- the summary from the rollups --------------------------------------------------------------

_MONTHLY = ("organization", "month", "quarter", "year")


def _dimension(group_by: GroupBy, scope: Scope) -> str | None:
    """The rollup dimension that answers this summary, or None (the cube's rows must)."""
    if scope.whole_months() is None:
        return None
    spatial = bool(scope.base_id or scope.region)  # rows by base can be narrowed to bases
    if group_by in _MONTHLY:
        return "base" if spatial else ""
    if group_by in ("base", "region"):
        return "base"
    return None if spatial else group_by


def _rollup_where(table: Table, dimension: str, scope: Scope,
                  per_unit: bool) -> list[ColumnElement[bool]]:
    """Rollup rows of a dimension in scope: a subtree's units' rows (resolved now, from the
    organisation closure), else each unit's (`per_unit`) or the programme's."""
    r = table.c
    out = [r.dimension == dimension]
    if scope.organization_id:
        out.append(r.node.in_(scope.units()))
    else:
        out.append(r.node != rollups.ROOT if per_unit else r.node == rollups.ROOT)
    first, last = scope.whole_months() or (None, None)
    if first:
        out.append(r.month >= first)
    if last:
        out.append(r.month <= last)
    if scope.base_id:
        out.append(r.key == scope.base_id)
    if scope.region:
        out.append(r.key.in_(scope.bases_in_region()))
    return out


async def _grouping(conn: AsyncConnection, group_by: GroupBy, region_level: str | None):
    """(rollup column, key of a row's value): how rollup rows fall into the summary's groups
    (months into quarters and years, bases into regions)."""
    if group_by == "organization":
        return "node", lambda v: v
    if group_by in ("month", "quarter", "year"):
        return "month", {"month": lambda v: v, "year": lambda v: v[:4],
                         "quarter": lambda v: f"{v[:4]}-Q{(int(v[5:]) - 1) // 3 + 1}"}[group_by]
    if group_by == "region":
        region = await _regions(conn, region_level)
        return "key", region.get
    if group_by in ("team", "pairing", "project"):
        return "key", lambda v: v or None
    return "key", lambda v: v


async def _regions(conn: AsyncConnection, level: str | None) -> dict[str, str | None]:
    """{base_id: its region, or the region's ancestor at `level`} from the registry replica."""
    reg, up = registry_entities, region_ancestors
    bases = dict((await conn.execute(select(reg.c.id, reg.c.region_code)
                                     .where(reg.c.kind == "base"))).tuples().all())
    if not level:
        return bases
    ancestors = dict((await conn.execute(select(up.c.code, up.c.ancestor)
                                         .where(up.c.ancestor_level == level))).tuples().all())
    # A base registered above the level counts under its own region (as in `_Query`).
    return {b: ancestors.get(code, code) for b, code in bases.items()}


async def _overlaps(conn: AsyncConnection, group_by: GroupBy, scope: Scope,
                    key_of) -> tuple[dict[Any, int], int]:
    """Activities a subtree's rows count more than once: a fair with shares of several units
    in the subtree, per group and in total (a few raw rows: fairs' shares in scope only)."""
    s, st = shares, share_types
    where = scope.where(organization=s.c.organization_id, base=s.c.base_id, day=s.c.day)
    fairs = s.c.activity_id.in_(select(s.c.activity_id).where(s.c.lead.is_(False), *where))
    source: FromClause = s
    if group_by == "service_type":
        source = s.join(st, and_(st.c.activity_id == s.c.activity_id,
                                 st.c.organization_id == s.c.organization_id))
        column: ColumnElement[Any] = st.c.service_type
    elif group_by in ("month", "quarter", "year"):
        column = s.c.month
    elif group_by == "region":
        column = s.c.base_id
    else:
        column = s.c[{"organization": "organization_id", "base": "base_id", "team": "team_id",
                      "pairing": "pairing_id", "project": "project_id"}.get(group_by, group_by)]
    many = func.count() > 1
    grouped: dict[Any, int] = defaultdict(int)
    if group_by != "organization":  # a unit's row has one share of an activity
        for value, n in await conn.execute(
                select(column, func.count()).select_from(source).where(fairs, *where)
                .group_by(column, s.c.activity_id).having(many)):
            grouped[key_of("" if value is None else value)] += n - 1
    total = sum(n - 1 for (n,) in await conn.execute(
        select(func.count()).where(fairs, *where).group_by(s.c.activity_id).having(many)))
    return grouped, total


async def summary(conn: AsyncConnection, group_by: GroupBy, scope: Scope,
                  region_level: str | None = None) -> tuple[list[dict], dict]:
    """Figures per group and totals, read from the rollups (a few thousand rows at most); a
    period that cuts a month, or a base or region with a grouping the rollups by base cannot
    give, is computed from the cube's rows (`summary_raw`), with the same answer."""
    dimension = _dimension(group_by, scope)
    if dimension is None:
        return await summary_raw(conn, group_by, scope, region_level)
    column, key_of = await _grouping(conn, group_by, region_level)
    total_dimension = "base" if scope.base_id or scope.region else ""
    per_unit = group_by == "organization"
    r, o = rollups.rollup, rollups.rollup_outputs
    names = ("activities", *rollups.SUMS)

    groups: dict[Any, list[int]] = defaultdict(lambda: [0] * len(names))
    for value, *sums in await conn.execute(
            select(r.c[column], *[func.sum(r.c[n]) for n in names])
            .where(*_rollup_where(r, dimension, scope, per_unit)).group_by(r.c[column])):
        row = groups[key_of(value)]
        for i, v in enumerate(sums):
            row[i] += int(v)
    total = [int(v or 0) for v in (await conn.execute(
        select(*[func.sum(r.c[n]) for n in names])
        .where(*_rollup_where(r, total_dimension, scope, False)))).one()]
    if scope.organization_id:
        overlap, overlap_total = await _overlaps(conn, group_by, scope, key_of)
        for key, n in overlap.items():
            groups[key][0] -= n
        total[0] -= overlap_total

    people: dict[Any, set[int]] = defaultdict(set)
    for value, packed in await conn.execute(
            select(r.c[column], r.c.people).where(*_rollup_where(r, dimension, scope, per_unit))):
        people[key_of(value)] |= rollups.unpack(packed)
    everyone: set[int] = set()
    for (packed,) in await conn.execute(
            select(r.c.people).where(*_rollup_where(r, total_dimension, scope, False))):
        everyone |= rollups.unpack(packed)

    per_key: dict[Any, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for value, indicator, quantity in await conn.execute(
            select(o.c[column], o.c.indicator, func.sum(o.c.quantity_milli))
            .where(*_rollup_where(o, dimension, scope, per_unit))
            .group_by(o.c[column], o.c.indicator)):
        per_key[key_of(value)][indicator] += int(quantity)
    total_outputs = dict((await conn.execute(
        select(o.c.indicator, func.sum(o.c.quantity_milli))
        .where(*_rollup_where(o, total_dimension, scope, False))
        .group_by(o.c.indicator).order_by(o.c.indicator))).tuples().all())

    totals = {**_from_ints(total), "unique_volunteers": len(everyone),
              "outputs": {k: _number(Decimal(int(v)) / 1000) for k, v in total_outputs.items()}}
    keys = sorted(groups, key=lambda k: (k is None, k or ""))
    labels = await region_labels(conn, keys, region_level) if group_by == "region" else (
        await label_map(conn, group_by, keys))
    codes = await code_map(conn, group_by, keys)
    return [{"key": k, "label": labels.get(k, k), "code": codes.get(k, ""),
             **_from_ints(groups[k]),
             "unique_volunteers": len(people.get(k, ())),
             "outputs": {i: _number(Decimal(q) / 1000)
                         for i, q in sorted(per_key.get(k, {}).items())}}
            for k in keys], totals


OWN_LEVEL = "（本级）"


async def region_labels(conn: AsyncConnection, keys: list, level: str | None) -> dict:
    """Labels of a breakdown's regions: their names; by `level`, a region above that level (its
    row holds the bases registered at the region itself) is marked 镇江市（本级）."""
    labels = await label_map(conn, "region", keys)
    if not level:
        return labels
    reg = registry_entities
    for code, record in await conn.execute(select(reg.c.id, reg.c.record).where(
            reg.c.kind == "region", reg.c.id.in_([k for k in keys if k]))):
        if record_json(record).get("level") != level and code in labels:
            labels[code] = f"{labels[code]}{OWN_LEVEL}"
    return labels


def _from_ints(values: list[int]) -> dict:
    activities_, served, volunteers, hours_milli, trainees, fen = values
    return {"activities": activities_, "served": served, "volunteers": volunteers,
            "volunteer_hours": round(hours_milli / 1000, 2), "trainees": trainees,
            "donation_value_cny": round(fen / 100, 2)}


def _number(value: Any) -> float | int:
    value = Decimal(value or 0)
    return int(value) if value == value.to_integral_value() else float(value)


async def unit_figures(conn: AsyncConnection, scope: Scope) -> dict[str, dict[str, float]]:
    """{organization_id: {figure: value}} within the scope (the year-end assessment's input):
    activities, served, volunteers, volunteer_hours, trainees, donation_value_cny,
    unique_volunteers, and each output indicator as `outputs.<code>`."""
    rows, _ = await summary(conn, "organization", scope)
    out: dict[str, dict[str, float]] = {}
    for row in rows:
        figures = {k: float(row[k]) for k in FIGURES}
        figures.update({f"outputs.{k}": float(v) for k, v in row["outputs"].items()})
        out[row["key"]] = figures
    return out


SUMMARY_COLUMNS = [
    Col("label", "名称", "Name"), Col("code", "编码", "Code"),
    Col("activities", "活动(次)", "Activities (times)", "count"),
    Col("served", "服务群众(人次)", "Served (person-times)", "count"),
    Col("volunteers", "志愿者参与(人次)", "Volunteer turn-outs (person-times)", "count"),
    Col("unique_volunteers", "志愿者(人)", "Distinct volunteers (people)", "count"),
    Col("volunteer_hours", "服务时长(小时)", "Volunteer hours (h)", "hours"),
    Col("trainees", "培训(人次)", "Trainees (person-times)", "count"),
    Col("donation_value_cny", "捐赠价值(元)", "Donations (CNY)", "money"),
]

def indicator_column(code: str) -> Col:
    """An output indicator's column, its unit in the header: 资助学生(名), 投入资金(万元)."""
    zh, en, unit = INDICATORS.get(code, (code, code, ""))
    unit_en = {"万元": "10k CNY"}.get(unit, "")
    return Col(f"outputs.{code}", f"{zh}({unit})" if unit else zh,
               f"{en} ({unit_en})" if unit_en else en, "number")


GROUP_TITLES = {
    "organization": ("按单位", "by unit"), "base": ("按服务基地", "by base"),
    "team": ("按服务团队", "by team"), "region": ("按区域", "by region"),
    "theme": ("按主题", "by theme"), "service_type": ("按服务类型", "by service type"),
    "month": ("按月", "by month"), "pairing": ("按结对", "by pairing"),
    "project": ("按项目", "by project"), "week": ("按周", "by week"),
    "quarter": ("按季度", "by quarter"), "year": ("按年", "by year"),
}


async def summary_report(conn: AsyncConnection, group_by: GroupBy, scope: Scope,
                         region_level: str | None = None, approved: bool = False) -> Report:
    """The ledger, saying whether its figures are approved (`approvals`); with `approved`,
    the figures as approved rather than as they are now."""
    from services.reporting.models import approvals  # it reads this cube

    state = await approvals.status(conn, scope, showing_approved=approved)
    if approved:
        rows, totals = await approvals.approved_figures(conn, scope, group_by, region_level)
    else:
        rows, totals = await summary(conn, group_by, scope, region_level)
    indicators = sorted({k for r in rows for k in r["outputs"]} | set(totals["outputs"]))
    columns = SUMMARY_COLUMNS + [indicator_column(k) for k in indicators]
    zh, en = GROUP_TITLES[group_by]
    return Report(f"服务活动台账（{zh}）", f"Service activities ({en})", columns, rows,
                  {"key": None, "label": None, **totals},
                  extra={"group_by": group_by, "approval": state},
                  status=(state["zh"], state["en"]))



# -- what the routes answer -------------------------------------------------------------------

# (Fields in the order the dicts have them: the answer keeps its order.)
class SummaryRow(Answer):
    """One group's figures (in `totals`: the whole scope, each activity once; key and label
    null)."""

    key: str | None
    label: str | None
    activities: int
    served: int = Field(description="people served (人次)")
    volunteers: int = Field(description="volunteer turn-outs (人次)")
    volunteer_hours: float
    trainees: int
    donation_value_cny: float
    unique_volunteers: int = Field(description="distinct volunteers who attended")
    outputs: dict[str, Number] = Field(description="indicator code: quantity")


class ApprovalState(Answer):
    """Whether a month's, quarter's or year's figures for this scope are approved."""

    state: Literal["approved", "restated", "not_approved"] = Field(description=(
        "restated: events changed the figures after the approval"))
    approved_on: DateText | None = None
    zh: str
    en: str


class Summary(Answer):
    rows: list[SummaryRow]
    totals: SummaryRow
    group_by: str
    approval: ApprovalState
    as_of: int = Field(description="the last TONGXIN_EVENTS seq the report has applied")


class ActivityRow(Answer):
    """One activity, with the scope's shares of its figures."""

    activity_id: str
    title: str
    day: DateText = Field(description="its local day")
    organization_id: str = Field(description="the organising unit")
    organization_label: str | None
    base_id: str
    base_label: str | None
    served: int
    volunteers: int
    volunteer_hours: float
    trainees: int
    donation_value_cny: float


class ActivityTotals(Answer):
    """Over the whole scope, not the page."""

    day: None
    title: None
    activities: int
    served: int
    volunteers: int
    volunteer_hours: float
    trainees: int
    donation_value_cny: float


class Activities(Answer):
    rows: list[ActivityRow]
    totals: ActivityTotals
    limit: int | None
    offset: int
    as_of: int

router = APIRouter(tags=["reports"])


@router.get("/v1/reports/summary", summary="Figures grouped one way, within a scope",
            **documented(Summary))
async def get_summary(
    request: Request,
    scope: Annotated[Scope, Depends(scope_query)],
    group_by: GroupBy = "organization",
    region_level: Annotated[Literal["city", "district", "town", "community"] | None, Query(
        description="with group_by=region: roll up to this level")] = None,
    approved: Annotated[bool, Query(description=(
        "the figures as approved (`period.approved`) for exactly this scope and month, "
        "quarter or year, not as they are now (by any group_by)"))] = False,
    min_seq: MinSeq = None, format: FormatQuery = "json", headers: HeadersQuery = "zh",
) -> Any:
    """Activities, served, turn-outs, distinct volunteers, hours, trainees, donations and
    outputs per group. Totals count each activity once (an activity of three service types, a
    fair of many units) and distinct volunteers over the whole scope, never summed from rows.
    `approval` (and a spreadsheet's title line) says whether the period's figures for the
    scope are approved, restated since, or not approved."""
    if approved:
        from services.reporting.models import approvals

        await approvals.must_be_approved(request, scope, group_by, region_level)
    return await answer(request, lambda conn: summary_report(conn, group_by, scope, region_level,
                                                             approved),
                        models=(NAME,), min_seq=min_seq, format=format, headers=headers,
                        filename=f"summary-{group_by}", scope=scope)


# -- the activities themselves: a drill-down's last level -----------------------------------

LIST_COLUMNS = [
    Col("day", "日期", "Date", "date"), Col("title", "活动", "Activity"),
    Col("organization_label", "单位", "Unit"), Col("base_label", "服务基地", "Base"),
    Col("served", "服务群众(人次)", "Served (person-times)", "count"),
    Col("volunteers", "志愿者参与(人次)", "Volunteer turn-outs (person-times)", "count"),
    Col("volunteer_hours", "服务时长(小时)", "Volunteer hours (h)", "hours"),
    Col("activity_id", "活动编号", "Activity id"),
]


def _list_query(scope: Scope):
    """One row per activity in scope, newest first. Its figures are the scope's shares of it:
    a unit sees its own stalls at a fair, everyone else the whole activity (all shares of an
    activity have the same base and day, so grouping by them splits nothing)."""
    s, a = shares, activities
    return (select(a.c.activity_id, a.c.title, a.c.organization_id, s.c.base_id, s.c.day,
                   *_sums(s, func.count()))
            .select_from(s.join(a, a.c.activity_id == s.c.activity_id))
            .where(*scope.where(organization=s.c.organization_id, base=s.c.base_id,
                                day=s.c.day))
            .group_by(a.c.activity_id, a.c.title, a.c.organization_id, s.c.base_id, s.c.day)
            .order_by(s.c.day.desc(), a.c.activity_id))


async def notable(conn: AsyncConnection, scope: Scope, limit: int) -> list[dict]:
    """The activities in scope that served the most people (a report's notable activities)."""
    stmt = (_list_query(scope).order_by(None)
            .order_by(desc("served"), shares.c.day.desc(), activities.c.activity_id)
            .limit(limit))
    return [{"activity_id": r.activity_id, "title": r.title, "day": r.day.isoformat(),
             "organization_id": r.organization_id, "base_id": r.base_id,
             **{k: v for k, v in _json(r).items() if k != "activities"}}
            for r in await conn.execute(stmt)]


async def list_report(conn: AsyncConnection, scope: Scope, limit: int | None,
                      offset: int = 0) -> Report:
    stmt = _list_query(scope)
    if limit is not None:
        stmt = stmt.limit(limit).offset(offset)
    found = (await conn.execute(stmt)).all()
    units = await label_map(conn, "organization", list({r.organization_id for r in found}))
    bases = await label_map(conn, "base", list({r.base_id for r in found}))
    rows = [{"activity_id": r.activity_id, "title": r.title, "day": r.day.isoformat(),
             "organization_id": r.organization_id,
             "organization_label": units.get(r.organization_id, r.organization_id),
             "base_id": r.base_id, "base_label": bases.get(r.base_id, r.base_id),
             **{k: v for k, v in _json(r).items() if k != "activities"}} for r in found]
    totals = _json((await conn.execute(_Query("organization", scope, None).totals())).one())
    return Report("服务活动清单", "Service activities", LIST_COLUMNS, rows,
                  {"day": None, "title": None, **totals},
                  extra={"limit": limit, "offset": offset})


@router.get("/v1/reports/activities", summary="Each activity in scope, newest first",
            **documented(Activities))
async def get_activities(
    request: Request,
    scope: Annotated[Scope, Depends(scope_query)],
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    offset: Annotated[int, Query(ge=0, le=2**31 - 1)] = 0,
    min_seq: MinSeq = None, format: FormatQuery = "json", headers: HeadersQuery = "zh",
) -> Any:
    """Date, title, unit, base, served, turn-outs and hours of each activity (the last level of
    a drill-down: a base's activities); `totals` over the whole scope, not the page. JSON is a
    page (`limit`, `offset`); CSV and XLSX hold every activity in scope."""
    page = limit if format == "json" else None
    return await answer(request, lambda conn: list_report(conn, scope, page, offset),
                        models=(NAME,), min_seq=min_seq, format=format, headers=headers,
                        filename="activities", scope=scope)


MODEL = ReadModel(
    name=NAME, tables=(activities, shares, share_types, outputs, attendance, *rollups.TABLES),
    handlers={"activity.logged": on_logged, "activity.corrected": on_corrected,
              "activity.retracted": on_retracted, "attendance.recorded": on_attendance,
              "attendance.confirmed": on_attendance, "attendance.declined": on_attendance},
    router=router, description="what was done, where, by whom, for how many",
    separate=frozenset({"attendance"}))
