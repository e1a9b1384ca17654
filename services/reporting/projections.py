"""How events become read-model rows. Each function gets one ordered batch and the open
transaction; the projection runner stores the position in the same transaction."""

from __future__ import annotations

import logging
from zoneinfo import ZoneInfo

from nats.aio.msg import Msg
from sqlalchemy import delete, insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from services.reporting import store
from shared.bus import stream_seq
from shared.envelope import Envelope
from shared.events import ActivityCorrected, ActivityFigures, ActivityLogged
from shared.projection import upsert
from shared.replica import apply_registry_events, record_json

log = logging.getLogger(__name__)


# The events that carry an activity's figures, and how to read them.
FIGURES_OF: dict[str, type[ActivityFigures]] = {"activity.logged": ActivityLogged,
                                                "activity.corrected": ActivityCorrected}


def activity_row(data: ActivityFigures, event_id: str, seq: int, tz: ZoneInfo) -> dict:
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
        """Activities' current figures: logged once, replaced by each correction, retracted
        for good. Whatever cannot be read raises: the projection parks that message, with the
        reason, and goes on counting the rest."""
        logged: dict[str, dict] = {}
        corrected: dict[str, dict] = {}
        types: dict[str, set[str]] = {}
        retracted: set[str] = set()
        for msg in msgs:
            env = Envelope.model_validate_json(msg.data)
            if env.type not in FIGURES_OF and env.type != "activity.retracted":
                continue
            key = str(env.data.get("activity_id"))
            if env.type == "activity.retracted":
                retracted.add(key)
                continue
            data = FIGURES_OF[env.type].model_validate(env.data)
            row = activity_row(data, str(env.event_id), stream_seq(msg), tz)
            if env.type == "activity.logged":
                if key in logged or key in corrected:
                    continue  # an activity counts once: the first logging wins
                logged[key] = row
            else:
                corrected[key] = row
            types[key] = set(data.service_types)
        t = store.activity_facts
        if logged:
            seen = set((await conn.execute(
                select(t.c.activity_id).where(t.c.activity_id.in_(list(logged))))).scalars())
            logged = {k: v for k, v in logged.items() if k not in seen}
            for k in seen:
                types.pop(k, None)
        if logged:
            await conn.execute(insert(t), list(logged.values()))
        if corrected:  # the newest version replaces the figures (and the service types)
            stmt = upsert(conn, t)
            await conn.execute(stmt.on_conflict_do_update(
                index_elements=["activity_id"],
                set_={c.name: stmt.excluded[c.name] for c in t.columns
                      if c.name not in ("activity_id", "retracted")}), list(corrected.values()))
            st = store.activity_service_types
            await conn.execute(delete(st).where(st.c.activity_id.in_(list(corrected))))
        if types:
            await conn.execute(upsert(conn, store.activity_service_types)
                               .on_conflict_do_nothing(),
                               [{"activity_id": a, "service_type": code}
                                for a, codes in types.items() for code in sorted(codes)])
        if retracted:
            await conn.execute(update(t).where(t.c.activity_id.in_(list(retracted)))
                               .values(retracted=True))

    return apply_events
