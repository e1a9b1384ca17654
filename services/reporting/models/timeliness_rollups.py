"""Rollups of report timeliness: what `/v1/reports/timeliness` and the year-end assessment read,
kept by the timeliness projection in the same transaction as its rows (`timeliness.py`), so a
report sums a few thousand rows instead of scanning every activity.

A rollup row is (unit, month, dimension, key, kind). `kind` is `report` (logged activities,
by the month of their local day) or `rota` (rota entries, by their planned month); `dimension`
is "" (the unit's month, `key` "") or `base` (`key` the base), the latter read only when a
report is narrowed to a base or region. A unit's subtree is resolved when a report is read, from
the organisation closure, so re-parenting a unit moves its figures at once.

Each row holds counts that do not depend on when a report is read: `entries` (activities
logged, or rota entries), `on_time`, `late`, and `open` (reports not yet in; rota entries not
yet logged). What does depend on "now" (`at`) — which open reports are still pending, which open
rota entries are not yet missed — is counted from the activities' rows at read time, and only
those whose deadline or grace is still ahead of `at` are read (few: the recent ones).

Every change applies per activity as new minus old: the handler's activities' contributions are
computed from their rows before and after it runs, and the difference is added. Redelivery and
replays change nothing; corrections, retractions, reports and notices restate exactly. Rows whose
`entries` falls to 0 are deleted, so a rebuild, batched differently, ends with the same rows.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    Column,
    ColumnElement,
    String,
    Table,
    delete,
    select,
    tuple_,
)
from sqlalchemy.ext.asyncio import AsyncConnection

from services.reporting.readmodel import Batch, Handler
from services.reporting.store import metadata
from shared.projection import upsert

FIGURES = ("entries", "on_time", "late", "open")
KEY = ("organization_id", "month", "dimension", "key", "kind")

rollup = Table(
    "tl_rollup", metadata,
    Column("organization_id", String(64), primary_key=True),
    Column("month", String(7), primary_key=True),
    Column("dimension", String(8), primary_key=True),   # "" or "base"
    Column("key", String(64), primary_key=True),        # "" or the base
    Column("kind", String(8), primary_key=True),        # report or rota
    *[Column(name, BigInteger, nullable=False) for name in FIGURES],
)

RowKey = tuple[str, str, str, str, str]
Contribution = dict[RowKey, list[int]]


def _chunks(items: list, size: int = 1000) -> Iterable[list]:
    """Parts of a list small enough for one statement's parameters (SQLite's limit)."""
    for i in range(0, len(items), size):
        yield items[i:i + size]


def _reported_by(reported: datetime | None, due: datetime | None) -> tuple[int, int, int]:
    """(on_time, late, open) of a logged activity's report, as the raw query compares them."""
    if reported is None:
        return 0, 0, 1
    if due is None:
        return 0, 0, 0
    return (1, 0, 0) if reported <= due else (0, 1, 0)


def contribution(rows: Iterable[Mapping[Any, Any]]) -> Contribution:
    """What activities' rows (as `tl_activities` holds them) add to the rollups."""
    out: Contribution = defaultdict(lambda: [0, 0, 0, 0])

    def add(unit: str, month: str, kind: str, base: str, figures: tuple[int, ...]) -> None:
        for dimension, key in (("", ""), ("base", base)):
            row = out[(unit, month, dimension, key, kind)]
            for i, v in enumerate(figures):
                row[i] += v

    for r in rows:
        if r["retracted"]:
            continue
        if r["logged"]:
            add(r["organization_id"], r["month"], "report", r["base_id"],
                (1, *_reported_by(r["reported_at"], r["due_at"])))
        if r["planned_on"] is not None:
            add(r["organization_id"], r["planned_month"], "rota", r["base_id"],
                (1, 0, 0, 0 if r["logged"] else 1))
    return out


async def stored(conn: AsyncConnection, table: Table, ids: list[str]) -> Contribution:
    """What these activities contribute now, from their rows."""
    rows: list[Mapping[Any, Any]] = []
    for part in _chunks(ids):
        rows += (await conn.execute(select(table).where(table.c.activity_id.in_(part))
                                    )).mappings().all()
    return contribution(rows)


async def apply(conn: AsyncConnection, old: Contribution, new: Contribution) -> None:
    """Add `new` minus `old` to the rollups; delete rows left with no entries."""
    delta: dict[RowKey, list[int]] = {}
    for sign, part in ((-1, old), (1, new)):
        for row_key, values in part.items():
            row = delta.setdefault(row_key, [0, 0, 0, 0])
            for i, v in enumerate(values):
                row[i] += sign * v
    delta = {k: v for k, v in delta.items() if any(v)}
    if not delta:
        return
    r = rollup
    stmt = upsert(conn, r)
    await conn.execute(
        stmt.on_conflict_do_update(index_elements=list(KEY),
                                   set_={n: r.c[n] + stmt.excluded[n] for n in FIGURES}),
        [{**dict(zip(KEY, k, strict=True)), **dict(zip(FIGURES, v, strict=True))}
         for k, v in delta.items()])
    for keys in _chunks([k for k, v in delta.items() if v[0] < 0]):
        await conn.execute(delete(r).where(tuple_(*(r.c[c] for c in KEY)).in_(keys),
                                           r.c.entries == 0))


def kept(table: Table, handler: Handler) -> Handler:
    """The handler, with the rollups following its activities' rows (new minus old)."""
    async def keep(batch: Batch) -> None:
        ids = list(dict.fromkeys(str(e.data.activity_id) for e in batch.events))
        old = await stored(batch.conn, table, ids)
        await handler(batch)
        await apply(batch.conn, old, await stored(batch.conn, table, ids))
    keep.__doc__ = handler.__doc__
    return keep


def months(scope_from: str | None, scope_to: str | None) -> list[ColumnElement[bool]]:
    """Rollup rows within whole months."""
    out: list[ColumnElement[bool]] = []
    if scope_from:
        out.append(rollup.c.month >= scope_from)
    if scope_to:
        out.append(rollup.c.month <= scope_to)
    return out
