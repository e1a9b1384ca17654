"""Loading a batch's `Facts` in bulk: a few queries for the whole batch, keyed by the fields
the offers carry (`activity_id`, `need_id`, `volunteer_id`, references), never by type."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime, timedelta, tzinfo

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncConnection

from services.events import store
from services.events.domain import Offer
from services.events.state import Activity, Attendance, Facts, Need
from shared.replica import record_json, records_of


async def load_facts(conn: AsyncConnection, offers: list[Offer], *, now: datetime,
                     report_due: timedelta, photos: set[str], registry: dict | None = None,
                     history: bool = False, future_grace: timedelta = timedelta(hours=24),
                     zone: tzinfo | None = None) -> Facts:
    """`registry`: the records of the offers' references, already read to check them."""
    facts = Facts(now=now, report_due=report_due, photos=photos, history=history,
                  registry=dict(registry or {}), future_grace=future_grace)
    if zone is not None:
        facts.zone = zone
    data = [o.envelope.data for o in offers]
    activity_ids = _values(data, "activity_id")
    need_ids = _values(data, "need_id") | _values(data, "original_id")  # need.linked: both
    volunteer_ids = _values(data, "volunteer_id")
    lock = conn.dialect.name == "postgresql"  # another instance waits for our commit
    a, t = store.activities, store.attendance

    # The rows the batch may change, locked in key order (every instance locks alike).
    if activity_ids:
        for row in await conn.execute(_select(a, lock).where(
                a.c.activity_id.in_(activity_ids)).order_by(a.c.activity_id)):
            facts.know(store.from_row(Activity, row))
    if activity_ids and volunteer_ids:  # hours at the batch's activities
        for row in await conn.execute(_select(t, lock).where(
                t.c.activity_id.in_(activity_ids), t.c.volunteer_id.in_(volunteer_ids))
                .order_by(t.c.activity_id, t.c.volunteer_id)):
            facts.know(store.from_row(Attendance, row))
    if need_ids:
        for row in await conn.execute(_select(store.needs, lock).where(
                store.needs.c.need_id.in_(need_ids)).order_by(store.needs.c.need_id)):
            facts.know(store.from_row(Need, row))
    if volunteer_ids:  # what a volunteer's hours may overlap: read, not locked
        await _overlapping(conn, facts, data, volunteer_ids)

    wanted = {(kind, id_) for o in offers for _, kind, id_ in o.references}
    wanted |= {("volunteer", v) for v in volunteer_ids}
    wanted |= {("pairing", n.pairing_id) for n in facts.needs.values() if n.pairing_id}
    facts.registry.update(await _records(conn, wanted - facts.registry.keys()))
    if any(kind == "campaign" for kind, _ in wanted):  # a campaign may cover a region
        await _regions_above(conn, facts.registry)
    # Who may claim a need: the units paired with its base.
    bases = {n.base_id for n in facts.needs.values()} | _values(
        (d for d in data if d.get("need_id") is not None), "base_id")
    facts.pairings_by_base = await _pairings(conn, bases)
    return facts


async def _overlapping(conn: AsyncConnection, facts: Facts, data: list[dict],
                       volunteer_ids: set[str]) -> None:
    """The volunteers' hours at activities within the time the batch's activities span (as
    stored, or as the batch logs them), with those activities: what an overlap is checked
    against. Not their whole history."""
    a, t = store.activities, store.attendance
    starts, ends = [], []
    for d in data:
        act = facts.activity(d.get("activity_id"))
        for start, end in ((act.started_at, act.ended_at) if act else (None, None),
                           (_moment(d.get("started_at")), _moment(d.get("ended_at")))):
            if start is not None and end is not None:
                starts.append(start)
                ends.append(end)
    if not starts:
        return
    lo, hi = min(starts).astimezone(UTC), max(ends).astimezone(UTC)
    found = [store.from_row(Attendance, row) for row in await conn.execute(
        select(t).join(a, a.c.activity_id == t.c.activity_id).where(
            t.c.volunteer_id.in_(volunteer_ids), a.c.started_at < hi, a.c.ended_at > lo))]
    for att in found:
        if facts.attendance_of(att.activity_id, att.volunteer_id) is None:
            facts.know(att)
    missing = {att.activity_id for att in found} - {k for (k,) in facts.activities}
    if missing:
        for row in await conn.execute(select(a).where(a.c.activity_id.in_(missing))):
            facts.know(store.from_row(Activity, row))


def _moment(value: object) -> datetime | None:
    """A time in an offer's normalised data (ISO 8601 with its offset), if it is one."""
    if not isinstance(value, str):
        return None
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        return None
    return moment if moment.tzinfo is not None else None


def _select(table, lock: bool):
    stmt = select(table)
    return stmt.with_for_update() if lock else stmt


def _values(data: Iterable[dict], field: str) -> set[str]:
    return {str(d[field]) for d in data if d.get(field) is not None}


async def _records(conn: AsyncConnection, wanted: set[tuple[str, str]]) -> dict:
    return {key: known.record for key, known in (
        await records_of(conn, store.registry_entities, wanted)).items()}


async def _regions_above(conn: AsyncConnection, records: dict) -> None:
    """Add the regions the loaded records lie in, up to the top: a level at a time (a
    hierarchy is a handful of levels deep)."""
    frontier = {r["region_code"] for r in records.values() if r.get("region_code")}
    for _ in range(10):
        frontier -= {i for k, i in records if k == "region"}
        if not frontier:
            return
        found = await _records(conn, {("region", code) for code in frontier})
        records.update(found)
        frontier = {r["parent_code"] for r in found.values() if r.get("parent_code")}


async def _pairings(conn: AsyncConnection, bases: set[str]) -> dict[str, list[dict]]:
    """The active pairings of each base: which units may claim its needs."""
    if not bases:
        return {}
    t = store.registry_entities
    out: dict[str, list[dict]] = {}
    for r in await conn.execute(select(t.c.base_id, t.c.record).where(
            t.c.kind == "pairing", t.c.base_id.in_(bases), t.c.active.is_(True))):
        record = record_json(r.record)
        if record.get("status", "active") == "active":
            out.setdefault(r.base_id, []).append(record)
    return out
