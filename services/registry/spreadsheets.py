"""Registry spreadsheets: read an organiser's CSV or XLSX register, validate every row, export.

Pure: bytes in, rows and errors out, and records back to bytes. No database, no network;
reference checks (does this region code exist?) come in through the `check` hook.

An entity's columns are its Create model's fields. Organisers may head them with the English
field name (any case) or with a Chinese alias, in simplified or traditional characters, and may
fill choice fields (kind, level) with Chinese labels. Each entity declares its aliases once, below.
"""

from __future__ import annotations

import codecs
import csv
import io
import re
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, time
from typing import Any, Literal, get_args, get_origin

import openpyxl
from openpyxl.cell import WriteOnlyCell
from openpyxl.cell.cell import ILLEGAL_CHARACTERS_RE
from openpyxl.styles import Font
from openpyxl.utils import get_column_letter
from pydantic import BaseModel, ValidationError

from services.registry.domain import (
    ENTITIES,
    TEAM_CATEGORIES,
    BaseCreate,
    CampaignCreate,
    OrganizationCreate,
    PairingCreate,
    RegionCreate,
    TeamCreate,
    VolunteerCreate,
)
from shared.chinese import search_key
from shared.errors import plain


@dataclass(frozen=True)
class Aliases:
    """How organisers name one entity's columns and choices.

    `headers`: field -> the headers that mean it. `values`: field -> {label: code}.
    The first header of a field and the first label of each code are what a Chinese export
    writes, so put the clearest one first.
    """

    headers: Mapping[str, Sequence[str]] = field(default_factory=dict)
    values: Mapping[str, Mapping[str, str]] = field(default_factory=dict)


_REGION_CODE = ("所属区域编码", "所属区域", "区域编码", "行政区划代码")

REGION = Aliases(
    headers={
        "code": ("区域编码", "编码", "代码", "行政区划代码", "区划代码"),
        "name": ("区域名称", "名称"),
        "level": ("级别", "层级"),
        "parent_code": ("上级编码", "上级区域编码"),
    },
    values={"level": {
        "市": "city",
        "区/县": "district", "区县": "district", "区": "district", "县": "district",
        "镇/街道": "town", "乡镇": "town", "镇": "town", "街道": "town", "乡": "town",
        "社区/村": "community", "社区": "community", "村": "community",
    }},
)

ORGANIZATION = Aliases(
    headers={
        "name": ("单位名称", "名称"),
        "kind": ("单位类型", "类型"),
        "parent_id": ("上级单位ID", "上级单位"),
        "parent_code": ("上级单位编码", "上级编码"),
        "region_code": _REGION_CODE,
        "code": ("单位编码", "编码", "代码"),
    },
    values={"kind": {
        "机关部门": "government_department", "政府部门": "government_department",
        "党组织": "party_organization",
        "民主党派": "democratic_party",
        "企业": "enterprise",
        "社会组织": "social_organization",
        "事业单位": "public_institution",
        "居委会/村委会": "community_committee", "社区居委会": "community_committee",
        "居委会": "community_committee", "村委会": "community_committee",
    }},
)

BASE = Aliases(
    headers={
        "name": ("基地名称", "名称"),
        "kind": ("基地类型", "类型"),
        "region_code": _REGION_CODE,
        "households": ("户数", "总户数"),
        "code": ("基地编码", "编码", "代码"),
        "latitude": ("纬度",),
        "longitude": ("经度",),
    },
    values={"kind": {
        "社区": "community", "结对社区": "community",
        "村": "village", "结对村": "village",
        "企业": "enterprise", "重点企业": "enterprise",
        "学校": "school",
        "其他": "other",
    }},
)

TEAM = Aliases(
    headers={
        "name": ("团队名称", "名称"),
        "category": ("团队类别", "类别"),
        "organization_id": ("单位ID",),
        "organization_code": ("单位编码", "所属单位编码"),
        "description": ("团队简介", "简介", "描述"),
        "code": ("团队编码", "编码", "代码"),
    },
    values={"category": {zh: code for code, (zh, _) in TEAM_CATEGORIES.items()}},
)

VOLUNTEER = Aliases(
    headers={
        "name": ("姓名", "名称"),
        "organization_id": ("单位ID",),
        "organization_code": ("单位编码", "所属单位编码"),
        "team_ids": ("团队ID",),
        "team_codes": ("团队编码", "服务团队编码"),
        "skills": ("技能特长", "技能", "特长", "专长"),
        "party_status": ("党员身份",),
        "home_base_id": ("报到社区ID",),
        "home_base_code": ("报到社区编码", "报到基地编码"),
        "phone": ("联系电话", "手机号", "手机", "电话"),
        "id_number": ("身份证号", "身份证号码"),
        "code": ("志愿者编码", "编码", "代码"),
    },
    values={"party_status": {
        "在职党员": "serving_member",
        "在册党员": "registered_member",
        "入党积极分子": "activist", "积极分子": "activist",
        "群众": "non_member", "非党员": "non_member",
    }},
)

PAIRING = Aliases(
    headers={
        "organization_id": ("单位ID",),
        "organization_code": ("单位编码", "结对单位编码"),
        "base_id": ("基地ID",),
        "base_code": ("基地编码", "结对基地编码"),
        "starts_on": ("开始日期", "起始日期", "签约日期"),
        "ends_on": ("结束日期", "截止日期"),
        "status": ("状态",),
        "code": ("协议编码", "结对编码", "编码"),
    },
    values={"status": {
        "进行中": "active", "履约中": "active",
        "暂停": "suspended", "已暂停": "suspended",
        "已结束": "ended", "结束": "ended",
    }},
)

CAMPAIGN = Aliases(
    headers={
        "code": ("行动编码", "活动编码", "编码", "代码"),
        "name": ("行动名称", "活动名称", "名称"),
        "starts_on": ("开始日期", "起始日期"),
        "ends_on": ("结束日期", "截止日期"),
        "base_ids": ("基地ID",),
        "base_codes": ("基地编码", "覆盖基地编码"),
        "region_code": _REGION_CODE,
        "description": ("行动说明", "说明", "简介", "描述"),
    },
)

# Which aliases a model uses when the caller does not say; a new entity adds one line here.
ALIASES: dict[type[BaseModel], Aliases] = {
    RegionCreate: REGION,
    OrganizationCreate: ORGANIZATION,
    BaseCreate: BASE,
    TeamCreate: TEAM,
    VolunteerCreate: VOLUNTEER,
    PairingCreate: PAIRING,
    CampaignCreate: CAMPAIGN,
}

# Columns organisers add for themselves; never an error, never imported.
IGNORED_HEADERS = ("备注", "note", "notes", "remark", "remarks", "序号", "no", "no.", "#")

# A cell holding a list (skills, team codes): 法律、医疗 / 法律，医疗 / law; medicine
_LIST_SEPARATORS = re.compile(r"[、，,；;\n]")
# Dates as a Chinese Excel writes them into CSV: 2024/3/1, 2024.3.1, 2024年3月1日
_DATE = re.compile(r"(\d{4})\s*[-/.年]\s*(\d{1,2})\s*[-/.月]\s*(\d{1,2})\s*日?")

ID = "id"  # the registry's own id: carried through import and export, never validated

Format = Literal["csv", "xlsx"]
Check = Callable[[dict[str, Any]], Iterable[tuple[str, str]]]


class SpreadsheetError(ValueError):
    """The file cannot be read as a table at all (as opposed to rows that fail validation)."""


@dataclass(frozen=True)
class Row:
    number: int                          # the row number the organiser sees in the spreadsheet
    cells: tuple[str | None, ...]        # stripped text, None for empty


@dataclass(frozen=True)
class Table:
    headers: tuple[str, ...]             # as written in the file; "" for a column with no header
    rows: tuple[Row, ...]                # data rows, fully empty ones left out
    header_row: int = 1


class RowError(BaseModel):
    row: int
    column: str    # the header as written in the file, so the organiser can find the cell
    message: str


class ValidRow(BaseModel):
    row: int
    data: dict[str, Any]                 # the validated model, dumped as JSON-ready values
    id: str | None = None


# --- reading -----------------------------------------------------------------------------

_ZIP = b"PK\x03\x04"
_OLE = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"  # the pre-2007 .xls container


def read_table(content: bytes, filename: str | None = None,
               content_type: str | None = None) -> Table:
    """The first sheet of an XLSX file, or a CSV file, as a header and its data rows.

    The bytes decide the format; `filename` and `content_type` only make error messages clearer.
    """
    name = filename or content_type or "the file"
    if not content:
        raise SpreadsheetError(f"{name} is empty")
    if content.startswith(_ZIP):
        return _table(_xlsx_rows(content, name))
    if content.startswith(_OLE):
        raise SpreadsheetError(f"{name} is an old Excel .xls workbook; "
                               "save it as .xlsx or as CSV (UTF-8) and upload it again")
    return _table(_csv_rows(_decode(content, name)))


def _xlsx_rows(content: bytes, name: str) -> list[list[str | None]]:
    try:
        book = openpyxl.load_workbook(io.BytesIO(content), read_only=True, data_only=True)
    except Exception as exc:  # openpyxl raises many types for a damaged or foreign zip
        raise SpreadsheetError(f"{name} is not a readable XLSX workbook "
                               f"({type(exc).__name__})") from exc
    try:
        if not book.worksheets:
            raise SpreadsheetError(f"{name} has no worksheet")
        sheet = book.worksheets[0]
        # Some writers record a wrong sheet size; read_only mode would trust it and cut rows off.
        sheet.reset_dimensions()
        return [[_clean(value) for value in row]
                for row in sheet.iter_rows(min_row=1, values_only=True)]
    except SpreadsheetError:
        raise
    except Exception as exc:
        raise SpreadsheetError(f"{name}: the first worksheet cannot be read "
                               f"({type(exc).__name__})") from exc
    finally:
        book.close()


def _decode(content: bytes, name: str) -> str:
    if content.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        text = content.decode("utf-16")  # Excel's "Unicode text" export
    else:
        text = _decode_8bit(content, name)
    if "\x00" in text:
        raise SpreadsheetError(f"{name} is neither CSV nor XLSX")
    return text


def _decode_8bit(content: bytes, name: str) -> str:
    # Excel on Chinese Windows saves "CSV" in the ANSI code page (GBK), which GB18030 covers.
    for encoding in ("utf-8-sig", "gb18030"):
        try:
            return content.decode(encoding)
        except UnicodeDecodeError:
            continue
    raise SpreadsheetError(f"{name} is neither CSV in UTF-8 or GB18030 nor XLSX")


def _csv_rows(text: str) -> list[list[str | None]]:
    delimiter = _delimiter(text.split("\n", 1)[0])
    try:
        return [[_clean(cell) for cell in row]
                for row in csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)]
    except csv.Error as exc:
        raise SpreadsheetError(f"malformed CSV: {exc}") from exc


def _delimiter(header_line: str) -> str:
    counts = {d: header_line.count(d) for d in (",", "\t", ";")}
    best = max(counts, key=counts.__getitem__)
    return best if counts[best] else ","


def _clean(value: Any) -> str | None:
    text = _text(value).strip()
    if text[:1] == "'" and text[1:2] in ("=", "+", "-", "@"):
        text = text[1:]  # undo the formula guard `write_table` puts on CSV cells
    return text or None


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))  # Excel stores every number as a float: 300 arrives as 300.0
    if isinstance(value, datetime):
        return value.date().isoformat() if value.time() == time() else value.isoformat()
    if isinstance(value, date | time):
        return value.isoformat()
    return str(value)


def _table(lines: Iterable[list[str | None]]) -> Table:
    header: list[str | None] | None = None
    header_row, rows = 0, []
    for number, cells in enumerate(lines, start=1):
        if all(cell is None for cell in cells):
            continue
        if header is None:
            header, header_row = cells, number
        else:
            rows.append(Row(number, tuple(cells)))
    if header is None:
        raise SpreadsheetError("the sheet is empty: no header row")
    width = max(_width(header), *(_width(row.cells) for row in rows), 0)
    return Table(headers=tuple((h or "") for h in _pad(header, width)),
                 rows=tuple(Row(r.number, _pad(r.cells, width)) for r in rows),
                 header_row=header_row)


def _width(cells: Sequence[str | None]) -> int:
    return max((i + 1 for i, cell in enumerate(cells) if cell is not None), default=0)


def _pad(cells: Sequence[str | None], width: int) -> tuple[str | None, ...]:
    return tuple(cells[:width]) + (None,) * (width - len(cells))


# --- the columns of one entity ---------------------------------------------------------

def _key(text: str) -> str:
    """Fold a header or label: 單位名稱 ~ 单位名称, "Parent Code" ~ parent_code, 名称* ~ 名称,
    户数（户） ~ 户数."""
    return re.sub(r"\(.*?\)|[\s_\-*]", "", search_key(text))


def _choices(annotation: Any) -> tuple[str, ...]:
    """The allowed codes of a Literal field (also when optional), else ()."""
    if get_origin(annotation) is Literal:
        return get_args(annotation)
    return next((get_args(a) for a in get_args(annotation) if get_origin(a) is Literal), ())


def _list_item(annotation: Any) -> Any | None:
    """The item type of a list field, else None."""
    return get_args(annotation)[0] if get_origin(annotation) in (list, tuple, set) else None


def _is_date(annotation: Any) -> bool:
    return date in (annotation, *get_args(annotation))


def _iso_date(text: str) -> str:
    found = _DATE.fullmatch(text)
    if found is None:
        return text  # the model reports it
    year, month, day = (int(g) for g in found.groups())
    return f"{year:04d}-{month:02d}-{day:02d}"


def _is_nested(annotation: Any) -> bool:
    """A list of records (a pairing's needs) cannot live in one cell; such fields are left out."""
    item = _list_item(annotation)
    return isinstance(item, type) and issubclass(item, BaseModel)


@dataclass(frozen=True)
class _Schema:
    fields: tuple[str, ...]                        # the model's cell-sized fields, in order
    required: tuple[str, ...]
    lists: frozenset[str]                          # fields whose cell holds several values
    dates: frozenset[str]
    by_header: dict[str, str]                      # folded header -> field (and "id")
    by_label: dict[str, dict[str, str]]            # field -> folded label or code -> code
    labels: dict[str, dict[str, str]]              # field -> code -> label a Chinese export writes
    titles: dict[str, str]                         # field -> header a Chinese export writes

    @classmethod
    def of(cls, model: type[BaseModel], aliases: Aliases | None) -> _Schema:
        aliases = aliases if aliases is not None else ALIASES.get(model, Aliases())
        infos = {f: i for f, i in model.model_fields.items() if not _is_nested(i.annotation)}
        by_header = {_key(ID): ID} | {_key(f): f for f in infos}
        for f, headers in aliases.headers.items():
            by_header.update({_key(h): f for h in headers})
        by_label: dict[str, dict[str, str]] = {}
        for f, info in infos.items():
            if choices := _choices(info.annotation):
                by_label[f] = {_key(c): c for c in choices}
        for f, labels in aliases.values.items():
            by_label.setdefault(f, {}).update(
                {_key(c): c for c in labels.values()} | {_key(k): c for k, c in labels.items()})
        return cls(
            fields=tuple(infos),
            required=tuple(f for f, info in infos.items() if info.is_required()),
            lists=frozenset(f for f, info in infos.items() if _list_item(info.annotation)),
            dates=frozenset(f for f, info in infos.items() if _is_date(info.annotation)),
            by_header=by_header,
            by_label=by_label,
            labels={f: _first_labels(labels) for f, labels in aliases.values.items()},
            titles={f: headers[0] for f, headers in aliases.headers.items() if headers},
        )

    def title(self, name: str, language: str) -> str:
        return self.titles.get(name, name) if language == "zh" else name

    def describe(self, name: str) -> str:
        title = self.titles.get(name)
        return f"{title} ({name})" if title else name

    def value(self, name: str, text: str) -> str | list[str]:
        """A cell's text as the model takes it: Chinese labels become codes, lists are split,
        dates become ISO."""
        if name in self.dates:
            return _iso_date(text)
        choices = self.by_label.get(name, {})
        if name in self.lists:
            return [choices.get(_key(part), part.strip())
                    for part in _LIST_SEPARATORS.split(text) if part.strip()]
        return choices.get(_key(text), text)

    def export(self, name: str, value: Any, language: str) -> Any:
        labels = self.labels.get(name, {}) if language == "zh" else {}
        if isinstance(value, list | tuple):
            return ("、" if language == "zh" else ", ").join(
                str(labels.get(v, v)) for v in value) or None
        return labels.get(value, value) if isinstance(value, str) else value


def _first_labels(labels: Mapping[str, str]) -> dict[str, str]:
    first: dict[str, str] = {}
    for label, code in labels.items():
        first.setdefault(code, label)
    return first


@dataclass(frozen=True)
class _Columns:
    index: dict[str, int]          # field -> column position in the table
    headers: tuple[str, ...]

    def header(self, name: str) -> str:
        i = self.index.get(name)
        return self.headers[i] if i is not None else name

    def cell(self, row: Row, name: str) -> str | None:
        i = self.index.get(name)
        return row.cells[i] if i is not None and i < len(row.cells) else None


def _map_columns(table: Table, schema: _Schema,
                 ignore: Collection[str]) -> tuple[_Columns, list[RowError]]:
    ignored = {_key(h) for h in ignore}
    index: dict[str, int] = {}
    errors: list[RowError] = []

    def error(column: str, message: str, row: int = table.header_row) -> None:
        errors.append(RowError(row=row, column=column, message=message))

    for i, header in enumerate(table.headers):
        if not header:
            if first := next((r.number for r in table.rows if r.cells[i] is not None), None):
                error(get_column_letter(i + 1), "this column has values but no header", first)
            continue
        key = _key(header)
        if key in ignored:
            continue
        name = schema.by_header.get(key)
        if name is None:
            error(header, "unknown column; known columns: "
                          + ", ".join(schema.describe(f) for f in schema.fields))
        elif name in index:
            error(header, f"means the same as column {table.headers[index[name]]!r} ({name})")
        else:
            index[name] = i
    for name in schema.required:
        if name not in index:
            error(name, f"required column is missing; head it {schema.title(name, 'zh')!r} "
                        f"or {name!r}")
    return _Columns(index, table.headers), errors


# --- validating ----------------------------------------------------------------------------

def validate_rows(table: Table, model: type[BaseModel], aliases: Aliases | None = None, *,
                  check: Check | None = None,
                  ignore: Collection[str] = IGNORED_HEADERS,
                  ) -> tuple[list[ValidRow], list[RowError]]:
    """Validate every row against `model`; report every error found, sorted by row.

    `aliases` defaults to `ALIASES[model]`. `check(data)` runs on each row that passed the
    model and returns (field, message) pairs, e.g. references the database does not know.
    A row is valid only when nothing at all was reported for it.
    """
    schema = _Schema.of(model, aliases)
    columns, errors = _map_columns(table, schema, ignore)
    duplicates = _duplicate_codes(table, columns)
    valid: list[ValidRow] = []
    for row in table.rows:
        data, row_errors = _validate(row, model, schema, columns)
        if data is not None and check is not None:
            row_errors += [RowError(row=row.number, column=columns.header(f), message=m)
                           for f, m in check(data)]
        if row.number in duplicates:
            row_errors.append(duplicates[row.number])
        errors += row_errors
        if data is not None and not row_errors:
            valid.append(ValidRow(row=row.number, data=data, id=columns.cell(row, ID)))
    errors.sort(key=lambda e: e.row)  # stable: within a row, errors stay in column order
    return valid, errors


def column_headers(table: Table, model: type[BaseModel],
                   aliases: Aliases | None = None) -> dict[str, str]:
    """Field -> the header this file uses for it, to name the column of an error found later
    (the registry's reference checks report fields, organisers look for headers)."""
    columns, _ = _map_columns(table, _Schema.of(model, aliases), IGNORED_HEADERS)
    return {name: table.headers[i] for name, i in columns.index.items()}


def _validate(row: Row, model: type[BaseModel], schema: _Schema,
              columns: _Columns) -> tuple[dict[str, Any] | None, list[RowError]]:
    payload = {}
    for name in columns.index:
        text = columns.cell(row, name)
        if name != ID and text is not None:
            payload[name] = schema.value(name, text)
    try:
        return model.model_validate(payload).model_dump(mode="json"), []
    except ValidationError as exc:
        private = _private_fields(model)
        return None, [RowError(row=row.number, column=columns.header(name), message=message)
                      for name, message in _messages(exc, schema, columns, private)]


def _messages(exc: ValidationError, schema: _Schema, columns: _Columns,
              private: Collection[str] = ()) -> Iterable[tuple[str, str]]:
    for err in exc.errors(include_url=False):
        name = str(err["loc"][0]) if err["loc"] else ""
        if err["type"] == "missing":
            if name in columns.index:  # a missing column was reported once, on the header row
                yield name, "required; the cell is empty"
            continue
        message = plain(err["msg"])
        if err["type"] == "literal_error" and schema.labels.get(name):
            message += "; or in Chinese: " + ", ".join(schema.labels[name].values())
        if name in private:  # never echo a phone or ID number back, not even to its uploader
            yield name, "not a valid " + {"id_number": "ID number"}.get(name, f"{name} number")
        else:
            yield name, f"{message} (got {err['input']!r})"


def _duplicate_codes(table: Table, columns: _Columns) -> dict[int, RowError]:
    if "code" not in columns.index:
        return {}
    first: dict[str, int] = {}
    found: dict[int, RowError] = {}
    for row in table.rows:
        code = columns.cell(row, "code")
        if code is None:
            continue
        if code in first:
            found[row.number] = RowError(
                row=row.number, column=columns.header("code"),
                message=f"code {code!r} is already used in row {first[code]}")
        else:
            first[code] = row.number
    return found


# --- writing -------------------------------------------------------------------------------

def write_table(records: list[dict[str, Any]], model: type[BaseModel], fmt: Format,
                headers: Literal["en", "zh"] = "zh", *,
                aliases: Aliases | None = None) -> bytes:
    """Records as a file `read_table` and `validate_rows` take back unchanged.

    Columns are the model's fields in order, after `id` when the records carry one. Other keys
    (active, created_at, ...), lists of records (a pairing's needs) and personal data (a
    volunteer's phone) are left out. With Chinese headers, choices are written as their Chinese
    labels too.
    """
    schema = _Schema.of(model, aliases)
    private = _private_fields(model)
    names = ([ID] if any(ID in r for r in records) else []) + [
        f for f in schema.fields if f not in private]
    titles = [schema.title(n, headers) for n in names]
    rows = [[schema.export(n, r.get(n), headers) for n in names] for r in records]
    if fmt == "csv":
        return _csv_bytes(titles, rows)
    if fmt == "xlsx":
        return _xlsx_bytes(titles, rows)
    raise ValueError(f"unknown format {fmt!r}; use 'csv' or 'xlsx'")


def _private_fields(model: type[BaseModel]) -> set[str]:
    return {f for e in ENTITIES.values() if e.create is model for f in e.private}


def _csv_bytes(titles: list[str], rows: list[list[Any]]) -> bytes:
    out = io.StringIO(newline="")
    writer = csv.writer(out)
    writer.writerow(titles)
    writer.writerows([_csv_cell(v) for v in row] for row in rows)
    return out.getvalue().encode("utf-8-sig")  # the BOM makes Excel read UTF-8, not GBK


def _csv_cell(value: Any) -> str:
    text = "" if value is None else _text(value)
    # Excel runs a cell starting with = + - @ as a formula; the quote keeps it text.
    return "'" + text if text[:1] in ("=", "+", "-", "@") else text


def _xlsx_bytes(titles: list[str], rows: list[list[Any]]) -> bytes:
    book = openpyxl.Workbook(write_only=True)
    sheet = book.create_sheet()
    for i, title in enumerate(titles, start=1):
        sheet.column_dimensions[get_column_letter(i)].width = 38 if title == ID else 18
    sheet.freeze_panes = "A2"
    sheet.append([_xlsx_cell(sheet, t, bold=True) for t in titles])
    for row in rows:
        sheet.append([_xlsx_cell(sheet, v) for v in row])
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


def _xlsx_cell(sheet: Any, value: Any, bold: bool = False) -> Any:
    if not isinstance(value, str):
        return value
    cell = WriteOnlyCell(sheet, ILLEGAL_CHARACTERS_RE.sub("", value))
    cell.data_type = "s"  # never a formula or an error code, whatever the text starts with
    if bold:
        cell.font = Font(bold=True)
    return cell
