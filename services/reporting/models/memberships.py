"""Which organisation each volunteer belonged to, and from which day (转移接续): built only from
the registry's `volunteer.*` events, so a volunteer moved to another unit keeps the hours served
under the old one there, and the new unit's figures start on the day of the move.

Each version of a volunteer's record is kept (`volunteer_versions`, by stream seq), and the
spans are worked out from all of them in order (a handful per volunteer):
- the first unit reaches back without limit (hours recorded before a volunteer was registered
  are the first unit's);
- a version naming another unit is a move, from its `organization_since` (the day the volunteer
  joined it) or, without one, from the day it was made (`updated_at`, local); a move dated on or
  before the current unit's start replaces that unit;
- a version naming the same unit with another `organization_since` corrects the current unit's
  start; other changes (a name, skills) change nothing here.
"""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import BigInteger, Column, Date, String, Table, delete, insert, select

from services.reporting.readmodel import ANY, Batch, ReadModel
from services.reporting.store import metadata
from shared.projection import upsert

NAME = "reporting-memberships"
EVER = date(1900, 1, 1)  # the first membership's start: the earliest day a programme can mean

versions = Table(
    "volunteer_versions", metadata,
    Column("volunteer_id", String(64), primary_key=True),
    Column("seq", BigInteger, primary_key=True),
    Column("organization_id", String(64), nullable=True),
    Column("since", Date, nullable=True),  # organization_since, as the record says
    Column("changed_on", Date, nullable=False),  # updated_at's local day
)

memberships = Table(
    "volunteer_memberships", metadata,
    Column("volunteer_id", String(64), primary_key=True),
    Column("valid_from", Date, primary_key=True),  # EVER for the first
    Column("organization_id", String(64), nullable=True),
    Column("valid_to", Date, nullable=True, index=True),  # the next one's start (exclusive)
)


def _day(value: object) -> date | None:
    try:
        return date.fromisoformat(str(value)[:10]) if value else None
    except ValueError:
        return None


def spans(history: list[tuple[str | None, date | None, date]]) -> list[tuple[date, str | None]]:
    """[(start, unit)] from a volunteer's versions [(unit, organization_since, changed_on)] in
    stream order; the first start is EVER."""
    out: list[list] = []
    for unit, since, changed_on in history:
        if not out:
            out.append([since or EVER, unit])
        elif unit == out[-1][1]:
            if since and since != out[-1][0] and (len(out) == 1 or since > out[-2][0]):
                out[-1][0] = since
        else:
            start = since or changed_on
            while out and out[-1][0] >= start:
                out.pop()
            out.append([start, unit])
    if out:
        out[0][0] = EVER
    return [(start, unit) for start, unit in out]


async def on_registry(batch: Batch) -> None:
    rows = []
    for e in batch.events:
        record = e.data
        if not e.type.startswith("volunteer.") or not record.get("id"):
            continue
        changed = record.get("updated_at")
        try:
            changed_on = batch.local_day(datetime.fromisoformat(str(changed)))
        except ValueError:
            changed_on = batch.local_day(e.envelope.occurred_at)
        rows.append({"volunteer_id": str(record["id"]), "seq": e.seq,
                     "organization_id": record.get("organization_id") or None,
                     "since": _day(record.get("organization_since")),
                     "changed_on": changed_on})
    if not rows:
        return
    stmt = upsert(batch.conn, versions)
    await batch.conn.execute(stmt.on_conflict_do_nothing(index_elements=["volunteer_id", "seq"]),
                             rows)
    ids = sorted({str(r["volunteer_id"]) for r in rows})
    v = versions
    history: dict[str, list] = {}
    for vid, unit, since, changed_on in await batch.conn.execute(
            select(v.c.volunteer_id, v.c.organization_id, v.c.since, v.c.changed_on)
            .where(v.c.volunteer_id.in_(ids)).order_by(v.c.volunteer_id, v.c.seq)):
        history.setdefault(vid, []).append((unit, since, changed_on))
    out = []
    for vid, versions_of in history.items():
        found = spans(versions_of)
        out += [{"volunteer_id": vid, "valid_from": start, "organization_id": unit,
                 "valid_to": found[i + 1][0] if i + 1 < len(found) else None}
                for i, (start, unit) in enumerate(found)]
    await batch.conn.execute(delete(memberships).where(memberships.c.volunteer_id.in_(ids)))
    if out:
        await batch.conn.execute(insert(memberships), out)


MODEL = ReadModel(
    name=NAME, stream="registry", tables=(versions, memberships), handlers={ANY: on_registry},
    description="each volunteer's organisation by day (moves between units)")
