"""Rollups of the activity cube: what the summary reads, kept by the projection in the same
transaction as the cube's rows (`activities.py`), so a report sums a few thousand rows instead
of joining and de-duplicating hundreds of thousands.

A rollup row is (node, month, dimension, key). `node` is a unit (`organization_id`: that
unit's shares) or `*` (the whole programme). A unit's subtree is resolved when a report is
read, from the organisation closure (small), so re-parenting a unit in the registry moves its
figures at once with nothing to rewrite. `dimension` is one way of grouping — "" (none: the
unit's or programme's month), base, team, pairing, project, theme, week, service_type — and
`key` its value ("" for none); months give quarters and years, bases give regions.

Each row holds the shares' figures as integers (hours in thousandths, donations in fen), so
sums are exact on either back-end and in any order; `activities`: on a unit's row the unit's
shares (an activity once per unit), on `*` rows each activity once (a fair's stalls are one
activity; a service type once per activity). `people`: who attended (not declined) activities
organised there, as a sorted array of volunteer numbers (`cube_volunteer_numbers`), so distinct
volunteers over many rows is a set union, never `COUNT(DISTINCT)`. Outputs have their own
rows (`cube_rollup_outputs`), on the organising unit's rows like attendance.

Every change applies per activity as new minus old: the old contribution is computed from the
cube's rows before they are replaced, the new one from the rows written, and the difference is
added. Redelivery and replays change nothing; corrections, retractions and declines restate
exactly. A volunteer leaves a row's `people` only when no other attendance still puts them
there (checked against the cube's rows). Rows whose `activities` falls to 0 are deleted, so a
rebuild, batched differently, ends with the same rows as the live projection.
"""

from __future__ import annotations

from array import array
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from sqlalchemy import (
    BigInteger,
    Column,
    Integer,
    LargeBinary,
    String,
    Table,
    and_,
    bindparam,
    delete,
    func,
    insert,
    select,
    tuple_,
    update,
)
from sqlalchemy.ext.asyncio import AsyncConnection

from services.reporting.store import metadata
from shared.projection import upsert

ROOT = "*"  # the whole programme's node
DIMENSIONS = {"": None, "base": "base_id", "team": "team_id", "pairing": "pairing_id",
              "project": "project_id", "theme": "theme", "week": "week"}
SERVICE_TYPE = "service_type"
# The figures of a row after `activities`, as integers.
SUMS = ("served", "volunteers", "hours_milli", "trainees", "donation_fen")


def _key_columns() -> list[Column]:
    return [Column("node", String(64), primary_key=True),
            Column("month", String(7), primary_key=True),
            Column("dimension", String(16), primary_key=True),
            Column("key", String(64), primary_key=True)]


rollup = Table(
    "cube_rollup", metadata, *_key_columns(),
    Column("activities", BigInteger, nullable=False),
    *[Column(name, BigInteger, nullable=False) for name in SUMS],
    Column("people", LargeBinary, nullable=False, server_default=""),
)

rollup_outputs = Table(
    "cube_rollup_outputs", metadata, *_key_columns(),
    Column("indicator", String(40), primary_key=True),
    Column("quantity_milli", BigInteger, nullable=False),
    Column("activities", BigInteger, nullable=False),  # contributing: 0 deletes the row
)

# Volunteers numbered in order of their first attendance event, for compact sets.
volunteer_numbers = Table(
    "cube_volunteer_numbers", metadata,
    Column("volunteer_id", String(64), primary_key=True),
    Column("number", Integer, nullable=False, unique=True),
)

TABLES = (rollup, rollup_outputs, volunteer_numbers)



@dataclass(frozen=True)
class Cube:
    """The cube's tables the rollups are computed from (`activities.py`)."""

    shares: Table
    share_types: Table
    outputs: Table
    attendance: Table


RowKey = tuple[str, str, str, str]          # node, month, dimension, key
OutKey = tuple[str, str, str, str, str]     # ... and indicator


def _chunks(items: list, size: int = 2000) -> Iterable[list]:
    """Parts of a list small enough for one statement's parameters (SQLite's limit)."""
    for i in range(0, len(items), size):
        yield items[i:i + size]


# -- people as bytes ----------------------------------------------------------------------

def pack(numbers: Iterable[int]) -> bytes:
    """A set of volunteer numbers as sorted little-endian uint32s: one spelling per set."""
    return array("I", sorted(numbers)).tobytes()


def unpack(data: bytes | None) -> set[int]:
    out = array("I")
    out.frombytes(data or b"")
    return set(out)


# -- an activity's contribution -----------------------------------------------------------

def _ints(row: Mapping[Any, Any]) -> list[int]:
    return [int(row["served"]), int(row["volunteers"]),
            round(float(row["volunteer_hours"]) * 1000), int(row["trainees"]),
            int(Decimal(row["donation_value_cny"]) * 100)]


def milli(quantity: Any) -> int:
    return int(Decimal(quantity) * 1000)


def _key(share: Mapping[Any, Any], dimension: str) -> str:
    column = DIMENSIONS[dimension]
    return "" if column is None else (share[column] or "")


def lead_rows(lead: Mapping[Any, Any], lead_types: Iterable[str]) -> list[RowKey]:
    """The rows attendance and outputs of an activity count in: its organising unit's share's
    (each dimension, and the unit's service types), for the unit and the programme."""
    keys = [(d, _key(lead, d)) for d in DIMENSIONS] + [(SERVICE_TYPE, t) for t in lead_types]
    return [(node, lead["month"], d, k) for node in (lead["organization_id"], ROOT)
            for d, k in keys]


@dataclass
class Contribution:
    """What activities add to the rollups (negate to take it away)."""

    figures: dict[RowKey, list[int]] = field(default_factory=lambda: defaultdict(lambda: [0] * 6))
    people: dict[RowKey, set[int]] = field(default_factory=lambda: defaultdict(set))
    outputs: dict[OutKey, list[int]] = field(default_factory=lambda: defaultdict(lambda: [0, 0]))

    def add(self, shares: list[Mapping[Any, Any]], types: list[Mapping[Any, Any]],
            outputs: list[Mapping[Any, Any]], people: set[int]) -> None:
        """One activity: its share rows, share-type rows and output rows as the cube holds
        them, and the numbers of the volunteers who attended it."""
        lead = next((s for s in shares if s["lead"]), None)
        if lead is None:
            return
        month = lead["month"]

        def count(node: str, dimension: str, key: str, sums: list[int], n: int) -> None:
            row = self.figures[(node, month, dimension, key)]
            row[0] += n
            for i, v in enumerate(sums, 1):
                row[i] += v

        for share in shares:
            sums = _ints(share)
            for dimension in DIMENSIONS:
                key = _key(share, dimension)
                count(share["organization_id"], dimension, key, sums, 1)
                count(ROOT, dimension, key, sums, 1 if share["lead"] else 0)
        seen: set[str] = set()
        for row in types:
            code = row["service_type"]
            sums = _ints(row)
            count(row["organization_id"], SERVICE_TYPE, code, sums, 1)
            count(ROOT, SERVICE_TYPE, code, sums, 0 if code in seen else 1)
            seen.add(code)
        lead_types = [t["service_type"] for t in types
                      if t["organization_id"] == lead["organization_id"]]
        for row_key in lead_rows(lead, lead_types):
            if people:
                self.people[row_key] |= people
            for output in outputs:
                out = self.outputs[(*row_key, output["indicator"])]
                out[0] += milli(output["quantity"])
                out[1] += 1


# -- reading what an activity contributed -------------------------------------------------

async def numbers(conn: AsyncConnection, volunteer_ids: Iterable[str],
                  assign: bool = False) -> dict[str, int]:
    """{volunteer_id: number}; with `assign`, numbering the new ones in the order given."""
    ids = list(dict.fromkeys(volunteer_ids))
    v = volunteer_numbers
    found: dict[str, int] = {}
    for i in range(0, len(ids), 5000):
        found.update((await conn.execute(select(v.c.volunteer_id, v.c.number).where(
            v.c.volunteer_id.in_(ids[i:i + 5000])))).tuples().all())
    new = [i for i in ids if i not in found]
    if assign and new:
        top = (await conn.execute(select(func.coalesce(func.max(v.c.number), 0)))).scalar_one()
        rows = [{"volunteer_id": vid, "number": top + n} for n, vid in enumerate(new, 1)]
        await conn.execute(insert(v), rows)
        found.update((r["volunteer_id"], r["number"]) for r in rows)
    return found


async def attendees(conn: AsyncConnection, cube: Cube, ids: list[str]) -> dict[str, set[int]]:
    """{activity_id: numbers of the volunteers who attended it (not declined)}."""
    a, v = cube.attendance, volunteer_numbers
    out: dict[str, set[int]] = defaultdict(set)
    for activity_id, number in await conn.execute(
            select(a.c.activity_id, v.c.number)
            .join(v, v.c.volunteer_id == a.c.volunteer_id)
            .where(a.c.activity_id.in_(ids), a.c.declined.is_(False))):
        out[activity_id].add(number)
    return out


async def stored(conn: AsyncConnection, cube: Cube, ids: list[str]) -> Contribution:
    """What these activities contribute now, from the cube's rows (before they change)."""
    rows: dict[str, tuple[list, list, list]] = defaultdict(lambda: ([], [], []))
    for i, table in enumerate((cube.shares, cube.share_types, cube.outputs)):
        for row in await conn.execute(select(table).where(table.c.activity_id.in_(ids))):
            rows[row.activity_id][i].append(row._mapping)
    people = await attendees(conn, cube, ids)
    out = Contribution()
    for activity_id, (shares, types, outputs) in rows.items():
        out.add(shares, types, outputs, people.get(activity_id, set()))
    return out


# -- applying a change --------------------------------------------------------------------

async def apply(conn: AsyncConnection, cube: Cube, old: Contribution, new: Contribution) -> None:
    """Add `new` minus `old` to the rollups (after the cube's rows have become `new`)."""
    await _figures(conn, old, new)
    await _outputs(conn, old, new)
    removed: dict[RowKey, set[int]] = {}
    for row_key, before in old.people.items():
        gone = before - new.people.get(row_key, set())
        if gone:
            removed[row_key] = gone
    await change_people(conn, cube, new.people, removed)


async def _figures(conn: AsyncConnection, old: Contribution, new: Contribution) -> None:
    delta: dict[RowKey, list[int]] = {}
    for sign, part in ((-1, old), (1, new)):
        for row_key, values in part.figures.items():
            row = delta.setdefault(row_key, [0] * 6)
            for i, v in enumerate(values):
                row[i] += sign * v
    delta = {k: v for k, v in delta.items() if any(v)}
    if not delta:
        return
    names = ("activities", *SUMS)
    stmt = upsert(conn, rollup)
    await conn.execute(
        stmt.on_conflict_do_update(
            index_elements=["node", "month", "dimension", "key"],
            set_={n: rollup.c[n] + stmt.excluded[n] for n in names}),
        [{"node": n, "month": m, "dimension": d, "key": k, "people": b"",
          **dict(zip(names, v, strict=True))} for (n, m, d, k), v in delta.items()])
    for keys in _chunks([k for k, v in delta.items() if v[0] < 0]):
        await conn.execute(delete(rollup).where(
            tuple_(rollup.c.node, rollup.c.month, rollup.c.dimension, rollup.c.key).in_(keys),
            rollup.c.activities == 0))


async def _outputs(conn: AsyncConnection, old: Contribution, new: Contribution) -> None:
    delta: dict[OutKey, list[int]] = {}
    for sign, part in ((-1, old), (1, new)):
        for out_key, (quantity, n) in part.outputs.items():
            row = delta.setdefault(out_key, [0, 0])
            row[0] += sign * quantity
            row[1] += sign * n
    delta = {k: v for k, v in delta.items() if any(v)}
    if not delta:
        return
    t = rollup_outputs
    stmt = upsert(conn, t)
    await conn.execute(
        stmt.on_conflict_do_update(
            index_elements=["node", "month", "dimension", "key", "indicator"],
            set_={"quantity_milli": t.c.quantity_milli + stmt.excluded.quantity_milli,
                  "activities": t.c.activities + stmt.excluded.activities}),
        [{"node": n, "month": m, "dimension": d, "key": k, "indicator": i,
          "quantity_milli": q, "activities": c} for (n, m, d, k, i), (q, c) in delta.items()])
    for keys in _chunks([k for k, v in delta.items() if v[1] < 0]):
        await conn.execute(delete(t).where(
            tuple_(t.c.node, t.c.month, t.c.dimension, t.c.key, t.c.indicator).in_(keys),
            t.c.activities == 0))


async def change_people(conn: AsyncConnection, cube: Cube, added: Mapping[RowKey, set[int]],
                        removed: Mapping[RowKey, set[int]]) -> None:
    """Add volunteers to rows' `people`, and take out those `removed` whom no attendance in
    the cube (as it is now) still puts there. The rows exist (their figures came first)."""
    removed = await _still_absent(conn, cube, removed) if removed else {}
    touched = [k for k in {**added, **removed} if added.get(k) or removed.get(k)]
    if not touched:
        return
    r = rollup
    current: dict[RowKey, bytes] = {}
    for part in _chunks(touched):
        for node, month, dimension, key, people in await conn.execute(
                select(r.c.node, r.c.month, r.c.dimension, r.c.key, r.c.people).where(
                    tuple_(r.c.node, r.c.month, r.c.dimension, r.c.key).in_(part))):
            current[(node, month, dimension, key)] = people
    changes = []
    for row_key, before in current.items():
        people = (unpack(before) | added.get(row_key, set())) - removed.get(row_key, set())
        after = pack(people)
        if after != before:
            changes.append({"n": row_key[0], "m": row_key[1], "d": row_key[2], "k": row_key[3],
                            "people": after})
    if changes:
        await conn.execute(
            update(r).where(and_(r.c.node == bindparam("n"), r.c.month == bindparam("m"),
                                 r.c.dimension == bindparam("d"), r.c.key == bindparam("k")))
            .values(people=bindparam("people")), changes)


async def _still_absent(conn: AsyncConnection, cube: Cube,
                        candidates: Mapping[RowKey, set[int]]) -> dict[RowKey, set[int]]:
    """Of the volunteers leaving rows, those whom no other attended activity puts there."""
    wanted = set().union(*candidates.values())
    v, a, s, st = volunteer_numbers, cube.attendance, cube.shares, cube.share_types
    found = (await conn.execute(
        select(a.c.activity_id, v.c.number).join(v, v.c.volunteer_id == a.c.volunteer_id)
        .where(v.c.number.in_(wanted), a.c.declined.is_(False)))).tuples().all()
    leads: dict[str, Any] = {}
    types: dict[str, list[str]] = defaultdict(list)
    for part in _chunks(list({activity_id for activity_id, _ in found})):
        leads.update((row.activity_id, row._mapping) for row in await conn.execute(
            select(s).where(s.c.activity_id.in_(part), s.c.lead.is_(True))))
        for activity_id, unit, code in await conn.execute(
                select(st.c.activity_id, st.c.organization_id, st.c.service_type)
                .where(st.c.activity_id.in_(part))):
            if activity_id in leads and leads[activity_id]["organization_id"] == unit:
                types[activity_id].append(code)
    present: set[tuple[RowKey, int]] = set()
    for activity_id, number in found:
        if activity_id in leads:
            present.update((k, number) for k in lead_rows(leads[activity_id],
                                                           types[activity_id]))
    return {k: {n for n in gone if (k, n) not in present} for k, gone in candidates.items()}
