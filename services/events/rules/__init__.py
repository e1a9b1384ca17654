"""The rule of each event type: a pure function deciding whether an offer is legal given what
the events service knows (`services.events.state.Facts`). One entry per type in
`shared.event_types.EVENT_TYPES`; a test checks the two tables name the same types. `judge`
adds what holds for every type: nothing happened ahead of the clock."""

from __future__ import annotations

from services.events.rules import activities, attendance, campaigns, needs, periods, reports
from services.events.rules.base import Accept, Refuse, Rule, Verdict
from services.events.rules.limits import not_ahead
from services.events.state import Facts
from shared.envelope import Envelope

RULES: dict[str, Rule] = {
    "activity.scheduled": activities.scheduled,
    "activity.logged": activities.logged,
    "activity.corrected": activities.corrected,
    "activity.retracted": activities.retracted,
    "attendance.recorded": attendance.recorded,
    "attendance.confirmed": attendance.confirmed,
    "attendance.declined": attendance.declined,
    "need.submitted": needs.submitted,
    "need.claimed": needs.claimed,
    "need.returned": needs.returned,
    "need.followup_assigned": needs.followup_assigned,
    "need.resolved": needs.resolved,
    "need.closed": needs.closed,
    "need.reopened": needs.reopened,
    "need.feedback": needs.feedback,
    "need.linked": needs.linked,
    "report.submitted": reports.submitted,
    "report.overdue": reports.overdue,
    "campaign.visit_recorded": campaigns.visit_recorded,
    "period.approved": periods.approved,
}



def judge(event_type: str, data: object, env: Envelope, facts: Facts) -> Verdict:
    """An offer's verdict: refused if it says it occurred past the clock's grace, else its
    type's rule."""
    return not_ahead("occurred_at", env.occurred_at, facts) or RULES[event_type](data, env, facts)


__all__ = ["RULES", "Accept", "Refuse", "Rule", "Verdict", "judge"]
