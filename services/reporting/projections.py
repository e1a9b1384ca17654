"""How events become read-model rows. Each function gets one ordered batch and the open
transaction; the projection runner stores the position in the same transaction."""

from __future__ import annotations

import logging
from zoneinfo import ZoneInfo

from nats.aio.msg import Msg
from sqlalchemy import delete, insert, select
from sqlalchemy.ext.asyncio import AsyncConnection

from services.reporting import store
from shared.bus import stream_seq
from shared.envelope import Envelope
from shared.events import ActivityLogged
from shared.projection import upsert
from shared.replica import apply_registry_events, record_json

log = logging.getLogger(__name__)


def activity_row(data: ActivityLogged, event_id: str, seq: int, tz: ZoneInfo) -> dict:
    local = data.started_at.astimezone(tz)
    return {
        "activity_id": str(data.activity_id), "event_id": event_id, "seq": seq,
        "organization_id": data.organization_id, "base_id": data.base_id,
        "team_id": data.team_id, "theme": data.theme, "started_at": data.started_at,
        "day": local.date(), "month": local.strftime("%Y-%m"), "activities": 1,
        "served": data.served, "volunteers": data.volunteers,
        "volunteer_hours": data.volunteer_hours, "trainees": data.trainees,
        "donation_value_cny": data.donation_value_cny, "retracted": False,
    }


async def apply_registry(conn: AsyncConnection, msgs: list[Msg]) -> None:
    """Labels and hierarchy from registry events; the region closure is rebuilt when regions
    change (there are thousands of regions at most, and they rarely change)."""
    await apply_registry_events(conn, store.registry_entities, msgs)
    if any(".region." in m.subject for m in msgs):
        reg = store.registry_entities
        regions = {r.id: (r.parent_id, r.record) for r in await conn.execute(
            select(reg.c.id, reg.c.parent_id, reg.c.record).where(reg.c.kind == "region"))}
        rows = []
        for code in regions:
            seen, current = set(), code
            while current in regions and current not in seen:  # a cycle must not hang us
                seen.add(current)
                level = record_json(regions[current][1]).get("level", "")
                rows.append({"code": code, "ancestor": current, "ancestor_level": level})
                current = regions[current][0]
        await conn.execute(delete(store.region_ancestors))
        if rows:
            await conn.execute(insert(store.region_ancestors), rows)


def make_apply_events(tz_name: str):
    tz = ZoneInfo(tz_name)

    async def apply_events(conn: AsyncConnection, msgs: list[Msg]) -> None:
        facts: dict[str, dict] = {}
        types: set[tuple[str, str]] = set()
        for msg in msgs:
            try:
                env = Envelope.model_validate_json(msg.data)
                data = ActivityLogged.model_validate(env.data) if (
                    env.type == "activity.logged") else None
            except ValueError as exc:
                # Only the events service publishes here, validated; anything unreadable came
                # from elsewhere. Skip it, loudly, rather than stop counting.
                log.error("skipped unreadable message at seq %d on %s: %s", stream_seq(msg),
                          msg.subject, str(exc).splitlines()[0])
                continue
            if data is not None:
                key = str(data.activity_id)
                # An activity counts once, whatever its events say: the first logging wins.
                if key not in facts:
                    facts[key] = activity_row(data, str(env.event_id), stream_seq(msg), tz)
                    types |= {(key, st) for st in data.service_types}
        if facts:
            t = store.activity_facts
            seen = set((await conn.execute(
                select(t.c.activity_id).where(t.c.activity_id.in_(list(facts))))).scalars())
            facts = {k: v for k, v in facts.items() if k not in seen}
            types = {(a, st) for a, st in types if a not in seen}
        if facts:
            await conn.execute(upsert(conn, store.activity_facts)
                               .on_conflict_do_nothing(index_elements=["activity_id"]),
                               list(facts.values()))
            if types:
                await conn.execute(upsert(conn, store.activity_service_types)
                                   .on_conflict_do_nothing(),
                                   [{"activity_id": a, "service_type": st} for a, st in types])

    return apply_events
