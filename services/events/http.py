"""Events HTTP routes: the same validation and acceptance path as the bus.

Bodies are read as bytes and handed to `parse_offer`, so malformed JSON, a bad envelope and
bad data all get the one error shape: 422 `{"errors": [{"field", "message"}]}`; an offer at odds
with what was accepted before (a need claimed twice) gets 409 with the reason.
"""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Header, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from sqlalchemy import select

from services.events import access, bulk, store
from services.events.domain import Offer, event_id_from_key, parse_offer
from services.events.grouping import Grouper
from services.events.service import Acceptor, Outcome, answered
from shared.auth import SENDERS, allow, principal
from shared.errors import parse_json
from shared.event_types import EVENT_TYPES
from shared.events import ActivityLogged
from shared.http import Errors, body_of
from shared.json_response import JSON
from shared.outbox import seqs_of

router = APIRouter(tags=["events"])


class Accepted(BaseModel):
    event_id: str
    seq: int | None
    duplicate: bool


class BulkError(BaseModel):
    line: int
    field: str
    message: str


class BulkLoaded(BaseModel):
    accepted: int
    duplicates: int
    refused: int
    lines: int
    errors: list[BulkError]
    errors_truncated: bool


class StoredEvent(BaseModel):
    """An accepted event with its provenance: who sent it, how, and when it was taken."""

    event_id: str
    type: str
    source: str
    via: str
    occurred_at: datetime
    received_at: datetime
    seq: int | None
    principal: str | None
    envelope: dict


RESPONSES: dict[int | str, dict] = {
    409: {"model": Errors, "description": "at odds with what was accepted before; the reason"},
    422: {"model": Errors, "description": "invalid input; every bad field named"},
    503: {"model": Errors, "description": "cannot be decided now (Retry-After)"},
}
ANY_EVENT = {"requestBody": {"required": True, "content": {"application/json": {"schema": {
    "oneOf": [{"$ref": f"#/components/schemas/{t.envelope.__name__}"}
              for t in EVENT_TYPES.values() if t.sender == "outside"]}}}}}


def _answer(outcome: Outcome) -> JSONResponse:
    return JSON(Accepted(event_id=outcome.event_id, seq=outcome.seq,
                         duplicate=outcome.duplicate).model_dump(), status_code=202)


def _acceptor(request: Request) -> Acceptor:
    return request.app.state.acceptor


async def _accept_one(request: Request, offer: Offer) -> JSONResponse:
    """One request's offer, accepted together with the others that arrive with it
    (`services.events.grouping`); its refusal raised as 403, 422 or 409."""
    grouper: Grouper = request.app.state.grouper
    return _answer(answered(await grouper.offer(offer, principal(request))))


@router.post("/v1/events", status_code=202, dependencies=[allow(*SENDERS)],
             response_model=Accepted, responses=RESPONSES,
             summary="Offer any event (an envelope); same path as tongxin.ingest.<type>",
             openapi_extra=ANY_EVENT)
async def post_event(request: Request) -> JSONResponse:
    return await _accept_one(request, parse_offer(await request.body()))


@router.post("/v1/activities", status_code=202, dependencies=[allow(*SENDERS)],
             response_model=Accepted, responses=RESPONSES,
             summary="Log an activity (the data of activity.logged)",
             description="`Idempotency-Key` becomes the event_id: the same key is one event.",
             openapi_extra=body_of(ActivityLogged))
async def post_activity(request: Request,
                        idempotency_key: Annotated[str | None, Header(max_length=200)] = None,
                        x_tongxin_source: Annotated[str | None, Header(max_length=100)] = None,
                        ) -> JSONResponse:
    data = parse_json(await request.body())
    event_id = event_id_from_key(idempotency_key) if idempotency_key else uuid.uuid4()
    envelope = {"event_id": str(event_id), "type": "activity.logged", "version": 1,
                "occurred_at": datetime.now(UTC).isoformat(),
                "source": x_tongxin_source or "http", "data": data}
    return await _accept_one(request, parse_offer(envelope))


@router.post("/v1/events/bulk", dependencies=[allow(*SENDERS)],
             response_model=BulkLoaded, responses=RESPONSES,
             summary="Load history: NDJSON, one envelope a line, idempotent on event_id",
             description="Streamed in batches (memory stays flat); bad lines are listed by "
                         "number with the reason and the good ones are kept. Sending the same "
                         "file again accepts nothing twice.",
             openapi_extra={"requestBody": {"required": True, "content": {
                 "application/x-ndjson": {"schema": {"type": "string"}}}}})
async def post_bulk(request: Request) -> dict:
    result = await bulk.load(request.stream(), _acceptor(request), principal(request))
    return result.as_json()


@router.get("/v1/events/{event_id}", response_model=StoredEvent,
            responses={404: {"model": Errors, "description": "no such event was accepted"}},
            summary="An accepted event with its provenance (source, door, time, seq)")
async def get_event(request: Request, event_id: uuid.UUID) -> JSONResponse:
    t = store.accepted_events
    async with _acceptor(request).engine.connect() as conn:
        row = (await conn.execute(select(t).where(t.c.event_id == str(event_id)))).first()
        seq = (await seqs_of(conn, t, [row.id])).get(row.id) if row is not None else None
        envelope = json.loads(row.payload) if row is not None else {}
        # Another unit's event reads as not there.
        if row is not None and not await access.visible(conn, principal(request), row.type,
                                                        envelope.get("data") or {}):
            row = None
    if row is None:
        return JSONResponse({"errors": [{"field": "event_id", "message": (
            f"no event {event_id} was accepted")}]}, status_code=404)
    return JSONResponse(StoredEvent(
        event_id=row.event_id, type=row.type, source=row.source, via=row.via,
        occurred_at=_occurred_at(envelope, row.occurred_at), received_at=_utc(row.created_at),
        seq=seq,
        principal=row.principal, envelope=envelope).model_dump(mode="json"))


def _utc(value: datetime) -> datetime:
    return value if value.tzinfo else value.replace(tzinfo=UTC)  # SQLite keeps no offset


def _occurred_at(envelope: dict, stored: datetime) -> datetime:
    """When the event says it occurred, in UTC: its own envelope's word. (SQLite kept the
    column's wall clock without its offset, which earlier versions stored as given.)"""
    try:
        return datetime.fromisoformat(envelope["occurred_at"]).astimezone(UTC)
    except (KeyError, TypeError, ValueError):
        return _utc(stored)
