"""Rules for reports owed after service (服务旗帜接传)."""

from __future__ import annotations

from services.events.rules.base import Refuse, Verdict, accept, refuse
from services.events.state import Facts, replace
from shared.envelope import Envelope
from shared.errors import FieldError
from shared.events import ReportOverdue, ReportSubmitted

FIELD = "data.activity_id"


def submitted(d: ReportSubmitted, env: Envelope, facts: Facts) -> Verdict:
    act = facts.activity(d.activity_id)
    if act is None or act.state == "scheduled":
        return refuse(FIELD, f"activity {d.activity_id} has not been logged", wait=True)
    if act.state == "retracted":
        return refuse(FIELD, f"activity {d.activity_id} was retracted; no report is owed")
    if d.organization_id not in act.units:
        return refuse("data.organization_id", f"unit {d.organization_id} did not serve at "
                                              f"activity {d.activity_id}")
    missing = [FieldError(field=f"data.photos[{i}]", message=f"no photo {ref} was uploaded "
                                                             "(POST /v1/photos first)")
               for i, ref in enumerate(d.photos) if ref not in facts.photos]
    if missing:
        return Refuse(tuple(missing), invalid=True)
    # A later report adds to the first; timeliness counts from the first.
    return accept(replace(act, reported_at=act.reported_at or env.occurred_at))


def overdue(d: ReportOverdue, env: Envelope, facts: Facts) -> Verdict:
    act = facts.activity(d.activity_id)
    if act is None or act.state != "logged" or act.reported_at is not None or act.overdue:
        return refuse(FIELD, f"activity {d.activity_id} owes no report now")
    return accept(replace(act, overdue=True))
