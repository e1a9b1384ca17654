"""`tongxin reporting rebuild`: replay the streams into fresh tables and swap them in while the
service runs and readers keep reading.

Each read model is rebuilt by its own projection code, run from position 0 into a separate
schema (PostgreSQL: `<schema>_rebuild`; SQLite: a file ATTACHed as `rebuild`) through
SQLAlchemy's `schema_translate_map`, so handlers write their usual Table objects there. Once the
rebuild has caught up, one transaction on the live database locks the live projection's
position P, brings the rebuilt tables to P as well (the few messages since), and replaces the
live rows with the rebuilt ones. Readers see the old rows until that commit (MVCC / WAL), and
the live projection carries on from P afterwards: nothing is applied twice or lost.

`check=True` does the same up to the lock, then compares instead of swapping.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import nats
from nats.aio.msg import Msg
from nats.js import JetStreamContext
from nats.js.errors import NotFoundError
from sqlalchemy import MetaData, Table, delete, event, func, insert, select, text, update
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from services.reporting import store
from services.reporting.models import READ_MODELS
from services.reporting.readmodel import ReadModel
from shared.bus import inbox_prefix
from shared.db import async_url, is_sqlite, make_engine, write_lock, write_turn
from shared.projection import Projection, _as_msg, reason_of
from shared.retry import is_transient
from shared.settings import Settings
from shared.subjects import Names

log = logging.getLogger(__name__)

Progress = Callable[[str, int, int], None]  # (model, position, last seq to reach)


# -- results ----------------------------------------------------------------------------------

@dataclass
class TableCheck:
    table: str
    live: int
    rebuilt: int
    only_live: list[tuple] = field(default_factory=list)     # the first few, normalised
    only_rebuilt: list[tuple] = field(default_factory=list)

    @property
    def equal(self) -> bool:
        return not self.only_live and not self.only_rebuilt and self.live == self.rebuilt


@dataclass
class ModelResult:
    name: str
    position: int            # the live position the model was swapped (or checked) at
    events: int              # stream messages replayed
    seconds: float           # replaying them
    rows: dict[str, int]     # per table, rebuilt
    parked: int              # messages the rebuild could not apply (kept parked)
    gap: int = 0             # of them, applied in the locked transaction (arrived meanwhile)
    checks: list[TableCheck] = field(default_factory=list)

    @property
    def events_per_second(self) -> float:
        return self.events / self.seconds if self.seconds > 0 else 0.0

    @property
    def equal(self) -> bool:
        return all(c.equal for c in self.checks)


@dataclass
class RebuildResult:
    models: list[ModelResult]
    seconds: float
    checked: bool

    @property
    def equal(self) -> bool:
        return all(m.equal for m in self.models)


# -- which models -----------------------------------------------------------------------------

def rebuildable() -> list[ReadModel]:
    """Models with tables and handlers; the registry replica first (others may read it)."""
    models = [m for m in READ_MODELS if m.tables and m.handlers]
    return sorted(models, key=lambda m: m.stream != "registry")


def choose(names: Sequence[str] | None) -> list[ReadModel]:
    models = rebuildable()
    if not names:
        return models
    known = {m.name for m in models}
    unknown = [n for n in names if n not in known]
    if unknown:
        raise ValueError(f"no such read model: {', '.join(unknown)} "
                         f"(one of: {', '.join(sorted(known))})")
    return [m for m in models if m.name in names]


# -- where the rebuild writes -----------------------------------------------------------------

class Target:
    """The live database, with a rebuild schema beside it. `live` names the live tables;
    `rebuild` is the same pool with every unqualified table translated to the rebuild schema."""

    def __init__(self, settings: Settings):
        url = settings.database_url("reporting")
        self.sqlite = is_sqlite(url)
        if self.sqlite:
            database = make_url(async_url(url)).database
            if not database or database == ":memory:":
                raise ValueError("rebuilding needs a database file, not an in-memory SQLite")
            self.schema = "rebuild"
            self.file: Path | None = Path(database).with_suffix(".rebuild.db")
            self._remove_file()
            self.live = make_engine(url)
            rebuild_file = str(self.file)

            @event.listens_for(self.live.sync_engine, "connect")
            def _attach(dbapi_conn, _record):  # before any BEGIN: SQLite refuses it inside one
                cur = dbapi_conn.cursor()
                cur.execute("ATTACH DATABASE ? AS rebuild", (rebuild_file,))
                # A throwaway file: no fsync; an in-memory journal still allows rollback.
                cur.execute("PRAGMA rebuild.synchronous=OFF")
                cur.execute("PRAGMA rebuild.journal_mode=MEMORY")
                cur.close()
        else:
            self.schema = f"{settings.db_schema or 'public'}_rebuild"
            self.file = None
            self.live = make_engine(url, settings.db_schema, settings.db_pool_size,
                                    settings.db_max_overflow)
        self.translate = {None: self.schema}
        self.rebuild = self.live.execution_options(schema_translate_map=self.translate)
        self._copies: dict[str, Table] = {}
        self._copy_metadata = MetaData()

    def _remove_file(self) -> None:
        assert self.file is not None
        for suffix in ("", "-journal", "-wal", "-shm"):
            Path(f"{self.file}{suffix}").unlink(missing_ok=True)

    def rebuilt(self, table: Table) -> Table:
        """`table` in the rebuild schema, for statements that name live and rebuilt at once."""
        if table.name not in self._copies:
            self._copies[table.name] = table.to_metadata(self._copy_metadata, schema=self.schema)
        return self._copies[table.name]

    async def create(self) -> None:
        """A fresh rebuild schema with every reporting table (a handler may read another
        model's table), positions and parked included."""
        if not self.sqlite:
            async with self.live.begin() as conn:
                await conn.execute(text(f'DROP SCHEMA IF EXISTS "{self.schema}" CASCADE'))
                await conn.execute(text(f'CREATE SCHEMA "{self.schema}"'))
        async with self.rebuild.begin() as conn:
            await conn.run_sync(lambda c: store.metadata.create_all(c, checkfirst=False))

    async def copy_live(self, tables: Iterable[Table]) -> None:
        """Copy live tables into the rebuild schema (the registry replica, when it is not
        rebuilt itself but handlers may read it)."""
        async with self.live.begin() as conn:
            for table in tables:
                await conn.execute(_copy(self.rebuilt(table), table))

    async def close(self) -> None:
        try:
            if not self.sqlite:
                async with self.live.begin() as conn:
                    await conn.execute(text(f'DROP SCHEMA IF EXISTS "{self.schema}" CASCADE'))
        finally:
            await self.live.dispose()
            if self.sqlite:
                self._remove_file()


def _copy(to: Table, source: Table, *where):
    """INSERT INTO to (cols...) SELECT cols... FROM source, columns named both sides."""
    names = [c.name for c in to.columns]
    return insert(to).from_select(names, select(*(source.c[n] for n in names)).where(*where))


# -- one model --------------------------------------------------------------------------------

class _Rebuilder:
    def __init__(self, settings: Settings, js: JetStreamContext, target: Target,
                 progress: Progress | None, settle: float):
        self.settings = settings
        self.js = js
        self.target = target
        self.names = Names(settings.namespace)
        self.progress = progress or (lambda _name, _done, _total: None)
        self.settle = settle

    def _stream(self, model: ReadModel) -> tuple[str, str]:
        if model.stream == "events":
            return self.names.events_stream, self.names.events()
        return self.names.registry_stream, self.names.registry(">")

    async def run(self, model: ReadModel, check: bool) -> ModelResult:
        stream, subject = self._stream(model)
        apply = model.make_apply(self.settings)
        projection = Projection(name=model.name, js=self.js, stream=stream, subject=subject,
                                engine=self.target.rebuild, positions=store.positions,
                                parked=store.parked, apply=apply, decode=model.decode,
                                immediate=False,  # it writes the rebuild file, not the live
                                batch_size=max(self.settings.batch_size, 1000))
        started = time.perf_counter()
        task = asyncio.create_task(projection.run(), name=f"rebuild {model.name}")
        try:
            # To the stream's end as it was at the start, then once more to what came since,
            # so the gap left for the locked transaction is small.
            for _ in range(2):
                last = (await self.js.stream_info(stream)).state.last_seq
                await self._follow(model.name, projection, task, last)
            seconds = time.perf_counter() - started  # (stopping takes up to a fetch's second)
        finally:
            projection.stop()
            try:
                await asyncio.wait_for(task, 10)
            except TimeoutError:
                log.warning("rebuild of %s did not stop in time; cancelled", model.name)
        position = await self._position(self.target.rebuild, model.name) or 0
        stopped = time.perf_counter()
        await self._wait_live(model.name, position)
        waited = time.perf_counter() - stopped
        result = await self._swap(model, stream, apply, position, check)
        result.events, result.seconds = position, seconds
        log.info("rebuilt %s: %d messages in %.1fs (%.0f/s); waited %.1fs for the live "
                 "projection; %s at %d (%d in the lock) in %.1fs", model.name, position, seconds,
                 result.events_per_second, waited, "checked" if check else "swapped",
                 result.position, result.gap, time.perf_counter() - stopped - waited)
        return result

    async def _follow(self, name: str, projection: Projection, task: asyncio.Task,
                      last: int) -> None:
        while True:
            self.progress(name, min(projection.position, last), last)
            if projection.position >= last:
                return
            if task.done():  # it never ends by itself: it failed
                task.result()
                raise RuntimeError(f"the rebuild of {name} stopped at {projection.position}")
            await projection.wait_for(last, 0.25)

    async def _position(self, engine: AsyncEngine, name: str) -> int | None:
        p = store.positions
        async with engine.connect() as conn:
            return (await conn.execute(select(p.c.position).where(p.c.name == name))).scalar()

    async def _wait_live(self, name: str, position: int) -> None:
        """Until the live projection has reached the rebuild's position. A live projection
        that does not move for `settle` seconds is not running: the swap then sets its
        position to the rebuild's, which is where the rebuilt tables are."""
        seen, since = None, time.monotonic()
        while True:
            live = await self._position(self.target.live, name) or 0
            if live >= position:
                return
            if live != seen:
                seen, since = live, time.monotonic()
            elif time.monotonic() - since > self.settle:
                log.warning("live projection %s stays at %d, behind the rebuild at %d: is the "
                            "service running? Swapping at %d", name, live, position, position)
                return
            await asyncio.sleep(0.1)

    async def _swap(self, model: ReadModel, stream: str, apply, rebuilt_at: int,
                    check: bool) -> ModelResult:
        p, parked, target = store.positions, store.parked, self.target
        # This process's turn on the live file first (live projections may run beside it),
        # then SQLite's write lock up front (PostgreSQL: FOR UPDATE).
        async with write_turn(target.live), target.live.connect() as conn:
            trans = await conn.begin()
            try:
                await write_lock(conn)
                live_at = (await conn.execute(
                    select(p.c.position).where(p.c.name == model.name).with_for_update()
                )).scalar()
                position = max(live_at or 0, rebuilt_at)
                if position > rebuilt_at:
                    await self._apply_gap(conn, model, stream, apply, rebuilt_at, position)
                rows = {t.name: await _count(conn, target.rebuilt(t)) for t in model.tables}
                rp = target.rebuilt(parked)
                parked_count = await _count(conn, rp, rp.c.name == model.name)
                result = ModelResult(model.name, position, 0, 0.0, rows, parked_count,
                                     gap=position - rebuilt_at)
                if check:
                    result.checks = [await compare(conn, t, target.rebuilt(t))
                                     for t in model.tables]
                    await trans.rollback()
                    return result
                for table in model.tables:
                    await conn.execute(delete(table))
                    await conn.execute(_copy(table, target.rebuilt(table)))
                await conn.execute(delete(parked).where(parked.c.name == model.name))
                await conn.execute(_copy(parked, rp, rp.c.name == model.name))
                if live_at is None:
                    await conn.execute(insert(p).values(name=model.name, position=position))
                else:
                    await conn.execute(update(p).where(p.c.name == model.name)
                                       .values(position=position))
                await trans.commit()
                if conn.dialect.name == "postgresql":
                    # Every row is new to the planner: without fresh statistics it plans the
                    # reports as if the tables were nearly empty (nested loops over 100,000s).
                    for table in model.tables:
                        await conn.exec_driver_sql(f'ANALYZE "{table.name}"')
                    await conn.commit()  # statistics are transactional too
                return result
            except BaseException:
                if trans.is_active:
                    await trans.rollback()
                raise

    async def _apply_gap(self, conn: AsyncConnection, model: ReadModel, stream: str, apply,
                         after: int, upto: int) -> None:
        """Bring the rebuilt tables from `after` to `upto` on the locked connection: the
        messages fetched by seq, applied as the projection would, a failing one parked."""
        msgs: list[Msg] = []
        for seq in range(after + 1, upto + 1):
            try:
                msgs.append(_as_msg(self.js, stream, await self.js.get_msg(stream, seq)))
            except NotFoundError:  # removed from the stream: as the projection skips it
                continue
        rebuild_projection = Projection(
            name=model.name, js=self.js, stream=stream, subject="", engine=self.target.rebuild,
            positions=store.positions, parked=store.parked, apply=apply, decode=model.decode)
        await conn.execution_options(schema_translate_map=self.target.translate)
        try:
            await self._apply_or_park(conn, rebuild_projection, msgs)
            await conn.execute(update(store.positions)
                               .where(store.positions.c.name == model.name)
                               .values(position=upto))
        finally:
            await conn.execution_options(schema_translate_map=None)

    async def _apply_or_park(self, conn: AsyncConnection, projection: Projection,
                             msgs: list[Msg]) -> None:
        for start in range(0, len(msgs), 500):
            await self._try(conn, projection, msgs[start:start + 500])

    async def _try(self, conn: AsyncConnection, projection: Projection,
                   msgs: list[Msg]) -> None:
        """Apply in a savepoint; a failing batch one message at a time; a failing message is
        parked (in the rebuild's parked table, copied to live with the rest)."""
        if not msgs:
            return
        try:
            decoded = [projection.decode(m) for m in msgs]
            async with conn.begin_nested():
                await projection.apply(conn, [d for d in decoded if d is not None])
            return
        except Exception as exc:
            if is_transient(exc):
                raise
            if len(msgs) == 1:
                await projection._park(conn, msgs[0], exc)  # the projection's own row shape
                log.error("rebuild %s parked seq %d: %s", projection.name,
                          msgs[0].metadata.sequence.stream, reason_of(exc))
                return
        for msg in msgs:
            await self._try(conn, projection, [msg])


async def _count(conn: AsyncConnection, table: Table, *where) -> int:
    return (await conn.execute(select(func.count()).select_from(table).where(*where))).scalar_one()


# -- comparing --------------------------------------------------------------------------------

def normalise(value: Any) -> Any:
    """One spelling per value whichever back-end or path wrote it."""
    if isinstance(value, bool) or value is None or isinstance(value, int | str):
        return value
    if isinstance(value, float | Decimal):
        return round(float(value), 6)
    if isinstance(value, datetime):
        moment = value if value.tzinfo else value.replace(tzinfo=UTC)  # SQLite: UTC, no offset
        return moment.astimezone(UTC).isoformat()
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, dict | list):
        return json.dumps(value, sort_keys=True, ensure_ascii=False, default=str)
    return str(value)


async def _rows(conn: AsyncConnection, table: Table) -> list[tuple]:
    order = list(table.primary_key.columns) or list(table.columns)
    names = [c.name for c in table.columns]
    result = await conn.execute(select(*(table.c[n] for n in names))
                                .order_by(*(table.c[c.name] for c in order)))
    return [tuple(normalise(v) for v in row) for row in result]


async def compare(conn: AsyncConnection, live: Table, rebuilt: Table,
                  show: int = 5) -> TableCheck:
    """Every row of both, ordered by primary key and normalised; the first differing ones."""
    a, b = await _rows(conn, live), await _rows(conn, rebuilt)
    check = TableCheck(live.name, len(a), len(b))
    if a != b:
        in_a, in_b = set(a), set(b)
        check.only_live = [r for r in a if r not in in_b][:show]
        check.only_rebuilt = [r for r in b if r not in in_a][:show]
    return check


# -- entry point ------------------------------------------------------------------------------

async def rebuild(settings: Settings, models: Sequence[str] | None = None, check: bool = False,
                  progress: Progress | None = None, settle: float = 15.0) -> RebuildResult:
    """Rebuild `models` (names; default all) from the streams and swap them in, or with
    `check` only compare them with the live tables. Runs beside the live service."""
    chosen = choose(models)
    started = time.perf_counter()
    nc = await nats.connect(settings.nats_url, name="tongxin-reporting-rebuild",
                            inbox_prefix=inbox_prefix(settings.nats_url))
    target = Target(settings)
    try:
        await target.create()
        registry = [m for m in READ_MODELS if m.stream == "registry"]
        if not any(m.stream == "registry" for m in chosen):
            await target.copy_live([t for m in registry for t in m.tables])
        rebuilder = _Rebuilder(settings, nc.jetstream(), target, progress, settle)
        # The registry replica first (others' queries read it); then every other model at
        # once: each replays and swaps on its own, and their database work overlaps.
        results = [await rebuilder.run(m, check) for m in chosen if m.stream == "registry"]
        results += await asyncio.gather(*(rebuilder.run(m, check) for m in chosen
                                          if m.stream != "registry"))
    finally:
        try:
            await target.close()
        finally:
            await nc.close()
    return RebuildResult(results, time.perf_counter() - started, check)
