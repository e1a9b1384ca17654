"""Sign-in hours (签到): an organiser opens a sign-in page for an activity, with a QR code and a
short code for a kiosk; volunteers sign in and out from their phones.

- `/sign-in/` (behind the login, like the forms): the organiser's page, `POST /v1/sign-in/pages`
  opens one (one per activity), `GET /v1/sign-in/pages/{code}` lists who signed in, open
  sign-ins flagged, `GET /v1/sign-in/pages/{code}/qr.svg` is its QR code, drawn here (segno).
- `/sign/` (public: a volunteer has no account): the kiosk asks for the short code;
  `/sign/{code}` is the phone page; `POST /sign/{code}/in` and `/out` sign in and out. The
  volunteer gives their registry number or code; the event carries only the volunteer's id.

Each step is an `attendance.recorded` (`method=sign_in`) with the server's clock, through the
acceptor like any offer: the rules refuse a time outside the activity's. Its event_id is one
per volunteer, activity and step, so a retried tap is the same event.
"""

from __future__ import annotations

import io
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import segno
from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from pydantic import BaseModel, Field, StringConstraints
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from services.events import store
from services.events.domain import parse_offer
from services.events.forms import signing
from services.events.http import RESPONSES
from services.events.service import Acceptor
from shared.auth import allow, in_subtree, principal
from shared.db import write_transaction
from shared.errors import Conflict, FieldError, Rejected

HERE = Path(__file__).resolve().parent
ORGANISER_PAGE = HERE / "sign_in.html"
PHONE_PAGE = HERE / "sign.html"
SOURCE = "sign-in"

router = APIRouter(tags=["sign-in"])

Who = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=64)]


class OpenPage(BaseModel):
    activity_id: str = Field(max_length=36)


class SignInPage(BaseModel):
    code: str = Field(description="the short code a kiosk takes, and the QR code's link ends in")
    activity_id: str
    title: str | None
    started_at: datetime | None
    ended_at: datetime | None
    url: str = Field(description="the volunteers' phone page: what the QR code holds")


class SignedIn(BaseModel):
    """One volunteer's sign-in at the activity: open (flagged) until they sign out."""

    volunteer_id: str
    name: str | None
    signed_in_at: datetime | None
    signed_out_at: datetime | None
    hours: float | None = Field(description="the signed span; none while open")
    status: str = Field(description="open, confirmed or declined")
    open: bool = Field(description="signed in, never signed out: no hours, not confirmed")


class SignInList(SignInPage):
    signed: list[SignedIn]
    open_count: int


class Volunteer(BaseModel):
    volunteer: Who = Field(description="the volunteer's registry number (id) or code")
    latitude: float | None = Field(None, ge=-90, le=90)
    longitude: float | None = Field(None, ge=-180, le=180)


class Signed(BaseModel):
    activity_id: str
    volunteer_id: str
    name: str | None = Field(description="the name's first character only: the page is public")
    signed_in_at: datetime
    signed_out_at: datetime | None
    hours: float | None
    event_id: str | None
    seq: int | None


class PublicPage(BaseModel):
    """What the phone page shows: the activity, no one's name."""

    code: str
    title: str | None
    started_at: datetime | None
    ended_at: datetime | None


def _acceptor(request: Request) -> Acceptor:
    return request.app.state.acceptor


def _utc(value: datetime | None) -> datetime | None:
    return value.replace(tzinfo=UTC) if value is not None and value.tzinfo is None else value


def _phone_url(request: Request, code: str) -> str:
    root = request.scope.get("root_path", "")
    return f"{request.url.scheme}://{request.url.netloc}{root}/sign/{code}"


async def _activity(conn: AsyncConnection, activity_id: str) -> dict | None:
    a = store.activities
    row = (await conn.execute(select(a).where(a.c.activity_id == activity_id))).first()
    return dict(row._mapping) if row is not None else None


async def _title(conn: AsyncConnection, activity: dict) -> str | None:
    t = store.accepted_events
    if not activity.get("logged_event_id"):
        return None
    payload = (await conn.execute(select(t.c.payload).where(
        t.c.event_id == activity["logged_event_id"]))).scalar_one_or_none()
    if payload is None:
        return None
    return (json.loads(payload).get("data") or {}).get("title")


async def _page(conn: AsyncConnection, code: str) -> dict:
    p = store.sign_in_pages
    row = (await conn.execute(select(p).where(p.c.code == signing.normal_code(code)))).first()
    if row is None:
        raise _not_found(code)
    return dict(row._mapping)


def _not_found(code: str) -> Rejected:
    return Rejected([FieldError(field="code", message=f"no sign-in page has the code {code}")])


async def _described(conn: AsyncConnection, request: Request, page: dict) -> dict:
    act = await _activity(conn, page["activity_id"]) or {}
    return {"code": page["code"], "activity_id": page["activity_id"],
            "title": await _title(conn, act) if act else None,
            "started_at": _utc(act.get("started_at")), "ended_at": _utc(act.get("ended_at")),
            "url": _phone_url(request, page["code"])}


# -- the organiser's side ---------------------------------------------------------------------

@router.get("/sign-in", include_in_schema=False)
async def organiser_redirect() -> RedirectResponse:
    return RedirectResponse("sign-in/", status_code=307)


@router.get("/sign-in/", include_in_schema=False)
async def organiser_page() -> HTMLResponse:
    return HTMLResponse(ORGANISER_PAGE.read_text(encoding="utf-8"),
                        headers={"Cache-Control": "no-store"})


@router.post("/v1/sign-in/pages", response_model=SignInPage, responses=RESPONSES,
             dependencies=[allow("admin", "organiser", "unit")],
             summary="Open the sign-in page of a logged activity (one per activity)",
             description="Answers the same page for the same activity. A unit's person opens "
                         "pages for its own activities only.")
async def open_page(request: Request, body: OpenPage) -> JSONResponse:
    acceptor = _acceptor(request)
    who = principal(request)
    async with acceptor.engine.connect() as conn:
        act = await _activity(conn, body.activity_id)
        if act is None or act["state"] != "logged":
            raise Conflict([FieldError(field="activity_id", message=(
                f"activity {body.activity_id} has not been logged; attendance is recorded "
                "at a logged activity"))])
        if who.scope is not None:
            t = store.registry_entities

            async def parent_of(id_: str) -> str | None:
                return (await conn.execute(select(t.c.parent_id).where(
                    t.c.kind == "organization", t.c.id == id_))).scalar_one_or_none()

            if not await in_subtree(act["organization_id"], who.scope, parent_of):
                raise Conflict([FieldError(field="activity_id", message=(
                    f"{who.label} acts for organisation {who.scope!r} and the units under "
                    f"it, not {act['organization_id']!r}"))]) from None
    p = store.sign_in_pages
    for _ in range(5):  # a code already taken (or the same activity opened at once): again
        try:
            async with write_transaction(acceptor.engine) as conn:
                found = (await conn.execute(select(p).where(
                    p.c.activity_id == body.activity_id))).first()
                if found is None:
                    await conn.execute(p.insert().values(
                        code=signing.new_code(), activity_id=body.activity_id,
                        opened_by=who.label, opened_at=datetime.now(UTC)))
            break
        except IntegrityError:
            continue
    async with acceptor.engine.connect() as conn:
        page = dict((await conn.execute(select(p).where(
            p.c.activity_id == body.activity_id))).one()._mapping)
        return JSONResponse(SignInPage(**await _described(conn, request, page))
                            .model_dump(mode="json"))


@router.get("/v1/sign-in/pages/{code}", response_model=SignInList, responses=RESPONSES,
            summary="A sign-in page with who signed in: open sign-ins (no sign-out) flagged")
async def list_page(request: Request, code: str) -> JSONResponse:
    a, r = store.attendance, store.registry_entities
    async with _acceptor(request).engine.connect() as conn:
        page = await _page(conn, code)
        rows = await conn.execute(
            select(a, r.c.name).select_from(a.outerjoin(r, (r.c.kind == "volunteer")
                                                          & (r.c.id == a.c.volunteer_id)))
            .where(a.c.activity_id == page["activity_id"], a.c.method == "sign_in")
            .order_by(a.c.signed_in_at, a.c.volunteer_id))
        signed = [SignedIn(volunteer_id=x.volunteer_id, name=x.name or None,
                           signed_in_at=_utc(x.signed_in_at),
                           signed_out_at=_utc(x.signed_out_at),
                           hours=None if x.status == "open" else round(x.hours, 4),
                           status=x.status, open=x.status == "open") for x in rows]
        described = await _described(conn, request, page)
    return JSONResponse(SignInList(**described, signed=signed,
                                   open_count=sum(s.open for s in signed))
                        .model_dump(mode="json"))


@router.get("/v1/sign-in/pages/{code}/qr.svg", response_class=Response,
            summary="The sign-in page's QR code (SVG, drawn by the server): the phone page's link",
            responses={**RESPONSES, 200: {"content": {"image/svg+xml": {}}}})
async def qr_code(request: Request, code: str) -> Response:
    async with _acceptor(request).engine.connect() as conn:
        page = await _page(conn, code)
    out = io.BytesIO()
    segno.make(_phone_url(request, page["code"]), error="m").save(
        out, kind="svg", scale=6, dark="#000", light="#fff", encoding="utf-8",
        title="签到二维码 Sign-in QR code")
    return Response(out.getvalue(), media_type="image/svg+xml",
                    headers={"Cache-Control": "no-store"})


# -- the volunteers' side (public) ------------------------------------------------------------

@router.get("/sign/", include_in_schema=False)
@router.get("/sign/{code}", include_in_schema=False)
async def phone_page() -> HTMLResponse:
    return HTMLResponse(PHONE_PAGE.read_text(encoding="utf-8"),
                        headers={"Cache-Control": "no-store"})


@router.get("/sign/{code}/about", response_model=PublicPage, responses=RESPONSES,
            summary="What a volunteer's phone shows of a sign-in page (public: no names)")
async def about(request: Request, code: str) -> JSONResponse:
    async with _acceptor(request).engine.connect() as conn:
        page = await _page(conn, code)
        d = await _described(conn, request, page)
    return JSONResponse(PublicPage(code=d["code"], title=d["title"], started_at=d["started_at"],
                                   ended_at=d["ended_at"]).model_dump(mode="json"))


async def _volunteer(conn: AsyncConnection, who: str) -> tuple[str, str | None]:
    r = store.registry_entities
    row = (await conn.execute(select(r.c.id, r.c.name).where(
        r.c.kind == "volunteer", r.c.active.is_(True), r.c.id == who))).first()
    if row is None:
        row = (await conn.execute(select(r.c.id, r.c.name).where(
            r.c.kind == "volunteer", r.c.active.is_(True),
            func.upper(r.c.record["code"].as_string()) == who.upper()).limit(1))).first()
    if row is None:
        raise Rejected([FieldError(field="volunteer", message=(
            f"no volunteer with the number or code '{who}' is registered"))])
    return row.id, row.name or None


async def _row(conn: AsyncConnection, activity_id: str, volunteer_id: str) -> dict | None:
    a = store.attendance
    row = (await conn.execute(select(a).where(a.c.activity_id == activity_id,
                                              a.c.volunteer_id == volunteer_id))).first()
    return dict(row._mapping) if row is not None else None


def _signed(activity_id: str, volunteer_id: str, name: str | None, row: dict,
            event_id: str | None = None, seq: int | None = None) -> JSONResponse:
    return JSONResponse(Signed(
        activity_id=activity_id, volunteer_id=volunteer_id, name=signing.masked(name),
        signed_in_at=_utc(row["signed_in_at"]), signed_out_at=_utc(row.get("signed_out_at")),
        hours=None if row.get("signed_out_at") is None else row.get("hours"),
        event_id=event_id, seq=seq).model_dump(mode="json"))


async def _offer(request: Request, event_id: str, data: dict) -> tuple[str, int | None]:
    envelope = {"event_id": event_id, "type": "attendance.recorded", "version": 1,
                "occurred_at": datetime.now(UTC).isoformat(), "source": SOURCE, "data": data}
    outcome = await _acceptor(request).accept_one(parse_offer(envelope), via="http")
    return outcome.event_id, outcome.seq


async def _who_where(request: Request, code: str, body: Volunteer) -> tuple[dict, str, str | None]:
    settings = request.app.state.settings
    async with _acceptor(request).engine.connect() as conn:
        page = await _page(conn, code)
        volunteer_id, name = await _volunteer(conn, body.volunteer)
        if body.latitude is not None and body.longitude is not None:
            act = await _activity(conn, page["activity_id"]) or {}
            r = store.registry_entities
            base = (await conn.execute(select(r.c.record).where(
                r.c.kind == "base", r.c.id == act.get("base_id")))).scalar_one_or_none() or {}
            far = signing.too_far(base, body.latitude, body.longitude,
                                  settings.sign_in_radius_m)
            if far is not None:
                raise Rejected([FieldError(field="location", message=(
                    f"is {far} m from the base; sign in within "
                    f"{settings.sign_in_radius_m:g} m of it"))])
    return page, volunteer_id, name


@router.post("/sign/{code}/in", response_model=Signed,
             responses=RESPONSES,
             summary="A volunteer signs in (public; the server's clock is the time)")
async def sign_in(request: Request, code: str, body: Volunteer) -> JSONResponse:
    page, volunteer_id, name = await _who_where(request, code, body)
    activity_id = page["activity_id"]
    async with _acceptor(request).engine.connect() as conn:
        row = await _row(conn, activity_id, volunteer_id)
    if row is not None and row["signed_in_at"] is not None:
        if (out := _utc(row["signed_out_at"])) is not None:
            raise Conflict([FieldError(field="volunteer", message=(
                f"you already signed out at {out.astimezone(_acceptor(request).zone):%H:%M}"))])
        return _signed(activity_id, volunteer_id, name, row)  # a second tap: as it stands
    now = datetime.now(UTC)
    event_id, seq = await _offer(request, signing.event_id(activity_id, volunteer_id, "in"), {
        "activity_id": activity_id, "volunteer_id": volunteer_id, "method": "sign_in",
        "signed_in_at": now.isoformat()})
    async with _acceptor(request).engine.connect() as conn:
        row = await _row(conn, activity_id, volunteer_id) or {"signed_in_at": now}
    return _signed(activity_id, volunteer_id, name, row, event_id, seq)


@router.post("/sign/{code}/out", response_model=Signed,
             responses=RESPONSES,
             summary="A volunteer signs out: the hours are the signed span")
async def sign_out(request: Request, code: str, body: Volunteer) -> JSONResponse:
    page, volunteer_id, name = await _who_where(request, code, body)
    activity_id = page["activity_id"]
    async with _acceptor(request).engine.connect() as conn:
        row = await _row(conn, activity_id, volunteer_id)
    if row is None or row["method"] != "sign_in" or row["signed_in_at"] is None:
        raise Conflict([FieldError(field="volunteer", message=(
            "you have not signed in to this activity; sign in first"))])
    if row["signed_out_at"] is not None:
        return _signed(activity_id, volunteer_id, name, row)  # a second tap: as it stands
    signed_in_at = _utc(row["signed_in_at"])
    assert signed_in_at is not None
    event_id, seq = await _offer(request, signing.event_id(activity_id, volunteer_id, "out"), {
        "activity_id": activity_id, "volunteer_id": volunteer_id, "method": "sign_in",
        "signed_in_at": signed_in_at.isoformat(),
        "signed_out_at": datetime.now(UTC).isoformat()})
    async with _acceptor(request).engine.connect() as conn:
        row = await _row(conn, activity_id, volunteer_id) or row
    return _signed(activity_id, volunteer_id, name, row, event_id, seq)
