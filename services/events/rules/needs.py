"""The need life cycle (按需点单): open → claimed → resolved → closed; claimed → open by
returned (退单); resolved or closed → open by reopened; open or claimed → closed by linked (a
repeat of another need not closed, at the same base). A resolved or closed need may be answered
(feedback: satisfied, partly, unsatisfied) any number of times, its state unchanged. Anything
else is refused, naming the need's state. A missing earlier step may still be on its way from
another system: those refusals wait (on the bus, the offer is retried for a while)."""

from __future__ import annotations

from services.events.rules.base import Refuse, Verdict, accept, refuse
from services.events.state import Facts, Need, replace
from shared.envelope import Envelope
from shared.events import (
    NeedClaimed,
    NeedClosed,
    NeedFeedback,
    NeedFollowupAssigned,
    NeedLinked,
    NeedReopened,
    NeedResolved,
    NeedReturned,
    NeedSubmitted,
)

FIELD = "data.need_id"


def submitted(d: NeedSubmitted, env: Envelope, facts: Facts) -> Verdict:
    need = facts.need(d.need_id)
    if need is not None:
        return refuse(FIELD, f"need {d.need_id} was already submitted (it is {need.state})")
    pairing = facts.record("pairing", d.pairing_id)
    if pairing is not None and pairing.get("base_id") != d.base_id:
        return refuse("data.pairing_id", f"pairing {d.pairing_id} is with base "
                                         f"{pairing.get('base_id')}, not with {d.base_id}",
                      invalid=True)
    return accept(Need(d.need_id, "open", d.base_id, d.pairing_id,
                       submitted_at=env.occurred_at))


def claimed(d: NeedClaimed, env: Envelope, facts: Facts) -> Verdict:
    need = facts.need(d.need_id)
    if need is None:
        return _not_submitted(d.need_id)
    if need.state != "open":
        by = f" by {need.claimed_by}" if need.state == "claimed" else ""
        return refuse(FIELD, f"need {d.need_id} is {need.state}{by}; only an open need can be "
                             "claimed")
    pairing = facts.record("pairing", need.pairing_id)
    if pairing is not None:
        if pairing.get("organization_id") != d.organization_id:
            return refuse("data.organization_id", (
                f"need {d.need_id} is under pairing {need.pairing_id}; only its unit "
                f"{pairing.get('organization_id')} can claim it"))
    elif not _paired(need, d.organization_id, facts):
        return refuse("data.organization_id", (
            f"unit {d.organization_id} is not paired with base {need.base_id}; only a paired "
            "unit can claim its needs"))
    return accept(replace(need, state="claimed", claimed_by=d.organization_id))


def _paired(need: Need, organization_id: str, facts: Facts) -> bool:
    return any(p.get("organization_id") == organization_id
               for p in facts.pairings_by_base.get(need.base_id, []))


def returned(d: NeedReturned, env: Envelope, facts: Facts) -> Verdict:
    need = facts.need(d.need_id)
    if need is None:
        return _not_submitted(d.need_id)
    if refused := _not_by_its_claimer(need, d.organization_id, "returned"):
        return refused
    return accept(replace(need, state="open", claimed_by=None))


def followup_assigned(d: NeedFollowupAssigned, env: Envelope, facts: Facts) -> Verdict:
    need = facts.need(d.need_id)
    if need is None:
        return _not_submitted(d.need_id)
    if need.state == "closed":
        return refuse(FIELD, f"need {d.need_id} is closed; reopen it to follow it up")
    return accept()


def resolved(d: NeedResolved, env: Envelope, facts: Facts) -> Verdict:
    need = facts.need(d.need_id)
    if need is None:
        return _not_submitted(d.need_id)
    if refused := _not_by_its_claimer(need, d.organization_id, "resolved"):
        return refused
    if d.activity_id is not None:
        act = facts.activity(d.activity_id)
        if act is None or act.state != "logged":
            return refuse("data.activity_id", f"activity {d.activity_id} is "
                                              f"{act.state if act else 'not logged'}",
                          wait=act is None or act.state == "scheduled")
    return accept(replace(need, state="resolved"))


def closed(d: NeedClosed, env: Envelope, facts: Facts) -> Verdict:
    need = facts.need(d.need_id)
    if need is None:
        return _not_submitted(d.need_id)
    if need.state == "closed":
        return refuse(FIELD, f"need {d.need_id} is already closed")
    if d.outcome == "confirmed" and need.state != "resolved":
        return refuse("data.outcome", f"need {d.need_id} is {need.state}; it can be closed as "
                                      "confirmed only after it is resolved", wait=True)
    return accept(replace(need, state="closed"))


def reopened(d: NeedReopened, env: Envelope, facts: Facts) -> Verdict:
    need = facts.need(d.need_id)
    if need is None:
        return _not_submitted(d.need_id)
    if need.state not in ("resolved", "closed"):
        return refuse(FIELD, f"need {d.need_id} is {need.state}; only a resolved or closed "
                             "need can be reopened")
    return accept(replace(need, state="open", claimed_by=None))


def feedback(d: NeedFeedback, env: Envelope, facts: Facts) -> Verdict:
    need = facts.need(d.need_id)
    if need is None:
        return _not_submitted(d.need_id)
    if need.state not in ("resolved", "closed"):
        # A resolution may be on its way from the claimer's system: wait for it.
        return refuse(FIELD, f"need {d.need_id} is {need.state}; only a resolved or closed "
                             "need can be answered", wait=True)
    return accept()


def linked(d: NeedLinked, env: Envelope, facts: Facts) -> Verdict:
    """A repeat is closed, linked to its original: the unit linking them is the repeat's
    claimer, the original's, or (the repeat unclaimed) one that may claim it."""
    need, original = facts.need(d.need_id), facts.need(d.original_id)
    if need is None:
        return _not_submitted(d.need_id)
    if original is None:
        return refuse("data.original_id", f"need {d.original_id} has not been submitted",
                      wait=True)
    if d.original_id == d.need_id:
        return refuse("data.original_id", f"need {d.need_id} cannot repeat itself",
                      invalid=True)
    if need.state not in ("open", "claimed"):
        return refuse(FIELD, f"need {d.need_id} is {need.state}; only an open or claimed need "
                             "can be linked to another")
    if original.state == "closed":
        return refuse("data.original_id", f"need {d.original_id} is closed; a need can be "
                                          "linked only to one not closed")
    if original.base_id != need.base_id:
        return refuse("data.original_id", f"need {d.original_id} is at base "
                                          f"{original.base_id}, not at {need.base_id}")
    org = d.organization_id
    pairing = facts.record("pairing", need.pairing_id)
    may_claim = need.state == "open" and (
        pairing.get("organization_id") == org if pairing is not None
        else _paired(need, org, facts))
    if org not in (need.claimed_by, original.claimed_by) and not may_claim:
        return refuse("data.organization_id", f"unit {org} neither claimed need {d.need_id} "
                                              f"or {d.original_id} nor may claim it")
    return accept(replace(need, state="closed"))


def _not_submitted(need_id: str) -> Refuse:
    return refuse(FIELD, f"need {need_id} has not been submitted", wait=True)


def _not_by_its_claimer(need: Need, organization_id: str, verb: str) -> Refuse | None:
    """Only a claimed need is returned or resolved, and only by the unit that claimed it. An
    open one may yet be claimed by a message on its way: that refusal waits."""
    if need.state != "claimed":
        return refuse(FIELD, f"need {need.need_id} is {need.state}; only a claimed need can be "
                             f"{verb}", wait=need.state == "open")
    if need.claimed_by != organization_id:
        return refuse("data.organization_id", f"need {need.need_id} was claimed by "
                                              f"{need.claimed_by}, not by {organization_id}")
    return None
