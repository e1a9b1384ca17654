"""The registry's transactional outbox across a NATS outage.

The registry runs as a process (as `tongxin up` runs it) against a nats-server of this test's own,
which the test stops and starts again on the same port with the same store. Changes made while
NATS is away must still be committed (HTTP 201) and must reach `TONGXIN_REGISTRY` afterwards:
each exactly once, in commit order, with `Nats-Msg-Id` equal to the envelope's `event_id`.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime

import httpx
import nats
import pytest
from sqlalchemy import select

from services.registry import store as registry_store
from shared.outbox import published_id, seqs_of
from tests.harness import System, embedded_nats
from tests.integration.conftest import db_for
from tongxin.natsserver import free_port
from tongxin.supervisor import Supervisor

pytestmark = pytest.mark.asyncio(loop_scope="session")


async def _eventually(check, timeout: float, what: str):
    """Poll `check()` until it returns something truthy; fail with `what` after `timeout`."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        result = await check()
        if result:
            return result
        assert loop.time() < deadline, f"{what} within {timeout}s (last: {result!r})"
        await asyncio.sleep(0.1)


async def _registry_last_seq(url: str, stream: str) -> int:
    nc = await nats.connect(url, allow_reconnect=False, connect_timeout=2)
    try:
        return (await nc.jetstream().stream_info(stream)).state.last_seq
    finally:
        await nc.close()


async def test_changes_made_while_nats_is_down_are_published_once_in_order(backend, tmp_path):
    server = embedded_nats(tmp_path)  # this test's own: the shared server is never stopped
    system = System(server.url, backend, tmp_path / "system")
    (system.workdir / system.tag).mkdir(parents=True)
    sup = Supervisor(env={}, ports={"registry": free_port()}, log_dir=system.workdir / "logs")
    db = db_for(backend, "registry", system.tag)
    engine = db.engine()
    stream = system.names.registry_stream
    try:
        await system.declare_streams()  # the operator's step: the registry only checks them
        # A short PubAck timeout, so the relay's publishes fail (and are retried) during the outage.
        sup.start("registry", {**system.env("registry"), "TONGXIN_PUBLISH_TIMEOUT": "1"})
        await asyncio.to_thread(sup.wait_healthy, ["registry"], 60)
        base_url = sup.children["registry"].url
        key = await _admin_key(engine)

        async with httpx.AsyncClient(base_url=base_url, timeout=30,
                                     headers={"Authorization": f"Bearer {key}"}) as http:
            async def register(name: str) -> dict:
                r = await http.post("/v1/organizations",
                                    json={"name": name, "kind": "social_organization"})
                assert r.status_code == 201, r.text
                return r.json()

            async def health() -> httpx.Response:
                return await http.get("/health")

            records = [await register(f"淄博市志愿者协会-{uuid.uuid4().hex[:6]}")]
            await _eventually(lambda: _published_count(engine), 15,
                              "the first change published while NATS is up")
            assert await _registry_last_seq(server.url, stream) == 1

            server.stop()
            down = await _eventually(
                lambda: _status_if(health, 503), 15, "/health answering 503 with NATS down")
            body = down.json()
            assert (body["status"], body["nats"], body["database"]) == ("degraded", False, True)

            # Writes do not need NATS: each commits with its outbox row.
            for i in range(3):
                records.append(await register(f"高青县义工队-{i}-{uuid.uuid4().hex[:6]}"))
            assert await _published_count(engine) == 1
            rows = await _outbox_rows(engine)
            assert [json.loads(r.payload)["data"]["id"] for r in rows] == [
                r["id"] for r in records]

            # Let the relay fail at least twice: each failed attempt leaves a copy of the message
            # in the client's reconnect buffer, sent when NATS is back. `Nats-Msg-Id` must make
            # those copies one message.
            log = system.workdir / "logs" / "registry.log"
            await _eventually(lambda: _log_count(log, "outbox relay could not publish", 2), 15,
                              "the relay reporting two failed attempts")
            assert await _published_count(engine) == 1

            server.start()
            await _eventually(lambda: _status_if(health, 200), 20,
                              "/health answering 200 after NATS came back")
            assert (await health()).json()["status"] == "ok"
            await _eventually(lambda: _all_published(engine, len(records)), 20,
                              "every outbox row published after NATS came back")

        rows = await _outbox_rows(engine)
        nc = await nats.connect(server.url)
        try:
            js = nc.jetstream()
            info = await js.stream_info(stream)
            assert info.state.messages == len(records), "each change published exactly once"
            assert info.state.last_seq == len(records)
            published = [await js.get_msg(stream, seq) for seq in range(1, len(records) + 1)]
        finally:
            await nc.close()
        envelopes = [json.loads(m.data) for m in published]
        # In commit order, each the envelope its outbox row holds.
        assert [e["data"]["id"] for e in envelopes] == [r["id"] for r in records]
        assert [e["type"] for e in envelopes] == ["organization.registered"] * len(records)
        assert [m.subject for m in published] == [
            system.names.registry("organization", "registered")] * len(records)
        for m, e, row in zip(published, envelopes, rows, strict=True):
            assert m.headers["Nats-Msg-Id"] == e["event_id"] == row.event_id
            assert row.seq == m.seq
    finally:
        sup.stop_all()
        server.stop()
        await engine.dispose()


async def _admin_key(engine) -> str:
    """A key the registry knows, put in its table alone: not through the outbox, whose every
    row this test counts (the registry checks keys in its own table)."""
    from services.registry.identities import api_keys
    from shared.auth import key_hash, new_key

    key_id, key = new_key()
    async with engine.begin() as conn:
        await conn.execute(api_keys.insert().values(
            id=key_id, name="outbox test", role="admin", key_hash=key_hash(key),
            created_at=datetime.now(UTC), created_by={"kind": "test"}))
    return key


async def _log_count(path, text: str, at_least: int) -> bool:
    return path.read_text(errors="replace").count(text) >= at_least


async def _status_if(health, status: int) -> httpx.Response | None:
    try:
        r = await health()
    except httpx.HTTPError:
        return None
    return r if r.status_code == status else None


@dataclass(frozen=True)
class _OutboxRow:
    id: int
    event_id: str
    payload: str
    published: bool  # at or below the relay's watermark
    seq: int | None  # its place in the stream, once published


async def _outbox_rows(engine) -> list[_OutboxRow]:
    t = registry_store.outbox
    async with engine.connect() as conn:
        rows = (await conn.execute(
            select(t.c.id, t.c.event_id, t.c.payload).order_by(t.c.id))).all()
        upto = await published_id(conn, t)
        seqs = await seqs_of(conn, t, [r.id for r in rows])
    return [_OutboxRow(r.id, r.event_id, r.payload, r.id <= upto, seqs.get(r.id))
            for r in rows]


async def _published_count(engine) -> int:
    return sum(1 for r in await _outbox_rows(engine) if r.published)


async def _all_published(engine, expected: int) -> bool:
    rows = await _outbox_rows(engine)
    return len(rows) == expected and all(r.published for r in rows)
