"""Registry service wiring: who and where. Publishes every change through the outbox."""

from __future__ import annotations

from contextlib import asynccontextmanager

from fastapi import FastAPI

from services.registry import http, identities, identity_routes, store
from services.registry.domain import ENTITIES
from services.registry.service import Registry
from shared.keyring import Keyring
from shared.outbox import Relay
from shared.runtime import Runtime
from shared.settings import Settings, get_settings


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()
    rt = Runtime("registry", settings)

    async def lookup(kind: str, id_: str) -> dict | None:
        async with rt.engine.connect() as conn:
            return await identities.lookup(conn, kind, id_)

    # Keys and accounts in memory: every one at start, then each change the relay reads from
    # the outbox (also those `tongxin keys` commits from outside); one not seen yet (issued a
    # moment ago) is looked up in the tables.
    keyring = Keyring(fallback=lookup)

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        await rt.start()
        async def load_identities() -> None:
            async with rt.engine.connect() as conn:
                async for kind, record in identities.every_identity(conn):
                    keyring.keep(kind, record)

        await rt.until_done("reading keys and accounts", load_identities)
        relay = Relay(rt.engine, rt.js, store.outbox, timeout=settings.publish_timeout,
                      observe=keyring.observe_outbox)
        app.state.registry = Registry(rt.engine, rt.names, published=relay.wait_published)
        rt.spawn("outbox-relay", relay.run)
        yield
        relay.stop()
        await rt.stop()

    router = http.router()
    router.include_router(identity_routes.router)
    app = rt.app(title="Tongxin registry", lifespan=lifespan, router=router,
                 description="Who and where: regions, organisations, bases, teams, volunteers, "
                             "pairings, campaigns, taxonomy; keys, accounts and the audit log. "
                             "Every change is published on `tongxin.registry.*`.",
                 models=tuple(e.create for e in ENTITIES.values()))
    rt.guard(keyring.lookup)
    return app
