"""Who hears about a need: the unit of its pairing, or, for a need at a base without a pairing,
every unit paired with that base (from the notifier's own copy of the registry)."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date, datetime

from sqlalchemy import or_, select
from sqlalchemy.ext.asyncio import AsyncConnection

from services.reporting.notify.kinds import Draft
from services.reporting.notify.tables import registry


@dataclass
class Pairings:
    unit_of: dict[str, str] = field(default_factory=dict)            # pairing -> unit
    at_base: dict[str, set[str]] = field(default_factory=lambda: defaultdict(set))

    @classmethod
    async def load(cls, conn: AsyncConnection, pairing_ids: Iterable[str],
                   base_ids: Iterable[str]) -> Pairings:
        pairing_ids, base_ids = set(pairing_ids), set(base_ids)
        out = cls()
        if not pairing_ids and not base_ids:
            return out
        r = registry
        rows = await conn.execute(
            select(r.c.id, r.c.organization_id, r.c.base_id)
            .where(r.c.kind == "pairing", r.c.active.is_(True), r.c.organization_id.is_not(None),
                   or_(r.c.id.in_(pairing_ids), r.c.base_id.in_(base_ids))))
        for pairing_id, unit, base in rows:
            out.unit_of[pairing_id] = unit
            if base:
                out.at_base[base].add(unit)
        return out

    def recipients(self, base_id: str, pairing_id: str | None) -> list[str]:
        """Empty while the pairing (or any pairing at the base) is not known yet."""
        if pairing_id:
            unit = self.unit_of.get(pairing_id)
            return [unit] if unit else []
        return sorted(self.at_base.get(base_id, ()))


def need_submitted(need: dict, units: list[str]) -> list[Draft]:
    return [Draft("need_submitted", unit, need["submitted_at"], "need", need["need_id"],
                  "submitted", {"base_id": need["base_id"], "category": need["category"],
                                "urgency": need["urgency"]}) for unit in units]


def followup_overdue(need: dict, units: list[str], deadline: datetime) -> list[Draft]:
    due_on: date = need["followup_due_on"]
    return [Draft("followup_overdue", unit, deadline, "need", need["need_id"],
                  due_on.isoformat(), {"base_id": need["base_id"], "due_on": due_on})
            for unit in units]
