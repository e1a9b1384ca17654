"""The year-end assessment (年终考核, 先进集体 / 先进个人, `/v1/reports/assessment`): units ranked
by a score under rules that are data, and individuals ranked by confirmed hours.

Rules. A version is `{"components": [{"figure", "weight", "target", "invert"?}], "note"?}`,
kept for good in `assessment_rules` (version 1, the default, comes with the migration and
stands in when the table is empty). A component's points are

    weight × min(value ÷ target, 1)            (more is better: full weight at the target)
    weight × max(1 − value ÷ target, 0)        (`invert`: fewer is better, e.g. `missed`:
                                                full weight at 0, none at the target or more)

rounded to 2 places, and a unit's score is the sum of its components' points, so they add up.

Figures come from the other read models' public functions, over the year (1 Jan – 31 Dec, local)
within the request's scope: the activity cube (activities, served, hours, distinct volunteers,
trainees, donations, `outputs.<indicator>`), timeliness (on_time_rate, 0 when nothing was due;
missed rota entries) and needs (resolved, claimed, and the 12345 rates of the needs a unit holds:
need_response_rate, need_resolution_rate, need_satisfaction_rate, 0-1, 0 when nothing was due).
A figure a unit has none of is 0.

Units ranked: every unit with any figure in the year (a unit that did nothing, owed nothing and
claimed nothing has nothing to be assessed on). Ties: by name, then id. Individuals: volunteers
with confirmed hours in the year, most first (ties by name, then id), with their star levels.
Each person appears once: a volunteer moved to another unit (转移接续) has all their hours in
the year added up, under the unit they belong to now; a ranking scoped to a unit's subtree
counts only the hours served under the units in it, and names the unit now only if it is one
of them (else the one they last served under there).

This model consumes no events: its projection only keeps a position. Its rules table is written
by `POST /v1/assessment/rules`, not by replay, so it is not among the model's tables (a rebuild
must never empty it).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime
from typing import Annotated, Any
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field, field_validator
from pydantic_core import PydanticCustomError
from sqlalchemy import (
    JSON,
    Column,
    DateTime,
    Integer,
    String,
    Table,
    func,
    insert,
    select,
)
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from services.reporting.models import activities, needs, timeliness, volunteers
from services.reporting.models.labels import label_map
from services.reporting.readmodel import ReadModel
from services.reporting.reports import Column as Col
from services.reporting.reports import (
    FormatQuery,
    HeadersQuery,
    MinSeq,
    Report,
    answer,
    documented,
)
from services.reporting.scope import Scope, scope_query
from services.reporting.store import metadata
from shared.auth import allow
from shared.db import write_transaction
from shared.http import Errors
from shared.responses import Answer, DateTimeText, Number
from shared.taxonomy import INDICATORS

NAME = "reporting-assessment"
READS = (activities.NAME, timeliness.NAME, needs.NAME, volunteers.NAME)

rules_table = Table(
    "assessment_rules", metadata,
    Column("version", Integer, primary_key=True, autoincrement=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("rules", JSON, nullable=False),   # {"components": [...]}
    Column("note", String(500), nullable=True),
)

# figure: (zh, en) labels; `outputs.<indicator>` besides.
FIGURES: dict[str, tuple[str, str]] = {
    "activities": ("活动次数", "Activities"),
    "served": ("服务群众(人次)", "Served"),
    "volunteer_hours": ("服务时长(小时)", "Volunteer hours"),
    "unique_volunteers": ("志愿者(人)", "Distinct volunteers"),
    "trainees": ("培训(人)", "Trainees"),
    "donation_value_cny": ("捐赠价值(元)", "Donations (CNY)"),
    "on_time_rate": ("按时报送率", "On-time report rate"),
    "needs_resolved": ("办结需求", "Needs resolved"),
    "needs_claimed": ("认领需求", "Needs claimed"),
    "need_response_rate": ("需求按时响应率", "Need response rate"),
    "need_resolution_rate": ("需求实际解决率", "Need resolution rate"),
    "need_satisfaction_rate": ("需求满意率", "Need satisfaction rate"),
    "missed": ("未开展轮值(次)", "Rota entries missed"),
}
_OUTPUT = re.compile(r"outputs\.[a-z][a-z0-9_]{0,39}")


def figure_label(figure: str) -> tuple[str, str]:
    if figure.startswith("outputs."):
        code = figure.removeprefix("outputs.")
        zh, en, _ = INDICATORS.get(code, (code, code, ""))
        return zh, en
    return FIGURES[figure]


class Component(BaseModel):
    model_config = ConfigDict(extra="forbid")

    figure: str = Field(description="activities, served, volunteer_hours, unique_volunteers, "
                        "trainees, donation_value_cny, outputs.<indicator>, on_time_rate, "
                        "needs_resolved, needs_claimed, need_response_rate, "
                        "need_resolution_rate, need_satisfaction_rate, missed")
    weight: float = Field(ge=0, le=1_000_000, allow_inf_nan=False)
    target: float = Field(gt=0, le=1e12, allow_inf_nan=False,
                          description="the value earning the full weight (with invert: the "
                                      "value earning none)")
    invert: bool = Field(False, description="fewer is better (e.g. missed)")

    @field_validator("figure")
    @classmethod
    def _known(cls, figure: str) -> str:
        if figure in FIGURES or _OUTPUT.fullmatch(figure):
            return figure
        raise PydanticCustomError("unknown_figure", "unknown figure {figure!r}; one of "
                                  "{known} or outputs.<indicator>",
                                  {"figure": figure, "known": ", ".join(FIGURES)})


class Rules(BaseModel):
    """One version of the assessment rules."""

    model_config = ConfigDict(extra="forbid")

    components: list[Component] = Field(min_length=1, max_length=40)
    note: str | None = Field(None, max_length=500)

    @field_validator("components")
    @classmethod
    def _once_each(cls, components: list[Component]) -> list[Component]:
        seen = [c.figure for c in components]
        if twice := sorted({f for f in seen if seen.count(f) > 1}):
            raise PydanticCustomError("repeated_figure", "figure {twice} appears more than once",
                                      {"twice": ", ".join(twice)})
        return components


# Version 1 (the migration inserts the same): a balanced default, 100 points in all.
DEFAULT_RULES = Rules.model_validate({"note": "默认考核细则（第1版）", "components": [
    {"figure": "activities", "weight": 20, "target": 24},
    {"figure": "served", "weight": 20, "target": 1000},
    {"figure": "volunteer_hours", "weight": 15, "target": 500},
    {"figure": "on_time_rate", "weight": 20, "target": 0.9},
    {"figure": "needs_resolved", "weight": 15, "target": 10},
    {"figure": "missed", "weight": 10, "target": 4, "invert": True},
]})


@dataclass(frozen=True)
class Version:
    version: int
    created_at: datetime | None
    rules: Rules

    def as_json(self) -> dict:
        return {"version": self.version,
                "created_at": self.created_at.isoformat() if self.created_at else None,
                "rules": {"components": [c.model_dump() for c in self.rules.components]},
                "note": self.rules.note}


def _version(row: Any) -> Version:
    created = row.created_at
    if created is not None and created.tzinfo is None:  # SQLite keeps no offset: UTC
        created = created.replace(tzinfo=UTC)
    return Version(row.version, created, Rules.model_validate({**row.rules, "note": row.note}))


async def versions(conn: AsyncConnection) -> list[Version]:
    found = [_version(r) for r in await conn.execute(
        select(rules_table).order_by(rules_table.c.version))]
    return found or [Version(1, None, DEFAULT_RULES)]


async def find_version(conn: AsyncConnection, version: int | None = None) -> Version | None:
    """The newest version, or the one asked for; None if there is no such version."""
    t = rules_table
    stmt = select(t).order_by(t.c.version.desc()).limit(1) if version is None else (
        select(t).where(t.c.version == version))
    row = (await conn.execute(stmt)).first()
    if row is not None:
        return _version(row)
    empty = (await conn.execute(select(func.count()).select_from(t))).scalar() == 0
    return Version(1, None, DEFAULT_RULES) if empty and version in (None, 1) else None


async def add_rules(engine: AsyncEngine, rules: Rules) -> Version:
    """Keep a new version, numbered after the newest (version 1 is written first if only the
    code's default stood in for it)."""
    t = rules_table
    for attempt in range(5):
        try:
            async with write_transaction(engine) as conn:
                newest = (await conn.execute(select(func.max(t.c.version)))).scalar()
                now = datetime.now(UTC)
                if newest is None:
                    await conn.execute(insert(t).values(_stored(1, now, DEFAULT_RULES)))
                    newest = 1
                await conn.execute(insert(t).values(_stored(newest + 1, now, rules)))
                return Version(newest + 1, now, rules)
        except IntegrityError:  # another POST took that number: read the newest again
            if attempt == 4:
                raise
    raise AssertionError("unreachable")


def _stored(version: int, at: datetime, rules: Rules) -> dict:
    return {"version": version, "created_at": at, "note": rules.note,
            "rules": {"components": [c.model_dump() for c in rules.components]}}


# -- scoring ----------------------------------------------------------------------------------

def score(figures: dict[str, float], rules: Rules) -> tuple[list[dict], float]:
    """Each component with its value and points, and the score (their sum)."""
    components: list[dict[str, Any]] = []
    for c in rules.components:
        value = float(figures.get(c.figure) or 0.0)
        ratio = value / c.target
        share = max(1.0 - ratio, 0.0) if c.invert else min(ratio, 1.0)
        components.append({"figure": c.figure, "value": round(value, 4), "weight": c.weight,
                           "target": c.target, "invert": c.invert,
                           "points": round(c.weight * share, 2)})
    return components, round(sum(c["points"] for c in components), 2)


def year_scope(scope: Scope, year: int) -> Scope:
    return scope.within(Scope(date_from=date(year, 1, 1), date_to=date(year, 12, 31)))


async def unit_ranking(conn: AsyncConnection, scope: Scope, rules: Rules,
                       response_hours: float = needs.RESPONSE_HOURS) -> list[dict]:
    figures: dict[str, dict[str, float]] = {}
    for source in (activities.unit_figures(conn, scope),
                   timeliness.unit_figures(conn, scope),
                   needs.unit_figures(conn, scope, response_hours=response_hours)):
        for unit, values in (await source).items():
            figures.setdefault(unit, {}).update(values)
    labels = await label_map(conn, "organization", list(figures))
    rows = []
    for unit, values in figures.items():
        components, total = score(values, rules)
        rows.append({"organization_id": unit, "label": labels.get(unit, unit),
                     "score": total, "components": components})
    rows.sort(key=lambda r: (-r["score"], r["label"], r["organization_id"]))
    return [{"rank": i, **r} for i, r in enumerate(rows, 1)]


async def individual_ranking(conn: AsyncConnection, scope: Scope) -> list[dict]:
    """Each person once (a volunteer moved between units too), with the confirmed hours served
    within the scope, under their unit now (see `volunteers.individuals`)."""
    return [{"rank": i, **r} for i, r in enumerate(await volunteers.individuals(conn, scope), 1)]


@dataclass(frozen=True)
class _Component(Col):
    """A spreadsheet column for one component's value or points (figures hold dots, so they
    cannot be a dotted key)."""

    index: int = 0
    part: str = "points"

    def value(self, row: dict) -> Any:
        return row["components"][self.index][self.part]


def _unit_columns(rules: Rules) -> list[Col]:
    columns = [Col("rank", "名次", "Rank"), Col("label", "单位", "Unit"),
               Col("organization_id", "编码", "Key")]
    for i, c in enumerate(rules.components):
        zh, en = figure_label(c.figure)
        columns += [_Component(f"{c.figure}.value", zh, en, "number", i, "value"),
                    _Component(f"{c.figure}.points", f"{zh}得分", f"{en} points", "number",
                               i)]
    return columns + [Col("score", "总分", "Score")]


INDIVIDUAL_COLUMNS = [
    Col("rank", "名次", "Rank"), Col("name", "姓名", "Name"),
    Col("volunteer_id", "编码", "Key"), Col("organization_name", "单位", "Unit"),
    Col("hours_confirmed", "确认服务时长(小时)", "Confirmed hours"),
    Col("star_level", "星级", "Star level"),
]


async def assessment_report(conn: AsyncConnection, scope: Scope, year: int,
                            version: Version,
                            response_hours: float = needs.RESPONSE_HOURS) -> Report:
    within = year_scope(scope, year)
    units = await unit_ranking(conn, within, version.rules, response_hours)
    people = await individual_ranking(conn, within)
    return Report(
        f"{year}年度考核（先进集体）", f"{year} assessment: units", _unit_columns(version.rules),
        units, extra={"year": year, "rules_version": version.version,
                      "rules": version.as_json()["rules"], "individuals": people},
        sheets=[Report(f"{year}年度先进个人", f"{year} assessment: individuals",
                       INDIVIDUAL_COLUMNS, people)])


# -- routes -----------------------------------------------------------------------------------


# -- what the routes answer -------------------------------------------------------------------

class ComponentScore(Answer):
    figure: str
    value: float = Field(description="the unit's figure over the year")
    weight: float
    target: float
    invert: bool
    points: float = Field(description="weight × min(value ÷ target, 1), or with invert "
                                      "weight × max(1 − value ÷ target, 0)")


class UnitRank(Answer):
    rank: int
    organization_id: str
    label: str | None
    score: Number = Field(description="the sum of the components' points")
    components: list[ComponentScore]


class IndividualRank(Answer):
    rank: int
    volunteer_id: str
    name: str | None
    organization_id: str | None
    organization_name: str | None
    hours_confirmed: float
    star_level: int


class RuleComponent(Answer):
    figure: str
    weight: float
    target: float
    invert: bool


class RuleSet(Answer):
    components: list[RuleComponent]


class RulesVersion(Answer):
    """One version of the assessment rules, kept for good."""

    version: int
    created_at: DateTimeText | None = Field(description="null: the default version 1, "
                                                        "before any was stored")
    rules: RuleSet
    note: str | None


class RulesVersions(Answer):
    items: list[RulesVersion]
    total: int
    current: int = Field(description="the version rankings use by default (the newest)")


class Assessment(Answer):
    """Units ranked by score (rows) and individuals by confirmed hours."""

    rows: list[UnitRank]
    year: int
    rules_version: int
    rules: RuleSet
    individuals: list[IndividualRank]
    as_of: int

router = APIRouter(tags=["reports"])


def _not_found(field: str, message: str) -> JSONResponse:
    return JSONResponse({"errors": [{"field": field, "message": message}]}, status_code=404)


@router.get("/v1/reports/assessment", summary="Year-end assessment: units and individuals",
            **documented(Assessment, {404: {"model": Errors, "description": (
                "no rules version `rules_version`")}}))
async def get_assessment(
    request: Request,
    scope: Annotated[Scope, Depends(scope_query)],
    year: Annotated[int | None, Query(ge=2000, le=2100, description=(
        "the year assessed, 1 Jan – 31 Dec local (default: this year)"))] = None,
    rules_version: Annotated[int | None, Query(ge=1, le=2**31 - 1, description=(  # INTEGER
        "the rules version to score by (default: the newest)"))] = None,
    min_seq: MinSeq = None, format: FormatQuery = "json", headers: HeadersQuery = "zh",
) -> Any:
    """Units ranked by score, each component as `{figure, value, weight, target, points}`, the
    rules version used; individuals ranked by confirmed hours with star levels (in XLSX, a
    second sheet), each person once: a volunteer moved to another unit has the hours served
    under every unit in the scope added up, under their unit now (scoped to a subtree they
    left: the one they last served under there)."""
    year = year or datetime.now(ZoneInfo(request.app.state.settings.timezone)).year
    async with request.app.state.engine.connect() as conn:
        version = await find_version(conn, rules_version)
    if version is None:
        return _not_found("rules_version", f"no assessment rules version {rules_version}")
    hours = request.app.state.settings.need_response_hours
    return await answer(request, lambda conn: assessment_report(conn, scope, year, version,
                                                                hours),
                        models=READS, min_seq=min_seq, format=format, headers=headers,
                        filename="assessment",
                        scope=replace(scope, date_from=date(year, 1, 1),
                                      date_to=date(year, 12, 31)),
                        varies=(year, version.version))  # rules are kept, not events


@router.get("/v1/assessment/rules", summary="Every version of the assessment rules",
            response_model=RulesVersions)
async def get_rules(request: Request) -> dict:
    async with request.app.state.engine.connect() as conn:
        found = await versions(conn)
    return {"items": [v.as_json() for v in found], "total": len(found),
            "current": found[-1].version}


@router.post("/v1/assessment/rules", status_code=201, dependencies=[allow("admin")],
             summary="Keep a new version of the assessment rules (admins)",
             response_model=RulesVersion)
async def post_rules(request: Request, rules: Rules) -> dict:
    """Validated (422 naming the field: an unknown figure, a negative weight, no components);
    the answer is the new version, which rankings then use by default."""
    return (await add_rules(request.app.state.engine, rules)).as_json()


MODEL = ReadModel(name=NAME, tables=(), handlers={}, router=router, reads=READS,
                  description="year-end ranking of units and individuals")
