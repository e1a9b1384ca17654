"""How every report is answered: read-your-writes (`min_seq`), one consistent snapshot with its
`as_of`, and the same table as JSON, CSV or XLSX (the monthly ledger, 台账, an organiser hands
upward: a title line naming the report, its period and its scope, Chinese headers with their
units by default, the rows, then 合计; the file named for the same period and scope). In XLSX,
dates are date cells, figures numbers with a number format, and columns as wide as their header.

CSV and XLSX are streamed: rows come from the database cursor and go out as they are written
(XLSX through openpyxl's write-only mode, which keeps rows on disk, not in memory).
"""

from __future__ import annotations

import asyncio
import codecs
import csv
import io
import os
import tempfile
from collections.abc import AsyncIterator, Awaitable, Callable, Hashable, Iterable
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Annotated, Any, Literal
from urllib.parse import quote

from fastapi import HTTPException, Query, Request
from fastapi.responses import Response, StreamingResponse
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncConnection

from services.reporting import answers, period
from services.reporting.answers import At, question, read_at
from services.reporting.store import positions
from shared.json_response import dumps
from shared.responses import spreadsheets

if TYPE_CHECKING:  # scope.py reads the labels model, whose package imports this module
    from services.reporting.scope import Scope
    from shared.projection import Projection

Format = Literal["json", "csv", "xlsx"]
Headers = Literal["zh", "en"]
FormatQuery = Annotated[Format, Query(description="json, or a spreadsheet: csv or xlsx")]
HeadersQuery = Annotated[Headers, Query(description="spreadsheet headers: Chinese or English")]
MinSeq = Annotated[int | None, Query(ge=0, le=2**63 - 1, description=(
    "wait (a few seconds at most) until the report includes this TONGXIN_EVENTS seq"))]
_CHUNK = 64 * 1024


def documented(model: Any, responses: dict[int | str, dict] | None = None
               ) -> dict[str, Any]:
    """A report route's keyword arguments for OpenAPI: JSON as `model` (a field the report
    leaves out stays out), or the same table as a CSV or XLSX download."""
    return {"response_model": model, "response_model_exclude_unset": True,
            "responses": {**spreadsheets(), **(responses or {})}}


Kind = Literal["text", "date", "datetime", "count", "money", "hours", "rate", "number"]
# Each kind of column as XLSX shows it (a number format) and how wide it is at least.
_FORMATS = {"date": "yyyy-mm-dd", "datetime": "yyyy-mm-dd hh:mm", "count": "#,##0",
            "money": "#,##0.00", "hours": "#,##0.0", "rate": "0.0%", "number": "#,##0.###"}
_WIDTHS = {"date": 12, "datetime": 17, "text": 14}


@dataclass(frozen=True)
class Column:
    key: str   # a row's key; dotted for a nested value (`outputs.students_funded`)
    zh: str    # with its unit where it has one: 服务群众(人次), 服务时长(小时), 捐赠价值(元)
    en: str
    kind: Kind = "text"

    def value(self, row: dict) -> Any:
        value: Any = row
        for part in self.key.split("."):
            value = value.get(part) if isinstance(value, dict) else None
        return value


Rows = list[dict] | AsyncIterator[dict]


@dataclass
class Report:
    """One table: what JSON answers as `rows` and `totals`, what a spreadsheet shows."""

    title_zh: str
    title_en: str
    columns: list[Column]
    rows: Rows
    totals: dict | None = None
    extra: dict = field(default_factory=dict)        # JSON only: further lists and facts
    sheets: list[Report] = field(default_factory=list)  # XLSX only: further tables
    # What the figures are, for the title line: (zh, en), e.g. 已审定 2026-12-07 / approved.
    status: tuple[str, str] | None = None

    def header(self, lang: Headers) -> list[str]:
        return [c.zh if lang == "zh" else c.en for c in self.columns]


Build = Callable[[AsyncConnection], Awaitable[Report]]


async def wait_for(request: Request, models: Iterable[str], min_seq: int | None) -> None:
    """Until every model the report reads has applied `min_seq` and the registry replica has
    applied everything in its stream (labels, hierarchies), within the min_seq wait; else 503
    with Retry-After."""
    if not min_seq:
        return
    state = request.app.state
    loop = asyncio.get_running_loop()
    deadline = loop.time() + state.settings.min_seq_wait
    for name in models:
        projection = state.projections[name]
        if not await projection.wait_for(min_seq, max(deadline - loop.time(), 0.0)):
            raise HTTPException(503, detail=f"{name} has applied up to seq "
                                f"{projection.position}, not yet {min_seq}",
                                headers={"Retry-After": "1"})
    left = max(deadline - loop.time(), 0.0)
    try:
        # caught_up asks NATS for the stream's end first: bound that too.
        registry = await asyncio.wait_for(_registry_caught_up(state.registry,
                                                              state.projections, left),
                                          left + 1.0)
    except Exception:  # NATS away: whether the registry is in is unknown
        registry = False
    if not registry:
        raise HTTPException(503, detail="reports have not yet applied every registry change "
                            "(labels, regions)", headers={"Retry-After": "1"})


async def _registry_caught_up(registry: Projection, projections: dict[str, Projection],
                              timeout: float) -> bool:
    """Whether every model of the registry's stream (labels, memberships) has applied all it
    holds now: they move together, one transaction a batch, except while one is rebuilt."""
    info = await registry.js.stream_info(registry.stream)
    models = {registry, *(p for p in projections.values() if p.stream == registry.stream)}
    return all(await asyncio.gather(*(p.wait_for(info.state.last_seq, timeout)
                                      for p in models)))


async def snapshot(conn: AsyncConnection, models: Iterable[str]) -> int:
    """Begin one consistent read and return its `as_of`: the least position among the models
    read. Read first, so the figures after it are at least as new as `as_of` says."""
    if conn.dialect.name == "postgresql":
        await conn.execution_options(isolation_level="REPEATABLE READ")
    else:
        await conn.exec_driver_sql("BEGIN")  # SQLite: one WAL snapshot for every statement
    names = list(models)
    found = dict((await conn.execute(select(positions.c.name, positions.c.position)
                                      .where(positions.c.name.in_(names)))).tuples().all())
    return min((found.get(n, 0) for n in names), default=0)


@dataclass(frozen=True)
class Heading:
    """What a spreadsheet's title line says besides the report's title: its period and scope."""

    period: str
    scope: str

    def line(self, title: str, as_of: int, lang: Headers,
             status: tuple[str, str] | None = None) -> list[str]:
        """Title, period, scope, as of; and, for a ledger that can be approved, whether its
        figures are approved, restated since, or not approved."""
        said = [] if status is None else [status[0] if lang == "zh" else status[1]]
        if lang == "zh":
            return [title, f"期间：{self.period}", f"范围：{self.scope}", f"截至事件 {as_of}",
                    *said]
        return [title, f"Period: {self.period}", f"Scope: {self.scope}",
                f"as of event {as_of}", *said]


def everything(lang: Headers) -> Heading:
    """The heading of a report over all time and every unit."""
    return Heading(period.describe(None, None, lang), "全部单位" if lang == "zh" else "all units")


async def heading(engine, scope: Scope | None, lang: Headers) -> Heading:
    from services.reporting.scope import describe

    if scope is None:
        return everything(lang)
    async with engine.connect() as conn:
        named = await describe(conn, scope, lang)
    return Heading(period.describe(scope.date_from, scope.date_to, lang), named)


def download_name(filename: str, scope: Scope | None, named: Heading, format: str) -> str:
    """`summary-organization_2024-03_淄博市委统战部.xlsx`: the report, its period, its scope."""
    parts = [filename, period.slug(scope.date_from if scope else None,
                                   scope.date_to if scope else None)]
    if scope and (scope.organization_id or scope.base_id or scope.region):
        parts.append("".join(ch for ch in named.scope if ch not in '\\/:*?"<>|，, （）()'))
    return "_".join(parts) + f".{format}"


def attachment(name: str) -> dict[str, str]:
    """Content-Disposition for a download: an ASCII name for old clients, the real one too."""
    name = "".join(ch for ch in name if ch.isprintable() and ch not in '"\\') or "report"
    ascii_name = name.encode("ascii", "replace").decode().replace("?", "_")
    return {"Content-Disposition": f"attachment; filename=\"{ascii_name}\"; "
                                   f"filename*=UTF-8''{quote(name)}"}


async def answer(request: Request, build: Build, *, models: tuple[str, ...],
                 min_seq: int | None = None, format: Format = "json",
                 headers: Headers = "zh", filename: str = "report",
                 scope: Scope | None = None, varies: tuple[Hashable, ...] | None = ()) -> Any:
    """The report as JSON (`rows`, `totals`, `as_of`, ...) or streamed as CSV or XLSX, titled
    and named for its period and `scope`.

    JSON answers are kept (`answers.py`) by the question and the read models' positions;
    `varies` is what else the answer depends on (the day it is counted to), None when it is
    the clock itself (now, to the second): such an answer is computed each time. Reports are
    built side by side: the database pool bounds how many at once (a request that waits past
    its timeout gets 503 with Retry-After)."""
    await wait_for(request, models, min_seq)
    engine = request.app.state.engine
    if format == "json":
        async def compute(conn: AsyncConnection) -> tuple[bytes, At]:
            as_of = await snapshot(conn, models)
            at = await read_at(conn)  # in the same snapshot: what the answer is kept under
            return dumps(await as_json(await build(conn), as_of)), at

        kept = answers.of(request)
        body = (await kept.fresh(engine, compute) if varies is None else
                await kept.answer(engine, question(request, varies), compute))
        return Response(body, media_type="application/json")
    named = await heading(engine, scope, headers)
    stream = _csv(engine, build, models, headers, named) if format == "csv" else _xlsx(
        engine, build, models, headers, named)
    media = ("text/csv; charset=utf-8" if format == "csv" else
             "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet")
    return StreamingResponse(stream, media_type=media,
                             headers=attachment(download_name(filename, scope, named, format)))


async def as_json(report: Report, as_of: int) -> dict:
    rows = report.rows if isinstance(report.rows, list) else [r async for r in report.rows]
    out: dict[str, Any] = {"rows": rows}
    if report.totals is not None:
        out["totals"] = report.totals
    return {**out, **report.extra, "as_of": as_of}


async def _rows(rows: Rows) -> AsyncIterator[dict]:
    if isinstance(rows, list):
        for row in rows:
            yield row
    else:
        async for row in rows:
            yield row


def _cell(value: Any) -> Any:
    """A value as a spreadsheet cell: numbers stay numbers, lists join, dicts read `k: v`."""
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, Decimal):
        return float(value)
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, list | tuple):
        return "、".join(str(_cell(v)) for v in value)
    if isinstance(value, dict):
        return "；".join(f"{k}: {_cell(v)}" for k, v in value.items())
    return str(value)


def _guard(value: Any) -> Any:
    """A text cell that a spreadsheet would run as a formula is written as text."""
    if isinstance(value, str) and value[:1] in ("=", "+", "-", "@"):
        return "'" + value
    return value


def _totals_row(report: Report, lang: Headers) -> list[Any] | None:
    if report.totals is None:
        return None
    row = [_cell(c.value(report.totals)) for c in report.columns]
    row[0] = "合计" if lang == "zh" else "Total"
    return row


async def _csv(engine, build: Build, models,
               lang: Headers, named: Heading | None = None) -> AsyncIterator[bytes]:
    named = named or everything(lang)
    async with engine.connect() as conn:
        as_of = await snapshot(conn, models)
        report = await build(conn)
        buffer = io.StringIO()
        writer = csv.writer(buffer)
        # A BOM: Excel on Chinese Windows reads UTF-8 CSV correctly only with one.
        yield codecs.BOM_UTF8
        # What it is (title, period, scope, as of), then the header.
        writer.writerow(named.line(report.title_zh if lang == "zh" else report.title_en,
                                   as_of, lang, report.status))
        writer.writerow(report.header(lang))
        async for row in _rows(report.rows):
            writer.writerow([_guard(_cell(c.value(row))) for c in report.columns])
            if buffer.tell() > _CHUNK:
                yield buffer.getvalue().encode()
                buffer.seek(0)
                buffer.truncate()
        if (totals := _totals_row(report, lang)) is not None:
            writer.writerow(totals)
        yield buffer.getvalue().encode()


async def _xlsx(engine, build: Build, models,
                lang: Headers, named: Heading | None = None) -> AsyncIterator[bytes]:
    named = named or everything(lang)
    import openpyxl
    from openpyxl.cell import WriteOnlyCell
    from openpyxl.styles import Font

    book = openpyxl.Workbook(write_only=True)
    bold = Font(bold=True)

    def styled(sheet, values: list[Any]) -> list:
        """Bold cells: the title line (whose scope is a registry name: characters XML forbids
        become U+FFFD), the header, the totals."""
        from openpyxl.cell.cell import ILLEGAL_CHARACTERS_RE

        cells = []
        for value in values:
            if isinstance(value, str):
                value = ILLEGAL_CHARACTERS_RE.sub("\ufffd", value)
            cell = WriteOnlyCell(sheet, value=value)
            cell.font = bold
            cells.append(cell)
        return cells

    async def write(report: Report, as_of: int) -> None:
        title = report.title_zh if lang == "zh" else report.title_en
        sheet = book.create_sheet(title=_sheet_name(title, book.sheetnames))
        header = report.header(lang)
        for letter, column, text in zip(_letters(len(header)), report.columns, header,
                                        strict=True):  # widths go before the first row
            sheet.column_dimensions[letter].width = max(_width(text) + 2,
                                                        _WIDTHS.get(column.kind, 10))
        sheet.freeze_panes = "A3"
        sheet.append(styled(sheet, named.line(title, as_of, lang, report.status)))
        sheet.append(styled(sheet, header))
        async for row in _rows(report.rows):
            sheet.append([_typed(sheet, c, c.value(row)) for c in report.columns])
        if (totals := _totals_row(report, lang)) is not None:
            cells = styled(sheet, totals)
            for cell, column in zip(cells, report.columns, strict=True):
                if column.kind in _FORMATS and isinstance(cell.value, int | float):
                    cell.number_format = _FORMATS[column.kind]
            sheet.append(cells)
        for more in report.sheets:
            await write(more, as_of)

    async with engine.connect() as conn:
        as_of = await snapshot(conn, models)
        await write(await build(conn), as_of)
    fd, path = tempfile.mkstemp(suffix=".xlsx")
    os.close(fd)
    try:
        await asyncio.to_thread(book.save, path)
        with open(path, "rb") as f:  # noqa: ASYNC230 (a local temp file, read in chunks)
            while chunk := f.read(_CHUNK):
                yield chunk
    finally:
        os.unlink(path)


def _letters(n: int) -> list[str]:
    from openpyxl.utils import get_column_letter
    return [get_column_letter(i + 1) for i in range(n)]


def _width(text: str) -> int:
    """Display width: a Chinese character is two columns wide."""
    return sum(2 if ord(ch) > 0x2E80 else 1 for ch in text)


def _typed(sheet, column: Column, value: Any) -> Any:
    """A value as its column's kind of cell: a date or a time as a date cell (local time, as
    the report gives it), a figure as a number with the column's format."""
    from openpyxl.cell import WriteOnlyCell

    if column.kind in ("date", "datetime") and value:
        when: Any = value
        if isinstance(value, str):
            try:
                when = (date.fromisoformat(value) if column.kind == "date"
                        else datetime.fromisoformat(value))
            except ValueError:
                return _xlsx_cell(sheet, value)
        if isinstance(when, datetime):
            when = when.replace(tzinfo=None)  # XLSX has no time zones: the local time shown
        cell = WriteOnlyCell(sheet, value=when)
        cell.number_format = _FORMATS[column.kind]
        return cell
    value = _cell(value)
    if column.kind in _FORMATS and isinstance(value, int | float) and not isinstance(value, bool):
        cell = WriteOnlyCell(sheet, value=value)
        cell.number_format = _FORMATS[column.kind]
        return cell
    return _xlsx_cell(sheet, value)


def _xlsx_cell(sheet, value: Any) -> Any:
    """A value as XLSX can hold it: characters XML forbids (a control character pasted into a
    name) become U+FFFD instead of ending the download half-written, and text beginning with
    `=` stays text instead of becoming a formula."""
    if not isinstance(value, str):
        return value
    from openpyxl.cell import WriteOnlyCell
    from openpyxl.cell.cell import ILLEGAL_CHARACTERS_RE

    value = ILLEGAL_CHARACTERS_RE.sub("\ufffd", value)
    if not value.startswith("="):
        return value
    cell = WriteOnlyCell(sheet, value=value)
    cell.data_type = "s"
    return cell


def _sheet_name(title: str, taken: list[str]) -> str:
    name = "".join(ch for ch in title if ch not in "[]:*?/\\")[:28] or "sheet"
    while name in taken:
        name = name[:26] + f"_{len(taken)}"
    return name
