"""Events service wiring: what happened. Accepts offers from HTTP and the bus."""

from __future__ import annotations

from contextlib import asynccontextmanager
from datetime import timedelta
from zoneinfo import ZoneInfo

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, JSONResponse
from faststream.nats import NatsBroker
from faststream.specification import AsyncAPI
from prometheus_client import Histogram

from services.events import bus, dashboard_origin, http, store
from services.events.deadlines import Deadlines
from services.events.forms.routes import router as forms_router
from services.events.forms.sign_in import router as sign_in_router
from services.events.grouping import GROUP_SIZES, Grouper
from services.events.photos import Photos
from services.events.photos import router as photos_router
from services.events.service import Acceptor
from shared.docs_pages import asyncapi_page
from shared.envelope import Envelope
from shared.event_types import EVENT_TYPES
from shared.events import ActivityLogged
from shared.keyring import Keyring
from shared.metrics import dlq_probe, durable_probe
from shared.outbox import Relay
from shared.projection import Projection
from shared.replica import apply_registry_events
from shared.runtime import Runtime
from shared.settings import Settings, get_settings
from shared.subjects import Names
from shared.sweeps import Passes, sweeps_probe


def asyncapi(settings: Settings) -> AsyncAPI:
    """The AsyncAPI document of the bus: every subject, from the event type table."""
    docs = NatsBroker(settings.nats_url)  # describes the subjects; never started
    bus.document(docs, Names(settings.namespace), settings.batch_size)
    return AsyncAPI(docs, title="Tongxin events", version="1",
                    # Markdown, as the page renders it: `<type>` outside code would be a tag.
                    description="Offer events on `tongxin.ingest.<type>`; accepted events on "
                                "`tongxin.events.<type>`; rejects on `tongxin.dlq.<type>`.")


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()
    rt = Runtime("events", settings)
    passes = Passes("report-deadlines")
    names = rt.names

    keyring = Keyring()  # keys and accounts in memory, from the registry replica

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        await rt.start()
        photos = app.state.photos = Photos(rt.js, names, settings)
        await rt.until_done("binding the photos bucket", photos.ensure)
        replica = Projection(
            name="events-registry-replica", js=rt.js, stream=names.registry_stream,
            subject=names.registry(">"), engine=rt.engine, positions=store.positions,
            parked=store.parked,
            apply=lambda conn, msgs: apply_registry_events(conn, store.registry_entities, msgs),
            batch_size=settings.batch_size, observe=keyring.observe,
            started=lambda: keyring.load_replica(rt.engine, store.registry_entities))
        # TONGXIN_EVENTS is this outbox's alone: the server keeps it in commit order.
        relay = Relay(rt.engine, rt.js, store.accepted_events, settings.publish_timeout,
                      settings.batch_size, stream=names.events_stream)
        acceptor = app.state.acceptor = Acceptor(
            rt.engine, rt.js, names, replica, relay, photos,
            report_due=timedelta(days=settings.report_due_days),
            future_grace=timedelta(hours=settings.future_grace_hours),
            zone=ZoneInfo(settings.timezone))
        app.state.grouper = Grouper(acceptor, settings.http_group_window,
                                    settings.http_group_max, observe=group_sizes.observe)
        ingest = bus.Ingest(rt.js, names, acceptor, settings.batch_size,
                            settings.prerequisite_wait)
        deadlines = app.state.deadlines = Deadlines(acceptor, settings.deadline_sweep_seconds,
                                                    passes=passes)
        rt.spawn("registry-replica", replica)
        rt.spawn("ingest", ingest.run)
        rt.spawn("publish-relay", relay.run)
        rt.spawn("report-deadlines", deadlines.run)
        yield
        ingest.stop()
        deadlines.stop()
        relay.stop()
        replica.stop()
        await rt.stop()

    # How many single-event HTTP requests each batch took together.
    group_sizes = Histogram(
        "tongxin_events_http_group_size", "Single-event HTTP requests (POST /v1/events, "
        "/v1/activities) accepted together as one batch: requests per batch",
        buckets=GROUP_SIZES, registry=rt.metrics.registry)
    # Offers waiting for the shared ingest consumer, and offers refused for good.
    rt.metrics.probe("ingest", durable_probe(lambda: rt.js, names.ingest_stream,
                                             bus.INGEST_DURABLE))
    rt.metrics.probe("dlq", dlq_probe(lambda: rt.js, names.dlq_stream))
    rt.metrics.probe("sweeps", sweeps_probe([passes]))
    app = rt.app(title="Tongxin events", lifespan=lifespan, router=http.router,
                 description="What happened: activities and more, accepted once each and "
                             "published in order on `tongxin.events.*`.",
                 models=(Envelope, ActivityLogged, *(t.envelope for t in EVENT_TYPES.values())))
    app.include_router(photos_router)
    app.include_router(forms_router)
    app.include_router(sign_in_router)
    dashboard_origin.install(app, settings.reporting_port)  # the dashboard's approve button
    # A key issued a moment ago may not be in the replica yet: catch up (bounded) and look again.
    rt.guard(keyring.lookup, refresh=lambda: app.state.acceptor.replica.caught_up(timeout=2.0))

    spec = asyncapi(settings)

    @app.get("/asyncapi", include_in_schema=False)
    async def asyncapi_html(request: Request) -> HTMLResponse:
        # Not FastStream's page: it loads the component and icons from CDNs.
        return asyncapi_page(rt.assets, "Tongxin events", spec.to_specification().to_jsonable(),
                             request.scope.get("root_path", ""))

    @app.get("/asyncapi.json", include_in_schema=False)
    async def asyncapi_json() -> JSONResponse:
        return JSONResponse(spec.to_specification().to_jsonable())

    return app
