"""The report document rendered as a PDF (reportlab): A4, a Chinese TrueType font embedded (so
it reads the same offline and on any machine), charts drawn by reportlab.graphics.

`render(doc, font)` only lays out what `document.gather` found; it asks nothing itself.
"""

from __future__ import annotations

import io
from functools import cache
from pathlib import Path
from typing import Any

from reportlab.graphics.charts.barcharts import HorizontalBarChart, VerticalBarChart
from reportlab.graphics.shapes import Drawing, String
from reportlab.lib import colors
from reportlab.lib.enums import TA_CENTER, TA_LEFT
from reportlab.lib.pagesizes import A4
from reportlab.lib.styles import ParagraphStyle
from reportlab.lib.units import mm
from reportlab.pdfbase import pdfmetrics
from reportlab.pdfbase.ttfonts import TTFont
from reportlab.platypus import (
    Image,
    KeepTogether,
    Paragraph,
    SimpleDocTemplate,
    Spacer,
    Table,
    TableStyle,
)

from services.reporting.document import Document, Headline

RED = colors.HexColor("#b3261e")
INK = colors.HexColor("#1f2328")
GREY = colors.HexColor("#5f6670")
LINE = colors.HexColor("#d0d4da")
SHADE = colors.HexColor("#f4f5f7")
BAR = colors.HexColor("#c0392b")
BAR2 = colors.HexColor("#2c6e9b")
UP, DOWN = colors.HexColor("#b3261e"), colors.HexColor("#2e7d32")
WIDTH = A4[0] - 36 * mm  # the text width between the margins


class FontMissing(RuntimeError):
    """No Chinese font where the setting points: the PDF cannot be made."""


@cache
def font(path: str) -> str:
    """Register the TrueType font at `path` (a .ttc's first face) and return its name."""
    if not Path(path).is_file():
        raise FontMissing(
            f"the report document's Chinese font is not at {path}: install it (Debian: "
            "apt-get install fonts-wqy-zenhei) or point TONGXIN_PDF_FONT at a .ttf/.ttc with "
            "Chinese glyphs")
    name = "TongxinCJK"
    try:
        pdfmetrics.registerFont(TTFont(name, path, subfontIndex=0))
    except Exception as e:  # not a TrueType font reportlab can embed
        raise FontMissing(f"TONGXIN_PDF_FONT={path} cannot be embedded: {e}") from e
    pdfmetrics.registerFontFamily(name, normal=name, bold=name, italic=name, boldItalic=name)
    return name


# -- words -------------------------------------------------------------------------------------

_WORDS = {
    "title": ("同心结对服务工作{noun}报告", "{noun} Report on Paired Community Service"),
    "period": ("报告期：{label}（{first} 至 {last}）", "Period: {label} ({first} to {last})"),
    "scope": ("报告范围：{scope}", "Scope: {scope}"),
    "made": ("数据截至事件 {as_of} · 生成于 {at}", "Data as of event {as_of} · made {at}"),
    "approval": ("审定状态：{state}", "Approval: {state}"),
    "s1": ("一、主要数据", "1. Headline figures"),
    "s2": ("二、服务趋势与单位排行", "2. Trend and leading units"),
    "s3": ("三、各单位开展情况", "3. By unit"),
    "s4": ("四、各服务基地情况", "4. By base"),
    "s5": ("五、服务旗帜接传报送情况", "5. Reports after service"),
    "s6": ("六、按需点单办理情况", "6. Needs raised and resolved"),
    "s7": ("七、亮点活动", "7. Notable activities"),
    "vs": ("较{prev}", "vs {prev}"),
    "new": ("上期为 0", "none before"),
    "same": ("持平", "unchanged"),
    "trend_served": ("服务群众（人次）", "People served (person-times)"),
    "top_units": ("服务群众前列单位（人次）", "Leading units by people served"),
    "none": ("本期无数据。", "Nothing in this period."),
    "more": ("另有 {n} 个未列出，已计入合计。", "{n} more not listed, included in the totals."),
    "total": ("合计", "Total"),
    "reports": ("本期应报送 {due} 次，按时报送 {on_time} 次，逾期报送 {late} 次，逾期未报送 "
                "{missing} 次，按时报送率 {rate}。",
                "Due {due}; on time {on_time}, late {late}, missing {missing}; on-time rate "
                "{rate}."),
    "no_overdue": ("无逾期未报送单位。", "No unit has a report overdue."),
    "needs": ("本期提交需求 {total} 件：已办结 {closed} 件（其中确认解决 {closed_confirmed} 件），"
              "已解决待确认 {resolved} 件，办理中 {claimed} 件，待认领 {open} 件；跟踪逾期 "
              "{followups_overdue} 件。",
              "{total} needs raised: {closed} closed ({closed_confirmed} confirmed resolved), "
              "{resolved} resolved awaiting confirmation, {claimed} in hand, {open} open; "
              "{followups_overdue} follow-ups overdue."),
    "no_resolved": ("本期无已解决需求。", "No need was resolved."),
    "no_photo": ("（未附照片）", "(no photo)"),
    "page": ("第 {n} 页", "Page {n}"),
}

_UNIT_COLS = (("label", "单位", "Unit"), ("code", "编码", "Code"),
              ("activities", "活动(次)", "Activities"), ("served", "服务群众(人次)", "Served"),
              ("volunteers", "志愿者参与(人次)", "Turn-outs"),
              ("volunteer_hours", "服务时长(小时)", "Hours (h)"),
              ("donation_value_cny", "捐赠价值(元)", "Donations (CNY)"))
_BASE_COLS = (("label", "服务基地", "Base"),) + _UNIT_COLS[1:]
_OVERDUE_COLS = (("name", "逾期未报送单位", "Unit with reports overdue"), ("code", "编码", "Code"),
                 ("missing", "逾期未报送(次)", "Missing"),
                 ("days_overdue", "最长逾期(天)", "Longest overdue (days)"))
_RESOLVED_COLS = (("title", "需求", "Need"), ("category_label", "类别", "Category"),
                  ("base_label", "服务基地", "Base"),
                  ("organization_label", "认领单位", "Claimed by"),
                  ("resolved_at", "解决日期", "Resolved on"))


def words(key: str, lang: str, **values: Any) -> str:
    zh, en = _WORDS[key]
    return (zh if lang == "zh" else en).format(**values)


def number(value: Any, key: str = "") -> str:
    """A figure as the document prints it: 1,234 · 56.5 (hours) · 12.34 (money)."""
    if value is None:
        return "—"
    if key in ("volunteer_hours", "days_overdue"):
        return f"{float(value):,.1f}"
    if key == "donation_value_cny":
        return f"{float(value):,.2f}"
    if isinstance(value, float) and not value.is_integer():
        return f"{value:,.2f}"
    return f"{int(value):,}"


def headline_value(h: Headline) -> str:
    if h.key == "donation_value_cny":
        return f"{h.value:,.2f}"
    return number(h.value, h.key)


# -- layout -----------------------------------------------------------------------------------

class _Styles:
    def __init__(self, name: str):
        def style(size: float, color=INK, align=TA_LEFT, leading: float | None = None,
                  **kw: Any) -> ParagraphStyle:
            return ParagraphStyle(f"s{size}{align}{id(color)}", fontName=name, fontSize=size,
                                  leading=leading or size * 1.4, textColor=color, alignment=align,
                                  wordWrap="CJK", **kw)
        self.title = style(22, RED, TA_CENTER, 30)
        self.subtitle = style(11, INK, TA_CENTER)
        self.meta = style(8.5, GREY, TA_CENTER)
        self.section = style(13, INK, spaceBefore=8, spaceAfter=5, keepWithNext=1)
        # Before a long table, which goes on over the page rather than leave this one blank.
        self.section_open = style(13, INK, spaceBefore=8, spaceAfter=5)
        self.body = style(10, INK, leading=16)
        self.small = style(8, GREY)
        self.cell = style(8.5, INK, leading=11)
        self.card_label = style(9, GREY, TA_CENTER)
        self.card_value = style(19, INK, TA_CENTER, 24)
        self.card_change = style(8.5, GREY, TA_CENTER)


def _rule(color=RED, width: float = 1.6) -> Table:
    t = Table([[""]], colWidths=[WIDTH], rowHeights=[2])
    t.setStyle(TableStyle([("LINEBELOW", (0, 0), (-1, -1), width, color)]))
    return t


def _card(h: Headline, doc: Document, st: _Styles) -> list:
    lang = doc.lang
    unit = h.unit_zh if lang == "zh" else h.unit_en
    prev = {"month": ("上月", "last month"), "quarter": ("上季度", "last quarter"),
            "year": ("上年", "last year")}[doc.period.kind][lang != "zh"]
    change = h.change
    if change is None:
        text = (f"{words('vs', lang, prev=prev)} · {words('new', lang)}" if h.value
                else f"{words('vs', lang, prev=prev)} · {words('same', lang)}")
    elif abs(change) < 0.0005:
        text = f"{words('vs', lang, prev=prev)} · {words('same', lang)}"
    else:
        arrow, color = ("▲", UP) if change > 0 else ("▼", DOWN)
        text = (f"{words('vs', lang, prev=prev)} <font color='#{color.hexval()[2:]}'>"
                f"{arrow} {abs(change) * 100:.1f}%</font>")
    return [Paragraph(h.zh if lang == "zh" else h.en, st.card_label),
            Paragraph(f"{headline_value(h)} <font size='9' color='#5f6670'>{unit}</font>",
                      st.card_value),
            Paragraph(text, st.card_change)]


def _cards(doc: Document, st: _Styles) -> Table:
    cells = [_card(h, doc, st) for h in doc.headlines]
    rows = [cells[i:i + 3] for i in range(0, len(cells), 3)]
    t = Table(rows, colWidths=[WIDTH / 3] * 3)
    t.setStyle(TableStyle([
        ("BACKGROUND", (0, 0), (-1, -1), SHADE),
        ("BOX", (0, 0), (-1, -1), 0.6, LINE), ("INNERGRID", (0, 0), (-1, -1), 3, colors.white),
        ("VALIGN", (0, 0), (-1, -1), "MIDDLE"),
        ("TOPPADDING", (0, 0), (-1, -1), 8), ("BOTTOMPADDING", (0, 0), (-1, -1), 8)]))
    return t


def _short(text: Any, n: int) -> str:
    text = str(text or "")
    return text if len(text) <= n else text[:n - 1] + "…"


def _tick(key: str, lang: str) -> str:
    """A trend bar's label: 第10周 / W10 (a week), 3月 / Mar (a month)."""
    if "-W" in key:
        week = int(key.rsplit("W", 1)[1])
        return f"第{week}周" if lang == "zh" else f"W{week}"
    month = int(key[-2:])
    return f"{month}月" if lang == "zh" else _MONTHS[month - 1]


_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


def _trend_chart(doc: Document, name: str, width: float, height: float) -> Drawing:
    d = Drawing(width, height)
    d.add(String(0, height - 10, words("trend_served", doc.lang), fontName=name, fontSize=9,
                 fillColor=GREY))
    chart = VerticalBarChart()
    chart.x, chart.y, chart.width, chart.height = 30, 28, width - 40, height - 50
    values = [t["served"] for t in doc.trend] or [0]
    chart.data = [values]
    chart.categoryAxis.categoryNames = [_tick(str(t["key"]), doc.lang)
                                        for t in doc.trend] or ["—"]
    chart.bars[0].fillColor = BAR
    chart.bars[0].strokeColor = None
    chart.valueAxis.valueMin = 0
    chart.valueAxis.labels.fontName = name
    chart.valueAxis.labels.fontSize = 7
    chart.valueAxis.gridStrokeColor = LINE
    chart.valueAxis.visibleGrid = True
    chart.categoryAxis.labels.fontName = name
    chart.categoryAxis.labels.fontSize = 7
    chart.barLabels.fontName = name
    chart.barLabels.fontSize = 6.5
    chart.barLabelFormat = "%d"
    chart.barLabels.nudge = 6
    d.add(chart)
    return d


def _units_chart(doc: Document, name: str, width: float, height: float) -> Drawing:
    d = Drawing(width, height)
    d.add(String(0, height - 10, words("top_units", doc.lang), fontName=name, fontSize=9,
                 fillColor=GREY))
    top = doc.units[:6][::-1]
    chart = HorizontalBarChart()
    chart.x, chart.y, chart.width, chart.height = 92, 10, width - 120, height - 30
    chart.data = [[u["served"] for u in top] or [0]]
    chart.categoryAxis.categoryNames = [_short(u["label"], 8) for u in top] or ["—"]
    chart.bars[0].fillColor = BAR2
    chart.bars[0].strokeColor = None
    chart.valueAxis.valueMin = 0
    chart.valueAxis.visible = False
    chart.categoryAxis.labels.fontName = name
    chart.categoryAxis.labels.fontSize = 7.5
    chart.barLabels.fontName = name
    chart.barLabels.fontSize = 7
    chart.barLabelFormat = "%d"
    chart.barLabels.nudge = 10
    d.add(chart)
    return d


def _table(rows: list[dict], columns: tuple, doc: Document, st: _Styles,
           widths: list[float], totals: dict | None = None) -> Table:
    zh = doc.lang == "zh"
    head = [Paragraph(c[1] if zh else c[2], st.cell) for c in columns]
    body = [[Paragraph(_short(r.get(k), 40), st.cell) if not isinstance(r.get(k), int | float)
             else number(r.get(k), k) for k, *_ in columns] for r in rows]
    data = [head, *body]
    if totals is not None:
        data.append([words("total", doc.lang), "",
                     *[number(totals.get(k), k) for k, *_ in columns[2:]]])
    t = Table(data, colWidths=widths, repeatRows=1)
    style = [
        ("FONTNAME", (0, 0), (-1, -1), st.cell.fontName), ("FONTSIZE", (0, 0), (-1, -1), 8.5),
        ("BACKGROUND", (0, 0), (-1, 0), SHADE), ("LINEBELOW", (0, 0), (-1, 0), 0.8, INK),
        ("LINEBELOW", (0, 1), (-1, -1), 0.3, LINE), ("VALIGN", (0, 0), (-1, -1), "MIDDLE"),
        ("ALIGN", (2, 1), (-1, -1), "RIGHT"),
        ("TOPPADDING", (0, 0), (-1, -1), 3), ("BOTTOMPADDING", (0, 0), (-1, -1), 3)]
    if totals is not None:
        style += [("LINEABOVE", (0, -1), (-1, -1), 0.8, INK),
                  ("BACKGROUND", (0, -1), (-1, -1), SHADE)]
    t.setStyle(TableStyle(style))
    return t


def _photo(data: bytes | None, width: float, height: float) -> Any:
    if not data:
        return None
    try:
        image = Image(io.BytesIO(data))
        scale = min(width / image.imageWidth, height / image.imageHeight)
        image.drawWidth, image.drawHeight = image.imageWidth * scale, image.imageHeight * scale
        return image
    except Exception:  # a photo that cannot be drawn is left out, never the document
        return None


def _notable(doc: Document, st: _Styles) -> list:
    zh = doc.lang == "zh"
    out: list = []
    for a in doc.notable:
        image = _photo(doc.photos.get(a["photo"] or ""), 52 * mm, 36 * mm)
        figures = (f"服务群众 {number(a['served'])} 人次 · 志愿者 {number(a['volunteers'])} 人次 · "
                   f"服务时长 {number(a['volunteer_hours'], 'volunteer_hours')} 小时" if zh else
                   f"{number(a['served'])} served · {number(a['volunteers'])} turn-outs · "
                   f"{number(a['volunteer_hours'], 'volunteer_hours')} h")
        text = [Paragraph(a["title"] or "—", st.body),
                Paragraph(f"{a['day']} · {a['organization_label']} · {a['base_label']}",
                          st.small),
                Paragraph(figures, st.small)]
        if image is None:
            text.append(Paragraph(words("no_photo", doc.lang), st.small))
            row = Table([[text]], colWidths=[WIDTH])
        else:
            row = Table([[image, text]], colWidths=[56 * mm, WIDTH - 56 * mm])
        row.setStyle(TableStyle([("VALIGN", (0, 0), (-1, -1), "TOP"),
                                 ("LINEBELOW", (0, 0), (-1, -1), 0.3, LINE),
                                 ("BOTTOMPADDING", (0, 0), (-1, -1), 6)]))
        out += [row, Spacer(1, 3)]
    return out


def render(doc: Document, name: str) -> bytes:
    """The document as PDF bytes."""
    st = _Styles(name)
    lang = doc.lang
    p = doc.period
    story: list = [
        Paragraph(words("title", lang, noun=p.noun(lang)), st.title),
        Paragraph(f"{doc.scope} · {p.label(lang)}", st.subtitle),
        Spacer(1, 3),
        Paragraph(words("period", lang, label=p.label(lang), first=p.first.isoformat(),
                        last=p.last.isoformat()) + "　" + words("scope", lang, scope=doc.scope),
                  st.meta),
        Paragraph(words("made", lang, as_of=doc.as_of, at=doc.generated_at) + "　" + words(
            "approval", lang, state=doc.approval["zh" if lang == "zh" else "en"]), st.meta),
        Spacer(1, 4), _rule(), Spacer(1, 6),
        Paragraph(words("s1", lang), st.section), _cards(doc, st),
        Paragraph(words("s2", lang), st.section),
    ]
    charts = Table([[_trend_chart(doc, name, WIDTH * 0.52, 62 * mm),
                     _units_chart(doc, name, WIDTH * 0.46, 62 * mm)]],
                   colWidths=[WIDTH * 0.53, WIDTH * 0.47])
    charts.setStyle(TableStyle([("VALIGN", (0, 0), (-1, -1), "TOP"),
                                ("LEFTPADDING", (0, 0), (-1, -1), 0)]))
    story.append(charts)

    widths = [WIDTH * w for w in (0.24, 0.12, 0.09, 0.14, 0.14, 0.12, 0.15)]
    totals = {h.key: h.value * (10_000 if h.key == "donation_value_cny" else 1)
              for h in doc.headlines}
    for key, rows, count in (("s3", doc.units, doc.units_total),
                             ("s4", doc.bases, doc.bases_total)):
        # A long table goes on over the page, its header repeated.
        story.append(Paragraph(words(key, lang), st.section_open))
        if not rows:
            story.append(Paragraph(words("none", lang), st.body))
        else:
            story.append(_table(rows, _UNIT_COLS if key == "s3" else _BASE_COLS, doc, st,
                                widths, totals if key == "s3" else None))
        if count > len(rows):
            story.append(Paragraph(words("more", lang, n=count - len(rows)), st.small))

    r = doc.reports
    rate = "—" if r.get("on_time_rate") is None else f"{r['on_time_rate'] * 100:.1f}%"
    section = [Paragraph(words("s5", lang), st.section_open),
               Paragraph(words("reports", lang, due=r["due"], on_time=r["on_time"],
                               late=r["late"], missing=r["missing"], rate=rate), st.body)]
    if doc.overdue:
        section += [Spacer(1, 4), _table(doc.overdue, _OVERDUE_COLS, doc, st,
                                         [WIDTH * w for w in (0.46, 0.18, 0.18, 0.18)])]
    else:
        section.append(Paragraph(words("no_overdue", lang), st.body))
    story.append(KeepTogether(section))

    section = [Paragraph(words("s6", lang), st.section_open),
               Paragraph(words("needs", lang, **doc.needs), st.body)]
    if doc.resolved:
        rows = [{**n, "resolved_at": (n["resolved_at"] or "")[:10]} for n in doc.resolved]
        section += [Spacer(1, 4), _table(rows, _RESOLVED_COLS, doc, st,
                                         [WIDTH * w for w in (0.32, 0.14, 0.2, 0.2, 0.14)])]
    else:
        section.append(Paragraph(words("no_resolved", lang), st.body))
    story.append(KeepTogether(section))

    story.append(Paragraph(words("s7", lang), st.section))  # kept with the first
    story += _notable(doc, st) or [Paragraph(words("none", lang), st.body)]

    footer = f"{doc.scope} · {p.label(lang)}"

    def page(canvas: Any, template: Any) -> None:
        canvas.saveState()
        canvas.setFont(name, 8)
        canvas.setFillColor(GREY)
        canvas.drawString(18 * mm, 10 * mm, _short(footer, 60))
        canvas.drawRightString(A4[0] - 18 * mm, 10 * mm,
                               words("page", lang, n=canvas.getPageNumber()))
        canvas.setStrokeColor(LINE)
        canvas.line(18 * mm, 14 * mm, A4[0] - 18 * mm, 14 * mm)
        canvas.restoreState()

    out = io.BytesIO()
    title = f"{words('title', lang, noun=p.noun(lang))} · {doc.scope} · {p.label(lang)}"
    SimpleDocTemplate(out, pagesize=A4, leftMargin=18 * mm, rightMargin=18 * mm,
                      topMargin=16 * mm, bottomMargin=20 * mm, title=title,
                      author="同心 Tongxin").build(story, onFirstPage=page, onLaterPages=page)
    return out.getvalue()
