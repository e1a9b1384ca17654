"""Events HTTP routes: the same validation and acceptance path as the bus."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Body, Header, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel

from services.events.domain import event_id_from_key, parse_offer
from services.events.service import Acceptor, Receipt
from shared.events import ActivityLogged

router = APIRouter(tags=["events"])


class Accepted(BaseModel):
    event_id: str
    seq: int | None
    duplicate: bool


def _answer(receipt: Receipt) -> JSONResponse:
    return JSONResponse(Accepted(**receipt.__dict__).model_dump(), status_code=202)


@router.post("/v1/events", status_code=202, response_model=Accepted,
             summary="Offer any event (an envelope); same path as tongxin.ingest.<type>")
async def post_event(request: Request,
                     envelope: Annotated[dict[str, Any], Body(
                         examples=[{"event_id": "8d7a3c3e-4b1f-4a43-9d69-6f0f0b0c2f11",
                                    "type": "activity.logged", "version": 1,
                                    "occurred_at": "2013-10-20T09:00:00+08:00",
                                    "source": "zibo-miniprogram", "data": {}}])]) -> JSONResponse:
    acceptor: Acceptor = request.app.state.acceptor
    return _answer(await acceptor.accept_one(parse_offer(envelope), via="http"))


@router.post("/v1/activities", status_code=202, response_model=Accepted,
             summary="Log an activity (the data of activity.logged)")
async def post_activity(request: Request, data: Annotated[dict[str, Any], Body(
                            description=ActivityLogged.__doc__ or "activity.logged data")],
                        idempotency_key: Annotated[str | None, Header(max_length=200)] = None,
                        x_tongxin_source: Annotated[str | None, Header(max_length=100)] = None,
                        ) -> JSONResponse:
    envelope = {"event_id": str(event_id_from_key(idempotency_key)) if idempotency_key else None,
                "type": "activity.logged", "version": 1,
                "occurred_at": datetime.now(UTC).isoformat(),
                "source": x_tongxin_source or "http", "data": data}
    if envelope["event_id"] is None:
        import uuid

        envelope["event_id"] = str(uuid.uuid4())
    acceptor: Acceptor = request.app.state.acceptor
    return _answer(await acceptor.accept_one(parse_offer(envelope), via="http"))
