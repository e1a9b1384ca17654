"""What the forms offer to choose from, for one caller: read from this service's own copy of
the registry and its own state tables, never from the registry itself (services talk over NATS
only), and bounded by the caller's organisation subtree (a unit sees its units, their teams,
volunteers, pairings, activities and claimed needs, and the open needs at bases paired with
them). Volunteers by name only: the replica holds no personal data, and neither does this.

A need listed may repeat one accepted before it (`shared.need_duplicates`, the rule reporting
flags by): it comes with `possible_duplicate_of` and that `original`, named by its title,
category, base and date, for the claimer to link them (`need.linked`). Decided from this
service's own facts as they stand, so only while the original is still open or claimed (a need
can be linked only to one not closed)."""

from __future__ import annotations

import json
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from typing import Any

from pydantic import BaseModel
from sqlalchemy import and_, or_, select, true
from sqlalchemy.ext.asyncio import AsyncConnection

from services.events import store
from shared.auth import Principal
from shared.need_duplicates import LIVE, possible_original
from shared.taxonomy import INDICATORS, SERVICE_TYPES, THEMES

RECENT_ACTIVITIES = 200  # the newest logged ones; older reports are overdue long since
MAX_NEEDS = 500


class Choice(BaseModel):
    id: str
    name: str
    organization_id: str | None = None
    base_id: str | None = None
    parent_id: str | None = None
    paired: bool = False  # a base: one of the caller's pairings is with it


class Code(BaseModel):
    code: str
    label_zh: str
    label_en: str


class ActivityChoice(BaseModel):
    activity_id: str
    title: str
    organization_id: str
    base_id: str
    units: list[str]
    started_at: datetime | None
    ended_at: datetime | None


class PossibleOriginal(BaseModel):
    """The need a listed one may repeat, in the words people know it by."""

    need_id: str
    title: str
    category: str
    base_id: str
    submitted_at: datetime | None


class NeedChoice(BaseModel):
    need_id: str
    title: str
    base_id: str
    pairing_id: str | None
    state: str
    claimed_by: str | None
    category: str | None = None
    submitted_at: datetime | None = None
    possible_duplicate_of: str | None = None  # the need it may repeat: link them or not
    original: PossibleOriginal | None = None  # that need, to name it


class Choices(BaseModel):
    """Everything a unit's forms offer, in its scope."""

    role: str
    organization_id: str | None  # the caller's own unit: what the forms preselect
    units: list[Choice]
    bases: list[Choice]
    teams: list[Choice]
    pairings: list[Choice]
    volunteers: list[Choice]
    service_types: list[Code]
    indicators: list[Code]
    themes: list[Code]
    activities: list[ActivityChoice]
    needs: list[NeedChoice]


async def choices_for(conn: AsyncConnection, who: Principal,
                      duplicate_window: timedelta = timedelta(0)) -> Choices:
    entities, units = await _entities(conn, who.scope)
    orgs = entities.get("organization", {})
    names = {id_: row.name for rows in entities.values() for id_, row in rows.items()}

    def active(kind: str) -> list:
        return [r for r in entities.get(kind, {}).values() if r.active]

    def mine(kind: str) -> list[Choice]:
        return [_choice(r) for r in active(kind) if units is None or r.organization_id in units]

    pairings = [_choice(r, name=f"{names.get(r.organization_id or '', r.organization_id)} ↔ "
                                f"{names.get(r.base_id or '', r.base_id)}")
                for r in active("pairing") if units is None or r.organization_id in units]
    paired_bases = {p.base_id for p in pairings}
    # The bases the caller is paired with first (and marked): those are where it mostly
    # serves, and all a unit's base picker offers until it asks for another.
    bases = sorted((_choice(r).model_copy(update={"paired": r.id in paired_bases})
                    for r in active("base")),
                   key=lambda c: (not c.paired, c.name))
    return Choices(
        role=who.role, organization_id=who.organization_id,
        units=[_choice(orgs[i]) for i in sorted(units if units is not None else orgs,
                                                key=lambda i: (i != who.organization_id,
                                                               orgs[i].name))
               if i in orgs and orgs[i].active],
        bases=bases, teams=mine("team"), pairings=pairings,
        volunteers=sorted(mine("volunteer"), key=lambda c: c.name),
        service_types=_codes(SERVICE_TYPES, active("service_type")),
        indicators=_codes(INDICATORS, active("indicator")),
        themes=[Code(code=c, label_zh=zh, label_en=en) for c, (zh, en) in THEMES.items()],
        activities=await _activities(conn, units),
        needs=await _needs(conn, units, paired_bases, duplicate_window))


async def _entities(conn: AsyncConnection,
                    root: str | None) -> tuple[dict[str, dict], set[str] | None]:
    """{kind: {id: row}} of what the forms offer, and the caller's units (None: all). Teams,
    volunteers and pairings are read for the caller's units only, in the query: a unit's form
    never reads every volunteer of the programme."""
    t = store.registry_entities
    columns = (t.c.kind, t.c.id, t.c.name, t.c.parent_id, t.c.organization_id, t.c.base_id,
               t.c.active, t.c.record)
    out: dict[str, dict] = {}
    for row in await conn.execute(select(*columns).where(t.c.kind == "organization")):
        out.setdefault(row.kind, {})[row.id] = row
    units = _subtree(out.get("organization", {}), root)
    theirs = and_(t.c.kind.in_(("team", "volunteer", "pairing")),
                  true() if units is None else t.c.organization_id.in_(units))
    for row in await conn.execute(select(*columns).where(
            or_(t.c.kind.in_(("base", "service_type", "indicator")), theirs))):
        out.setdefault(row.kind, {})[row.id] = row
    return out, units


def _subtree(orgs: dict, root: str | None) -> set[str] | None:
    """The ids of `root` and every organisation under it; None for the whole programme."""
    if root is None:
        return None
    children: dict[str, list[str]] = {}
    for id_, row in orgs.items():
        if row.parent_id:
            children.setdefault(row.parent_id, []).append(id_)
    found, todo = set(), [root]
    while todo:
        current = todo.pop()
        if current not in found:
            found.add(current)
            todo += children.get(current, [])
    return found


def _choice(row, name: str | None = None) -> Choice:
    return Choice(id=row.id, name=name or row.name or row.id, organization_id=row.organization_id,
                  base_id=row.base_id, parent_id=row.parent_id)


def _codes(builtin: dict, added: Iterable) -> list[Code]:
    """The codes shipped with Tongxin, then those organisers added to the registry."""
    out = {c: Code(code=c, label_zh=labels[0], label_en=labels[1])
           for c, labels in builtin.items()}
    for row in added:
        record = row.record if isinstance(row.record, dict) else json.loads(row.record)
        out.setdefault(row.id, Code(code=row.id, label_zh=str(record.get("label_zh") or row.id),
                                    label_en=str(record.get("label_en") or row.id)))
    return list(out.values())


async def _titles(conn: AsyncConnection, event_ids: list[str]) -> dict[str, str]:
    """The title in each of these accepted events (what people know an activity or need by)."""
    if not event_ids:
        return {}
    t = store.accepted_events
    rows = await conn.execute(select(t.c.event_id, t.c.payload).where(
        t.c.event_id.in_(event_ids)))
    return {row.event_id: str(json.loads(row.payload)["data"].get("title", ""))
            for row in rows}


async def _activities(conn: AsyncConnection, units: set[str] | None) -> list[ActivityChoice]:
    t = store.activities
    rows = [r for r in await conn.execute(
        select(t).where(t.c.state == "logged").order_by(t.c.ended_at.desc(),
                                                        t.c.activity_id).limit(
            RECENT_ACTIVITIES if units is None else RECENT_ACTIVITIES * 10))
        if units is None or set(r.units or [r.organization_id]) & units][:RECENT_ACTIVITIES]
    titles = await _titles(conn, [r.logged_event_id for r in rows if r.logged_event_id])
    return [ActivityChoice(
        activity_id=r.activity_id, title=titles.get(r.logged_event_id or "", ""),
        organization_id=r.organization_id, base_id=r.base_id,
        units=list(r.units or [r.organization_id]), started_at=_utc(r.started_at),
        ended_at=_utc(r.ended_at)) for r in rows]


async def _needs(conn: AsyncConnection, units: set[str] | None,
                 paired_bases: set[str | None], window: timedelta) -> list[NeedChoice]:
    """Open needs the caller could claim (at bases it is paired with), and the needs it has
    claimed, which it may resolve; each with the need it may repeat, if any."""
    t = store.needs
    query = select(t).where(t.c.state.in_(LIVE))
    if units is not None:
        query = query.where(
            ((t.c.state == "open") & t.c.base_id.in_([b for b in paired_bases if b]))
            | ((t.c.state == "claimed") & t.c.claimed_by.in_(units)))
    rows = list(await conn.execute(query.order_by(t.c.submitted_at.desc()).limit(MAX_NEEDS)))
    near = await _live_near(conn, rows, window)
    submitted = await _submissions(conn, [r.need_id for r in rows] + list(near))
    out = []
    for r in rows:
        this = submitted.get(r.need_id, {})
        original = None
        if this:
            earlier = [{**n._mapping, **submitted[i]} for i, n in near.items()
                       if i in submitted and submitted[i]["order"] < this["order"]]
            original = possible_original({**r._mapping, **this}, earlier, window)
        first = near.get(original or "")
        out.append(NeedChoice(
            need_id=r.need_id, title=this.get("title", ""), base_id=r.base_id,
            pairing_id=r.pairing_id, state=r.state, claimed_by=r.claimed_by,
            category=this.get("category"), submitted_at=_utc(r.submitted_at),
            possible_duplicate_of=original,
            original=None if first is None else PossibleOriginal(
                need_id=first.need_id, title=submitted[first.need_id]["title"],
                category=submitted[first.need_id]["category"], base_id=first.base_id,
                submitted_at=_utc(first.submitted_at))))
    return out


async def _live_near(conn: AsyncConnection, rows: list, window: timedelta) -> dict[str, Any]:
    """The needs open or claimed (anyone's) that the listed ones may repeat: at their bases,
    submitted within the window of them."""
    times = [r.submitted_at for r in rows if r.submitted_at is not None]
    if not times or window <= timedelta(0):
        return {}
    t = store.needs
    found = await conn.execute(select(t).where(
        t.c.state.in_(LIVE), t.c.base_id.in_({r.base_id for r in rows}),
        t.c.submitted_at >= min(times) - window, t.c.submitted_at <= max(times) + window))
    return {r.need_id: r for r in found}


async def _submissions(conn: AsyncConnection, need_ids: list[str]) -> dict[str, dict[str, Any]]:
    """Each need's title and category, from its accepted submission, and the order it was
    accepted in (what came before it)."""
    if not need_ids:
        return {}
    a = store.accepted_events
    found = await conn.execute(select(a.c.id, a.c.about, a.c.payload).where(
        a.c.type == "need.submitted", a.c.about.in_([f"need_id={i}" for i in set(need_ids)])))
    out = {}
    for order, about, payload in found:
        data = json.loads(payload)["data"]
        out[about.removeprefix("need_id=")] = {"order": order, "title": str(data["title"]),
                                               "category": str(data["category"])}
    return out


def _utc(value: datetime | None) -> datetime | None:
    if value is None:
        return None
    return value if value.tzinfo else value.replace(tzinfo=UTC)  # SQLite keeps no offset
