"""The dashboard's routes: the page at `/` and `/v1/dashboard/choices`, what its filters and
pickers offer (the units, regions, campaigns and pairings the caller may see, the years with
activities). The reports answer everything else."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse
from pydantic import Field
from sqlalchemy import func, select

from services.reporting.models.activities import indicator_column, shares
from services.reporting.models.labels import registry_entities as reg
from services.reporting.scope import Scope, within_reach
from shared.auth import principal
from shared.replica import record_json
from shared.responses import Answer, DateText, Day
from shared.taxonomy import INDICATORS, SERVICE_TYPES, THEMES

router = APIRouter()

HERE = Path(__file__).resolve().parent
SHELL = HERE / "shell.html"
STATIC = HERE / "static"


def _version() -> str:
    """Changes when the script or style does, so a browser never runs yesterday's script."""
    return str(int(max(p.stat().st_mtime for p in STATIC.iterdir())))


@router.get("/", response_class=HTMLResponse, include_in_schema=False)
async def page(request: Request) -> str:
    principal(request)  # a login or key; a browser without one was sent to log in
    return SHELL.read_text(encoding="utf-8").replace("{{version}}", _version())


class Who(Answer):
    name: str
    role: str
    kind: str
    organization_id: str | None
    organization_name: str | None


class Choice(Answer):
    id: str
    name: str | None


class UnitChoice(Choice):
    parent_id: str | None


class RegionChoice(Choice):
    parent_id: str | None
    level: str


class CampaignChoice(Choice):
    organization_id: str | None


class PairingChoice(Choice):
    organization_id: str | None
    base_id: str | None


class DashboardChoices(Answer):
    """What the dashboard's filters offer the caller."""

    who: Who
    units: list[UnitChoice] = Field(description="the caller's subtree")
    regions: list[RegionChoice]
    campaigns: list[CampaignChoice]
    pairings: list[PairingChoice]
    taxonomy: dict[str, dict[str, tuple[str, str]]] = Field(
        description="{kind: {code: [label_zh, label_en]}} for theme, service_type, indicator")
    indicator_headers: dict[str, tuple[str, str]] = Field(
        description="{code: [zh, en]}: a shipped output indicator's name with its unit, as "
                    "the ledgers head its column: 投入资金(万元), Funds invested (10k CNY)")
    years: list[int] = Field(description="years with activities, newest first")
    last_day: Day | None = Field(description="the last day with an activity, up to today")
    today: DateText = Field(description="today in the programme's time zone")
    timezone: str = Field(description="the programme's time zone (TONGXIN_TIMEZONE): the "
                                      "dashboard writes times in it")
    forms_url: str = Field(description="the events service's forms page")


@router.get("/v1/dashboard/choices", tags=["dashboard"],
            summary="What the dashboard's filters offer the caller",
            response_model=DashboardChoices)
async def choices(request: Request) -> dict[str, Any]:
    """Who is logged in; the units (the caller's subtree), regions, campaigns and pairings
    to pick from; `today` by the clock, in the programme's time zone (the day idle bases are
    counted to); the years with activities and the last day with one, up to today (an
    activity wrongly dated ahead moves neither); the codes' labels in both languages
    (`taxonomy`: the shipped ones and those the registry added), which the reports give in
    Chinese; the forms page on the events service."""
    who = principal(request)
    reach = await within_reach(request, Scope())
    settings = request.app.state.settings
    today = datetime.now(ZoneInfo(settings.timezone)).date()
    async with request.app.state.engine.connect() as conn:
        def listed(kind: str, *where: Any):
            return (select(reg.c.id, reg.c.name, reg.c.parent_id, reg.c.organization_id,
                           reg.c.base_id, reg.c.record)
                    .where(reg.c.kind == kind, *where).order_by(reg.c.name, reg.c.id))

        mine = [reg.c.id.in_(reach.units())] if reach.organization_id else []
        theirs = [reg.c.organization_id.in_(reach.units())] if reach.organization_id else []
        units = (await conn.execute(listed("organization", *mine))).all()
        regions = (await conn.execute(listed("region"))).all()
        campaigns = (await conn.execute(listed("campaign", *theirs))).all()
        pairings = (await conn.execute(listed("pairing", *theirs))).all()
        added = {kind: (await conn.execute(listed(kind))).all()
                 for kind in ("service_type", "indicator")}
        s = shares
        days = select(s.c.year, func.max(s.c.day).label("last")).where(
            s.c.day <= today,
            *reach.where(organization=s.c.organization_id, base=s.c.base_id)).group_by(s.c.year)
        years = sorted((await conn.execute(days)).all(), reverse=True)
        own = next((u.name for u in units if u.id == who.organization_id), None)
    host = request.url.hostname or "127.0.0.1"
    return {
        "who": {"name": who.name, "role": who.role, "kind": who.kind,
                "organization_id": who.organization_id, "organization_name": own},
        "units": [{"id": u.id, "name": u.name, "parent_id": u.parent_id} for u in units],
        "regions": [{"id": r.id, "name": r.name, "parent_id": r.parent_id,
                     "level": record_json(r.record).get("level", "")} for r in regions],
        "campaigns": [{"id": c.id, "name": c.name, "organization_id": c.organization_id}
                      for c in campaigns],
        "pairings": [{"id": p.id, "name": p.name, "organization_id": p.organization_id,
                      "base_id": p.base_id} for p in pairings],
        "taxonomy": _taxonomy(added),
        "indicator_headers": {code: (col.zh, col.en) for code in INDICATORS
                              for col in [indicator_column(code)]},
        "years": [int(y.year) for y in years],
        "last_day": max((y.last for y in years), default=None),
        "today": today.isoformat(),
        "timezone": settings.timezone,
        "forms_url": f"{request.url.scheme}://{host}:{settings.events_port}/forms/",
    }


def _taxonomy(added: dict[str, list]) -> dict[str, dict[str, tuple[str, str]]]:
    """{kind: {code: (label_zh, label_en)}}: the codes shipped with Tongxin, then those the
    registry added (a code without an English label keeps its Chinese one)."""
    out: dict[str, dict[str, tuple[str, str]]] = {
        "theme": dict(THEMES), "service_type": dict(SERVICE_TYPES),
        "indicator": {c: (zh, en) for c, (zh, en, _) in INDICATORS.items()}}
    for kind, rows in added.items():
        for row in rows:
            record = record_json(row.record)
            zh = str(record.get("label_zh") or row.name or row.id)
            out[kind].setdefault(row.id, (zh, str(record.get("label_en") or zh)))
    return out
