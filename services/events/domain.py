"""Validating an offered event: one path for HTTP and the bus. No I/O here."""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass

from pydantic import ValidationError

from shared.envelope import Envelope
from shared.errors import FieldError, Rejected, from_validation_error
from shared.events import EVENT_TYPES, ActivityFigures, EventData

IDEMPOTENCY_NAMESPACE = uuid.UUID("6f1d7a52-3c1e-4d0c-9a57-2a8f0c6b7e11")


@dataclass(frozen=True)
class Offer:
    envelope: Envelope
    data: EventData


def parse_offer(raw: bytes | str | dict, subject_type: str | None = None) -> Offer:
    """Bytes or a decoded object -> a valid `Offer`, or `Rejected` naming every bad field."""
    if isinstance(raw, bytes | str):
        try:
            raw = json.loads(raw)
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise Rejected([FieldError(field="body", message=f"not valid JSON: {exc}")]) from None
    if not isinstance(raw, dict):
        raise Rejected([FieldError(field="body", message="must be a JSON object (an envelope)")])
    errors: list[FieldError] = []
    try:
        envelope = Envelope.model_validate(raw)
    except ValidationError as exc:
        errors = from_validation_error(exc)
        envelope = None
    event_type = raw.get("type")
    model = EVENT_TYPES.get(event_type) if isinstance(event_type, str) else None
    if event_type is not None and model is None and not any(e.field == "type" for e in errors):
        errors.append(FieldError(field="type", message=f"unknown event type {event_type!r}; "
                                 f"known: {', '.join(sorted(EVENT_TYPES))}"))
    if subject_type and isinstance(event_type, str) and subject_type != event_type:
        errors.append(FieldError(field="type", message=f"{event_type!r} offered on the subject "
                                 f"for {subject_type!r}"))
    data = None
    if model is not None and isinstance(raw.get("data"), dict):
        try:
            data = model.model_validate(raw["data"])
        except ValidationError as exc:
            errors += from_validation_error(exc, "data")
    if errors or envelope is None or data is None:
        raise Rejected(errors)
    # Store and publish the normalised form, so every consumer reads one shape.
    envelope = envelope.model_copy(update={"data": data.model_dump(mode="json")})
    return Offer(envelope, data)


def event_id_from_key(key: str) -> uuid.UUID:
    """An `Idempotency-Key` becomes the event_id: itself if a UUID, else a stable UUID of it."""
    try:
        return uuid.UUID(key)
    except ValueError:
        return uuid.uuid5(IDEMPOTENCY_NAMESPACE, key)


def references(data: EventData) -> list[tuple[str, str, str]]:
    """(field, registry kind, id) for each reference an event makes."""
    refs: list[tuple[str, str, str]] = []
    if isinstance(data, ActivityFigures):
        refs.append(("data.organization_id", "organization", data.organization_id))
        refs.append(("data.base_id", "base", data.base_id))
        if data.team_id:
            refs.append(("data.team_id", "team", data.team_id))
    return refs
