"""Labels and hierarchy: the registry replica (names of units, bases, teams, regions, codes),
each region with its ancestors and each organisation with its ancestors, so reports roll up
along either hierarchy. Built only from `TONGXIN_REGISTRY`."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Column, String, Table, delete, insert, select
from sqlalchemy.ext.asyncio import AsyncConnection

from services.reporting.readmodel import ANY, Batch, ReadModel
from services.reporting.store import metadata
from shared.replica import apply_registry_records, record_json, registry_entities_table
from shared.taxonomy import SERVICE_TYPES, THEMES

registry_entities = registry_entities_table(metadata)

# Each region with every ancestor (itself included): reports roll up along the hierarchy.
region_ancestors = Table(
    "region_ancestors", metadata,
    Column("code", String(64), primary_key=True),
    Column("ancestor", String(64), primary_key=True, index=True),
    Column("ancestor_level", String(20), nullable=False),
)

# Each organisation with every ancestor (itself included): a unit's scope is its subtree.
organization_ancestors = Table(
    "organization_ancestors", metadata,
    Column("code", String(64), primary_key=True),
    Column("ancestor", String(64), primary_key=True, index=True),
)


async def _closure(batch: Batch, kind: str, table: Table, level: bool) -> None:
    """Rebuild one hierarchy's closure (thousands of rows at most; they rarely change)."""
    reg = registry_entities
    nodes = {r.id: (r.parent_id, r.record) for r in await batch.conn.execute(
        select(reg.c.id, reg.c.parent_id, reg.c.record).where(reg.c.kind == kind))}
    rows = []
    for code in nodes:
        seen, current = set(), code
        while current in nodes and current not in seen:  # a cycle must not hang us
            seen.add(current)
            row = {"code": code, "ancestor": current}
            if level:
                row["ancestor_level"] = record_json(nodes[current][1]).get("level", "")
            rows.append(row)
            current = nodes[current][0]
    await batch.conn.execute(delete(table))
    if rows:
        await batch.conn.execute(insert(table), rows)


async def on_registry(batch: Batch) -> None:
    kinds = {e.type.partition(".")[0] for e in batch.events}
    await apply_registry_records(batch.conn, registry_entities,
                                 [e.envelope for e in batch.events])
    if "region" in kinds:
        await _closure(batch, "region", region_ancestors, level=True)
    if "organization" in kinds:
        await _closure(batch, "organization", organization_ancestors, level=False)


MODEL = ReadModel(
    name="reporting-registry", stream="registry",
    tables=(registry_entities, region_ancestors, organization_ancestors),
    handlers={ANY: on_registry},
    description="names and hierarchies from the registry")


# -- labels for report rows -------------------------------------------------------------------

_KINDS = {"organization": "organization", "base": "base", "team": "team", "region": "region",
          "service_type": "service_type", "pairing": "pairing", "category": "service_type",
          "volunteer": "volunteer", "campaign": "campaign"}


async def label_map(conn: AsyncConnection, group_by: str, keys: list) -> dict:
    """{key: label} for a report's group keys: registry names, taxonomy labels, or the key."""
    found: dict[Any, Any] = {}
    if group_by == "theme":
        found = {k: THEMES.get(k, (k,))[0] for k in keys}
    elif group_by in _KINDS and keys:
        reg = registry_entities
        found = dict((await conn.execute(
            select(reg.c.id, reg.c.name).where(reg.c.kind == _KINDS[group_by],
                                               reg.c.id.in_([k for k in keys if k]))
        )).tuples().all())
        found = {k: v for k, v in found.items() if v}
        if _KINDS[group_by] == "service_type":
            found = {k: found.get(k) or SERVICE_TYPES.get(k, (k,))[0] for k in keys}
    if None in keys:
        found[None] = "（未填）"
    return found


async def code_map(conn: AsyncConnection, group_by: str, keys: list) -> dict:
    """{key: code} for a report's group keys, as a ledger shows them: a registry record's own
    `code` (never its UUID; empty when it has none), or the key itself where it is a code
    already (a month, a theme, a service type, a region)."""
    kind = _KINDS.get(group_by)
    if kind in (None, "service_type", "region"):
        return {k: k for k in keys}
    reg = registry_entities
    wanted = [k for k in keys if k]
    found = {} if not wanted else {id_: record_json(record).get("code") or "" for id_, record in
                                   await conn.execute(select(reg.c.id, reg.c.record).where(
                                       reg.c.kind == kind, reg.c.id.in_(wanted)))}
    return {k: found.get(k, "") for k in keys}
