"""Registry tables and the queries on them.

One table per entity, same shape for each: identity, external code, name and its search key,
state, the public record as JSON, and the fields collections filter on as real columns.
Personal data lives apart (`volunteer_private`) so no record, event or export can carry it.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    Column,
    DateTime,
    MetaData,
    Select,
    String,
    Table,
    delete,
    func,
    insert,
    literal,
    select,
    update,
)
from sqlalchemy.ext.asyncio import AsyncConnection

from services.registry.domain import ENTITIES, Entity, Reference
from shared.outbox import outbox_table

metadata = MetaData()
outbox = outbox_table(metadata)


def _entity_table(entity: Entity) -> Table:
    return Table(
        entity.collection, metadata,
        Column("id", String(64), primary_key=True),
        Column("code", String(64), nullable=True, unique=True),
        Column("name", String(400), nullable=False),
        Column("search_key", String(400), nullable=False, index=True),
        Column("active", Boolean, nullable=False, default=True),
        Column("created_at", DateTime(timezone=True), nullable=False),
        Column("updated_at", DateTime(timezone=True), nullable=False),
        Column("record", JSON, nullable=False),
        *(Column(f, String(64), nullable=True, index=True) for f in entity.filters),
    )


TABLES: dict[str, Table] = {e.name: _entity_table(e) for e in ENTITIES.values()}


def _link_table(entity: Entity, ref: Reference) -> Table:
    """The ids a list reference names, one row each (volunteer_teams, campaign_bases), so a
    collection can be filtered on one of them (`?team_id=`, `?base_id=`)."""
    return Table(
        f"{entity.name}_{ref.entity}s", metadata,
        Column(f"{entity.name}_id", String(64), primary_key=True),
        Column(ref.filter, String(64), primary_key=True, index=True),
    )


LINKS: dict[tuple[str, str], Table] = {(e.name, r.field): _link_table(e, r)
                                       for e in ENTITIES.values() for r in e.lists}

volunteer_private = Table(
    "volunteer_private", metadata,
    Column("volunteer_id", String(64), primary_key=True),
    Column("phone", String(40), nullable=True),
    Column("id_number", String(40), nullable=True),
)

taxonomy = Table(
    "taxonomy", metadata,
    Column("kind", String(40), primary_key=True),
    Column("code", String(40), primary_key=True),
    Column("label_zh", String(200), nullable=False),
    Column("label_en", String(200), nullable=False),
    Column("unit", String(20), nullable=True),  # indicators only
    Column("created_at", DateTime(timezone=True), nullable=False),
)


def now() -> datetime:
    return datetime.now(UTC)


def row_for(entity: Entity, record: dict[str, Any], search_key: str) -> dict[str, Any]:
    """The table row that stores `record`."""
    return {
        "id": record["id"], "code": record.get("code"), "name": record.get("name") or "",
        "search_key": search_key, "active": record["active"],
        "created_at": datetime.fromisoformat(record["created_at"]),
        "updated_at": datetime.fromisoformat(record["updated_at"]), "record": record,
        **{f: record.get(f) for f in entity.filters},
    }


async def insert_rows(conn: AsyncConnection, entity: Entity, rows: list[dict]) -> None:
    if rows:
        await conn.execute(insert(TABLES[entity.name]), rows)


async def update_row(conn: AsyncConnection, entity: Entity, row: dict) -> None:
    t = TABLES[entity.name]
    await conn.execute(update(t).where(t.c.id == row["id"]).values(
        **{k: v for k, v in row.items() if k not in ("id", "created_at")}))


async def get_record(conn: AsyncConnection, entity_name: str, id_: str) -> dict | None:
    t = TABLES[entity_name]
    row = (await conn.execute(select(t.c.record).where(t.c.id == id_))).first()
    return row.record if row else None


async def records_by(conn: AsyncConnection, entity_name: str, column: str,
                     values: Iterable[str]) -> dict[str, dict]:
    """{value: record} for the records whose `column` (id or code) is one of `values`."""
    values = list(set(values))
    t = TABLES[entity_name]
    out: dict[str, dict] = {}
    for i in range(0, len(values), 500):
        rows = await conn.execute(select(t.c[column].label("key"), t.c.record)
                                  .where(t.c[column].in_(values[i:i + 500])))
        out.update({r.key: r.record for r in rows})
    return out


async def named(conn: AsyncConnection, entity: Entity,
                names: Iterable[str]) -> dict[tuple[str | None, str], list[tuple[str, bool]]]:
    """{(the `unique_name_within` field's value, name): [(id, active), ...]} of the records
    with one of `names` (more than one where they were registered before names were unique),
    oldest first."""
    assert entity.unique_name_within is not None  # only entities whose names are unique
    t = TABLES[entity.name]
    within = t.c[entity.unique_name_within]
    values = list(set(names))
    out: dict[tuple[str | None, str], list[tuple[str, bool]]] = {}
    for i in range(0, len(values), 500):
        rows = await conn.execute(select(within.label("within"), t.c.name, t.c.id, t.c.active)
                                  .where(t.c.name.in_(values[i:i + 500]))
                                  .order_by(t.c.created_at, t.c.id))
        for r in rows:
            out.setdefault((r.within, r.name), []).append((r.id, r.active))
    return out


async def list_records(conn: AsyncConnection, entity: Entity, *, filters: dict[str, str],
                       search: str | None, active: bool | None, limit: int, offset: int,
                       linked: dict[str, str] | None = None,
                       within: Select | None = None) -> tuple[list[dict], int]:
    """`linked`: {list field: an id it must contain}, e.g. {"team_ids": team_id}. `within`:
    the ids of the organisations a caller may see (a query; None: all); records of others
    are left out."""
    t = TABLES[entity.name]
    where = [t.c[f] == v for f, v in filters.items()]
    if within is not None and (column := scoping_column(entity)) is not None:
        where.append(t.c[column].in_(within))
    if search:
        where.append(t.c.search_key.contains(search, autoescape=True))
    if active is not None:
        where.append(t.c.active.is_(active))
    for ref in entity.lists:
        if (id_ := (linked or {}).get(ref.field)) is not None:
            link = LINKS[(entity.name, ref.field)]
            where.append(t.c.id.in_(select(link.c[f"{entity.name}_id"])
                                    .where(link.c[ref.filter] == id_)))
    total = (await conn.execute(select(func.count()).select_from(t).where(*where))).scalar_one()
    rows = await conn.execute(select(t.c.record).where(*where)
                              .order_by(t.c.created_at, t.c.id).limit(limit).offset(offset))
    return [r.record for r in rows], total


def scoping_column(entity: Entity) -> str | None:
    """The column naming the organisation a record belongs to (an organisation's own id)."""
    if entity.name == "organization":
        return "id"
    return "organization_id" if "organization_id" in entity.filters else None


def subtree_ids(root: str) -> Select:
    """Ids of `root` and every organisation under it: one recursive query, by the indexed
    parent_id, reading the subtree only (UNION, not UNION ALL: a cycle in the data ends)."""
    t = TABLES["organization"]
    tree = select(literal(root).label("id")).cte("subtree", recursive=True)
    tree = tree.union(select(t.c.id).where(t.c.parent_id == tree.c.id))
    return select(tree.c.id)


async def subtree(conn: AsyncConnection, root: str) -> set[str]:
    """`root` and every organisation under it."""
    return set((await conn.execute(subtree_ids(root))).scalars())


async def all_records(conn: AsyncConnection, entity: Entity) -> list[dict]:
    t = TABLES[entity.name]
    return [r.record for r in await conn.execute(select(t.c.record).order_by(t.c.created_at,
                                                                               t.c.id))]


async def set_links(conn: AsyncConnection, entity: Entity, ref: Reference,
                    pairs: dict[str, list[str]]) -> None:
    """Replace, for each record id in `pairs`, the ids its list reference names."""
    if not pairs:
        return
    link = LINKS[(entity.name, ref.field)]
    owner, member = link.c[f"{entity.name}_id"], link.c[ref.filter]
    ids = list(pairs)
    for i in range(0, len(ids), 500):
        await conn.execute(delete(link).where(owner.in_(ids[i:i + 500])))
    rows = [{owner.name: r, member.name: m} for r, members in pairs.items() for m in members]
    if rows:
        await conn.execute(insert(link), rows)


async def set_private(conn: AsyncConnection, rows: list[dict]) -> None:
    """Upsert contact details: a field left out keeps its stored value."""
    if not rows:
        return
    ids = [r["volunteer_id"] for r in rows]
    stored = {r.volunteer_id: r for r in await conn.execute(
        select(volunteer_private).where(volunteer_private.c.volunteer_id.in_(ids)))}
    new, changed = [], []
    for r in rows:
        if r["volunteer_id"] in stored:
            old = stored[r["volunteer_id"]]
            merged = {"volunteer_id": r["volunteer_id"],
                      "phone": r.get("phone") or old.phone,
                      "id_number": r.get("id_number") or old.id_number}
            changed.append(merged)
        else:
            new.append({"volunteer_id": r["volunteer_id"], "phone": r.get("phone"),
                        "id_number": r.get("id_number")})
    if new:
        await conn.execute(insert(volunteer_private), new)
    for m in changed:
        await conn.execute(update(volunteer_private)
                           .where(volunteer_private.c.volunteer_id == m["volunteer_id"])
                           .values(phone=m["phone"], id_number=m["id_number"]))


async def private_for(conn: AsyncConnection, volunteer_id: str) -> dict | None:
    row = (await conn.execute(select(volunteer_private)
                              .where(volunteer_private.c.volunteer_id == volunteer_id))).first()
    return dict(row._mapping) if row else None


async def private_for_many(conn: AsyncConnection, ids: list[str]) -> dict[str, dict]:
    out = {}
    for i in range(0, len(ids), 500):
        rows = await conn.execute(select(volunteer_private)
                                  .where(volunteer_private.c.volunteer_id.in_(ids[i:i + 500])))
        out.update({r.volunteer_id: dict(r._mapping) for r in rows})
    return out


async def taxonomy_codes(conn: AsyncConnection, kind: str) -> dict[str, dict]:
    rows = await conn.execute(select(taxonomy).where(taxonomy.c.kind == kind))
    return {r.code: dict(r._mapping) for r in rows}
