"""Validating an offered event: one path for HTTP, the bus and bulk files. No I/O here."""

from __future__ import annotations

import hashlib
import uuid
from dataclasses import dataclass
from functools import cached_property
from typing import Any

from pydantic import ValidationError

from shared.envelope import Envelope
from shared.errors import FieldError, Rejected, from_validation_error, parse_json
from shared.event_types import EVENT_TYPES, EventType, Sender
from shared.events import EventData

IDEMPOTENCY_NAMESPACE = uuid.UUID("6f1d7a52-3c1e-4d0c-9a57-2a8f0c6b7e11")


@dataclass(frozen=True)
class Offer:
    envelope: Envelope   # normalised: `data` as the model dumps it
    data: EventData
    type: EventType

    @cached_property
    def data_json(self) -> str:
        """The validated data as JSON, in its model's field order: dumped once, for the
        digest and the payload."""
        return self.data.model_dump_json()

    @cached_property
    def payload(self) -> str:
        """The normalised envelope as stored and published: the envelope's own fields, then
        the data as dumped once (what `envelope.model_dump_json()` gives, `data` being last)."""
        head = self.envelope.model_dump_json(exclude={"data"})
        return f'{head[:-1]},"data":{self.data_json}}}'

    @cached_property
    def event_id(self) -> str:
        return str(self.envelope.event_id)

    @cached_property
    def references(self) -> list[tuple[str, str, str]]:
        """(field, registry kind, id) for each reference its data makes."""
        return list(self.type.references_in(self.envelope.data))

    @cached_property
    def digest(self) -> str:
        """What the event says (type and data; not when or how it was sent): the same
        event_id offered again must say the same, or it is not a retry."""
        # The validated data in its model's field order: one form for every way it came.
        body = self.envelope.type.encode() + b"\n" + self.data_json.encode()
        return hashlib.sha256(body).hexdigest()

    @property
    def about(self) -> str | None:
        """What it is about, by its type's identity key: "need_id=N1"."""
        if not self.type.key:
            return None
        return "&".join(f"{k}={self.envelope.data[k]}" for k in self.type.key)[:200]


def parse_offer(raw: bytes | str | dict, subject_type: str | None = None,
                sender: Sender = "outside") -> Offer:
    """Bytes or a decoded object -> a valid `Offer`, or `Rejected` naming every bad field."""
    if isinstance(raw, bytes | str):
        raw = parse_json(raw)
    if not isinstance(raw, dict):
        raise Rejected([FieldError(field="body", message="must be a JSON object (an envelope)")])
    errors: list[FieldError] = []
    try:
        envelope: Envelope | None = Envelope.model_validate(raw)
    except ValidationError as exc:
        errors = from_validation_error(exc)
        envelope = None
    name = raw.get("type")
    declared = EVENT_TYPES.get(name) if isinstance(name, str) else None
    if name is not None and declared is None and not any(e.field == "type" for e in errors):
        errors.append(FieldError(field="type", message=f"unknown event type {name!r}; "
                                 f"known: {', '.join(sorted(_sendable(sender)))}"))
    if declared is not None and declared.sender == "tongxin" and sender != "tongxin":
        errors.append(FieldError(field="type", message=f"{name} is published by Tongxin "
                                 "itself and is not accepted from other systems"))
    if subject_type and isinstance(name, str) and subject_type != name:
        errors.append(FieldError(field="type", message=f"{name!r} offered on the subject "
                                 f"for {subject_type!r}"))
    data = None
    if declared is not None and isinstance(raw.get("data"), dict):
        try:
            data = declared.data.model_validate(raw["data"])
        except ValidationError as exc:
            errors += from_validation_error(exc, "data")
    if errors or envelope is None or data is None or declared is None:
        raise Rejected(errors)
    # Store and publish the normalised form, so every consumer reads one shape.
    envelope = envelope.model_copy(update={"data": data.model_dump(mode="json")})
    return Offer(envelope, data, declared)


def offer_of(event_type: str, data: dict[str, Any], source: str, **envelope: Any) -> Offer:
    """An offer Tongxin makes itself (a deadline firing), through the same validation."""
    return parse_offer({"type": event_type, "version": 1, "source": source, "data": data,
                        **envelope}, sender="tongxin")


def _sendable(sender: Sender) -> list[str]:
    return [n for n, t in EVENT_TYPES.items() if sender == "tongxin" or t.sender == "outside"]


def event_id_from_key(key: str) -> uuid.UUID:
    """An `Idempotency-Key` becomes the event_id: itself if a UUID, else a stable UUID of it."""
    try:
        return uuid.UUID(key)
    except ValueError:
        return uuid.uuid5(IDEMPOTENCY_NAMESPACE, key)
