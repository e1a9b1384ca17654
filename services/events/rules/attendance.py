"""Rules for attendance: hours recorded, then confirmed or declined by a unit."""

from __future__ import annotations

from services.events.rules.base import Refuse, Verdict, accept, refuse
from services.events.rules.limits import hours_fit, not_ahead
from services.events.state import Activity, Attendance, AttendanceStatus, Facts, replace
from shared.envelope import Envelope
from shared.events import AttendanceConfirmed, AttendanceDeclined, AttendanceRecorded


def recorded(d: AttendanceRecorded, env: Envelope, facts: Facts) -> Verdict:
    act = facts.activity(d.activity_id)
    if act is None or act.state == "scheduled":
        return refuse("data.activity_id", f"activity {d.activity_id} has not been logged; "
                                          "attendance is recorded at a logged activity",
                      wait=True)
    if act.state == "retracted":
        return refuse("data.activity_id", f"activity {d.activity_id} was retracted")
    if d.signed_in_at is not None:
        if (refused := _signed(d, act, facts)) is not None:
            return refused
    hours = d.hours or 0.0  # an open sign-in has none yet
    if not hours_fit(hours, act.hours_long):
        return refuse("data.hours", f"{d.hours:g} h is longer than the activity "
                                    f"({act.hours_long:g} h)")
    for other in facts.volunteer_activities(d.volunteer_id):
        if other.activity_id != act.activity_id and other.state == "logged" \
                and _overlap(act, other):
            return refuse("data.volunteer_id", (
                f"volunteer {d.volunteer_id} is recorded at activity {other.activity_id} "
                f"({other.started_at:%Y-%m-%d %H:%M}–{other.ended_at:%H:%M}), which overlaps "
                "this one"))
    # Hours a volunteer reports themselves wait for their unit; the other methods are a unit's.
    # A sign-in still open has no hours, and is not confirmed: nothing fills it in.
    status: AttendanceStatus = "open" if d.open else \
        "unconfirmed" if d.method == "self" else "confirmed"
    return accept(Attendance(str(d.activity_id), d.volunteer_id, hours, d.method, status,
                             d.signed_in_at, d.signed_out_at))


def _signed(d: AttendanceRecorded, act: Activity, facts: Facts) -> Refuse | None:
    """A sign-in happens within the activity's time, and a sign-out never reopens."""
    if act.started_at is None or act.ended_at is None:
        return None
    for field, moment in (("signed_in_at", d.signed_in_at), ("signed_out_at", d.signed_out_at)):
        if moment is None:
            continue
        if (ahead := not_ahead(f"data.{field}", moment, facts)) is not None:
            return ahead
        if not act.started_at <= moment <= act.ended_at:
            start, end = act.started_at.astimezone(facts.zone), act.ended_at.astimezone(facts.zone)
            return refuse(f"data.{field}", (
                f"{moment.astimezone(facts.zone):%Y-%m-%d %H:%M} is outside the activity's time "
                f"({start:%Y-%m-%d %H:%M}–{end:%H:%M}); sign in and out while it runs"),
                invalid=True)
    row = facts.attendance_of(d.activity_id, d.volunteer_id)
    if d.open and row is not None and row.signed_out_at is not None:
        return refuse("data.volunteer_id", (
            f"volunteer {d.volunteer_id} already signed out of activity {d.activity_id} at "
            f"{row.signed_out_at.astimezone(facts.zone):%H:%M}"))
    return None


def confirmed(d: AttendanceConfirmed, env: Envelope, facts: Facts) -> Verdict:
    return _judged(d, facts, "confirmed")


def declined(d: AttendanceDeclined, env: Envelope, facts: Facts) -> Verdict:
    return _judged(d, facts, "declined")


def _judged(d: AttendanceConfirmed | AttendanceDeclined, facts: Facts,
            status: AttendanceStatus) -> Verdict:
    row = facts.attendance_of(d.activity_id, d.volunteer_id)
    if row is None:
        return refuse("data.volunteer_id", f"no hours are recorded for volunteer "
                                           f"{d.volunteer_id} at activity {d.activity_id}",
                      wait=True)
    if row.status == status:
        return refuse("data.volunteer_id", f"these hours are already {status}")
    if row.status == "open" and status == "confirmed":
        return refuse("data.volunteer_id", (
            f"volunteer {d.volunteer_id} has not signed out of activity {d.activity_id}: "
            "there are no signed hours to confirm (record the hours as the organiser instead)"))
    act = facts.activity(d.activity_id)
    volunteer = facts.record("volunteer", d.volunteer_id) or {}
    units = set(act.units if act else ()) | {volunteer.get("organization_id")}
    if d.organization_id not in units:
        return refuse("data.organization_id", (
            f"unit {d.organization_id} is neither the activity's unit nor the volunteer's; "
            "it cannot judge these hours"))
    return accept(replace(row, status=status))


def _overlap(a: Activity, b: Activity) -> bool:
    if None in (a.started_at, a.ended_at, b.started_at, b.ended_at):
        return False
    return a.started_at < b.ended_at and b.started_at < a.ended_at  # type: ignore[operator]
