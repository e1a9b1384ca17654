"""The `data` of each event type (CONTRACT.md), validated by pydantic v2.

One model per type, looked up by `EVENT_TYPES`; the events service validates every offer, from
HTTP or the bus, through these and nothing else.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from decimal import Decimal
from typing import Annotated, Literal

from pydantic import (
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationInfo,
    field_validator,
)

from shared.text import refuse_nul

Ref = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=64)]
Code = Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9_]{0,39}$")]
Theme = Literal["city_quality", "new_countryside", "harmonious_society", "enterprise_upgrade",
                "other"]


class EventData(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    _no_nul = field_validator("*", mode="before")(refuse_nul)


class Donation(EventData):
    item: str = Field(min_length=1, max_length=200)
    quantity: Decimal = Field(gt=0, max_digits=14, decimal_places=3)
    unit: str = Field(min_length=1, max_length=20)
    value_cny: Decimal = Field(ge=0, max_digits=14, decimal_places=2)


class ActivityFigures(EventData):
    """What an activity did: shared by `activity.logged` and `activity.corrected`."""

    activity_id: uuid.UUID
    organization_id: Ref
    base_id: Ref
    team_id: Ref | None = None
    pairing_id: Ref | None = None
    project_id: Ref | None = None
    title: str = Field(min_length=1, max_length=200)
    service_types: list[Code] = Field(min_length=1, max_length=20)
    theme: Theme
    started_at: AwareDatetime
    ended_at: AwareDatetime
    volunteers: int = Field(ge=0, le=1_000_000, description="volunteer turn-outs")
    volunteer_hours: float = Field(ge=0, le=10_000_000)
    served: int = Field(ge=0, le=10_000_000, description="people served, person-times")
    trainees: int = Field(0, ge=0, le=10_000_000)
    donations: list[Donation] = Field(default_factory=list, max_length=200)
    summary: str | None = Field(None, max_length=5000)

    @field_validator("ended_at")
    @classmethod
    def _ends_after_start(cls, ended_at: datetime, info: ValidationInfo) -> datetime:
        started_at = info.data.get("started_at")
        if started_at is not None and ended_at < started_at:
            raise ValueError("must not be before started_at")
        return ended_at

    @property
    def donation_value_cny(self) -> Decimal:
        return sum((d.value_cny for d in self.donations), Decimal(0))


class ActivityLogged(ActivityFigures):
    pass


EVENT_TYPES: dict[str, type[EventData]] = {
    "activity.logged": ActivityLogged,
}
