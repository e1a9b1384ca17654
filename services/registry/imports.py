"""Spreadsheet import and export: the one implementation behind `POST /v1/import/<collection>`,
`GET /v1/export/<collection>` and `tongxin import`.

An import reads the file, validates every row (schema first, then references in the registry),
and either saves all rows in one transaction or reports every error by row and column, saving
nothing. Rows are matched on their external `code`, so a corrected file can simply be sent again.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from services.registry import spreadsheets
from services.registry.domain import ENTITIES, Entity
from services.registry.service import ImportRejected, Registry, RowError

Progress = Callable[[str, int, int], None]  # (stage, done, total)

# Collections by the names organisers give their files (单位.xlsx, 志愿者名单.csv).
FILE_NAMES: dict[str, str] = {
    "区域": "regions", "行政区划": "regions", "单位": "organizations", "组织": "organizations",
    "基地": "bases", "服务基地": "bases", "社区": "bases", "团队": "teams", "服务团队": "teams",
    "志愿者": "volunteers", "党员": "volunteers", "结对": "pairings",
    "敲门": "campaigns", "行动": "campaigns",
}


def collection_for(filename: str) -> str | None:
    stem = filename.rsplit("/", 1)[-1].rsplit(".", 1)[0].lower()
    if stem in ENTITIES:
        return stem
    return next((c for name, c in FILE_NAMES.items() if name in stem), None) or next(
        (c for c in ENTITIES if c.rstrip("s") in stem), None)


@dataclass
class ImportResult:
    imported: int
    created: int
    updated: int
    unchanged: int

    def as_json(self) -> dict:
        return self.__dict__.copy()


def check_file(entity: Entity, content: bytes, filename: str | None = None,
               progress: Progress | None = None) -> tuple[spreadsheets.Table,
                                                          list[spreadsheets.ValidRow],
                                                          list[RowError]]:
    """Read and validate every row without touching the database (what the CLI shows first)."""
    try:
        table = spreadsheets.read_table(content, filename)
    except spreadsheets.SpreadsheetError as exc:
        return spreadsheets.Table((), ()), [], [RowError(None, "file", str(exc))]
    if progress:
        progress("validate", 0, len(table.rows))
    valid, bad = spreadsheets.validate_rows(table, entity.create)
    if progress:
        progress("validate", len(table.rows), len(table.rows))
    return table, valid, [RowError(e.row, e.column, e.message) for e in bad]


async def import_file(registry: Registry, collection: str, content: bytes,
                      filename: str | None = None,
                      progress: Progress | None = None) -> ImportResult:
    """Validate everything, then save everything or nothing. Raises `ImportRejected`."""
    entity = ENTITIES[collection]
    table, valid, errors = check_file(entity, content, filename, progress)
    if not valid and not errors:
        errors = [RowError(None, "file", "no rows to import")]
    if progress:
        progress("save", 0, len(valid))
    columns = spreadsheets.column_headers(table, entity.create)
    try:
        # With errors already found, still check the other rows' references (saving nothing),
        # so one upload reports everything that is wrong with the file. Fields without a
        # column in the file (a pairing's lists, say) are left as they are.
        saved = await registry.import_rows(entity, [(v.row, v.data, v.id) for v in valid],
                                           dry_run=bool(errors),
                                           provided=set(columns)) if valid else None
    except ImportRejected as exc:
        for e in exc.errors:  # the registry names fields; organisers look for their headers
            e.column = columns.get(e.column, e.column)
        errors += exc.errors
    if errors:
        raise ImportRejected(sorted(errors, key=lambda e: (e.row or 0, e.column)))
    assert saved is not None  # no valid rows means the "no rows to import" error above
    if progress:
        progress("save", len(valid), len(valid))
    return ImportResult(len(valid), len(saved.created), len(saved.updated), len(saved.unchanged))


async def export_file(registry: Registry, collection: str, fmt: Literal["csv", "xlsx"],
                      headers: Literal["zh", "en"] = "zh") -> bytes:
    entity = ENTITIES[collection]
    records = await registry.export(entity)
    return spreadsheets.write_table(records, entity.create, fmt, headers)


def errors_json(errors: list[RowError]) -> list[dict]:
    return [{"row": e.row, "column": e.column, "message": e.message} for e in errors]
