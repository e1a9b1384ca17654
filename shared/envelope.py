"""The event envelope every event travels in, on the bus and over HTTP (CONTRACT.md)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from shared.dates import Moment
from shared.text import refuse_nul


class Envelope(BaseModel):
    model_config = ConfigDict(extra="forbid")

    event_id: uuid.UUID = Field(description="idempotency key: accepted twice, it is one event")
    type: str = Field(min_length=1, max_length=100, pattern=r"^[a-z_]+(\.[a-z_]+)+$")
    version: int = Field(1, ge=1)
    occurred_at: Moment
    source: str = Field(min_length=1, max_length=100)
    data: dict[str, Any]

    _no_nul = field_validator("source", mode="before")(refuse_nul)


def new_envelope(event_type: str, data: dict[str, Any], source: str,
                 occurred_at: datetime | None = None,
                 event_id: uuid.UUID | None = None) -> Envelope:
    return Envelope(
        event_id=event_id or uuid.uuid4(),
        type=event_type,
        version=1,
        occurred_at=occurred_at or datetime.now(UTC),
        source=source,
        data=data,
    )
