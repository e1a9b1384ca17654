"""Which organisation each volunteer belonged to, and from which day (转移接续): built only from
the registry's `volunteer.*` events, so a volunteer moved to another unit keeps the hours served
under the old one there, and the new unit's figures start on the day of the move.

Each record names the volunteer's unit and `organization_since` (the day the volunteer joined
it, which the registry sets to the day of a move unless the move names its own day). A record
without it counts from the day it was changed (`updated_at`, local). The first membership
reaches back without limit (hours recorded before a volunteer was registered are the first
unit's); each later one runs from its day until the next one's.
"""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import Column, Date, String, Table, select, update

from services.reporting.readmodel import ANY, Batch, ReadModel
from services.reporting.store import metadata
from shared.projection import upsert

NAME = "reporting-memberships"
EVER = date(1900, 1, 1)  # the first membership's start: the earliest day a programme can mean

memberships = Table(
    "volunteer_memberships", metadata,
    Column("volunteer_id", String(64), primary_key=True),
    Column("since", Date, primary_key=True),
    Column("organization_id", String(64), nullable=True),
    Column("valid_from", Date, nullable=False),  # EVER for the first, else `since`
    Column("valid_to", Date, nullable=True, index=True),  # the next one's since (exclusive)
)


def _since(batch: Batch, record: dict) -> date | None:
    given = record.get("organization_since")
    try:
        if given:
            return date.fromisoformat(str(given)[:10])
        return batch.local_day(datetime.fromisoformat(str(record["updated_at"])))
    except (KeyError, ValueError):
        return None


async def on_registry(batch: Batch) -> None:
    rows: dict[tuple[str, date], dict] = {}
    for e in batch.events:
        if not e.type.startswith("volunteer."):
            continue
        record = e.data
        since = _since(batch, record)
        if not record.get("id") or since is None:
            continue
        rows[(str(record["id"]), since)] = {
            "volunteer_id": str(record["id"]), "since": since,
            "organization_id": record.get("organization_id") or None,
            "valid_from": since, "valid_to": None}
    if not rows:
        return
    stmt = upsert(batch.conn, memberships)
    await batch.conn.execute(stmt.on_conflict_do_update(
        index_elements=["volunteer_id", "since"],
        set_={"organization_id": stmt.excluded.organization_id}), list(rows.values()))
    await _spans(batch, sorted({v for v, _ in rows}))


async def _spans(batch: Batch, volunteer_ids: list[str]) -> None:
    """Each affected volunteer's memberships as consecutive spans (a handful each)."""
    m = memberships
    found: dict[str, list[date]] = {}
    for vid, since in await batch.conn.execute(
            select(m.c.volunteer_id, m.c.since).where(m.c.volunteer_id.in_(volunteer_ids))
            .order_by(m.c.volunteer_id, m.c.since)):
        found.setdefault(vid, []).append(since)
    for vid, days in found.items():
        for i, since in enumerate(days):
            await batch.conn.execute(
                update(m).where(m.c.volunteer_id == vid, m.c.since == since)
                .values(valid_from=EVER if i == 0 else since,
                        valid_to=days[i + 1] if i + 1 < len(days) else None))


MODEL = ReadModel(
    name=NAME, stream="registry", tables=(memberships,), handlers={ANY: on_registry},
    description="each volunteer's organisation by day (moves between units)")
