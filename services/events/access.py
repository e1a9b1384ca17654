"""What a key or login may offer: events only for its own organisation and the units under it
(every organisation the event names, stalls' too), and hours confirmed or declined only by an
organiser (or an admin) above the unit. The hierarchy is the replica's copy of the registry."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncConnection

from services.events import store
from services.events.domain import Offer
from shared.auth import Principal, in_subtree
from shared.errors import FieldError
from shared.event_types import EVENT_TYPES

ORGANISERS_ONLY = frozenset({"attendance.confirmed", "attendance.declined", "period.approved"})


def _parents(conn: AsyncConnection):
    t = store.registry_entities

    async def parent_of(id_: str) -> str | None:
        return (await conn.execute(select(t.c.parent_id).where(
            t.c.kind == "organization", t.c.id == id_))).scalar_one_or_none()

    return parent_of


async def visible(conn: AsyncConnection, principal: Principal, event_type: str,
                  data: dict) -> bool:
    """Whether a stored event is for the principal's eyes: one of the organisations it names
    is in the principal's subtree (an event naming none is the programme's, for the
    unbound)."""
    root = principal.scope
    if root is None:
        return True
    kind = EVENT_TYPES.get(event_type)
    orgs = [id_ for _, k, id_ in (kind.references_in(data) if kind else ())
            if k == "organization"]
    parent_of = _parents(conn)
    for org in orgs:
        if await in_subtree(org, root, parent_of):
            return True
    return False


async def refusals(conn: AsyncConnection, principal: Principal,
                   offer: Offer) -> list[FieldError]:
    if offer.type.name in ORGANISERS_ONLY and principal.role not in ("admin", "organiser"):
        what = ("approves its figures" if offer.type.name == "period.approved"
                else "confirms or declines its volunteers' hours")
        return [FieldError(field="type", message=(
            f"only an organiser of the unit {what}, not a {principal.role}"))]
    root = principal.scope
    if root is None:
        return []
    if offer.type.name == "period.approved" and not offer.envelope.data.get("organization_id"):
        return [FieldError(field="data.organization_id", message=(
            f"{principal.label} approves the figures of organisation {root!r} or a unit "
            f"under it: name it"))]
    parent_of = _parents(conn)
    out = []
    for field, kind, id_ in offer.references:
        if kind == "organization" and not await in_subtree(id_, root, parent_of):
            out.append(FieldError(field=field, message=(
                f"{principal.label} acts for organisation {root!r} and the units under it, "
                f"not {id_!r}")))
    return out
