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
        importlib.import_module(f"services.{service}.app")  # every table declared
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


async def test_events_0002_keeps_what_0001_accepted(backend, tag):
    """An events database from before the event-type table upgrades in place: accepted events
    become the outbox (published ones stay published) and logged activities get their state."""
    import asyncio
    import json
    import uuid
    from datetime import UTC, datetime

    from alembic import command
    from sqlalchemy import select, text

    from services.events import store
    from shared.db import alembic_config
    from shared.outbox import published_id, seqs_of

    db = db_for(backend, "events", tag)
    (backend.root / tag).mkdir(parents=True, exist_ok=True)
    try:
        await migrate("events", db.url, db.schema)  # makes the schema; then back to 0001
        await asyncio.to_thread(command.downgrade, alembic_config("events", db.url, db.schema),
                                "0001")
        activity_id, event_id = str(uuid.uuid4()), str(uuid.uuid4())
        envelope = {"event_id": event_id, "type": "activity.logged", "data": {
            "activity_id": activity_id, "organization_id": "o1", "base_id": "b1",
            "started_at": "2013-10-13T08:30:00+08:00", "ended_at": "2013-10-13T16:00:00+08:00"}}
        engine = db.engine()
        async with engine.begin() as conn:
            await conn.execute(text(
                "INSERT INTO accepted_events (event_id, type, source, occurred_at, received_at, "
                "via, envelope, trace_headers, seq, logged_activity_id) VALUES (:e, "
                "'activity.logged', 'zibo', :t, :t, 'http', :env, '{}', 7, :a)"),
                {"e": event_id, "t": datetime(2013, 10, 13, tzinfo=UTC),
                 "env": json.dumps(envelope), "a": activity_id})
        await migrate("events", db.url, db.schema)
        async with engine.connect() as conn:
            row = (await conn.execute(select(store.accepted_events))).one()
            act = (await conn.execute(select(store.activities))).one()
            seq = (await seqs_of(conn, store.accepted_events, [row.id])).get(row.id)
            published = row.id <= await published_id(conn, store.accepted_events)
        await engine.dispose()
        assert (row.subject, seq, published, row.about) == (
            "tongxin.events.activity.logged", 7, True, f"activity_id={activity_id}")
        assert (act.activity_id, act.state, act.logged_event_id, act.overdue) == (
            activity_id, "logged", event_id, False)
    finally:
        await drop_schema(db)
