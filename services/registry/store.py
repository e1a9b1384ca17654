"""Registry tables and the queries on them. One table per entity, same shape for each:
identity, external code, name and its search key, state, the record as sent, and the fields
collections are filtered on as real columns."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    Column,
    DateTime,
    MetaData,
    String,
    Table,
    func,
    insert,
    select,
)
from sqlalchemy.ext.asyncio import AsyncConnection

from services.registry.domain import BY_NAME, ENTITIES, Entity
from shared.outbox import outbox_table

metadata = MetaData()
outbox = outbox_table(metadata)


def _entity_table(entity: Entity) -> Table:
    return Table(
        entity.collection, metadata,
        Column("id", String(64), primary_key=True),
        Column("code", String(64), nullable=True, unique=True),
        Column("name", String(200), nullable=False),
        Column("search_key", String(200), nullable=False, index=True),
        Column("active", Boolean, nullable=False, default=True),
        Column("created_at", DateTime(timezone=True), nullable=False),
        Column("updated_at", DateTime(timezone=True), nullable=False),
        Column("record", JSON, nullable=False),
        *(Column(f, String(64), nullable=True, index=True) for f in entity.filters),
    )


TABLES: dict[str, Table] = {e.name: _entity_table(e) for e in ENTITIES.values()}


def now() -> datetime:
    return datetime.now(UTC)


async def insert_record(conn: AsyncConnection, entity: Entity, row: dict[str, Any]) -> None:
    await conn.execute(insert(TABLES[entity.name]).values(**row))


async def get_record(conn: AsyncConnection, entity_name: str, id_: str) -> dict | None:
    t = TABLES[entity_name]
    row = (await conn.execute(select(t.c.record).where(t.c.id == id_))).first()
    return row.record if row else None


async def existing(conn: AsyncConnection, entity_name: str, column: str,
                   values: set[str]) -> set[str]:
    if not values:
        return set()
    t = TABLES[BY_NAME[entity_name].name]
    col = t.c.id if column == "id" else t.c.code
    return set((await conn.execute(select(col).where(col.in_(values)))).scalars())


async def list_records(conn: AsyncConnection, entity: Entity, *, filters: dict[str, str],
                       search: str | None, active: bool | None, limit: int,
                       offset: int) -> tuple[list[dict], int]:
    t = TABLES[entity.name]
    where = [t.c[f] == v for f, v in filters.items()]
    if search:
        where.append(t.c.search_key.contains(search, autoescape=True))
    if active is not None:
        where.append(t.c.active.is_(active))
    total = (await conn.execute(select(func.count()).select_from(t).where(*where))).scalar_one()
    rows = await conn.execute(select(t.c.record).where(*where)
                              .order_by(t.c.created_at, t.c.id).limit(limit).offset(offset))
    return [r.record for r in rows], total
