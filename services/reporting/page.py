"""A plain page for people at `/`: the summary four ways. The dashboard ([6/7]) replaces it."""

from __future__ import annotations

import html

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

from services.reporting.models import activities
from services.reporting.reports import snapshot
from services.reporting.scope import Scope, within_reach

router = APIRouter()

_FIGURES = ("activities", "served", "volunteers", "unique_volunteers", "volunteer_hours",
            "trainees", "donation_value_cny")


@router.get("/", response_class=HTMLResponse, include_in_schema=False)
async def page(request: Request) -> str:
    parts = []
    sections: tuple[tuple[activities.GroupBy, str], ...] = (
        ("organization", "By unit 按单位"), ("base", "By base 按服务基地"),
        ("month", "By month 按月份"), ("service_type", "By service 按服务类型"))
    scope = await within_reach(request, Scope())  # a unit's login: its own figures only
    async with request.app.state.engine.connect() as conn:
        as_of = await snapshot(conn, (activities.NAME,))
        for group_by, title in sections:
            rows, totals = await activities.summary(conn, group_by, scope)
            body = "".join(
                f"<tr><td>{html.escape(str(r['label']))}</td>"
                + "".join(f"<td>{r[k]:,}</td>" for k in _FIGURES) + "</tr>"
                for r in rows + [{"label": "Total 合计", **totals}])
            head = "".join(f"<th>{k.replace('_', ' ')}</th>" for k in _FIGURES)
            parts.append(f"<h2>{title}</h2><table><tr><th></th>{head}</tr>{body}</table>")
    return f"""<!doctype html><html lang="zh"><head><meta charset="utf-8">
<title>Tongxin 同心 — summary</title><style>
body{{font-family:system-ui,"Noto Sans CJK SC",sans-serif;margin:2rem;color:#222}}
table{{border-collapse:collapse;margin-bottom:1.5rem}}
td,th{{border:1px solid #ccc;padding:.3rem .6rem;text-align:right}}
td:first-child{{text-align:left}} tr:last-child{{font-weight:bold}}</style></head><body>
<h1>同心 Tongxin — what was done, where, for how many</h1>
<p>As of event {as_of}. JSON: <a href="/v1/reports/summary?group_by=organization">
/v1/reports/summary</a> · API docs: <a href="/docs">/docs</a></p>{''.join(parts)}</body></html>"""
