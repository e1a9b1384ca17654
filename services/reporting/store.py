"""Reporting read models: one row per activity (its current figures), the service types it
covered, and the registry replica for labels and hierarchy. Built only from events."""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Date,
    DateTime,
    Float,
    Integer,
    MetaData,
    Numeric,
    String,
    Table,
)

from shared.projection import parked_table, positions_table
from shared.replica import registry_entities_table

metadata = MetaData()
positions = positions_table(metadata)
parked = parked_table(metadata)
registry_entities = registry_entities_table(metadata)

activity_facts = Table(
    "activity_facts", metadata,
    Column("activity_id", String(36), primary_key=True),
    Column("event_id", String(36), nullable=False),
    Column("seq", BigInteger, nullable=False),
    Column("organization_id", String(64), nullable=False, index=True),
    Column("base_id", String(64), nullable=False, index=True),
    Column("team_id", String(64), nullable=True, index=True),
    Column("theme", String(40), nullable=False),
    Column("started_at", DateTime(timezone=True), nullable=False),
    Column("day", Date, nullable=False, index=True),       # local day, for from/to
    Column("month", String(7), nullable=False, index=True),  # local 'YYYY-MM'
    Column("activities", Integer, nullable=False, server_default="1"),
    Column("served", BigInteger, nullable=False),
    Column("volunteers", BigInteger, nullable=False),
    Column("volunteer_hours", Float, nullable=False),
    Column("trainees", BigInteger, nullable=False),
    Column("donation_value_cny", Numeric(16, 2), nullable=False),
    Column("retracted", Boolean, nullable=False, server_default="0"),
)

# Each region with every ancestor (itself included): reports roll up along the hierarchy.
region_ancestors = Table(
    "region_ancestors", metadata,
    Column("code", String(64), primary_key=True),
    Column("ancestor", String(64), primary_key=True, index=True),
    Column("ancestor_level", String(20), nullable=False),
)

activity_service_types = Table(
    "activity_service_types", metadata,
    Column("activity_id", String(36), primary_key=True),
    Column("service_type", String(40), primary_key=True, index=True),
)
