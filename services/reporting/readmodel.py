"""A read model, declared as one unit: its tables, a handler per event type it consumes, and
its routes. The service runs one projection per read model, each with its own position, stored
in the same transaction as the model's rows (`shared.projection`).

Adding a read model: a module under `services/reporting/models/` that builds a `ReadModel`, an
entry in `models.READ_MODELS`, and an Alembic migration for its tables.
"""

from __future__ import annotations

import itertools
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from functools import cached_property
from typing import Any, Literal
from zoneinfo import ZoneInfo

from fastapi import APIRouter
from nats.aio.msg import Msg
from pydantic import BaseModel
from sqlalchemy import Table
from sqlalchemy.ext.asyncio import AsyncConnection

from shared.bus import stream_seq
from shared.envelope import Envelope
from shared.event_types import EVENT_TYPES
from shared.settings import Settings

Stream = Literal["events", "registry"]
ANY = "*"  # a handler for every type on the stream (the registry replica)


@dataclass(frozen=True)
class Event:
    seq: int
    envelope: Envelope
    data: Any  # the type's data model (shared.events), or the raw dict for registry records

    @property
    def event_id(self) -> str:
        return str(self.envelope.event_id)

    @property
    def type(self) -> str:
        return self.envelope.type


@dataclass
class Batch:
    """What a handler gets: consecutive events of its type, in stream order, and the open
    transaction the projection commits with its position."""

    conn: AsyncConnection
    events: list[Event]
    settings: Settings

    @cached_property
    def tz(self) -> ZoneInfo:
        return ZoneInfo(self.settings.timezone)

    def local_day(self, moment: datetime) -> date:
        """The programme's own calendar day of a moment (months and weeks are counted in it)."""
        return moment.astimezone(self.tz).date()


Handler = Callable[[Batch], Awaitable[None]]


@dataclass(frozen=True)
class ReadModel:
    name: str                          # the projection's name: its position and parked rows
    tables: tuple[Table, ...]
    handlers: Mapping[str, Handler]    # event type (or ANY) -> handler
    stream: Stream = "events"
    router: APIRouter | None = None
    description: str = ""
    # Reports read these other models' tables too: their `as_of` is the least position of all.
    reads: tuple[str, ...] = field(default_factory=tuple)

    def handler_for(self, event_type: str) -> Handler | None:
        return self.handlers.get(event_type) or self.handlers.get(ANY)

    def make_apply(self, settings: Settings) -> Callable[[AsyncConnection, list[Msg]],
                                                         Awaitable[None]]:
        """The projection's apply: each run of consecutive events of one type goes to that
        type's handler, in order, so a batch keeps the stream's order and handlers still see
        many events at once. Types without a handler are passed over. Whatever cannot be read
        raises, and the projection parks that message with the reason."""

        async def apply(conn: AsyncConnection, msgs: list[Msg]) -> None:
            events = [e for e in (self._read(m) for m in msgs) if e is not None]
            for event_type, run in itertools.groupby(events, key=lambda e: e.type):
                handler = self.handler_for(event_type)
                assert handler is not None  # _read keeps only handled types
                await handler(Batch(conn, list(run), settings))

        return apply

    def _read(self, msg: Msg) -> Event | None:
        envelope = Envelope.model_validate_json(msg.data)
        if self.handler_for(envelope.type) is None:
            return None
        declared = EVENT_TYPES.get(envelope.type) if self.stream == "events" else None
        data: Any = (declared.data.model_validate(envelope.data) if declared is not None
                     else envelope.data)
        return Event(stream_seq(msg), envelope, data)


def as_json(model: BaseModel) -> dict:
    return model.model_dump(mode="json")
