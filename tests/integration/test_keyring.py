"""The keyring kept by a real registry-replica projection from a real stream, on each back-end:
a key issued is known once the projection has caught up, a revocation is refused from the
batch that brings it, and a restarted process (a new keyring) knows every key from the replica
table and the rest from the stream."""

from __future__ import annotations

import asyncio

import pytest
from fastapi import HTTPException
from sqlalchemy import MetaData

from shared.auth import Gate, key_hash, new_key
from shared.bus import MSG_ID
from shared.envelope import new_envelope
from shared.keyring import Keyring
from shared.projection import Projection, ProjectionGroup, parked_table, positions_table
from shared.replica import apply_registry_events, registry_entities_table
from tests.integration.conftest import create_schema, db_for, drop_schema
from tests.unit.test_auth import request

pytestmark = pytest.mark.asyncio(loop_scope="session")


@pytest.fixture
async def replica_db(backend, tag):
    db = db_for(backend, "keyring", tag)
    (backend.root / tag).mkdir(parents=True, exist_ok=True)
    await create_schema(db)
    metadata = MetaData()
    positions = positions_table(metadata)
    parked = parked_table(metadata)
    table = registry_entities_table(metadata)
    engine = db.engine()
    async with engine.begin() as conn:
        await conn.run_sync(metadata.create_all)
    yield engine, positions, parked, table
    await engine.dispose()
    if db.schema:
        await drop_schema(db)


async def publish_key(js, names, verb: str, key_id: str, key: str, at: str) -> None:
    record = {"id": key_id, "name": "小程序", "role": "unit", "organization_id": "o1",
              "key_hash": key_hash(key), "active": verb != "revoked",
              "revoked_at": at if verb == "revoked" else None, "updated_at": at}
    env = new_envelope(f"key.{verb}", record, "registry")
    await js.publish(names.registry("key", verb), env.model_dump_json().encode(),
                     headers={MSG_ID: str(env.event_id)}, timeout=5)


def replica(js, names, replica_db, keyring: Keyring) -> Projection:
    engine, positions, parked, table = replica_db
    return Projection(name="keyring-replica", js=js, stream=names.registry_stream,
                      subject=names.registry(">"), engine=engine, positions=positions,
                      parked=parked,
                      apply=lambda conn, msgs: apply_registry_events(conn, table, msgs),
                      observe=keyring.observe,
                      started=lambda: keyring.load_replica(engine, table))


async def accepted(keyring: Keyring, key: str) -> bool:
    try:
        await Gate(keyring.lookup, "secret", session_hours=1).identify(
            request({"Authorization": f"Bearer {key}"}))
    except HTTPException:
        return False
    return True


async def run_until_caught_up(p: Projection, grouped: bool) -> asyncio.Task:
    """The projection alone (the events service's replica), or in a group (reporting's)."""
    task = asyncio.create_task(ProjectionGroup("read-models-registry", [p]).run() if grouped
                               else p.run())
    assert await asyncio.wait_for(p.caught_up(20), 25)
    return task


async def stop(p: Projection, task: asyncio.Task) -> None:
    p.stop()
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)


@pytest.mark.parametrize("grouped", [False, True], ids=["alone", "grouped"])
async def test_the_keyring_follows_the_replica_and_a_restart_loads_it(nc, names, replica_db,
                                                                      grouped):
    js = nc.jetstream()
    a_id, a = new_key()
    b_id, b = new_key()
    await publish_key(js, names, "issued", a_id, a, "2026-01-01T00:00:00")

    keyring = Keyring()
    p = replica(js, names, replica_db, keyring)
    task = await run_until_caught_up(p, grouped)
    try:
        assert await accepted(keyring, a)
        await publish_key(js, names, "revoked", a_id, a, "2026-02-01T00:00:00")
        assert await asyncio.wait_for(p.caught_up(20), 25)
        assert not await accepted(keyring, a)
    finally:
        await stop(p, task)

    # A restart: the stored position is past `a`; `b` arrives on the stream meanwhile.
    await publish_key(js, names, "issued", b_id, b, "2026-03-01T00:00:00")
    again = Keyring()
    p = replica(js, names, replica_db, again)
    task = await run_until_caught_up(p, grouped)
    try:
        assert not await accepted(again, a)  # from the replica table: revoked
        assert await accepted(again, b)      # from the stream
        assert len(again) == 2
    finally:
        await stop(p, task)
