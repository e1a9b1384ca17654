"""Every event type, declared once (CONTRACT.md, "Event types").

An entry says what a type's `data` is (its model), what it refers to in the registry (a data
path -> a registry kind; `[]` walks a list), what makes two offers "the same thing" (its
identity key), and who may send it. The events service validates, checks references and routes
to its rule from this table alone; the AsyncAPI document and the OpenAPI components are made
from it. Adding a type: an entry here, a rule in `services/events/rules/`, and their tests.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any, Literal

from pydantic import create_model

from shared import events as ev
from shared.envelope import Envelope

Sender = Literal["outside", "tongxin"]

_ACTIVITY_REFS = {"organization_id": "organization", "base_id": "base", "team_id": "team",
                  "pairing_id": "pairing", "service_types[]": "service_type"}
_FIGURES_REFS = {**_ACTIVITY_REFS, "stalls[].organization_id": "organization",
                 "stalls[].service_type": "service_type", "outputs[].indicator": "indicator"}


@dataclass(frozen=True)
class EventType:
    name: str
    data: type[ev.EventData]
    summary: str
    key: tuple[str, ...] = ()          # identity: the data fields naming what it is about
    references: dict[str, str] = field(default_factory=dict)  # data path -> registry kind
    sender: Sender = "outside"         # "tongxin": published by Tongxin, never accepted

    @cached_property
    def envelope(self) -> type[Envelope]:
        """The envelope of this type, for the AsyncAPI document and OpenAPI."""
        name = "".join(p.capitalize() for p in self.name.replace("_", ".").split(".")) + "Event"
        return create_model(name, __base__=Envelope, __doc__=self.summary,
                            type=(Literal[self.name], self.name),  # type: ignore[arg-type, valid-type]
                            data=(self.data, ...))

    def references_in(self, data: dict[str, Any]) -> Iterator[tuple[str, str, str]]:
        """(field, registry kind, id) for each reference `data` (normalised JSON) makes."""
        for path, kind in self.references.items():
            for where, value in _walk(data, path.split(".")):
                if value is not None:
                    yield f"data.{where}", kind, str(value)


def _walk(value: Any, parts: list[str], where: str = "") -> Iterator[tuple[str, Any]]:
    """Values at a path such as `stalls[].organization_id`, each with its concrete place."""
    if not parts:
        yield where, value
        return
    head, rest = parts[0], parts[1:]
    many = head.endswith("[]")
    name = head.removesuffix("[]")
    if not isinstance(value, dict) or value.get(name) is None:
        return
    place = f"{where}.{name}" if where else name
    if many:
        for i, item in enumerate(value[name]):
            yield from _walk(item, rest, f"{place}[{i}]") if rest else [(f"{place}[{i}]", item)]
    else:
        yield from _walk(value[name], rest, place)


EVENT_TYPES: dict[str, EventType] = {t.name: t for t in (
    # Activities
    EventType("activity.scheduled", ev.ActivityScheduled,
              "A rota entry: a unit is to serve at a base on a day. Logging the same "
              "activity_id fulfils it; one never logged 7 days after planned_on is missed.",
              key=("activity_id",), references=_ACTIVITY_REFS),
    EventType("activity.logged", ev.ActivityLogged,
              "A service activity with its figures (a fair: with its stalls). Its report "
              "falls due TONGXIN_REPORT_DUE_DAYS after it ends.",
              key=("activity_id",), references=_FIGURES_REFS),
    EventType("activity.corrected", ev.ActivityCorrected,
              "The complete corrected data of a logged activity, and why.",
              key=("activity_id",), references=_FIGURES_REFS),
    EventType("activity.retracted", ev.ActivityRetracted,
              "An activity stops counting everywhere, for good.", key=("activity_id",)),
    # Attendance and hours
    EventType("attendance.recorded", ev.AttendanceRecorded,
              "A volunteer's hours at an activity; recorded again, the hours are replaced. "
              "Self-reported hours wait for confirmation.",
              key=("activity_id", "volunteer_id"), references={"volunteer_id": "volunteer"}),
    EventType("attendance.confirmed", ev.AttendanceConfirmed,
              "A unit confirms a volunteer's recorded hours.",
              key=("activity_id", "volunteer_id"),
              references={"volunteer_id": "volunteer", "organization_id": "organization"}),
    EventType("attendance.declined", ev.AttendanceDeclined,
              "A unit declines a volunteer's recorded hours, with the reason.",
              key=("activity_id", "volunteer_id"),
              references={"volunteer_id": "volunteer", "organization_id": "organization"}),
    # Needs (按需点单)
    EventType("need.submitted", ev.NeedSubmitted,
              "A need residents asked for, at a base (and perhaps under a pairing).",
              key=("need_id",), references={"base_id": "base", "pairing_id": "pairing",
                                            "category": "service_type"}),
    EventType("need.claimed", ev.NeedClaimed, "A unit takes an open need.",
              key=("need_id",), references={"organization_id": "organization"}),
    EventType("need.returned", ev.NeedReturned, "The claimer hands a need back (退单).",
              key=("need_id",), references={"organization_id": "organization"}),
    EventType("need.followup_assigned", ev.NeedFollowupAssigned,
              "What cannot be solved at once goes to a named person with a due date.",
              key=("need_id",), references={"assignee_id": "volunteer"}),
    EventType("need.resolved", ev.NeedResolved, "The claimer has resolved the need.",
              key=("need_id",), references={"organization_id": "organization"}),
    EventType("need.closed", ev.NeedClosed,
              "A need is closed: confirmed, unresolved, withdrawn or a duplicate.",
              key=("need_id",)),
    EventType("need.reopened", ev.NeedReopened,
              "A resolved or closed need is open again.", key=("need_id",)),
    EventType("need.feedback", ev.NeedFeedback,
              "The community's or resident's answer about a resolved or closed need: "
              "satisfied, partly or unsatisfied (with a reason, never reported).",
              key=("need_id",)),
    EventType("need.linked", ev.NeedLinked,
              "A repeat of another need at the same base, linked by the unit handling it: "
              "closed as a duplicate, counted once with the original.",
              key=("need_id",), references={"organization_id": "organization"}),
    # Reports owed after service (服务旗帜接传)
    EventType("report.submitted", ev.ReportSubmitted,
              "A unit's summary of an activity, with photo refs from POST /v1/photos.",
              key=("activity_id",), references={"organization_id": "organization"}),
    EventType("report.overdue", ev.ReportOverdue,
              "Published once per activity whose report is missing at its deadline.",
              key=("activity_id",), sender="tongxin"),
    # Campaigns (敲门行动)
    EventType("campaign.visit_recorded", ev.CampaignVisitRecorded,
              "Households visited at a base during a door-knocking campaign.",
              references={"campaign_id": "campaign", "base_id": "base"}),
    # Approved periods (数据审定)
    EventType("period.approved", ev.PeriodApproved,
              "An organiser approves a period's figures for a scope (a unit's subtree or a "
              "region), as they stood at `as_of`. Later events that change them are accepted "
              "and shown as a restatement until the period is approved again.",
              references={"organization_id": "organization", "region": "region"}),
)}
