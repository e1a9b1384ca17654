"""What the events service knows that decides whether an event is legal. No I/O here.

Each kind of state is a frozen dataclass; rules read a `Facts` snapshot and answer with new
state objects, which the acceptor writes in the same transaction that stores the events. The
store maps each kind to its table (`services/events/store.py`).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import date, datetime, timedelta, tzinfo
from typing import Any, Literal
from zoneinfo import ZoneInfo

ActivityState = Literal["scheduled", "logged", "retracted"]
NeedState = Literal["open", "claimed", "resolved", "closed"]
# "open": a sign-in without its sign-out, with no hours; it is never confirmed as it stands.
AttendanceStatus = Literal["open", "unconfirmed", "confirmed", "declined"]


@dataclass(frozen=True)
class Activity:
    activity_id: str
    state: ActivityState
    organization_id: str
    base_id: str
    units: tuple[str, ...] = ()          # the activity's unit and its stalls' units
    planned_on: date | None = None
    started_at: datetime | None = None
    ended_at: datetime | None = None
    logged_event_id: str | None = None
    report_due_at: datetime | None = None
    reported_at: datetime | None = None  # the first report's time
    # No report.overdue is owed any more: it was published, or the deadline had long passed
    # when the activity came in with a history load (years of records must not raise a
    # notice each; timeliness still counts their reports as missing).
    overdue: bool = False

    @property
    def key(self) -> tuple[str, ...]:
        return (self.activity_id,)

    @property
    def hours_long(self) -> float:
        if self.started_at is None or self.ended_at is None:
            return 0.0
        return (self.ended_at - self.started_at).total_seconds() / 3600


@dataclass(frozen=True)
class Need:
    need_id: str
    state: NeedState
    base_id: str
    pairing_id: str | None = None
    claimed_by: str | None = None
    submitted_at: datetime | None = None

    @property
    def key(self) -> tuple[str, ...]:
        return (self.need_id,)


@dataclass(frozen=True)
class Attendance:
    activity_id: str
    volunteer_id: str
    hours: float
    method: str
    status: AttendanceStatus
    signed_in_at: datetime | None = None
    signed_out_at: datetime | None = None

    @property
    def key(self) -> tuple[str, ...]:
        return (self.activity_id, self.volunteer_id)


State = Activity | Need | Attendance


@dataclass
class Facts:
    """A batch's view of the world: state rows and registry records it may need, loaded in
    bulk before the rules run. `put` records a rule's answer, so the next offer in the same
    batch sees it, and marks it for writing."""

    now: datetime
    report_due: timedelta = timedelta(days=7)  # after an activity ends, its report is due
    history: bool = False  # a bulk load of another system's past records
    # How far past `now` a record may be dated (TONGXIN_FUTURE_GRACE_HOURS), and the
    # programme's time zone, in which a date without a time begins.
    future_grace: timedelta = timedelta(hours=24)
    zone: tzinfo = field(default_factory=lambda: ZoneInfo("Asia/Shanghai"))
    activities: dict[tuple[str, ...], Activity] = field(default_factory=dict)
    needs: dict[tuple[str, ...], Need] = field(default_factory=dict)
    attendance: dict[tuple[str, ...], Attendance] = field(default_factory=dict)
    registry: dict[tuple[str, str], dict] = field(default_factory=dict)  # (kind, id) -> record
    pairings_by_base: dict[str, list[dict]] = field(default_factory=dict)
    photos: set[str] = field(default_factory=set)
    dirty: dict[tuple[type, tuple[str, ...]], State] = field(default_factory=dict)
    # Rows read from the database: written back as updates. Others are new, and inserting
    # them fails if another instance inserted the same key meanwhile (then judge again).
    loaded: set[tuple[type, tuple[str, ...]]] = field(default_factory=set)

    def know(self, state: State) -> None:
        """A state row as loaded from the database."""
        self._table(state)[state.key] = state
        self.loaded.add((type(state), state.key))

    def activity(self, activity_id: object) -> Activity | None:
        return self.activities.get((str(activity_id),))

    def need(self, need_id: str) -> Need | None:
        return self.needs.get((need_id,))

    def attendance_of(self, activity_id: object, volunteer_id: str) -> Attendance | None:
        return self.attendance.get((str(activity_id), volunteer_id))

    def volunteer_activities(self, volunteer_id: str) -> list[Activity]:
        """The activities a volunteer has attendance at (declined hours do not count)."""
        out = []
        for (activity_id, who), row in self.attendance.items():
            if who == volunteer_id and row.status != "declined":
                act = self.activities.get((activity_id,))
                if act is not None:
                    out.append(act)
        return out

    def _table(self, state: State) -> dict[tuple[str, ...], Any]:
        tables: dict[type, dict[tuple[str, ...], Any]] = {
            Activity: self.activities, Need: self.needs, Attendance: self.attendance}
        return tables[type(state)]

    def record(self, kind: str, id_: str | None) -> dict | None:
        return self.registry.get((kind, id_)) if id_ else None

    def regions_of(self, base_id: str) -> list[str]:
        """A base's region and every region above it (loaded with the base's record)."""
        out: list[str] = []
        code = (self.record("base", base_id) or {}).get("region_code")
        while code and code not in out:  # a cycle in bad data must not hang us
            out.append(code)
            code = (self.record("region", code) or {}).get("parent_code")
        return out

    def put(self, state: State) -> None:
        self._table(state)[state.key] = state
        self.dirty[(type(state), state.key)] = state


__all__ = ["Activity", "Attendance", "Facts", "Need", "State", "replace"]
