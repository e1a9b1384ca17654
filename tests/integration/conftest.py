"""Fixtures for integration tests: one part of a service against a real NATS server and a real
database. Each test gets its own namespace (stream and subject names) and its own database
(a SQLite file, or a PostgreSQL schema in the run's throwaway database)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

import nats
import pytest
import pytest_asyncio
from nats.js.errors import NotFoundError
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from shared.db import is_sqlite, make_engine
from shared.streams import declare, stream_names
from shared.subjects import Names
from tests.harness import RUN_ID, Backend


def new_tag() -> str:
    return f"t{RUN_ID}{uuid.uuid4().hex[:6]}"


@pytest.fixture
def tag() -> str:
    """A namespace no other test or run uses."""
    return new_tag()


@pytest_asyncio.fixture(loop_scope="session")
async def nc(nats_url):
    conn = await nats.connect(nats_url, name="tongxin-integration-test")
    yield conn
    await conn.close()


async def delete_streams(js, names: Names) -> None:
    # The buckets are streams too (KV_<bucket>, OBJ_<bucket>).
    for name in stream_names(names):
        try:
            await js.delete_stream(name)
        except NotFoundError:
            pass


@pytest_asyncio.fixture(loop_scope="session")
async def names(nc, tag) -> Names:
    """This test's streams, declared as the operator declares them; deleted afterwards."""
    names = Names(tag)
    await declare(nc.jetstream(), names)
    yield names
    await delete_streams(nc.jetstream(), names)


@dataclass
class Db:
    url: str
    schema: str | None

    def engine(self) -> AsyncEngine:
        return make_engine(self.url, self.schema)


def db_for(backend: Backend, service: str, tag: str) -> Db:
    return Db(backend.url(service, tag), backend.schema(service, tag))


async def _schema_statement(db: Db, statement: str) -> None:
    """CREATE/DROP SCHEMA for this test's PostgreSQL schema (SQLite files need none)."""
    if db.schema and not is_sqlite(db.url):
        engine = make_engine(db.url)
        async with engine.begin() as conn:
            await conn.execute(text(statement))
        await engine.dispose()


async def drop_schema(db: Db) -> None:
    await _schema_statement(db, f'DROP SCHEMA IF EXISTS "{db.schema}" CASCADE')


async def create_schema(db: Db) -> None:
    await _schema_statement(db, f'CREATE SCHEMA IF NOT EXISTS "{db.schema}"')


@pytest_asyncio.fixture(loop_scope="session")
async def engine(backend, tag) -> AsyncEngine:
    """A fresh reporting database with every read model's tables (a file, or a schema)."""
    from services.reporting import models  # noqa: F401  (every table on the metadata)
    from services.reporting.store import metadata

    db = db_for(backend, "reporting", tag)
    (backend.root / tag).mkdir(parents=True, exist_ok=True)
    await create_schema(db)
    engine = db.engine()
    async with engine.begin() as conn:
        await conn.run_sync(metadata.create_all)
    yield engine
    await engine.dispose()
    await drop_schema(db)
