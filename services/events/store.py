"""Events service tables: every accepted event once (by `event_id`), with its place in
`TONGXIN_EVENTS` once published; and the replica of registry facts used to check references."""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    BigInteger,
    Column,
    DateTime,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
)

from shared.projection import positions_table
from shared.replica import registry_entities_table

metadata = MetaData()
positions = positions_table(metadata)
registry_entities = registry_entities_table(metadata)

accepted_events = Table(
    "accepted_events", metadata,
    Column("id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True,
           autoincrement=True),
    Column("event_id", String(36), nullable=False, unique=True),
    Column("type", String(100), nullable=False),
    Column("source", String(100), nullable=False),
    Column("occurred_at", DateTime(timezone=True), nullable=False),
    Column("received_at", DateTime(timezone=True), nullable=False),
    Column("via", String(10), nullable=False),
    Column("envelope", Text, nullable=False),
    Column("trace_headers", JSON, nullable=False),
    Column("seq", BigInteger, nullable=True),
    # An activity is logged once: a second `activity.logged` for it (under another event_id)
    # is refused, as changing its figures is what `activity.corrected` is for.
    Column("logged_activity_id", String(36), nullable=True, unique=True),
    Index("ix_accepted_events_unpublished", "id", sqlite_where=Column("seq").is_(None),
          postgresql_where=Column("seq").is_(None)),
)
