"""The reporting database: projection positions, parked messages, and every read model's
tables (each declared in its own module under `models/`, on this metadata: import
`services.reporting.models` to have them all)."""

from __future__ import annotations

from sqlalchemy import MetaData

from shared.projection import parked_table, positions_table

metadata = MetaData()
positions = positions_table(metadata)
parked = parked_table(metadata)
