"""The report document (工作报告) an organiser hands upward for a month, a quarter or a year
and a scope (`GET /v1/reports/document?period=2024-03&format=pdf`): title, period, scope,
headline figures with the change from the period before, charts, tables by unit and by base,
the units whose reports are overdue named, needs resolved, and the notable activities with
their photos.

The domain part (`gather`) asks the report queries every other report uses, in one snapshot,
and keeps only what a page shows (the first rows of each table). The render part lives in
`services.reporting.pdf`; `format=json` answers the same figures as data.
"""

from __future__ import annotations

import asyncio
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse, Response
from pydantic import Field
from sqlalchemy.ext.asyncio import AsyncConnection

from services.reporting.models import activities, approvals, needs, timeliness
from services.reporting.models.labels import code_map
from services.reporting.period import Period
from services.reporting.reports import MinSeq, attachment, snapshot, wait_for
from services.reporting.scope import Scope, describe, within_reach
from shared.http import Errors
from shared.json_response import JSON
from shared.responses import Answer, DateText, Number

READS = (activities.NAME, timeliness.NAME, needs.NAME)
ROWS = 12      # units and bases shown in a table (the rest are summed in the totals)
NOTABLE = 4    # notable activities, each with a photo
LISTED = 10    # overdue units and needs resolved, named
Lang = Literal["zh", "en"]


@dataclass(frozen=True)
class Headline:
    """One headline figure, this period and the one before."""

    key: str
    zh: str
    en: str
    unit_zh: str
    unit_en: str
    value: float
    previous: float

    @property
    def change(self) -> float | None:
        """The change from the period before, as a fraction (None when it had nothing)."""
        return (self.value - self.previous) / self.previous if self.previous else None


# The headline figures: the summary's totals, each with its unit (donations in 万元).
HEADLINES = (
    ("activities", "开展活动", "Activities", "次", "times", 1),
    ("served", "服务群众", "People served", "人次", "person-times", 1),
    ("volunteers", "志愿者参与", "Volunteer turn-outs", "人次", "person-times", 1),
    ("unique_volunteers", "参与志愿者", "Distinct volunteers", "人", "people", 1),
    ("volunteer_hours", "服务时长", "Volunteer hours", "小时", "h", 1),
    ("donation_value_cny", "捐赠价值", "Donations", "万元", "10k CNY", 10_000),
)


@dataclass
class Document:
    period: Period
    lang: Lang
    scope: str                   # named: 淄博市委统战部（含下级单位）
    as_of: int
    generated_at: str
    headlines: list[Headline]
    trend: list[dict]            # served and activities by week (a month) or by month
    units: list[dict]            # the summary by unit, most served first
    units_total: int
    bases: list[dict]
    bases_total: int
    reports: dict                # timeliness totals: due, on_time, late, missing, rate
    overdue: list[dict]          # units with reports missing: name, code, missing, days
    needs: dict                  # needs raised in the period: total, resolved, ...
    resolved: list[dict]         # needs resolved: title, base, claimer, category
    notable: list[dict]          # activities: day, title, unit, base, served, photo ref
    # Whether the figures are approved for this scope and period (`approvals.status`).
    approval: dict = field(default_factory=lambda: {"state": "not_approved", "zh": "未审定",
                                                    "en": "not approved"})
    photos: dict[str, bytes] = field(default_factory=dict)  # ref: bytes (not in JSON)

    def as_json(self) -> dict:
        out = asdict(self)
        out.pop("photos")
        out["period"] = {"code": self.period.code(), "label": self.period.label(self.lang),
                         "from": self.period.first.isoformat(),
                         "to": self.period.last.isoformat()}
        out["headlines"] = [{**asdict(h), "change": h.change} for h in self.headlines]
        return out



# -- what `format=json` answers (described for OpenAPI; written by `Document.as_json`) -------

class PeriodOut(Answer):
    code: str
    label: str
    from_: DateText = Field(alias="from")
    to: DateText


class HeadlineOut(Answer):
    key: str
    zh: str
    en: str
    unit_zh: str
    unit_en: str
    value: Number
    previous: Number
    change: float | None = Field(description="from the period before, as a fraction")


class DocumentOut(Answer):
    """The report document's figures (what the PDF shows)."""

    period: PeriodOut
    lang: str
    scope: str
    as_of: int
    generated_at: str
    headlines: list[HeadlineOut]
    trend: list[dict[str, Any]]
    units: list[dict[str, Any]]
    units_total: int
    bases: list[dict[str, Any]]
    bases_total: int
    reports: dict[str, Any]
    overdue: list[dict[str, Any]]
    needs: dict[str, Any]
    resolved: list[dict[str, Any]]
    notable: list[dict[str, Any]]
    approval: dict[str, Any] = Field(description=(
        "approved, restated (changed since approved) or not_approved, in both languages: "
        "what the summary's `approval` says for this scope and period"))

def _top(rows: list[dict], figure: str) -> list[dict]:
    return sorted(rows, key=lambda r: (-r[figure], str(r["label"])))[:ROWS]


async def gather(conn: AsyncConnection, scope: Scope, period: Period, lang: Lang,
                 tz: ZoneInfo, at: datetime | None = None) -> Document:
    """Every figure the document shows, from the report queries, in one snapshot."""
    as_of = await snapshot(conn, READS)
    now = at or datetime.now(UTC)
    this = replace(scope, date_from=period.first, date_to=period.last)
    before = period.previous()
    last = replace(scope, date_from=before.first, date_to=before.last)

    units, totals = await activities.summary(conn, "organization", this)
    _, previous = await activities.summary(conn, "organization", last)
    headlines = [Headline(key, zh, en, uzh, uen, totals[key] / per, previous[key] / per)
                 for key, zh, en, uzh, uen, per in HEADLINES]
    trend_by: activities.GroupBy = "week" if period.kind == "month" else "month"
    trend, _ = await activities.summary(conn, trend_by, this)
    bases, _ = await activities.summary(conn, "base", this)

    _, reports = await timeliness.timeliness(conn, this, "organization", now, str(tz))
    overdue: dict[str, dict] = {}
    for item in await timeliness.missing(conn, this, now, str(tz)):
        unit = overdue.setdefault(item["organization_id"], {
            "organization_id": item["organization_id"], "name": item["organization_name"],
            "missing": 0, "days_overdue": 0.0})
        unit["missing"] += 1
        unit["days_overdue"] = max(unit["days_overdue"], item["days_overdue"])
    named = sorted(overdue.values(), key=lambda u: (-u["missing"], -u["days_overdue"]))[:LISTED]
    codes = await code_map(conn, "organization", [u["organization_id"] for u in named])
    for unit in named:
        unit["code"] = codes.get(unit["organization_id"], "")

    _, need_totals = await needs.report_rows(conn, "base", this, now.astimezone(tz).date())
    resolved = await needs.resolved(conn, this, tz, now.astimezone(tz).date(), LISTED)
    notable = await activities.notable(conn, this, NOTABLE)
    unit_names = {u["key"]: u["label"] for u in units}
    base_names = {b["key"]: b["label"] for b in bases}
    photos = await timeliness.photos(conn, [a["activity_id"] for a in notable])
    for a in notable:
        a["organization_label"] = unit_names.get(a["organization_id"], a["organization_id"])
        a["base_label"] = base_names.get(a["base_id"], a["base_id"])
        a["photo"] = photos.get(a["activity_id"])

    return Document(
        period=period, lang=lang, scope=await describe(conn, scope, lang), as_of=as_of,
        generated_at=now.astimezone(tz).strftime("%Y-%m-%d %H:%M"), headlines=headlines,
        trend=[{"key": t["key"], "served": t["served"], "activities": t["activities"]}
               for t in trend],
        units=_top(units, "served"), units_total=len(units),
        bases=_top(bases, "served"), bases_total=len(bases),
        reports=reports, overdue=named,
        needs={k: need_totals[k] for k in ("total", "open", "claimed", "resolved", "closed",
                                           "closed_confirmed", "followups_overdue")},
        resolved=[{k: n[k] for k in ("title", "base_label", "organization_label",
                                     "category_label", "resolved_at")} for n in resolved],
        notable=notable, approval=await approvals.status(conn, this))


async def fetch_photos(js: Any, bucket: str, refs: list[str], limit: int) -> dict[str, bytes]:
    """The photos' bytes from the events service's object store (read only, over NATS); a
    photo that cannot be read is left out, never the document."""
    if not refs:
        return {}
    try:
        store = await js.object_store(bucket)
    except Exception:
        return {}
    out: dict[str, bytes] = {}
    for ref in refs:
        try:
            result = await asyncio.wait_for(store.get(ref), 10.0)
        except Exception:
            continue
        if result.data and len(result.data) <= limit:
            out[ref] = result.data
    return out


router = APIRouter(tags=["reports"])
PeriodQuery = Annotated[str, Query(max_length=10, description=(
    "a month (2024-03), a quarter (2024-Q1) or a year (2024)"))]


def _error(status: int, field_: str, message: str) -> JSONResponse:
    return JSONResponse({"errors": [{"field": field_, "message": message}]}, status_code=status)


@router.get("/v1/reports/document", summary="The report document for a period and scope",
            responses={200: {"model": DocumentOut, "description": "a PDF, or with `format=json` "
                             "the same figures", "content": {"application/pdf": {}}},
                       422: {"model": Errors, "description": "a period not understood"},
                       503: {"model": Errors, "description": "no Chinese font for the PDF"}})
async def get_document(
    request: Request,
    period: PeriodQuery,
    organization_id: Annotated[str | None, Query(
        max_length=64, description="a unit: it and every unit under it")] = None,
    base_id: Annotated[str | None, Query(max_length=64)] = None,
    region: Annotated[str | None, Query(
        max_length=64, description="a region code: bases in it at any depth")] = None,
    format: Annotated[Literal["pdf", "json"], Query(
        description="pdf, or the same figures as json")] = "pdf",
    lang: Annotated[Lang, Query(description="Chinese (default) or English")] = "zh",
    min_seq: MinSeq = None,
) -> Any:
    """A monthly, quarterly or yearly report: headline figures with the change from the period
    before, the trend and the leading units as charts, tables by unit and by base, overdue
    report units named, needs raised and resolved, notable activities with a photo each."""
    try:
        asked = Period.parse(period)
    except ValueError as e:
        return _error(422, "period", str(e))
    scope = await within_reach(request, Scope(organization_id, region, base_id))
    await wait_for(request, READS, min_seq)
    state = request.app.state
    settings = state.settings
    if format == "pdf":
        from services.reporting import pdf
        try:
            font = pdf.font(settings.pdf_font)
        except pdf.FontMissing as e:
            return _error(503, "format", str(e))
    async with state.engine.connect() as conn:
        doc = await gather(conn, scope, asked, lang, ZoneInfo(settings.timezone))
    if format == "json":
        return JSON(doc.as_json())
    js = getattr(state, "js", None)
    if js is not None:
        doc.photos = await fetch_photos(js, state.photos_bucket,
                                        [a["photo"] for a in doc.notable if a["photo"]],
                                        settings.photo_max_bytes)
    body = await asyncio.to_thread(pdf.render, doc, font)
    name = f"report_{asked.code()}_{doc.scope}.pdf" if scope != Scope() else \
        f"report_{asked.code()}.pdf"
    name = "".join(ch for ch in name if ch not in '\\/:*?"<>|，, （）()')
    return Response(body, media_type="application/pdf", headers=attachment(name))
