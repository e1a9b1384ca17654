"""Events service tables.

- `accepted_events`: every accepted event once (by `event_id`), with its provenance, and its
  place in `TONGXIN_EVENTS` once published. It is this service's outbox (`shared.outbox`): the
  relay publishes whatever is stored and unpublished, in commit order.
- `activities`, `needs`, `attendance`: the state that decides whether an event is legal
  (`services.events.state`), written in the transaction that stores the events.
- the registry replica and projection bookkeeping.
"""

from __future__ import annotations

import dataclasses
import functools
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    Column,
    Date,
    DateTime,
    Float,
    MetaData,
    String,
    Table,
)

from services.events.state import Activity, Attendance, Need, State
from shared.outbox import outbox_table
from shared.projection import parked_table, positions_table
from shared.replica import registry_entities_table

metadata = MetaData()
positions = positions_table(metadata)
parked = parked_table(metadata)
registry_entities = registry_entities_table(metadata)

accepted_events = outbox_table(
    metadata, "accepted_events",
    Column("type", String(100), nullable=False),
    Column("source", String(100), nullable=False),
    Column("occurred_at", DateTime(timezone=True), nullable=False),
    Column("via", String(10), nullable=False),  # http, bus, bulk, internal
    # sha256 of type and data: the same event_id offered with other data is refused.
    Column("digest", String(64), nullable=True),
    # What the event is about (its type's identity key), e.g. "need_id=N1": its history.
    Column("about", String(200), nullable=True, index=True),
    Column("principal", String(100), nullable=True),  # who sent it, once identities exist
)

activities = Table(
    "activities", metadata,
    Column("activity_id", String(36), primary_key=True),
    Column("state", String(12), nullable=False),
    Column("organization_id", String(64), nullable=False),
    Column("base_id", String(64), nullable=False),
    Column("units", JSON, nullable=False),
    Column("planned_on", Date, nullable=True),
    Column("started_at", DateTime(timezone=True), nullable=True),
    Column("ended_at", DateTime(timezone=True), nullable=True),
    Column("logged_event_id", String(36), nullable=True),
    Column("report_due_at", DateTime(timezone=True), nullable=True, index=True),
    Column("reported_at", DateTime(timezone=True), nullable=True),
    Column("overdue", Boolean, nullable=False, default=False),
)

needs = Table(
    "needs", metadata,
    Column("need_id", String(64), primary_key=True),
    Column("state", String(12), nullable=False),
    Column("base_id", String(64), nullable=False, index=True),
    Column("pairing_id", String(64), nullable=True),
    Column("claimed_by", String(64), nullable=True),
    Column("submitted_at", DateTime(timezone=True), nullable=True),
)

attendance = Table(
    "attendance", metadata,
    Column("activity_id", String(36), primary_key=True),
    Column("volunteer_id", String(64), primary_key=True, index=True),
    Column("hours", Float, nullable=False),
    Column("method", String(12), nullable=False),
    Column("status", String(12), nullable=False),
    # A sign-in's times (method sign_in): open while signed_out_at is empty.
    Column("signed_in_at", DateTime(timezone=True), nullable=True),
    Column("signed_out_at", DateTime(timezone=True), nullable=True),
)

# An organiser's sign-in page for an activity: the short code its QR code and kiosk use.
sign_in_pages = Table(
    "sign_in_pages", metadata,
    Column("code", String(12), primary_key=True),
    Column("activity_id", String(36), nullable=False, unique=True),
    Column("opened_by", String(100), nullable=True),
    Column("opened_at", DateTime(timezone=True), nullable=False),
)

STATE_TABLES: dict[type, Table] = {Activity: activities, Need: needs, Attendance: attendance}


def state_row(state: State) -> dict[str, Any]:
    row: dict[str, Any] = {}
    kind: type = type(state)
    for name in _field_names(kind):  # shallow: asdict's deep copies cost more
        v = getattr(state, name)
        row[name] = list(v) if isinstance(v, tuple) else v.astimezone(UTC) if isinstance(
            v, datetime) else v
    return row


@functools.cache
def _field_names(kind: type) -> tuple[str, ...]:
    return tuple(f.name for f in dataclasses.fields(kind))


def from_row(kind: type, row: Any) -> Any:
    values = dict(row._mapping)
    for f in dataclasses.fields(kind):
        v = values.get(f.name)
        if isinstance(v, list):
            values[f.name] = tuple(v)
        elif isinstance(v, datetime) and v.tzinfo is None:  # SQLite keeps no offset: UTC
            values[f.name] = v.replace(tzinfo=UTC)
    return kind(**{f.name: values[f.name] for f in dataclasses.fields(kind)})
