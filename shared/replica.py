"""A service's own copy of registry facts, kept only from `TONGXIN_REGISTRY` events.

The events service checks references against it; reporting takes labels and hierarchy from it.
Same table and code in both, each in its own database.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable
from dataclasses import dataclass

from nats.aio.msg import Msg
from sqlalchemy import JSON, Boolean, Column, MetaData, String, Table, select
from sqlalchemy.ext.asyncio import AsyncConnection

from shared.envelope import Envelope
from shared.projection import upsert

log = logging.getLogger(__name__)

# Never kept outside the registry, even if a record carried them by mistake.
PERSONAL_FIELDS = frozenset({"phone", "id_number", "contact", "address"})


def registry_entities_table(metadata: MetaData) -> Table:
    return Table(
        "registry_entities", metadata,
        Column("kind", String(40), primary_key=True),
        Column("id", String(64), primary_key=True),
        Column("name", String(200), nullable=False, server_default=""),
        Column("parent_id", String(64), nullable=True),
        Column("region_code", String(64), nullable=True),
        # The record's unit and base (teams, volunteers, pairings, campaigns): e.g. a base's
        # pairings found by an indexed query rather than by reading every record.
        Column("organization_id", String(64), nullable=True, index=True),
        Column("base_id", String(64), nullable=True, index=True),
        Column("active", Boolean, nullable=False, server_default="1"),
        # The record's updated_at: an older version arriving late never replaces a newer one.
        Column("version", String(40), nullable=False, server_default=""),
        Column("record", JSON, nullable=False),
    )


def replica_row(kind: str, verb: str, data: dict) -> dict:
    """A registry record as the replica keeps it (personal fields dropped)."""
    record = {k: v for k, v in data.items() if k not in PERSONAL_FIELDS}
    return {
        "kind": kind,
        "id": str(record.get("id") or record.get("code")),
        "name": str(record.get("name") or record.get("label_zh") or ""),
        "parent_id": record.get("parent_id") or record.get("parent_code"),
        "region_code": record.get("region_code"),
        "organization_id": _ref(record.get("organization_id")),
        "base_id": _ref(record.get("base_id")),
        "active": bool(record.get("active", verb != "deactivated")),
        "version": str(record.get("updated_at") or ""),
        "record": record,
    }


def _ref(value) -> str | None:
    """An id to index by; anything else (a list of ids) is only in the record."""
    return value if isinstance(value, str) and value else None


async def apply_registry_events(conn: AsyncConnection, table: Table, msgs: list[Msg]) -> None:
    """Upsert each record; later events in the batch win, as they came later in the stream."""
    envelopes = []
    for msg in msgs:
        try:
            envelopes.append(Envelope.model_validate_json(msg.data))
        except Exception:  # the registry is the only publisher; a bad record must not block
            log.exception("unreadable registry event on %s", msg.subject)
    await apply_registry_records(conn, table, envelopes)


async def apply_registry_records(conn: AsyncConnection, table: Table,
                                 envelopes: Iterable[Envelope]) -> None:
    rows: dict[tuple[str, str], dict] = {}
    for env in envelopes:
        try:
            kind, _, verb = env.type.partition(".")
            row = replica_row(kind, verb, env.data)
        except Exception:
            log.exception("unreadable registry record %s", env.type)
            continue
        key = (row["kind"], row["id"])
        if key not in rows or rows[key]["version"] <= row["version"]:
            rows[key] = row
    if not rows:
        return
    stmt = upsert(conn, table)
    stmt = stmt.on_conflict_do_update(
        index_elements=["kind", "id"],
        set_={c: stmt.excluded[c] for c in ("name", "parent_id", "region_code", "organization_id",
                                            "base_id", "active", "version", "record")},
        where=table.c.version <= stmt.excluded.version,
    )
    await conn.execute(stmt, list(rows.values()))


@dataclass(frozen=True)
class Known:
    active: bool
    record: dict


async def records_of(conn: AsyncConnection, table: Table,
                     wanted: Iterable[tuple[str, str]]) -> dict[tuple[str, str], Known]:
    """{(kind, id): Known} for each wanted reference the replica knows. Two expanding INs (one
    cached statement, whatever the count) and the pairs picked out here."""
    wanted = set(wanted)
    if not wanted:
        return {}
    kinds, ids = {k for k, _ in wanted}, {i for _, i in wanted}
    result = await conn.execute(select(table.c.kind, table.c.id, table.c.active, table.c.record)
                                .where(table.c.kind.in_(kinds), table.c.id.in_(ids)))
    return {(k, i): Known(bool(a), record_json(r)) for k, i, a, r in result if (k, i) in wanted}


def record_json(value) -> dict:
    return value if isinstance(value, dict) else json.loads(value)
