"""Rules for attendance: hours recorded, then confirmed or declined by a unit."""

from __future__ import annotations

from services.events.rules.base import Verdict, accept, refuse
from services.events.rules.limits import hours_fit
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
    if not hours_fit(d.hours, act.hours_long):
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
    status: AttendanceStatus = "unconfirmed" if d.method == "self" else "confirmed"
    return accept(Attendance(str(d.activity_id), d.volunteer_id, d.hours, d.method, status))


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
