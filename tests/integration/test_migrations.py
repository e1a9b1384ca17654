"""Each service's Alembic migrations build exactly the tables its code declares, on both
back-ends, and running them again changes nothing."""

from __future__ import annotations

import importlib

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from shared.db import migrate
from tests.integration.conftest import db_for, drop_schema

pytestmark = pytest.mark.asyncio(loop_scope="session")


@pytest.mark.parametrize("service", ["registry", "events", "reporting"])
async def test_migrations_match_the_code_and_are_idempotent(backend, tag, service):
    db = db_for(backend, service, tag)
    (backend.root / tag).mkdir(parents=True, exist_ok=True)
    try:
        await migrate(service, db.url, db.schema)
        await migrate(service, db.url, db.schema)  # a second start migrates nothing
        metadata = importlib.import_module(f"services.{service}.store").metadata
        engine = db.engine()

        def diff(sync_conn):
            context = MigrationContext.configure(sync_conn, opts={"compare_type": True})
            return compare_metadata(context, metadata)

        async with engine.connect() as conn:
            differences = await conn.run_sync(diff)
        await engine.dispose()
        assert differences == [], f"{service}: migrations and tables differ: {differences}"
    finally:
        await drop_schema(db)
