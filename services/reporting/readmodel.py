"""A read model, declared as one unit: its tables, a handler per event type it consumes, and
its routes. The service runs one projection per read model, each with its own position, stored
in the same transaction as the model's rows (`shared.projection`).

Adding a read model: a module under `services/reporting/models/` that builds a `ReadModel`, an
entry in `models.READ_MODELS`, and an Alembic migration for its tables.
"""

from __future__ import annotations

import uuid
from collections import OrderedDict
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
    # Event families (type prefixes, e.g. "attendance") whose handlers write only rows of
    # their own, joined at query time: their events need no order against other families'
    # events about the same activity, so batches split less.
    separate: frozenset[str] = frozenset()

    def handler_for(self, event_type: str) -> Handler | None:
        return self.handlers.get(event_type) or self.handlers.get(ANY)

    def make_apply(self, settings: Settings) -> Callable[[AsyncConnection, list[Event]],
                                                         Awaitable[None]]:
        """The projection's apply, given the batch's events as `decode` read them (the
        projection decodes before its turn to write): they go to their handlers, each handler
        getting many at once, in stream order. Events about one thing (an activity, a need, a
        campaign) keep their order across handlers: a handler's events are held back only
        until an event about something they touched needs another handler. So a batch's
        result never depends on where batches break (a rebuild equals the live tables), and
        a mixed stream still makes long runs."""

        async def apply(conn: AsyncConnection, events: list[Event]) -> None:
            pending: dict[Handler, list[Event]] = {}
            touched: dict[str, Handler] = {}  # thing -> the handler holding events about it

            async def flush() -> None:
                for handler, events in pending.items():
                    await handler(Batch(conn, events, settings))
                pending.clear()
                touched.clear()

            for event in events:
                handler = self.handler_for(event.type)
                assert handler is not None  # decode keeps only handled types
                things = _things(event, self.separate)
                if any(touched.get(t, handler) is not handler for t in things):
                    await flush()
                pending.setdefault(handler, []).append(event)
                touched.update(dict.fromkeys(things, handler))
            await flush()

        return apply

    def steps(self, settings: Settings) -> dict[str, Any]:
        """What a `Projection` of this model is given: `decode` (before the turn to write)
        and `apply` (inside it)."""
        return {"decode": self.decode, "apply": self.make_apply(settings)}

    def decode(self, msg: Msg) -> Event | None:
        """The event in a message, if this model handles its type (None: passed over).
        Whatever cannot be read raises, and the projection parks that message."""
        return self._read(msg)

    def _read(self, msg: Msg) -> Event | None:
        """The event, if this model handles its type (only then is its data validated: a
        model never parks what it does not read)."""
        envelope = _envelope(self.stream, msg)
        if self.handler_for(envelope.type) is None:
            return None
        return _decoded(self.stream, msg, envelope)


_DECODED: OrderedDict[tuple[str, int], Event] = OrderedDict()
_DECODED_MAX = 20_000


def _envelope(stream: str, msg: Msg) -> Envelope:
    cached = _DECODED.get((stream, stream_seq(msg)))
    if cached is not None and cached.envelope.event_id == _peek_id(msg):
        return cached.envelope
    return Envelope.model_validate_json(msg.data)


def _decoded(stream: str, msg: Msg, envelope: Envelope) -> Event:
    """The event in a message, decoded once per process: every read model's projection reads
    the same messages at about the same time, and decoding is most of their CPU. (A message
    that cannot be decoded raises each time, for each projection that reads it to park.)"""
    key = (stream, stream_seq(msg))
    event = _DECODED.get(key)
    if event is None or event.envelope is not envelope:
        declared = EVENT_TYPES.get(envelope.type) if stream == "events" else None
        data: Any = (declared.data.model_validate(envelope.data) if declared is not None
                     else envelope.data)
        event = _DECODED[key] = Event(key[1], envelope, data)
        if len(_DECODED) > _DECODED_MAX:
            _DECODED.popitem(last=False)
    return event


def _peek_id(msg: Msg) -> Any:
    """The message's Nats-Msg-Id (the event id): a cached decoding is of this very message,
    not of another stream's that happens to share the seq (tests run many namespaces)."""
    value = (msg.headers or {}).get("Nats-Msg-Id")
    try:
        return uuid.UUID(value) if value else None
    except ValueError:
        return None


_SUBJECTS = ("activity_id", "need_id", "campaign_id", "id")


def _things(event: Event, separate: frozenset[str]) -> list[str]:
    """What an event is about: the ids whose events must stay in order."""
    data = event.envelope.data
    family = event.type.partition(".")[0]
    prefix = family if family in separate else ""
    return [f"{prefix}{k}:{data[k]}" for k in _SUBJECTS if data.get(k) is not None]


def as_json(model: BaseModel) -> dict:
    return model.model_dump(mode="json")
