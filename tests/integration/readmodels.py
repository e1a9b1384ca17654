"""Read models against a real stream and a real database: publish accepted events (and registry
records) on this test's own streams, run the reporting service's projections over them until
caught up, then query the tables.

    async with Reporting(nc, names, engine) as rep:
        await rep.registry("organization", id="o1", name="淄博市委统战部")
        await rep.event("activity.logged", activity("o1", "b1"))
        await rep.caught_up()
        async with rep.engine.connect() as conn: ...
"""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime

from fastapi import Depends, FastAPI, Request
from sqlalchemy.ext.asyncio import AsyncEngine

from services.reporting import store
from services.reporting.models import READ_MODELS
from services.reporting.readmodel import ReadModel
from shared.auth import Principal
from shared.bus import MSG_ID
from shared.envelope import new_envelope
from shared.projection import Projection
from shared.settings import Settings
from shared.subjects import Names


class Reporting:
    def __init__(self, nc, names: Names, engine: AsyncEngine,
                 models: list[ReadModel] | None = None, settings: Settings | None = None):
        self.js = nc.jetstream()
        self.names = names
        self.engine = engine
        self.settings = settings or Settings()
        self.models = models or READ_MODELS
        self.projections = {m.name: self._projection(m) for m in self.models}
        self._tasks: list[asyncio.Task] = []
        self.last_seq = {"events": 0, "registry": 0}

    def _projection(self, model: ReadModel) -> Projection:
        stream, subject = ((self.names.events_stream, self.names.events())
                           if model.stream == "events"
                           else (self.names.registry_stream, self.names.registry(">")))
        return Projection(name=model.name, js=self.js, stream=stream, subject=subject,
                          engine=self.engine, positions=store.positions, parked=store.parked,
                          **model.steps(self.settings), batch_size=500)

    async def __aenter__(self) -> Reporting:
        async with self.engine.begin() as conn:
            await conn.run_sync(store.metadata.create_all)
        self._tasks = [asyncio.create_task(p.run()) for p in self.projections.values()]
        return self

    async def __aexit__(self, *exc) -> None:
        for p in self.projections.values():
            p.stop()
        for t in self._tasks:
            t.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def event(self, event_type: str, data: dict, occurred_at: datetime | None = None,
                    event_id: str | None = None) -> int:
        """Publish an *accepted* event (as the events service would) and return its seq."""
        env = new_envelope(event_type, data, "test", occurred_at or datetime.now(UTC),
                           uuid.UUID(event_id) if event_id else None)
        ack = await self.js.publish(self.names.events(event_type), env.model_dump_json().encode(),
                                    headers={MSG_ID: str(env.event_id)}, timeout=5)
        self.last_seq["events"] = ack.seq
        return ack.seq

    async def registry(self, entity: str, verb: str = "registered", /, **record) -> dict:
        record.setdefault("id", str(uuid.uuid4()))
        record.setdefault("updated_at", datetime.now(UTC).isoformat())
        env = new_envelope(f"{entity}.{verb}", record, "registry")
        ack = await self.js.publish(self.names.registry(entity, verb),
                                    env.model_dump_json().encode(),
                                    headers={MSG_ID: str(env.event_id)}, timeout=5)
        self.last_seq["registry"] = ack.seq
        return record

    async def caught_up(self, timeout: float = 30) -> None:
        """Every projection has applied everything published so far."""
        for model in self.models:
            seq = self.last_seq[model.stream]
            assert await self.projections[model.name].wait_for(seq, timeout), (
                f"{model.name} did not reach seq {seq}")


ADMIN = Principal(kind="key", id="test-admin", name="test admin", role="admin",
                  organization_id=None)


def as_admin(request: Request) -> None:
    """What `authenticate` does in a service, for a router mounted alone in a test app: the
    request is the admin's (scoping and refusals by key are tested end to end)."""
    request.state.principal = ADMIN


def admin_app() -> FastAPI:
    return FastAPI(dependencies=[Depends(as_admin)])


@dataclass
class Places:
    """A random programme's registry for the rollup-equals-raw properties: a city and a
    district in it, units in the hierarchy drawn (`parents`: each unit's parent index or None),
    and three bases: one in the district, one in the city alone, one with no region."""

    regions: dict[str, str]
    units: list[str]
    bases: list[str]


async def registry_places(rep: Reporting, parents: list[int | None], city: str, district: str,
                 bases: tuple[tuple[str, str], tuple[str, str], tuple[str, str]]) -> Places:
    tag = uuid.uuid4().hex[:6]
    c = await rep.registry("region", id=f"c-{tag}", name=city, level="city")
    d = await rep.registry("region", id=f"d-{tag}", name=district, level="district",
                           parent_code=c["id"])
    units: list[str] = []
    for i, parent in enumerate(parents):
        record = await rep.registry("organization", name=f"第{i}单位", kind="democratic_party",
                                    parent_id=units[parent] if parent is not None else None)
        units.append(record["id"])
    (in_district, kind_d), (in_city, kind_c), (nowhere, kind_n) = bases
    found = [(await rep.registry("base", name=in_district, kind=kind_d,
                                 region_code=d["id"]))["id"],
             (await rep.registry("base", name=in_city, kind=kind_c, region_code=c["id"]))["id"],
             (await rep.registry("base", name=nowhere, kind=kind_n))["id"]]
    return Places({"city": c["id"], "district": d["id"]}, units, found)
