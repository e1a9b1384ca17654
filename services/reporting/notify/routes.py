"""Notifications over HTTP: the history, and a server-sent event stream resumable with
`Last-Event-ID` (each event's id is its row id, the order they were raised in)."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Header, Query, Request
from fastapi.responses import StreamingResponse
from pydantic import Field
from sqlalchemy import ColumnElement, and_, func, or_, select
from sqlalchemy.ext.asyncio import AsyncEngine

from services.reporting import models  # noqa: F401  (first: scope and models import each other)
from services.reporting.notify.kinds import Kind
from services.reporting.notify.tables import notifications
from services.reporting.scope import Scope, reachable
from shared.auth import principal
from shared.http import Limit, Offset
from shared.outbox import published_id
from shared.responses import Answer, DateTimeText, Page

router = APIRouter(tags=["notifications"])

POLL_SECONDS = 1.0
KEEPALIVE_SECONDS = 15.0
# Row ids are taken before commit, so on PostgreSQL a lower id may become visible just after a
# higher one: recent rows a little below the cursor are looked at again (and sent once).
LOOKBACK_IDS = 500
LOOKBACK = timedelta(seconds=60)

OrgQuery = Annotated[str | None, Query(max_length=64, description=(
    "a unit: its notifications and those of every unit under it"))]


class Subject(Answer):
    type: str = Field(description="what it is about: need, activity, ...")
    id: str


class Notification(Answer):
    """A notification as published on `tongxin.notify.<unit>.<kind>`, with its `id` (the
    SSE event id) and whether it is on the bus yet."""

    notification_id: str
    kind: str = Field(description="need_submitted, report_due_soon, report_overdue, "
                                  "followup_overdue, milestone")
    organization_id: str
    occurred_at: DateTimeText
    subject: Subject
    message_zh: str
    message_en: str
    id: int
    published: bool


class Notifications(Page[Notification]):
    pass


def _for_unit(organization_id: str | None) -> list[ColumnElement[bool]]:
    if not organization_id:
        return []
    col = notifications.c.organization_id
    # The unit's own even while the hierarchy (the labels read model) does not know it.
    return [or_(col == organization_id,
                col.in_(Scope(organization_id=organization_id).units()))]


async def _reach(request: Request, organization_id: str | None) -> str | None:
    """The unit asked for, within the caller's reach (403 naming organization_id if not);
    a key bound to a unit asking for none gets its own."""
    root = principal(request).scope
    if root is None:
        return organization_id
    if organization_id is None:
        return root
    await reachable(request, organization_id, root, "organization_id")
    return organization_id


def _item(row: Any, published_upto: int) -> dict:
    return {**json.loads(row.payload), "id": row.id, "published": row.id <= published_upto}


@router.get("/v1/notifications", summary="Notifications raised, newest first",
            response_model=Notifications)
async def history(request: Request, organization_id: OrgQuery = None, kind: Kind | None = None,
                  limit: Limit = 100, offset: Offset = 0) -> dict:
    """Each notification's payload (as published on `tongxin.notify.<unit>.<kind>`), its `id`
    (the SSE event id) and whether it is on the bus yet."""
    t = notifications
    organization_id = await _reach(request, organization_id)
    where = _for_unit(organization_id) + ([t.c.kind == kind] if kind else [])
    async with request.app.state.engine.connect() as conn:
        total = (await conn.execute(select(func.count()).select_from(t).where(*where))).scalar()
        rows = (await conn.execute(
            select(t.c.id, t.c.payload).where(*where)
            .order_by(t.c.occurred_at.desc(), t.c.id.desc()).limit(limit).offset(offset))).all()
        upto = await published_id(conn, t)
    return {"items": [_item(r, upto) for r in rows], "total": total, "limit": limit,
            "offset": offset}


@router.get("/v1/notifications/stream", summary="Notifications as server-sent events",
            response_class=StreamingResponse,
            responses={200: {"content": {"text/event-stream": {}}}})
async def stream(request: Request, organization_id: OrgQuery = None,
                 last_event_id: Annotated[str | None, Header(alias="Last-Event-ID")] = None
                 ) -> StreamingResponse:
    """`id: <id>`, `event: <kind>`, `data: <payload JSON>` per notification. With
    `Last-Event-ID`, what came after that id first; without, from now on. A comment every
    15 s keeps the connection open."""
    organization_id = await _reach(request, organization_id)
    engine: AsyncEngine = request.app.state.engine
    if last_event_id and last_event_id.strip().isdigit():
        cursor = int(last_event_id)
    else:
        async with engine.connect() as conn:
            cursor = (await conn.execute(select(func.max(notifications.c.id)))).scalar() or 0
    return StreamingResponse(_events(request, engine, _for_unit(organization_id), cursor),
                             media_type="text/event-stream",
                             headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})


async def _events(request: Request, engine: AsyncEngine, where: list, cursor: int
                  ) -> AsyncIterator[str]:
    t, start = notifications, cursor
    sent: set[int] = set()
    quiet_since = time.monotonic()
    yield "retry: 2000\n\n"
    while not await request.is_disconnected():
        floor = max(start, cursor - LOOKBACK_IDS)
        recent = datetime.now(UTC) - LOOKBACK
        async with engine.connect() as conn:
            rows = (await conn.execute(
                select(t.c.id, t.c.kind, t.c.payload)
                .where(*where, or_(t.c.id > cursor, and_(t.c.id > floor,
                                                         t.c.created_at >= recent)))
                .order_by(t.c.id).limit(500))).all()
        for row in rows:
            if row.id in sent:
                continue
            sent.add(row.id)
            cursor = max(cursor, row.id)
            quiet_since = time.monotonic()
            yield f"id: {row.id}\nevent: {row.kind}\ndata: {row.payload}\n\n"
        sent = {i for i in sent if i > cursor - LOOKBACK_IDS}
        if time.monotonic() - quiet_since >= KEEPALIVE_SECONDS:
            quiet_since = time.monotonic()
            yield ": keep-alive\n\n"
        if len(rows) < 500:
            await asyncio.sleep(POLL_SECONDS)
