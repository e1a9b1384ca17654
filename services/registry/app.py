"""Registry service wiring: who and where. Publishes every change through the outbox."""

from __future__ import annotations

from contextlib import asynccontextmanager

from fastapi import FastAPI

from services.registry import http, identities, identity_routes, store
from services.registry.domain import ENTITIES
from services.registry.service import Registry
from shared.outbox import Relay
from shared.runtime import Runtime
from shared.settings import Settings, get_settings


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()
    rt = Runtime("registry", settings)

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        await rt.start()
        relay = Relay(rt.engine, rt.js, store.outbox, timeout=settings.publish_timeout)
        app.state.registry = Registry(rt.engine, rt.names, published=relay.wait_published)
        rt.spawn("outbox-relay", relay.run)
        yield
        relay.stop()
        await rt.stop()

    async def lookup(kind: str, id_: str) -> dict | None:
        async with rt.engine.connect() as conn:
            return await identities.lookup(conn, kind, id_)

    router = http.router()
    router.include_router(identity_routes.router)
    app = rt.app(title="Tongxin registry", lifespan=lifespan, router=router,
                 description="Who and where: regions, organisations, bases, teams, volunteers, "
                             "pairings, campaigns, taxonomy; keys, accounts and the audit log. "
                             "Every change is published on `tongxin.registry.*`.",
                 models=tuple(e.create for e in ENTITIES.values()))
    rt.guard(lookup)  # its own tables: a key is known the moment it is issued
    return app
