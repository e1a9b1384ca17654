"""Reporting HTTP routes: the summary (CONTRACT.md) and a plain page for people."""

from __future__ import annotations

import asyncio
import html
from datetime import date
from typing import Annotated, Literal

from fastapi import APIRouter, HTTPException, Query, Request
from fastapi.responses import HTMLResponse

from services.reporting import queries
from services.reporting.queries import GroupBy, Scope

router = APIRouter(tags=["reports"])

ACTIVITIES = "reporting-activities"
REGISTRY = "reporting-registry"


async def _wait_for(app, min_seq: int) -> None:
    """Until the reports include `min_seq` (bounded by the min_seq wait), else 503. Labels and
    region roll-ups come from the registry projection, which may lag behind the activities:
    it must have applied everything in the registry stream too."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + app.state.settings.min_seq_wait
    if not await app.state.activities.wait_for(min_seq, deadline - loop.time()):
        raise HTTPException(503, detail=f"reports have applied up to seq "
                            f"{app.state.activities.position}, not yet {min_seq}",
                            headers={"Retry-After": "1"})
    left = max(deadline - loop.time(), 0.0)
    try:
        # caught_up asks NATS for the stream's end first: bound that too.
        registry = await asyncio.wait_for(app.state.registry.caught_up(left), left + 1.0)
    except Exception:  # NATS away: whether the registry is in is unknown
        registry = False
    if not registry:
        raise HTTPException(503, detail="reports have not yet applied every registry change "
                            "(labels, regions)", headers={"Retry-After": "1"})


async def _summary(request: Request, group_by: GroupBy, scope: Scope,
                   min_seq: int | None) -> dict:
    app = request.app
    if min_seq is not None and min_seq > 0:
        await _wait_for(app, min_seq)
    engine = app.state.engine
    async with engine.connect() as conn:
        if conn.dialect.name == "postgresql":
            await conn.execution_options(isolation_level="REPEATABLE READ")
        # Position first: the figures read after it are at least as new as `as_of` says.
        as_of = await queries.position(conn, ACTIVITIES)
        result = await queries.summary(conn, group_by, scope)
    return {**result, "group_by": group_by, "as_of": as_of}


@router.get("/v1/reports/summary", summary="Figures grouped one way, within a scope")
async def summary(request: Request,
                  group_by: GroupBy = "organization",
                  date_from: Annotated[date | None, Query(alias="from")] = None,
                  date_to: Annotated[date | None, Query(alias="to")] = None,
                  organization_id: str | None = None, base_id: str | None = None,
                  region: Annotated[str | None, Query(
                      description="a region code: bases in it at any depth")] = None,
                  region_level: Annotated[Literal["city", "district", "town", "community"] | None,
                                          Query(description="with group_by=region: roll up "
                                                "to this level")] = None,
                  min_seq: Annotated[int | None, Query(ge=0, description=(
                      "wait (a few seconds at most) until the reports include this seq"))] = None,
                  ) -> dict:
    scope = Scope(date_from, date_to, organization_id, base_id, region, region_level)
    return await _summary(request, group_by, scope, min_seq)


@router.get("/", response_class=HTMLResponse, include_in_schema=False)
async def page(request: Request) -> str:
    parts = []
    as_of = 0
    sections: tuple[tuple[GroupBy, str], ...] = (("organization", "By unit 按单位"),
                                                ("base", "By base 按服务基地"),
                                                ("month", "By month 按月份"),
                                                ("service_type", "By service 按服务类型"))
    for group_by, title in sections:
        result = await _summary(request, group_by, Scope(), None)
        as_of = result["as_of"]
        rows = "".join(
            f"<tr><td>{html.escape(str(r['label']))}</td>"
            + "".join(f"<td>{r[k]:,}</td>" for k in queries.FIGURES) + "</tr>"
            for r in result["rows"] + [{"label": "Total 合计", **result["totals"]}])
        head = "".join(f"<th>{k.replace('_', ' ')}</th>" for k in queries.FIGURES)
        parts.append(f"<h2>{title}</h2><table><tr><th></th>{head}</tr>{rows}</table>")
    return f"""<!doctype html><html lang="zh"><head><meta charset="utf-8">
<title>Tongxin 同心 — summary</title><style>
body{{font-family:system-ui,"Noto Sans CJK SC",sans-serif;margin:2rem;color:#222}}
table{{border-collapse:collapse;margin-bottom:1.5rem}}
td,th{{border:1px solid #ccc;padding:.3rem .6rem;text-align:right}}
td:first-child{{text-align:left}} tr:last-child{{font-weight:bold}}</style></head><body>
<h1>同心 Tongxin — what was done, where, for how many</h1>
<p>As of event {as_of}. JSON: <a href="/v1/reports/summary?group_by=organization">
/v1/reports/summary</a> · API docs: <a href="/docs">/docs</a></p>{''.join(parts)}</body></html>"""
