"""The one scope every report query takes: an organisation subtree, a region subtree, a base
and a period. It is applied inside the aggregates and the totals (never by filtering rows after
the sums), so narrowing it narrows every figure. A key bound to a unit narrows what the
request asks to that unit's subtree (`within_reach`).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import date, timedelta
from typing import Annotated, Any

from fastapi import Query, Request
from sqlalchemy import ColumnElement, Select, select
from sqlalchemy.ext.asyncio import AsyncConnection

from services.reporting.models.labels import organization_ancestors, region_ancestors
from services.reporting.models.labels import registry_entities as reg
from shared.auth import forbidden, principal
from shared.dates import Day


@dataclass(frozen=True)
class Scope:
    organization_id: str | None = None  # this unit and every unit under it
    region: str | None = None           # bases in this region, at any depth
    base_id: str | None = None
    date_from: date | None = None
    date_to: date | None = None
    region_exact: bool = False          # the region's own bases only, not those below it

    def within(self, outer: Scope) -> Scope:
        """This scope, kept inside `outer` (a key's scope): where `outer` says something, it
        wins unless this one is narrower (a unit under it, a day inside its period)."""
        return replace(
            self,
            organization_id=self.organization_id or outer.organization_id,
            region=self.region or outer.region,
            base_id=self.base_id or outer.base_id,
            date_from=max(filter(None, (self.date_from, outer.date_from)), default=None),
            date_to=min(filter(None, (self.date_to, outer.date_to)), default=None))

    def whole_months(self) -> tuple[str | None, str | None] | None:
        """The period as first and last month ("YYYY-MM", None: open), or None when it cuts a
        month (what rollups kept per month can answer)."""
        if self.date_from and self.date_from.day != 1:
            return None
        if self.date_to and (self.date_to + timedelta(days=1)).day != 1:
            return None
        return (f"{self.date_from:%Y-%m}" if self.date_from else None,
                f"{self.date_to:%Y-%m}" if self.date_to else None)

    def units(self) -> Select:
        """Ids of the scope's organisations: the unit and all beneath it."""
        oa = organization_ancestors
        return select(oa.c.code).where(oa.c.ancestor == self.organization_id)

    def bases_in_region(self) -> Select:
        """The region's bases: at any depth, or (`region_exact`) those registered at the region
        itself (a city-level fair's square, not the city's districts' bases)."""
        if self.region_exact:
            return select(reg.c.id).where(reg.c.kind == "base", reg.c.region_code == self.region)
        ra = region_ancestors
        return select(reg.c.id).where(reg.c.kind == "base", reg.c.region_code.in_(
            select(ra.c.code).where(ra.c.ancestor == self.region)))

    def paired_bases(self) -> Select:
        """Bases the scope's units are paired with (a unit's view of bases and needs)."""
        return select(reg.c.base_id).where(reg.c.kind == "pairing",
                                           reg.c.organization_id.in_(self.units()))

    def where(self, *, organization: ColumnElement[Any] | None = None,
              base: ColumnElement[Any] | None = None,
              day: ColumnElement[Any] | None = None) -> list[ColumnElement[bool]]:
        """Conditions for a query whose rows have these columns. A report without an
        organisation column scopes a unit to the bases it is paired with; one without a base
        column cannot honour a base or region, and says so (ValueError) rather than ignore it."""
        out: list[ColumnElement[bool]] = []
        if self.organization_id:
            if organization is not None:
                out.append(organization.in_(self.units()))
            elif base is not None:
                out.append(base.in_(self.paired_bases()))
            else:
                raise ValueError("this report cannot be narrowed to an organisation")
        if self.base_id or self.region:
            if base is None:
                raise ValueError("this report cannot be narrowed to a base or region")
            if self.base_id:
                out.append(base == self.base_id)
            if self.region:
                out.append(base.in_(self.bases_in_region()))
        if day is not None:
            if self.date_from:
                out.append(day >= self.date_from)
            if self.date_to:
                out.append(day <= self.date_to)
        return out


async def scope_query(
    request: Request,
    date_from: Annotated[Day | None, Query(alias="from", description=(
        "first day (local), inclusive"))] = None,
    date_to: Annotated[Day | None, Query(alias="to", description="last day, inclusive")] = None,
    organization_id: Annotated[str | None, Query(
        max_length=64, description="a unit: it and every unit under it")] = None,
    base_id: Annotated[str | None, Query(max_length=64)] = None,
    region: Annotated[str | None, Query(
        max_length=64, description="a region code: bases in it at any depth")] = None,
    region_exact: Annotated[bool, Query(description=(
        "with `region`: only the bases registered at the region itself, not in the regions "
        "under it"))] = False,
) -> Scope:
    asked = Scope(organization_id, region, base_id, date_from, date_to,
                  region_exact=bool(region and region_exact))
    return await within_reach(request, asked)


async def within_reach(request: Request, asked: Scope) -> Scope:
    """The scope asked, inside the caller's: a key bound to a unit sees that unit and the
    units under it, in every row and total; naming another organisation is a 403 (not an
    empty report, which would read as "nothing happened there")."""
    root = principal(request).scope
    if root is None:
        return asked
    if asked.organization_id and asked.organization_id != root:
        await reachable(request, asked.organization_id, root, "organization_id")
    return asked.within(Scope(organization_id=root))


async def reachable(request: Request, organization_id: str, root: str, field: str) -> None:
    """403 naming `field` unless `organization_id` is `root` or under it."""
    if organization_id == root:
        return
    oa = organization_ancestors
    async with request.app.state.engine.connect() as conn:
        found = (await conn.execute(select(oa.c.code).where(
            oa.c.code == organization_id, oa.c.ancestor == root).limit(1))).first()
    if found is None:
        raise forbidden(f"{principal(request).label} sees organisation {root!r} and the "
                        f"units under it, not {organization_id!r}", field)


async def describe(conn: AsyncConnection, scope: Scope, lang: str = "zh") -> str:
    """The scope as a ledger's title names it: 淄博市委统战部（含下级单位）, 基地 …, 区域 …, or
    全部单位 (names from the registry replica; a code it does not know stays a code)."""
    wanted = [(kind, id_) for kind, id_ in (("organization", scope.organization_id),
                                           ("base", scope.base_id), ("region", scope.region))
              if id_]
    names: dict[tuple[str, str], str] = {}
    if wanted:
        found = await conn.execute(select(reg.c.kind, reg.c.id, reg.c.name).where(
            reg.c.id.in_([id_ for _, id_ in wanted])))
        names = {(k, i): n for k, i, n in found if n}
    parts = []
    for kind, id_ in wanted:
        name = names.get((kind, id_), id_)
        if kind == "organization":
            parts.append(f"{name}（含下级单位）" if lang == "zh" else f"{name} and its units")
        elif kind == "base":
            parts.append(f"服务基地 {name}" if lang == "zh" else f"base {name}")
        elif scope.region_exact:
            parts.append(f"区域 {name}（本级）" if lang == "zh" else f"region {name} itself")
        else:
            parts.append(f"区域 {name}" if lang == "zh" else f"region {name}")
    if not parts:
        return "全部单位" if lang == "zh" else "all units"
    return "，".join(parts) if lang == "zh" else ", ".join(parts)
