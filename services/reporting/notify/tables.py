"""The notifier's tables: the notifications it raised (its outbox, kept for good: the record of
what was sent, so a replay sends nothing twice) and its own state, built only from the streams
(never from the read models' tables, so a failing read model never stops it)."""

from __future__ import annotations

from sqlalchemy import BigInteger, Boolean, Column, Date, DateTime, String, Table

from services.reporting.store import metadata
from shared.outbox import outbox_table

# One row per notification; `event_id` is the notification_id (unique: inserts on conflict do
# nothing), `id` the order the relay publishes in and the SSE event id.
notifications = outbox_table(
    metadata, "notifications",
    Column("kind", String(30), nullable=False, index=True),
    Column("organization_id", String(64), nullable=False, index=True),
    Column("occurred_at", DateTime(timezone=True), nullable=False),
    Column("subject_type", String(20), nullable=False),
    Column("subject_id", String(64), nullable=False),
)

# Units, bases and pairings from TONGXIN_REGISTRY: names for messages, pairings for recipients.
registry = Table(
    "notifier_registry", metadata,
    Column("kind", String(20), primary_key=True),
    Column("id", String(64), primary_key=True),
    Column("name", String(200), nullable=False, server_default=""),
    Column("organization_id", String(64), nullable=True),
    Column("base_id", String(64), nullable=True, index=True),
    Column("active", Boolean, nullable=False, server_default="1"),
    Column("version", String(40), nullable=False, server_default=""),
)

# Each activity's report deadline; a row may come first from its report (a stub).
activities = Table(
    "notifier_activities", metadata,
    Column("activity_id", String(36), primary_key=True),
    Column("organization_id", String(64), nullable=True),
    Column("base_id", String(64), nullable=True),
    Column("title", String(200), nullable=True),
    Column("due_at", DateTime(timezone=True), nullable=True),  # UTC
    Column("reported", Boolean, nullable=False, server_default="0"),
    Column("retracted", Boolean, nullable=False, server_default="0"),
    Column("logged", Boolean, nullable=False, server_default="0"),
    # A reminder still to send (the sweep's work list).
    Column("due_soon_pending", Boolean, nullable=False, server_default="0", index=True),
)

# Each activity's served per credited unit (a fair's stalls for their units), so a correction
# or retraction moves each unit's total by the difference.
shares = Table(
    "notifier_shares", metadata,
    Column("activity_id", String(36), primary_key=True),
    Column("organization_id", String(64), primary_key=True),
    Column("served", BigInteger, nullable=False),
)

units = Table(
    "notifier_units", metadata,
    Column("organization_id", String(64), primary_key=True),
    Column("served", BigInteger, nullable=False),
    Column("reached", BigInteger, nullable=False),  # highest milestone announced, ever
)

needs = Table(
    "notifier_needs", metadata,
    Column("need_id", String(64), primary_key=True),
    Column("base_id", String(64), nullable=False, index=True),
    Column("pairing_id", String(64), nullable=True, index=True),
    Column("category", String(40), nullable=False),
    Column("urgency", String(10), nullable=False),
    Column("state", String(12), nullable=False),
    Column("claimed_by", String(64), nullable=True),
    Column("submitted_at", DateTime(timezone=True), nullable=False),
    # Announced to its units: false while no unit is known yet (the registry lags).
    Column("announced", Boolean, nullable=False, server_default="0"),
    Column("followup_due_on", Date, nullable=True),
    Column("followup_pending", Boolean, nullable=False, server_default="0", index=True),
)

STATE = (registry, activities, shares, units, needs)
