"""Events HTTP routes: the same validation and acceptance path as the bus.

Bodies are read as bytes and handed to `parse_offer`, so malformed JSON, a bad envelope and
bad data all get the one error shape: 422 `{"errors": [{"field", "message"}]}`.
"""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Header, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel

from services.events.domain import event_id_from_key, parse_offer
from services.events.service import Acceptor, Receipt
from shared.envelope import Envelope
from shared.errors import FieldError, Rejected
from shared.events import ActivityLogged
from shared.http import body_of

router = APIRouter(tags=["events"])


class Accepted(BaseModel):
    event_id: str
    seq: int | None
    duplicate: bool


class Errors(BaseModel):
    errors: list[FieldError]


RESPONSES = {422: {"model": Errors, "description": "invalid input; every bad field named"}}


def _answer(receipt: Receipt) -> JSONResponse:
    return JSONResponse(Accepted(**receipt.__dict__).model_dump(), status_code=202)


@router.post("/v1/events", status_code=202, response_model=Accepted, responses=RESPONSES,
             summary="Offer any event (an envelope); same path as tongxin.ingest.<type>",
             openapi_extra=body_of(Envelope))
async def post_event(request: Request) -> JSONResponse:
    acceptor: Acceptor = request.app.state.acceptor
    return _answer(await acceptor.accept_one(parse_offer(await request.body()), via="http"))


@router.post("/v1/activities", status_code=202, response_model=Accepted, responses=RESPONSES,
             summary="Log an activity (the data of activity.logged)",
             description="`Idempotency-Key` becomes the event_id: the same key is one event.",
             openapi_extra=body_of(ActivityLogged))
async def post_activity(request: Request,
                        idempotency_key: Annotated[str | None, Header(max_length=200)] = None,
                        x_tongxin_source: Annotated[str | None, Header(max_length=100)] = None,
                        ) -> JSONResponse:
    try:
        data = json.loads(await request.body())
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise Rejected([FieldError(field="body", message=f"not valid JSON: {exc}")]) from None
    event_id = event_id_from_key(idempotency_key) if idempotency_key else uuid.uuid4()
    envelope = {"event_id": str(event_id), "type": "activity.logged", "version": 1,
                "occurred_at": datetime.now(UTC).isoformat(),
                "source": x_tongxin_source or "http", "data": data}
    acceptor: Acceptor = request.app.state.acceptor
    return _answer(await acceptor.accept_one(parse_offer(envelope), via="http"))
