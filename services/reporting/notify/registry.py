"""The notifier's projection over TONGXIN_REGISTRY: units', bases' and pairings' names and
pairings' units, in its own table (it never reads the read models'). A pairing arriving after
a need at its base (the registry stream lags the events stream here) announces that need."""

from __future__ import annotations

from nats.aio.msg import Msg
from sqlalchemy import and_, or_, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from services.reporting.notify import kinds
from services.reporting.notify.pairings import Pairings, need_submitted
from services.reporting.notify.project import Context
from services.reporting.notify.tables import needs, registry
from shared.envelope import Envelope
from shared.projection import upsert
from shared.replica import PERSONAL_FIELDS

KINDS = {"organization", "base", "pairing"}


def _row(env: Envelope) -> dict | None:
    kind, _, verb = env.type.partition(".")
    if kind not in KINDS:
        return None
    data = {k: v for k, v in env.data.items() if k not in PERSONAL_FIELDS}
    ref = lambda v: v if isinstance(v, str) and v else None  # noqa: E731
    return {"kind": kind, "id": str(data.get("id") or data.get("code")),
            "name": str(data.get("name") or "")[:200],
            "organization_id": ref(data.get("organization_id")),
            "base_id": ref(data.get("base_id")),
            "active": bool(data.get("active", verb != "deactivated")),
            "version": str(data.get("updated_at") or "")}


def make_apply(ctx: Context):
    async def apply(conn: AsyncConnection, msgs: list[Msg]) -> None:
        rows: dict[tuple[str, str], dict] = {}
        for msg in msgs:
            row = _row(Envelope.model_validate_json(msg.data))
            if row is None:
                continue
            key = (row["kind"], row["id"])
            if key not in rows or rows[key]["version"] <= row["version"]:
                rows[key] = row
        if not rows:
            return
        stmt = upsert(conn, registry)
        await conn.execute(stmt.on_conflict_do_update(
            index_elements=["kind", "id"],
            set_={c: stmt.excluded[c] for c in ("name", "organization_id", "base_id", "active",
                                                "version")},
            where=registry.c.version <= stmt.excluded.version), list(rows.values()))
        pairings = [r for r in rows.values() if r["kind"] == "pairing" and r["active"]]
        if pairings:
            await announce_waiting(conn, ctx, {p["id"] for p in pairings},
                                   {p["base_id"] for p in pairings if p["base_id"]})

    return apply


async def announce_waiting(conn: AsyncConnection, ctx: Context, pairing_ids: set[str],
                           base_ids: set[str]) -> None:
    """Needs not yet announced, under these pairings or at these bases: now they are, unless
    closed meanwhile (claimed or resolved ones too: what is raised must not depend on how far
    one projection ran ahead of the other)."""
    n = needs
    waiting = [dict(r._mapping) for r in await conn.execute(select(n).where(
        n.c.announced.is_(False), n.c.state != "closed",
        or_(n.c.pairing_id.in_(pairing_ids),
            and_(n.c.pairing_id.is_(None), n.c.base_id.in_(base_ids))))
        .order_by(n.c.need_id))]
    if not waiting:
        return
    known = await Pairings.load(conn, pairing_ids, base_ids)
    drafts, done = [], []
    for need in waiting:
        if units := known.recipients(need["base_id"], need["pairing_id"]):
            drafts += need_submitted(need, units)
            done.append(need["need_id"])
    if done:
        await conn.execute(update(n).where(n.c.need_id.in_(done)).values(announced=True))
        await kinds.insert(conn, ctx.subjects, ctx.tz, drafts)
