"""Reporting service wiring: a projection per read model (`models.READ_MODELS`), each with its
routes; the notifier beside them, independent of them."""

from __future__ import annotations

from contextlib import asynccontextmanager

from fastapi import APIRouter, FastAPI

from services.reporting import certificates, document, notify, store
from services.reporting.answers import Answers
from services.reporting.dashboard import routes as dashboard
from services.reporting.models import READ_MODELS, labels
from services.reporting.readmodel import ReadModel
from shared.keyring import Keyring
from shared.projection import Projection, ProjectionGroup
from shared.runtime import Runtime
from shared.settings import Settings, get_settings


def projection_of(model: ReadModel, rt: Runtime, engine=None, **hooks) -> Projection:
    names = rt.names
    stream, subject = ((names.events_stream, names.events()) if model.stream == "events"
                       else (names.registry_stream, names.registry(">")))
    return Projection(name=model.name, js=rt.js, stream=stream, subject=subject,
                      engine=engine or rt.engine, positions=store.positions,
                      parked=store.parked, **model.steps(rt.settings),
                      batch_size=rt.settings.batch_size, **hooks)


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()
    rt = Runtime("reporting", settings)

    keyring = Keyring()  # keys and accounts in memory, from the registry replica
    answers = Answers(int(settings.report_cache_mb * 2**20))  # report answers kept
    rt.metrics.probe("answers", answers.probe)

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        await rt.start()
        # A model without handlers (the assessment) only reads others' tables: no projection.
        # The registry replica (labels) keeps the keyring current too.
        keyring_hooks = {"observe": keyring.observe, "started": lambda: keyring.load_replica(
            rt.engine, labels.registry_entities)}
        projections = {m.name: projection_of(m, rt, **(keyring_hooks if m is labels.MODEL
                                                       else {}))
                       for m in READ_MODELS if m.handlers}
        app.state.projections = projections
        app.state.registry = next(p for m, p in zip(READ_MODELS, projections.values(),
                                                    strict=True) if m.stream == "registry")
        app.state.engine = rt.engine
        app.state.settings = settings
        app.state.js = rt.js  # the report document reads photos from the events' object store
        app.state.photos_bucket = rt.names.photos_bucket
        # One consumer and one transaction a batch for all the models of a stream; each keeps
        # its own position (a rebuilt or new model catches up while the others pass over).
        for stream in ("registry", "events"):
            members = [projections[m.name] for m in READ_MODELS
                       if m.handlers and m.stream == stream]
            rt.spawn(f"read-models-{stream}", ProjectionGroup(f"read-models-{stream}", members))
        app.state.notifier = notify.Notifier(rt.js, rt.engine, settings)
        app.state.notifier.spawn(rt)  # its own projections: independent of the read models
        yield
        await rt.stop()  # stops the projections first

    router = APIRouter()
    for model in READ_MODELS:
        if model.router is not None:
            router.include_router(model.router)
    router.include_router(document.router)
    router.include_router(certificates.router)
    router.include_router(notify.router)
    router.include_router(dashboard.router)
    app = rt.app(title="Tongxin reporting", lifespan=lifespan, router=router,
                 description="What it adds up to: read models built only from events, and "
                             "the notifications they raise.")
    rt.guard(keyring.lookup, refresh=lambda: app.state.registry.caught_up(2.0))
    app.state.answers = answers
    return app
