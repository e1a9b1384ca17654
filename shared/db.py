"""Database engines and Alembic migrations, the same way for every service.

SQLite by default (a file per service under the data directory); PostgreSQL when a service's URL
says so. A PostgreSQL schema may be named, so services or test runs can share one database.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import event, text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine


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


def make_engine(url: str, schema: str | None = None) -> AsyncEngine:
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
    return create_async_engine(url, pool_size=10, max_overflow=10, pool_pre_ping=True,
                               connect_args=connect_args, hide_parameters=True)


async def write_lock(conn: AsyncConnection) -> None:
    """Take SQLite's write lock now, at the start of a transaction that reads before it
    writes: the driver would begin only at the first write, so a decision made on what was
    read could rest on data another writer has changed since. (PostgreSQL locks the rows
    read with FOR UPDATE instead.)"""
    if conn.dialect.name == "sqlite":
        await conn.exec_driver_sql("BEGIN IMMEDIATE")


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
