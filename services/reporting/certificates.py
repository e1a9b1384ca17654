"""Service certificates (志愿服务记录证明, under the 2021 national measures on volunteer service
records: true, accurate, complete, timely): a volunteer's **confirmed** hours over a period,
each activity with its day, its unit, its hours and how they were recorded.

An organiser (or a unit) issues one with `POST /v1/certificates`: the figures are taken from the
volunteers ledger's tables at that moment (self-reported hours still waiting, declined hours and
retracted activities count nowhere) and stored with a random verification code, so what was
issued stays what it says. `GET /v1/certificates/{code}.pdf` renders it (reportlab, the report
document's Chinese font); anyone may check a code at `/verify/{code}` without a login, which
shows only the name's first character, the period, the totals and the issuing unit. A wrong code
is a 404.

The name comes from the registry replica reporting already keeps (the registry publishes a
volunteer's name and unit, never their phone or ID number); the certificate lists every hour
the volunteer served, under whichever unit (a moved volunteer's record goes with them, 转移接续).
"""

from __future__ import annotations

import asyncio
import html
import secrets
from datetime import UTC, date, datetime
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo

from fastapi import APIRouter, HTTPException, Path, Query, Request, Response
from fastapi.responses import HTMLResponse, JSONResponse
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import JSON, Column, Date, DateTime, String, Table, and_, insert, select
from sqlalchemy.ext.asyncio import AsyncConnection

from services.reporting.models import volunteers
from services.reporting.models.activities import activities as cube
from services.reporting.models.labels import organization_ancestors, registry_entities
from services.reporting.reports import MinSeq, attachment, wait_for
from services.reporting.store import metadata
from shared.auth import allow, forbidden, principal
from shared.dates import Day
from shared.db import write_transaction
from shared.http import Errors
from shared.json_response import JSON as JSONAnswer
from shared.replica import record_json
from shared.responses import Answer
from shared.settings import Settings

# Issued certificates: kept, never rebuilt (they are what was issued, not a read model).
certificates = Table(
    "certificates", metadata,
    Column("code", String(24), primary_key=True),
    Column("volunteer_id", String(64), nullable=False, index=True),
    Column("name", String(200), nullable=False),
    Column("organization_id", String(64), nullable=True),  # the issuing unit
    Column("organization_name", String(200), nullable=False, server_default=""),
    Column("date_from", Date, nullable=True),
    Column("date_to", Date, nullable=True),
    Column("issued_at", DateTime(timezone=True), nullable=False),
    Column("issued_by", String(80), nullable=False),
    Column("figures", JSON, nullable=False),  # {"lines": [...], "totals": {...}}
)

# 31 letters and digits no one misreads (no 0/O, 1/I/L): 16 of them are 79 random bits.
ALPHABET = "23456789ABCDEFGHJKMNPQRSTUVWXYZ"
CODE_LENGTH = 16
METHOD_LABELS = {"self": ("本人申报", "self-reported"), "organiser": ("组织者录入", "by organiser"),
                 "sign_in": ("签到", "sign-in"), "import": ("导入", "imported")}


def new_code() -> str:
    raw = "".join(secrets.choice(ALPHABET) for _ in range(CODE_LENGTH))
    return "-".join(raw[i:i + 4] for i in range(0, CODE_LENGTH, 4))


def normal_code(code: str) -> str:
    """A code as typed (lower case, spaces, no dashes) in the form it was issued."""
    raw = "".join(ch for ch in code.upper() if ch.isalnum())
    return "-".join(raw[i:i + 4] for i in range(0, len(raw), 4))


def masked(name: str) -> str:
    """Only the first character (刘**): the length of the name is not shown either."""
    return (name.strip()[:1] or "?") + "**"


# -- the figures ------------------------------------------------------------------------------

async def confirmed_lines(conn: AsyncConnection, volunteer_id: str, date_from: date | None,
                          date_to: date | None) -> list[dict]:
    """Each activity with the volunteer's confirmed hours, oldest first."""
    a, act = volunteers.attendance, volunteers.activities
    unit = registry_entities.alias("unit")
    where = [a.c.volunteer_id == volunteer_id, a.c.status == "confirmed",
             act.c.retracted.is_(False)]
    if date_from:
        where.append(act.c.day >= date_from)
    if date_to:
        where.append(act.c.day <= date_to)
    rows = await conn.execute(
        select(a.c.activity_id, act.c.day, act.c.organization_id, unit.c.name, cube.c.title,
               a.c.hours, a.c.method)
        .select_from(a.join(act, act.c.activity_id == a.c.activity_id)
                     .outerjoin(cube, cube.c.activity_id == a.c.activity_id)
                     .outerjoin(unit, and_(unit.c.kind == "organization",
                                           unit.c.id == act.c.organization_id)))
        .where(*where).order_by(act.c.day, a.c.activity_id))
    return [{"activity_id": r.activity_id, "day": r.day.isoformat(), "title": r.title or "",
             "organization_id": r.organization_id,
             "organization_name": r.name or r.organization_id,
             "hours": round(float(r.hours), 2), "method": r.method} for r in rows]


def totals_of(lines: list[dict]) -> dict:
    by_method = {m: 0.0 for m in volunteers.METHODS}
    for line in lines:
        by_method[line["method"]] = by_method.get(line["method"], 0.0) + line["hours"]
    return {"hours": round(sum(line["hours"] for line in lines), 2),
            "activities": len({line["activity_id"] for line in lines}),
            "hours_by_method": {m: round(h, 2) for m, h in by_method.items()}}


# -- the answers ------------------------------------------------------------------------------

class Asked(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    volunteer_id: str = Field(min_length=1, max_length=64)
    date_from: Day | None = Field(None, alias="from", description="first day, inclusive")
    date_to: Day | None = Field(None, alias="to", description="last day, inclusive")


class Line(Answer):
    activity_id: str
    day: str
    title: str
    organization_id: str
    organization_name: str
    hours: float
    method: str = Field(description="self, organiser, sign_in, import")


class Totals(Answer):
    hours: float
    activities: int
    hours_by_method: dict[str, float]


class Certificate(Answer):
    code: str
    volunteer_id: str
    name: str
    organization_id: str | None = Field(description="the issuing unit")
    organization_name: str
    date_from: str | None
    date_to: str | None
    issued_at: str
    lines: list[Line]
    totals: Totals
    pdf: str = Field(description="the PDF's path (with a key or login)")
    verify: str = Field(description="the public page anyone may open with the code")


class Verified(Answer):
    code: str
    name: str = Field(description="the name's first character only: 刘**")
    date_from: str | None
    date_to: str | None
    hours: float
    activities: int
    organization_name: str = Field(description="the issuing unit")
    issued_at: str


def _out(r: Any) -> dict:
    figures = record_json(r.figures)
    return {"code": r.code, "volunteer_id": r.volunteer_id, "name": r.name,
            "organization_id": r.organization_id, "organization_name": r.organization_name,
            "date_from": r.date_from.isoformat() if r.date_from else None,
            "date_to": r.date_to.isoformat() if r.date_to else None,
            "issued_at": r.issued_at.astimezone(UTC).isoformat() if r.issued_at.tzinfo
            else r.issued_at.replace(tzinfo=UTC).isoformat(),
            "lines": figures["lines"], "totals": figures["totals"],
            "pdf": f"/v1/certificates/{r.code}.pdf", "verify": f"/verify/{r.code}"}


async def _issued(conn: AsyncConnection, code: str) -> dict | None:
    row = (await conn.execute(select(certificates).where(
        certificates.c.code == normal_code(code)))).first()
    return _out(row) if row else None


def _refused(status: int, field: str, message: str) -> HTTPException:
    return HTTPException(status, detail=[{"field": field, "message": message}])


async def _in_reach(request: Request, conn: AsyncConnection, *units: str | None) -> None:
    """A caller bound to a unit issues certificates for volunteers of that unit (or a unit
    under it) only, and reads those it (or the volunteer's unit now) could issue."""
    root = principal(request).scope
    if root is None:
        return
    oa = organization_ancestors
    wanted = [u for u in units if u]
    if not wanted or (await conn.execute(select(oa.c.code).where(
            oa.c.code.in_(wanted), oa.c.ancestor == root).limit(1))).first() is None:
        raise forbidden(f"{principal(request).label} issues certificates for volunteers of "
                        f"organisation {root!r} and the units under it", "volunteer_id")


router = APIRouter(tags=["certificates"])
Code = Annotated[str, Path(max_length=40, description=(
    "the verification code, e.g. 7KQ2-M9XD-4HPA-ZR3C"))]


@router.post("/v1/certificates", status_code=201, response_model=Certificate,
             dependencies=[allow("admin", "organiser", "unit")],
             summary="Issue a certificate of a volunteer's confirmed hours (志愿服务记录证明)",
             responses={404: {"model": Errors, "description": "a volunteer the registry has "
                                                              "not published"},
                        422: {"model": Errors, "description": "no confirmed hours in the "
                                                              "period, or `to` before `from`"},
                        503: {"model": Errors, "description": "the ledger has not applied "
                                                              "`min_seq` yet (Retry-After)"}})
async def issue(request: Request, asked: Asked, min_seq: MinSeq = None) -> Any:
    """The volunteer's confirmed hours in the period (every activity, whichever unit ran it),
    stored with a new verification code; the issuing unit is the caller's (an admin's: the
    volunteer's unit now). 404 for a volunteer the registry has not published; 422 naming
    `volunteer_id` when there are no confirmed hours in the period."""
    if asked.date_from and asked.date_to and asked.date_to < asked.date_from:
        raise _refused(422, "to", "must not be before from")
    await wait_for(request, (volunteers.NAME,), min_seq)
    state = request.app.state
    reg = registry_entities
    who = principal(request)
    async with state.engine.connect() as conn:
        found = (await conn.execute(select(reg.c.name, reg.c.organization_id).where(
            reg.c.kind == "volunteer", reg.c.id == asked.volunteer_id))).first()
        if found is None:
            raise _refused(404, "volunteer_id", f"no volunteer {asked.volunteer_id!r} is known")
        await _in_reach(request, conn, found.organization_id)
        lines = await confirmed_lines(conn, asked.volunteer_id, asked.date_from, asked.date_to)
        issuer = who.organization_id or found.organization_id
        issuer_name = (await conn.execute(select(reg.c.name).where(
            reg.c.kind == "organization", reg.c.id == issuer))).scalar() if issuer else None
    if not lines:
        raise _refused(422, "volunteer_id", "this volunteer has no confirmed hours in the "
                       "period: nothing to certify")
    row = {"code": new_code(), "volunteer_id": asked.volunteer_id, "name": found.name,
           "organization_id": issuer, "organization_name": issuer_name or issuer or "",
           "date_from": asked.date_from, "date_to": asked.date_to,
           "issued_at": datetime.now(UTC), "issued_by": who.label,
           "figures": {"lines": lines, "totals": totals_of(lines)}}
    async with write_transaction(state.engine) as conn:
        await conn.execute(insert(certificates), row)
    async with state.engine.connect() as conn:
        out = await _issued(conn, row["code"])
    return JSONAnswer(out, status_code=201)


@router.get("/v1/certificates/{code}.pdf", summary="A certificate as a PDF",
            response_class=Response,
            responses={200: {"description": "the certificate as issued",
                             "content": {"application/pdf": {}}},
                       503: {"model": Errors, "description": "no Chinese font for the PDF"}})
async def certificate_pdf(request: Request, code: Code,
                          lang: Annotated[Literal["zh", "en"], Query()] = "zh") -> Any:
    """The certificate as issued: each activity, its day, unit, hours and method, the totals,
    the issuing unit and the verification code with the page to check it at."""
    state = request.app.state
    async with state.engine.connect() as conn:
        cert = await _issued(conn, code)
        if cert is None:
            raise _refused(404, "code", "no certificate has this code")
        reg = registry_entities
        unit = (await conn.execute(select(reg.c.organization_id).where(
            reg.c.kind == "volunteer", reg.c.id == cert["volunteer_id"]))).scalar()
        await _in_reach(request, conn, unit, cert["organization_id"])
    from services.reporting import certificate_pdf as layout
    from services.reporting import pdf
    settings: Settings = state.settings
    try:
        name = pdf.font(settings.pdf_font)
    except pdf.FontMissing as e:
        return JSONResponse({"errors": [{"field": "format", "message": str(e)}]}, 503)
    verify_url = str(request.base_url).rstrip("/") + cert["verify"]
    issued_day = datetime.fromisoformat(cert["issued_at"]).astimezone(
        ZoneInfo(settings.timezone)).date()
    body = await asyncio.to_thread(layout.render, cert, name, lang, verify_url, issued_day)
    return Response(body, media_type="application/pdf",
                    headers=attachment(f"certificate_{cert['code']}.pdf"))


# -- the public check -------------------------------------------------------------------------

def verified(cert: dict) -> dict:
    """What anyone with the code may see: no id, no full name, no activity."""
    return {"code": cert["code"], "name": masked(cert["name"]),
            "date_from": cert["date_from"], "date_to": cert["date_to"],
            "hours": cert["totals"]["hours"], "activities": cert["totals"]["activities"],
            "organization_name": cert["organization_name"], "issued_at": cert["issued_at"]}


@router.get("/verify/{code}", summary="Check a certificate's code (public: no key or login)",
            response_model=Verified,
            responses={200: {"content": {"text/html": {}}},
                       404: {"model": Errors, "description": "no certificate has this code "
                                                             "(a page saying so to a browser)",
                             "content": {"text/html": {}}}})
async def verify(request: Request, code: Code) -> Any:
    """The certificate as issued, as much as a stranger may see: the name's first character,
    the period, the confirmed hours and activities, the issuing unit and the day of issue. A
    page to a browser (`Accept: text/html`), JSON to anything else."""
    format = "html" if "text/html" in request.headers.get("accept", "") else "json"
    async with request.app.state.engine.connect() as conn:
        cert = await _issued(conn, code)
    if cert is None:
        if format == "json":
            raise _refused(404, "code", "no certificate has this code")
        return HTMLResponse(_page(None, code), status_code=404)
    seen = verified(cert)
    return JSONAnswer(seen) if format == "json" else HTMLResponse(_page(seen, code))


def _page(seen: dict | None, code: str) -> str:
    e = html.escape
    if seen is None:
        body = (f"<h1>未找到该证明 · No such certificate</h1><p>验证码 Code: <code>{e(code)}</code>"
                "</p><p>请核对验证码。Check the code and try again.</p>")
    else:
        period = "—" if not (seen["date_from"] or seen["date_to"]) else (
            f"{seen['date_from'] or '…'} 至 to {seen['date_to'] or '…'}")
        rows = [("姓名 · Name", seen["name"]), ("服务期间 · Period", period),
                ("已确认志愿服务时长 · Confirmed hours", f"{seen['hours']:g} 小时 h"),
                ("参加活动 · Activities", f"{seen['activities']} 次"),
                ("出具单位 · Issued by", seen["organization_name"]),
                ("出具时间 · Issued", seen["issued_at"][:10]), ("验证码 · Code", seen["code"])]
        cells = "".join(f"<tr><th>{e(k)}</th><td>{e(str(v))}</td></tr>" for k, v in rows)
        body = ("<h1>志愿服务记录证明 · Certificate of volunteer service</h1>"
                "<p class=ok>该证明真实有效，内容如下。This certificate was issued as shown.</p>"
                f"<table>{cells}</table>")
    return ("<!doctype html><html lang=zh><head><meta charset=utf-8>"
            "<meta name=viewport content='width=device-width, initial-scale=1'>"
            "<title>志愿服务记录证明验证 · Certificate check</title><style>"
            "body{font-family:system-ui,sans-serif;max-width:36rem;margin:2rem auto;"
            "padding:0 1rem;color:#1f2328}h1{font-size:1.3rem;color:#b3261e}"
            "th{text-align:left;padding:.4rem 1rem .4rem 0;color:#5f6670;font-weight:normal}"
            "td{padding:.4rem 0}.ok{color:#2e7d32}</style></head>"
            f"<body>{body}</body></html>")
