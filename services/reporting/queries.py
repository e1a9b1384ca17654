"""Report queries: plain SQL over the read models, scoped by filters, labelled from the replica."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Any, Literal

from sqlalchemy import ColumnElement, FromClause, and_, func, select
from sqlalchemy.ext.asyncio import AsyncConnection

from services.reporting import store
from shared.taxonomy import SERVICE_TYPES, THEMES

GroupBy = Literal["organization", "base", "team", "region", "theme", "service_type", "month"]
FIGURES = ("activities", "served", "volunteers", "volunteer_hours", "trainees",
           "donation_value_cny")


@dataclass(frozen=True)
class Scope:
    date_from: date | None = None
    date_to: date | None = None
    organization_id: str | None = None
    base_id: str | None = None
    region: str | None = None          # a region code: everything in it, at any depth
    region_level: str | None = None    # with group_by=region: roll up to this level


def _figures(f):
    return [
        func.count().label("activities"),
        func.coalesce(func.sum(f.c.served), 0).label("served"),
        func.coalesce(func.sum(f.c.volunteers), 0).label("volunteers"),
        func.coalesce(func.sum(f.c.volunteer_hours), 0).label("volunteer_hours"),
        func.coalesce(func.sum(f.c.trainees), 0).label("trainees"),
        func.coalesce(func.sum(f.c.donation_value_cny), 0).label("donation_value_cny"),
    ]


def _figures_json(row) -> dict:
    return {
        "activities": int(row.activities), "served": int(row.served),
        "volunteers": int(row.volunteers),
        "volunteer_hours": round(float(row.volunteer_hours), 2),
        "trainees": int(row.trainees),
        "donation_value_cny": round(float(row.donation_value_cny), 2),
    }


async def summary(conn: AsyncConnection, group_by: GroupBy, scope: Scope) -> dict:
    f = store.activity_facts
    reg = store.registry_entities
    base = reg.alias("base_record")
    where: list[ColumnElement[bool]] = [f.c.retracted.is_(False)]
    if scope.date_from:
        where.append(f.c.day >= scope.date_from)
    if scope.date_to:
        where.append(f.c.day <= scope.date_to)
    if scope.organization_id:
        where.append(f.c.organization_id == scope.organization_id)
    if scope.base_id:
        where.append(f.c.base_id == scope.base_id)
    needs_base = group_by == "region" or scope.region is not None
    source: FromClause = f
    if needs_base:
        source = f.outerjoin(base, and_(base.c.kind == "base", base.c.id == f.c.base_id))
    if scope.region:
        ra = store.region_ancestors
        where.append(base.c.region_code.in_(select(ra.c.code).where(ra.c.ancestor == scope.region)))
    region_key: ColumnElement[Any] = base.c.region_code
    if group_by == "region" and scope.region_level:
        up = store.region_ancestors.alias("up")
        source = source.outerjoin(up, and_(up.c.code == base.c.region_code,
                                           up.c.ancestor_level == scope.region_level))
        region_key = up.c.ancestor

    if group_by == "service_type":
        st = store.activity_service_types
        source = source.join(st, st.c.activity_id == f.c.activity_id)
        key: ColumnElement[Any] = st.c.service_type
    else:
        key = {"organization": f.c.organization_id, "base": f.c.base_id, "team": f.c.team_id,
               "theme": f.c.theme, "month": f.c.month,
               "region": region_key}[group_by]

    rows = (await conn.execute(
        select(key.label("key"), *_figures(f)).select_from(source).where(*where)
        .group_by(key).order_by(key))).all()
    totals = (await conn.execute(
        select(*_figures(f)).select_from(
            f.outerjoin(base, and_(base.c.kind == "base", base.c.id == f.c.base_id))
            if needs_base else f).where(*where))).one()
    labels = await _labels(conn, group_by, [r.key for r in rows])
    return {
        "rows": [{"key": r.key, "label": labels.get(r.key, r.key), **_figures_json(r)}
                 for r in rows],
        "totals": _figures_json(totals),
    }


async def _labels(conn: AsyncConnection, group_by: GroupBy, keys: list) -> dict:
    if group_by == "theme":
        return {k: THEMES.get(k, (k,))[0] for k in keys}
    if group_by == "month" or not keys:
        return {}
    kind = {"organization": "organization", "base": "base", "team": "team",
            "region": "region", "service_type": "service_type"}[group_by]
    reg = store.registry_entities
    found: dict[Any, Any] = dict((await conn.execute(
        select(reg.c.id, reg.c.name).where(reg.c.kind == kind,
                                           reg.c.id.in_([k for k in keys if k])))).tuples().all())
    if group_by == "service_type":
        found = {k: found.get(k) or SERVICE_TYPES.get(k, (k,))[0] for k in keys}
    if None in keys:
        found[None] = "(none)"
    return found


async def position(conn: AsyncConnection, name: str) -> int:
    p = store.positions
    return (await conn.execute(select(p.c.position).where(p.c.name == name))).scalar() or 0
