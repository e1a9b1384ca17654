"""The `data` of each event type (CONTRACT.md), validated by pydantic v2.

One model per type; `shared.event_types.EVENT_TYPES` declares each type with its model,
references, identity and senders. The events service validates every offer, from HTTP, the bus
or a bulk file, through these and nothing else, and stores the normalised form they produce.
"""

from __future__ import annotations

import re
import unicodedata
import uuid
from decimal import Decimal
from typing import Annotated, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationInfo,
    field_validator,
    model_serializer,
)

from shared.dates import Day, Moment
from shared.text import refuse_nul

Ref = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=64)]
Code = Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9_]{0,39}$")]
PhotoRef = Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{64}$")]
Theme = Literal["city_quality", "new_countryside", "harmonious_society", "enterprise_upgrade",
                "other"]

# A mainland mobile number (perhaps after +86) or a resident ID number, standing alone.
_PERSONAL = re.compile(r"(?<![0-9])(?:\+?86|0086)?(1[3-9][0-9]{9}|[0-9]{17}[0-9Xx])(?![0-9Xx])")
_SEPARATORS = re.compile(r"[\s\-()]")


def _no_personal_data(text: str) -> str:
    """Residents' phone and ID numbers stay with the channel that took them: an event is
    published to every read model and kept forever, so it must never carry them. Full-width
    digits and spaces (NFKC) and separators do not hide a number."""
    if _PERSONAL.search(_SEPARATORS.sub("", unicodedata.normalize("NFKC", text))):
        raise ValueError("looks like a phone or ID number; personal data stays with the "
                         "channel that collected it and must not be sent to Tongxin")
    return text


_NoPersonalData = AfterValidator(_no_personal_data)
Title = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200),
                  _NoPersonalData]
Summary = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1,
                                           max_length=5000), _NoPersonalData]
Reason = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=1000),
                   _NoPersonalData]
Note = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=2000),
                 _NoPersonalData]


class EventData(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    _no_nul = field_validator("*", mode="before")(refuse_nul)


# -- activities ---------------------------------------------------------------------------

class Donation(EventData):
    item: str = Field(min_length=1, max_length=200)
    quantity: Decimal = Field(gt=0, max_digits=14, decimal_places=3)
    unit: str = Field(min_length=1, max_length=20)
    value_cny: Decimal = Field(ge=0, max_digits=14, decimal_places=2)


class Stall(EventData):
    """One booth at a fair (大集市): its figures count for its unit."""

    service_type: Code
    served: int = Field(ge=0, le=10_000_000)
    organization_id: Ref | None = Field(None, description="default: the activity's unit")
    title: Title | None = None
    volunteers: int | None = Field(None, ge=0, le=1_000_000)


class Output(EventData):
    """A countable result beyond people served (libraries built, students funded, ...)."""

    indicator: Code
    quantity: Decimal = Field(ge=0, max_digits=14, decimal_places=3)


class ActivityPlan(EventData):
    """Who serves where, and what kind of service: shared by a plan and a logged activity."""

    activity_id: uuid.UUID
    organization_id: Ref
    base_id: Ref
    team_id: Ref | None = None
    pairing_id: Ref | None = None
    project_id: Ref | None = None
    title: Title


class ActivityScheduled(ActivityPlan):
    """A rota entry: logging the same activity_id later fulfils it."""

    service_types: list[Code] = Field(min_length=1, max_length=20)
    theme: Theme
    planned_on: Day


class ActivityFigures(ActivityPlan):
    """What an activity did: shared by `activity.logged` and `activity.corrected`.

    `stalls` come before `service_types` and `served` so those two can be checked against
    them: at a fair, they are the stalls' (a different `served` is refused, naming it)."""

    stalls: list[Stall] = Field(default_factory=list, max_length=500)
    service_types: list[Code] = Field(default_factory=list, max_length=60,
                                      validate_default=True)
    theme: Theme
    started_at: Moment
    ended_at: Moment
    volunteers: int = Field(ge=0, le=1_000_000, description="volunteer turn-outs")
    volunteer_hours: float = Field(ge=0, le=10_000_000)
    served: int | None = Field(None, ge=0, le=10_000_000, validate_default=True,
                               description="people served, person-times; a fair: its stalls' sum")
    trainees: int = Field(0, ge=0, le=10_000_000)
    donations: list[Donation] = Field(default_factory=list, max_length=200)
    outputs: list[Output] = Field(default_factory=list, max_length=100)
    summary: Summary | None = None

    @field_validator("service_types")
    @classmethod
    def _types_of_stalls(cls, value: list[str], info: ValidationInfo) -> list[str]:
        stalls = info.data.get("stalls") or []
        if not stalls:
            if not value and "stalls" in info.data:
                raise ValueError("at least one service type is required")
            return value
        theirs = list(dict.fromkeys(s.service_type for s in stalls))
        if value and set(value) != set(theirs):
            raise ValueError(f"must be the stalls' service types {theirs} (or be left out)")
        if len(theirs) > 60:  # what the stalls make must be valid itself (max_length above)
            raise ValueError(f"the stalls have {len(theirs)} service types; at most 60")
        return value or theirs

    @field_validator("served")
    @classmethod
    def _served_by_stalls(cls, value: int | None, info: ValidationInfo) -> int | None:
        stalls = info.data.get("stalls") or []
        if not stalls:
            if value is None and "stalls" in info.data:
                raise ValueError("required")
            return value
        total = sum(s.served for s in stalls)
        if value is not None and value != total:
            raise ValueError(f"must be the sum of the stalls' served ({total}), or be left out")
        if total > 10_000_000:  # what the stalls make must be valid itself (le above)
            raise ValueError(f"the stalls' served add up to {total}; at most 10000000")
        return total

    @field_validator("ended_at")
    @classmethod
    def _ends_after_start(cls, ended_at, info: ValidationInfo):
        started_at = info.data.get("started_at")
        if started_at is not None and ended_at < started_at:
            raise ValueError("must not be before started_at")
        return ended_at

    @property
    def donation_value_cny(self) -> Decimal:
        return sum((d.value_cny for d in self.donations), Decimal(0))

    @property
    def units(self) -> tuple[str, ...]:
        """Every organisation whose figures this activity carries: its own and its stalls'."""
        return tuple(dict.fromkeys([self.organization_id] + [
            s.organization_id for s in self.stalls if s.organization_id]))

    @property
    def hours_long(self) -> float:
        return (self.ended_at - self.started_at).total_seconds() / 3600


class ActivityLogged(ActivityFigures):
    pass


class ActivityCorrected(ActivityFigures):
    reason: Reason


class ActivityRetracted(EventData):
    activity_id: uuid.UUID
    reason: Reason


# -- attendance and hours -----------------------------------------------------------------

SPAN_SLACK_HOURS = 1 / 60  # a signed span's hours, if given, may differ by rounding only
MOST_SIGNED_HOURS = 24 * 366  # what `hours` may be at most


class AttendanceRecorded(EventData):
    """Hours at an activity. A sign-in (`method=sign_in` with `signed_in_at`) carries its
    times: its hours are the signed span (given or not); without `signed_out_at` it is open,
    has no hours, and counts as nothing until the volunteer signs out.

    `hours` is validated last (it may depend on the times) but dumped where it always was, and
    the times only when given: an event accepted before sign-ins existed dumps (and digests)
    as it did."""

    activity_id: uuid.UUID
    volunteer_id: Ref
    method: Literal["self", "organiser", "sign_in", "import"]
    signed_in_at: Moment | None = Field(None, description="sign_in only: when the volunteer "
                                                          "signed in (the server's clock)")
    signed_out_at: Moment | None = Field(None, validate_default=True,
                                         description="sign_in only: when they signed out; "
                                                     "absent while the sign-in is open")
    hours: float | None = Field(None, gt=0, le=24 * 366, validate_default=True,
                                description="required, except for a sign-in with its times, "
                                            "whose hours are the signed span (none while open)")

    @field_validator("signed_in_at")
    @classmethod
    def _signed_in_by_a_sign_in(cls, value, info: ValidationInfo):
        if value is not None and info.data.get("method", "sign_in") != "sign_in":
            raise ValueError("only a sign-in (method sign_in) carries signed times")
        return value

    @field_validator("signed_out_at")
    @classmethod
    def _signed_out_after_in(cls, value, info: ValidationInfo):
        if value is None or "signed_in_at" not in info.data:
            return value
        if info.data.get("method", "sign_in") != "sign_in":
            raise ValueError("only a sign-in (method sign_in) carries signed times")
        signed_in_at = info.data["signed_in_at"]
        if signed_in_at is None:
            raise ValueError("a sign-out needs signed_in_at")
        if value <= signed_in_at:
            raise ValueError("must be after signed_in_at")
        if (value - signed_in_at).total_seconds() / 3600 > MOST_SIGNED_HOURS:
            raise ValueError(f"is more than {MOST_SIGNED_HOURS} h after signed_in_at")
        return value

    @field_validator("hours")
    @classmethod
    def _hours_signed(cls, value: float | None, info: ValidationInfo) -> float | None:
        if any(k not in info.data for k in ("method", "signed_in_at", "signed_out_at")):
            return value  # judged once those are valid
        signed_in_at, signed_out_at = info.data["signed_in_at"], info.data["signed_out_at"]
        if signed_in_at is None:
            if value is None:
                raise ValueError("required")
            return value
        if signed_out_at is None:
            if value is not None:
                raise ValueError("an open sign-in (no signed_out_at) has no hours: they are "
                                 "what is signed")
            return None
        span = (signed_out_at - signed_in_at).total_seconds() / 3600
        if value is not None and abs(value - span) > SPAN_SLACK_HOURS:
            raise ValueError(f"must be the signed span ({span:.2f} h), or be left out")
        return round(span, 4)

    @model_serializer(mode="wrap")
    def _as_before(self, handler):
        out = handler(self)
        first = {k: out.pop(k) for k in ("activity_id", "volunteer_id", "hours", "method")}
        return {**first, **{k: v for k, v in out.items() if v is not None}}

    @property
    def open(self) -> bool:
        """A sign-in without its sign-out: no hours yet."""
        return self.signed_in_at is not None and self.signed_out_at is None


class AttendanceConfirmed(EventData):
    activity_id: uuid.UUID
    volunteer_id: Ref
    organization_id: Ref = Field(description="the unit confirming the hours")
    reason: Reason | None = None


class AttendanceDeclined(EventData):
    activity_id: uuid.UUID
    volunteer_id: Ref
    organization_id: Ref = Field(description="the unit declining the hours")
    reason: Reason


# -- needs (按需点单) -----------------------------------------------------------------------

class NeedSubmitted(EventData):
    need_id: Ref = Field(description="the submitter's own id, e.g. a hotline work order")
    base_id: Ref
    pairing_id: Ref | None = None
    title: Title
    category: Code = Field(description="a service-type code")
    urgency: Literal["low", "normal", "high", "urgent"] = "normal"
    channel: Literal["community", "resident", "unit", "hotline", "fair", "other"]
    description: Summary | None = None


class NeedClaimed(EventData):
    need_id: Ref
    organization_id: Ref


class NeedReturned(EventData):
    need_id: Ref
    organization_id: Ref = Field(description="the unit that had claimed it")
    reason: Reason


class NeedFollowupAssigned(EventData):
    need_id: Ref
    assignee_id: Ref = Field(description="a volunteer, the named person (落实专人)")
    due_on: Day
    note: Note | None = None


class NeedResolved(EventData):
    need_id: Ref
    organization_id: Ref = Field(description="the unit that claimed it")
    activity_id: uuid.UUID | None = None
    note: Note | None = None


class NeedClosed(EventData):
    need_id: Ref
    outcome: Literal["confirmed", "unresolved", "withdrawn", "duplicate"]
    note: Note | None = None


class NeedReopened(EventData):
    need_id: Ref
    reason: Reason


class NeedFeedback(EventData):
    """The community's or the resident's answer about a resolved or closed need (回访); a later
    answer replaces an earlier one in the satisfaction rate."""

    need_id: Ref
    satisfaction: Literal["satisfied", "partly", "unsatisfied"] = Field(
        description="满意 / 部分满意 (partly fixed) / 不满意")
    respondent: Literal["community", "resident"] = Field(
        description="who answered: the community (社区) or the resident (群众)")
    reason: Reason | None = Field(None, validate_default=True, description=(
        "why (required unless satisfied); free text, kept in the events store and never "
        "reported"))

    @field_validator("reason")
    @classmethod
    def _reason_unless_satisfied(cls, value: str | None, info: ValidationInfo) -> str | None:
        if value is None and info.data.get("satisfaction") in ("partly", "unsatisfied"):
            raise ValueError("required")
        return value


class NeedLinked(EventData):
    """A need the claimer finds to repeat another (重复件): closed as a duplicate, counted
    once, with the original."""

    need_id: Ref = Field(description="the repeat")
    original_id: Ref = Field(description="the need it repeats, at the same base, not closed")
    organization_id: Ref = Field(description="the unit linking them: one that may claim the "
                                             "repeat, or its or the original's claimer")


# -- reports owed after service (服务旗帜接传) -----------------------------------------------

class ReportSubmitted(EventData):
    activity_id: uuid.UUID
    organization_id: Ref
    summary: Summary
    photos: list[PhotoRef] = Field(default_factory=list, max_length=50,
                                   description="refs from POST /v1/photos")


class ReportOverdue(EventData):
    activity_id: uuid.UUID
    organization_id: Ref
    due_at: Moment


# -- campaigns (敲门行动) -------------------------------------------------------------------

class CampaignVisitRecorded(EventData):
    campaign_id: Ref
    base_id: Ref
    visited_on: Day
    household_keys: list[Annotated[str, StringConstraints(
        strip_whitespace=True, min_length=1, max_length=64)]] = Field(
        default_factory=list, max_length=20_000,
        description="opaque keys such as '3-2-401', so a household visited twice counts once")
    households_visited: int = Field(ge=0, le=1_000_000)
    volunteers: int | None = Field(None, ge=0, le=1_000_000)
    problems_found: int | None = Field(None, ge=0, le=1_000_000)

    @field_validator("households_visited")
    @classmethod
    def _at_least_the_keys(cls, value: int, info: ValidationInfo) -> int:
        keys = info.data.get("household_keys")
        if keys and value < len(set(keys)):
            raise ValueError(f"is less than the {len(set(keys))} distinct household_keys given")
        return value


# -- approved periods (数据审定) ---------------------------------------------------------------

_PERIOD_FORM = r"^(19|20|21)\d{2}(-(0[1-9]|1[0-2])|-[Qq][1-4])?$"
_PERIOD = re.compile(_PERIOD_FORM)


class PeriodApproved(EventData):
    period: str = Field(max_length=7, pattern=_PERIOD_FORM, description=(
        "a month (2026-11), a quarter (2026-Q4) or a year (2026)"))
    organization_id: Ref | None = Field(None, description=(
        "the scope: this unit and every unit under it"))
    region: Ref | None = Field(None, description="the scope: the bases in this region")
    as_of: int = Field(ge=0, description=(
        "the last TONGXIN_EVENTS seq of the figures the organiser approved"))

    @field_validator("period", mode="before")
    @classmethod
    def _a_period(cls, value: object) -> object:
        """One wording for any other form; `2026-q4` is `2026-Q4`."""
        if not isinstance(value, str):
            return value
        value = value.strip().upper()
        if not _PERIOD.match(value):
            raise ValueError("is not a month (2026-11), a quarter (2026-Q4) or a year (2026)")
        return value
