"""Database engines and Alembic migrations, the same way for every service.

SQLite by default (a file per service under the data directory); PostgreSQL when a service's URL
says so. A PostgreSQL schema may be named, so services or test runs can share one database.
"""

from __future__ import annotations

import asyncio
import logging
import time
import weakref
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import event, text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

log = logging.getLogger(__name__)


def async_url(url: str) -> str:
    """Accept plain `postgresql://` and `sqlite:///` URLs and pick the async driver."""
    u = make_url(url)
    if u.drivername in ("postgresql", "postgres", "postgresql+psycopg2"):
        u = u.set(drivername="postgresql+asyncpg")
    elif u.drivername == "sqlite":
        u = u.set(drivername="sqlite+aiosqlite")
    return u.render_as_string(hide_password=False)


def is_sqlite(url: str) -> bool:
    return make_url(url).get_backend_name() == "sqlite"


# Connections one process keeps open to PostgreSQL (POOL_SIZE), and may open beyond them at a
# peak (MAX_OVERFLOW): each process at most 10. PostgreSQL's default max_connections is 100,
# 3 of them kept for superusers: 6 instances (two of each service) take at most 60, leaving
# room for migrations, `tongxin reporting rebuild` and psql; up to 9 instances fit. More
# instances: smaller pools (TONGXIN_DB_POOL_SIZE, TONGXIN_DB_MAX_OVERFLOW), a larger
# max_connections, or PgBouncer in transaction mode in front (README "Deploy at scale").
POOL_SIZE = 5
MAX_OVERFLOW = 5


def make_engine(url: str, schema: str | None = None, pool_size: int = POOL_SIZE,
                max_overflow: int = MAX_OVERFLOW) -> AsyncEngine:
    """An engine for `url`; `pool_size` and `max_overflow` bound its PostgreSQL connections
    (SQLite's pool is its own: one file, no server to exhaust)."""
    url = async_url(url)
    if is_sqlite(url):
        database = make_url(url).database
        if database and database != ":memory:":
            Path(database).parent.mkdir(parents=True, exist_ok=True)
        # hide_parameters: a logged database error must not print a volunteer's phone number.
        # A connection per projection waiting its turn to write, and room left for readers.
        engine = create_async_engine(url, connect_args={"timeout": 30}, hide_parameters=True,
                                     pool_size=10, max_overflow=20)

        @event.listens_for(engine.sync_engine, "connect")
        def _pragmas(dbapi_conn, _record):  # WAL: readers never block the projection's writer
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.close()

        return engine
    connect_args = {"server_settings": {"search_path": schema}} if schema else {}
    return create_async_engine(url, pool_size=pool_size, max_overflow=max_overflow,
                               pool_pre_ping=True,
                               connect_args=connect_args, hide_parameters=True)


async def write_lock(conn: AsyncConnection) -> None:
    """Take SQLite's write lock now, at the start of a transaction that reads before it
    writes: the driver would begin only at the first write, so a decision made on what was
    read could rest on data another writer has changed since. (PostgreSQL locks the rows
    read with FOR UPDATE instead.) Prefer `write_transaction`, which also queues this
    process's writers to the file in arrival order."""
    if conn.dialect.name == "sqlite":
        await conn.exec_driver_sql("BEGIN IMMEDIATE")


# -- one writer per database file per process ------------------------------------------------
#
# SQLite has one writer per file, and its busy handler polls (sleeping and retrying): it is no
# queue, so a dozen writers in one process (a read model each, the notifier, the sweep, the
# relay) starve one another for the whole busy timeout and then fail with "database is
# locked". So every write transaction of a process queues for its file on one FIFO lock,
# *before* it takes a connection from the pool, and takes SQLite's write lock up front
# (`BEGIN IMMEDIATE`) once its turn comes: it never waits for the file mid-transaction.
# Whatever can be done before writing (decoding a batch) is done before queueing.
# PostgreSQL has row locks and MVCC: its writers are not queued.


@dataclass
class WriteWaits:
    """How long this process's writers to one file waited for their turn, and held it."""

    count: int = 0
    total_wait: float = 0.0
    max_wait: float = 0.0
    max_held: float = 0.0
    waiting: int = 0


_locks: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[str, asyncio.Lock]] = (
    weakref.WeakKeyDictionary())
WAITS: dict[str, WriteWaits] = {}  # database file -> its writers' waits, this process


def _file_of(engine: AsyncEngine) -> str | None:
    """The SQLite file an engine writes to (None: not SQLite; ':memory:' is its own file)."""
    if engine.dialect.name != "sqlite":
        return None
    database = engine.url.database
    if database in (None, "", ":memory:"):
        return f":memory:{id(engine)}"
    return str(Path(database).resolve())


def _lock_for(file: str) -> asyncio.Lock:
    per_loop = _locks.setdefault(asyncio.get_running_loop(), {})
    lock = per_loop.get(file)
    if lock is None:
        lock = per_loop[file] = asyncio.Lock()  # FIFO: waiters are woken in arrival order
    return lock


@asynccontextmanager
async def write_turn(engine: AsyncEngine) -> AsyncIterator[None]:
    """This process's turn to write to the engine's SQLite file, in arrival order (at once on
    PostgreSQL). `write_transaction` takes it; take it alone only around a transaction of
    your own that takes SQLite's write lock up front (`write_lock`)."""
    file = _file_of(engine)
    if file is None:
        yield
        return
    waits = WAITS.setdefault(file, WriteWaits())
    asked = time.monotonic()
    waits.waiting += 1
    try:
        lock = _lock_for(file)
        await lock.acquire()
    finally:
        waits.waiting -= 1
    try:
        got = time.monotonic()
        waited = got - asked
        waits.count += 1
        waits.total_wait += waited
        waits.max_wait = max(waits.max_wait, waited)
        if waited > 5:
            log.warning("a writer to %s waited %.1fs for its turn (%d waiting)",
                        Path(file).name, waited, waits.waiting)
        yield
        held = time.monotonic() - got
        waits.max_held = max(waits.max_held, held)
        if held > 5:
            log.warning("a write transaction on %s held the write lock for %.1fs",
                        Path(file).name, held)
    finally:
        lock.release()


@asynccontextmanager
async def write_transaction(engine: AsyncEngine, *,
                            immediate: bool = True) -> AsyncIterator[AsyncConnection]:
    """A transaction that writes, committed on leaving (rolled back on an error). On SQLite:
    this process's writers to the file take turns in arrival order, and each holds the file's
    write lock from its first statement (so keep the work inside short: decode before).
    `immediate=False`: the turn, but SQLite's locks taken as written (a rebuild writing only
    to its attached file must not lock the live one)."""
    if _file_of(engine) is None:
        async with engine.begin() as conn:
            yield conn
        return
    async with write_turn(engine), engine.connect() as conn:
        await conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")
        try:
            yield conn
        except BaseException:
            await conn.rollback()
            raise
        await conn.commit()


def alembic_config(service: str, url: str, schema: str | None) -> Config:
    here = Path(__file__).resolve().parent.parent / "services" / service / "migrations"
    cfg = Config()
    cfg.set_main_option("script_location", str(here))
    cfg.set_main_option("sqlalchemy.url", async_url(url).replace("%", "%%"))
    cfg.attributes["schema"] = schema
    return cfg


async def migrate(service: str, url: str, schema: str | None = None) -> None:
    """Bring a service's database to the newest migration (idempotent)."""
    if schema and not is_sqlite(url):
        engine = make_engine(url)
        async with engine.begin() as conn:
            await conn.execute(text(f'CREATE SCHEMA IF NOT EXISTS "{schema}"'))
        await engine.dispose()
    cfg = alembic_config(service, url, schema)
    # Alembic's env runs its own event loop, so it gets a thread of its own.
    # "heads": a service's migrations may branch (reporting: one line per read model).
    await asyncio.to_thread(command.upgrade, cfg, "heads")
