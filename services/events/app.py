"""Events service wiring: what happened. Accepts offers from HTTP and the bus."""

from __future__ import annotations

from contextlib import asynccontextmanager

from fastapi import FastAPI
from fastapi.responses import HTMLResponse, JSONResponse
from faststream.nats import NatsBroker
from faststream.specification import AsyncAPI
from faststream.specification.asyncapi.site import get_asyncapi_html

from services.events import bus, http, store
from services.events.service import Acceptor
from shared.envelope import Envelope
from shared.events import EVENT_TYPES
from shared.projection import Projection
from shared.replica import apply_registry_events
from shared.runtime import Runtime
from shared.settings import Settings, get_settings


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()
    rt = Runtime("events", settings)
    names = rt.names

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        await rt.start()
        replica = Projection(
            name="events-registry-replica", js=rt.js, stream=names.registry_stream,
            subject=names.registry(">"), engine=rt.engine, positions=store.positions,
            apply=lambda conn, msgs: apply_registry_events(conn, store.registry_entities, msgs),
            batch_size=settings.batch_size)
        acceptor = app.state.acceptor = Acceptor(rt.engine, rt.js, names, replica,
                                                 settings.publish_timeout)
        ingest = bus.Ingest(rt.js, names, acceptor, settings.batch_size)
        rt.spawn("registry-replica", replica.run, lambda: replica.healthy)
        rt.spawn("ingest", ingest.run)
        rt.spawn("publish-relay", acceptor.run_relay)
        yield
        ingest.stop()
        replica.stop()
        await rt.stop()

    app = rt.app(title="Tongxin events", lifespan=lifespan, router=http.router,
                 description="What happened: activities and more, accepted once each and "
                             "published in order on `tongxin.events.*`.",
                 models=(Envelope, *EVENT_TYPES.values()))

    docs = NatsBroker(settings.nats_url)  # describes the subjects; never started
    bus.document(docs, names, settings.batch_size)
    spec = AsyncAPI(docs, title="Tongxin events", version="1",
                    description="Offer events on tongxin.ingest.<type>; accepted events on "
                                "tongxin.events.<type>; rejects on tongxin.dlq.<type>.")

    @app.get("/asyncapi", response_class=HTMLResponse, include_in_schema=False)
    async def asyncapi_html() -> str:
        return get_asyncapi_html(spec.to_specification())

    @app.get("/asyncapi.json", include_in_schema=False)
    async def asyncapi_json() -> JSONResponse:
        return JSONResponse(spec.to_specification().to_jsonable())

    return app
