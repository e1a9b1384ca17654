"""Rules for activities: scheduled → logged → corrected …, retracted for good."""

from __future__ import annotations

from services.events.rules.base import Refuse, Verdict, accept, refuse
from services.events.rules.limits import hours_fit, not_ahead
from services.events.state import Activity, Facts, replace
from shared.envelope import Envelope
from shared.events import (
    ActivityCorrected,
    ActivityFigures,
    ActivityLogged,
    ActivityPlan,
    ActivityRetracted,
    ActivityScheduled,
)

FIELD = "data.activity_id"


def scheduled(d: ActivityScheduled, env: Envelope, facts: Facts) -> Verdict:
    if misplaced := _misplaced(d, facts):
        return misplaced
    act = facts.activity(d.activity_id)
    if act is not None and act.state != "scheduled":  # a plan may be re-planned until logged
        return refuse(FIELD, f"activity {d.activity_id} is already {act.state}; a rota entry "
                             "cannot replace it")
    return accept(Activity(str(d.activity_id), "scheduled", d.organization_id, d.base_id,
                           units=(d.organization_id,), planned_on=d.planned_on))


def logged(d: ActivityLogged, env: Envelope, facts: Facts) -> Verdict:
    if wrong := _misplaced(d, facts) or _impossible(d, facts):
        return wrong
    act = facts.activity(d.activity_id)
    if act is not None and act.state == "logged":
        return refuse(FIELD, f"activity {d.activity_id} was already logged (event "
                             f"{act.logged_event_id}); send activity.corrected to change its "
                             "figures")
    if act is not None and act.state == "retracted":
        return refuse(FIELD, f"activity {d.activity_id} was retracted; it cannot be logged again")
    return accept(_with_figures(act, d, facts, logged_event_id=str(env.event_id)))


def corrected(d: ActivityCorrected, env: Envelope, facts: Facts) -> Verdict:
    if wrong := _misplaced(d, facts) or _impossible(d, facts):
        return wrong
    act = facts.activity(d.activity_id)
    if act is None or act.state == "scheduled":
        return refuse(FIELD, f"activity {d.activity_id} has not been logged; only a logged "
                             "activity can be corrected", wait=True)
    if act.state == "retracted":
        return refuse(FIELD, f"activity {d.activity_id} was retracted; a retracted activity "
                             "cannot be corrected")
    return accept(_with_figures(act, d, facts, logged_event_id=act.logged_event_id))


def retracted(d: ActivityRetracted, env: Envelope, facts: Facts) -> Verdict:
    act = facts.activity(d.activity_id)
    if act is None:
        return refuse(FIELD, f"activity {d.activity_id} has not been logged or scheduled",
                      wait=True)
    if act.state == "retracted":
        return refuse(FIELD, f"activity {d.activity_id} was already retracted")
    return accept(replace(act, state="retracted"))


def _misplaced(d: ActivityPlan, facts: Facts) -> Refuse | None:
    """A team serves for its own unit; a pairing is between one unit and one base."""
    team = facts.record("team", d.team_id)
    if team is not None and team.get("organization_id") != d.organization_id:
        return refuse("data.team_id", f"team {d.team_id!r} belongs to another organisation "
                                      f"({team.get('organization_id')})", invalid=True)
    pairing = facts.record("pairing", d.pairing_id)
    if pairing is not None and pairing.get("base_id") != d.base_id:
        return refuse("data.pairing_id", f"pairing {d.pairing_id!r} is with base "
                                         f"{pairing.get('base_id')}, not {d.base_id}",
                      invalid=True)
    units = d.units if isinstance(d, ActivityFigures) else (d.organization_id,)
    if pairing is not None and pairing.get("organization_id") not in units:
        return refuse("data.pairing_id", f"pairing {d.pairing_id!r} is unit "
                                         f"{pairing.get('organization_id')}'s, not this "
                                         "activity's", invalid=True)
    return None


def _impossible(d: ActivityFigures, facts: Facts) -> Refuse | None:
    """An activity that has not ended yet (past the grace), or more volunteer hours than its
    turn-outs could give in its length (the rule attendance is held to, per person)."""
    if ahead := not_ahead("data.ended_at", d.ended_at, facts):
        return ahead
    if not hours_fit(d.volunteer_hours, d.hours_long, d.volunteers):
        return refuse("data.volunteer_hours", (
            f"{d.volunteer_hours:g} h is more than the activity's {d.hours_long:g} h × "
            f"{d.volunteers} turn-outs ({d.hours_long * d.volunteers:g} h)"),
            invalid=True)
    return None


def _with_figures(act: Activity | None, d: ActivityFigures, facts: Facts,
                  logged_event_id: str | None) -> Activity:
    """The activity as `d` describes it. Its report falls due after it ends; a deadline that
    has fired, or a report already in, stays as it was."""
    due = d.ended_at + facts.report_due
    if act is not None and (act.overdue or act.reported_at is not None):
        due = act.report_due_at or due
    overdue = bool(act and act.overdue) or (facts.history and due <= facts.now)
    return Activity(
        activity_id=str(d.activity_id), state="logged", organization_id=d.organization_id,
        base_id=d.base_id, units=d.units, planned_on=act.planned_on if act else None,
        started_at=d.started_at, ended_at=d.ended_at, logged_event_id=logged_event_id,
        report_due_at=due, reported_at=act.reported_at if act else None,
        overdue=overdue)
