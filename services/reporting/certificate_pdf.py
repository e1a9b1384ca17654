"""A service certificate (志愿服务记录证明) as a PDF: A4, the report document's Chinese font and
styles (`services.reporting.pdf`), laid out from what was issued; it asks nothing itself."""

from __future__ import annotations

import io
from datetime import date

from reportlab.lib.pagesizes import A4
from reportlab.lib.units import mm
from reportlab.platypus import Paragraph, SimpleDocTemplate, Spacer, Table, TableStyle

from services.reporting.certificates import METHOD_LABELS
from services.reporting.pdf import LINE, SHADE, WIDTH, _rule, _Styles

_WORDS = {
    "title": ("志愿服务记录证明", "Certificate of Volunteer Service Record"),
    "lead": ("兹证明 {name}（志愿者编号 {vid}）{period}参加志愿服务活动 {n} 次，经确认的志愿服务"
             "时长共计 {hours} 小时。明细如下：",
             "This certifies that {name} (volunteer {vid}) took part in {n} volunteer service "
             "activities {period}, with {hours} confirmed hours of service, as listed below:"),
    "period": ("于 {first} 至 {last} 期间", "from {first} to {last}"),
    "columns": (("日期", "活动", "组织单位", "时长(小时)", "记录方式"),
                ("Date", "Activity", "Unit", "Hours", "Recorded")),
    "total": ("合计", "Total"),
    "by_method": ("其中：{parts}", "Of which: {parts}"),
    "issuer": ("出具单位：{unit}", "Issued by: {unit}"),
    "issued": ("出具日期：{day}", "Issued on: {day}"),
    "code": ("验证码：{code}", "Verification code: {code}"),
    "verify": ("任何人可在 {url} 查验本证明（无需登录）。",
               "Anyone may check this certificate at {url} (no login)."),
    "basis": ("依据《志愿服务记录与证明出具办法（试行）》出具；仅记载已确认的服务时长。",
              "Issued under the national measures on volunteer service records (2021); "
              "only confirmed hours are recorded."),
}


def _w(key: str, lang: str, **values: object) -> str:
    zh, en = _WORDS[key]
    return str(zh if lang == "zh" else en).format(**values)


def _hours(value: float) -> str:
    return f"{value:g}"


def render(cert: dict, font: str, lang: str, verify_url: str, issued_on: date) -> bytes:
    st = _Styles(font)
    i = 0 if lang == "zh" else 1
    first, last = cert["date_from"], cert["date_to"]
    lines, totals = cert["lines"], cert["totals"]
    period = _w("period", lang, first=first or lines[0]["day"], last=last or lines[-1]["day"])
    story: list = [
        Paragraph(_w("title", lang), st.title), Spacer(1, 4), _rule(), Spacer(1, 8),
        Paragraph(_w("lead", lang, name=cert["name"], vid=cert["volunteer_id"], period=period,
                     n=totals["activities"], hours=_hours(totals["hours"])), st.body),
        Spacer(1, 6)]
    head = [Paragraph(c, st.cell) for c in _WORDS["columns"][i]]
    body = [[Paragraph(line["day"], st.cell), Paragraph(line["title"] or "—", st.cell),
             Paragraph(line["organization_name"], st.cell),
             Paragraph(_hours(line["hours"]), st.cell),
             Paragraph(METHOD_LABELS.get(line["method"], (line["method"],) * 2)[i], st.cell)]
            for line in lines]
    foot = [Paragraph(_w("total", lang), st.cell), Paragraph("", st.cell),
            Paragraph("", st.cell), Paragraph(_hours(totals["hours"]), st.cell),
            Paragraph("", st.cell)]
    table = Table([head, *body, foot], repeatRows=1,
                  colWidths=[WIDTH * w for w in (0.14, 0.36, 0.26, 0.1, 0.14)])
    table.setStyle(TableStyle([
        ("GRID", (0, 0), (-1, -1), 0.4, LINE), ("BACKGROUND", (0, 0), (-1, 0), SHADE),
        ("BACKGROUND", (0, -1), (-1, -1), SHADE), ("VALIGN", (0, 0), (-1, -1), "MIDDLE")]))
    parts = ("，" if lang == "zh" else ", ").join(
        f"{METHOD_LABELS[m][i]} {_hours(h)}" for m, h in totals["hours_by_method"].items() if h)
    story += [table, Spacer(1, 4), Paragraph(_w("by_method", lang, parts=parts), st.small),
              Spacer(1, 14),
              Paragraph(_w("issuer", lang, unit=cert["organization_name"]), st.body),
              Paragraph(_w("issued", lang, day=issued_on.isoformat()), st.body),
              Paragraph(_w("code", lang, code=cert["code"]), st.body), Spacer(1, 8),
              Paragraph(_w("verify", lang, url=verify_url), st.small),
              Paragraph(_w("basis", lang), st.small)]
    out = io.BytesIO()
    SimpleDocTemplate(out, pagesize=A4, leftMargin=18 * mm, rightMargin=18 * mm,
                      topMargin=18 * mm, bottomMargin=18 * mm, title=_WORDS["title"][i],
                      author=cert["organization_name"]).build(story)
    return out.getvalue()

