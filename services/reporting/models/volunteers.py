"""The volunteers read model (being written)."""

from __future__ import annotations

from services.reporting.readmodel import ReadModel

NAME = "reporting-volunteers"

MODEL = ReadModel(name=NAME, tables=(), handlers={})
