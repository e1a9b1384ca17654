"""Reporting's `min_seq` read-your-writes wait, against real streams and a real database (each
back-end): labels and region roll-ups come from the registry projection, so a request waits for
it too, not only for the activities projection."""

from __future__ import annotations

import asyncio
import uuid
from types import SimpleNamespace

import pytest
from fastapi import HTTPException

from services.reporting import reports, store
from services.reporting.models import activities, labels, memberships
from services.reporting.scope import Scope
from shared.bus import MSG_ID
from shared.envelope import new_envelope
from shared.projection import Projection
from shared.settings import Settings
from tests.factories import activity, envelope, raw

pytestmark = pytest.mark.asyncio(loop_scope="session")


async def test_min_seq_waits_for_the_registry_projection_too(nc, names, engine):
    js = nc.jetstream()
    base_id = str(uuid.uuid4())
    base = new_envelope("base.registered", {"id": base_id, "name": "高青县孟家村",
                                            "kind": "village", "updated_at": "2026-01-01"},
                        "registry")
    await js.publish(names.registry("base", "registered"), base.model_dump_json().encode(),
                     headers={MSG_ID: str(base.event_id)}, timeout=5)
    env = envelope(activity("org-1", base_id, served=150))
    seq = (await js.publish(names.events("activity.logged"), raw(env),
                            headers={MSG_ID: env["event_id"]}, timeout=5)).seq

    gate = asyncio.Event()  # the registry projection lags until it is set

    async def lagging_registry(msgs) -> None:  # before its turn to write, as waits are
        await gate.wait()

    common = {"js": js, "engine": engine, "positions": store.positions, "parked": store.parked}
    cube = Projection(name=activities.NAME, stream=names.events_stream,
                      subject=names.events(), **activities.MODEL.steps(Settings()), **common)
    registry = Projection(name=labels.MODEL.name, stream=names.registry_stream,
                          subject=names.registry(">"), before=lagging_registry,
                          **labels.MODEL.steps(Settings()), **common)
    request = SimpleNamespace(app=SimpleNamespace(state=SimpleNamespace(
        projections={activities.NAME: cube}, registry=registry,
        settings=SimpleNamespace(min_seq_wait=1.0))))
    tasks = [asyncio.create_task(p.run()) for p in (cube, registry)]
    try:
        assert await cube.wait_for(seq, 15)
        with pytest.raises(HTTPException) as lagging:
            await reports.wait_for(request, [activities.NAME], seq)
        assert lagging.value.status_code == 503
        assert lagging.value.headers == {"Retry-After": "1"}

        gate.set()
        await reports.wait_for(request, [activities.NAME], seq)
        async with engine.connect() as conn:
            rows, _ = await activities.summary(conn, "base", Scope())
        assert [(r["label"], r["served"]) for r in rows] == [("高青县孟家村", 150)]
    finally:
        gate.set()
        for p in (cube, registry):
            p.stop()
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


async def test_min_seq_waits_for_every_model_of_the_registry_stream(nc, names, engine):
    """Labels caught up is not enough: memberships (who belongs where since when) reads the same
    stream, and a report with `min_seq` waits for it as well."""
    js = nc.jetstream()
    org = new_envelope("organization.registered", {"id": f"org-{uuid.uuid4().hex[:8]}",
                                                   "name": "淄博市高青县委组织部",
                                                   "updated_at": "2026-01-01"}, "registry")
    await js.publish(names.registry("organization", "registered"),
                     org.model_dump_json().encode(), headers={MSG_ID: str(org.event_id)},
                     timeout=5)
    gate = asyncio.Event()  # memberships lags until it is set

    async def lagging(msgs) -> None:
        await gate.wait()

    common = {"js": js, "engine": engine, "positions": store.positions, "parked": store.parked,
              "stream": names.registry_stream, "subject": names.registry(">")}
    registry = Projection(name=labels.MODEL.name, **labels.MODEL.steps(Settings()), **common)
    moved = Projection(name=memberships.NAME, before=lagging,
                       **memberships.MODEL.steps(Settings()), **common)
    request = SimpleNamespace(app=SimpleNamespace(state=SimpleNamespace(
        projections={labels.MODEL.name: registry, memberships.NAME: moved}, registry=registry,
        settings=SimpleNamespace(min_seq_wait=1.0))))
    tasks = [asyncio.create_task(p.run()) for p in (registry, moved)]
    try:
        assert await registry.caught_up(15)
        with pytest.raises(HTTPException) as lagging_answer:
            await reports.wait_for(request, [], 1)
        assert lagging_answer.value.status_code == 503
        gate.set()
        await reports.wait_for(request, [], 1)
        assert await moved.caught_up(0)
    finally:
        gate.set()
        for p in (registry, moved):
            p.stop()
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
