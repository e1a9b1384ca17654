"""Reporting service wiring: read models built only from events, queried over HTTP."""

from __future__ import annotations

from contextlib import asynccontextmanager

from fastapi import FastAPI

from services.reporting import http, store
from services.reporting.projections import apply_registry, make_apply_events
from shared.projection import Projection
from shared.runtime import Runtime
from shared.settings import Settings, get_settings


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()
    rt = Runtime("reporting", settings)
    names = rt.names

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        await rt.start()
        activities = Projection(
            name=http.ACTIVITIES, js=rt.js, stream=names.events_stream,
            subject=names.events(), engine=rt.engine, positions=store.positions,
            parked=store.parked, apply=make_apply_events(settings.timezone),
            batch_size=settings.batch_size)
        labels = Projection(
            name=http.REGISTRY, js=rt.js, stream=names.registry_stream,
            subject=names.registry(">"), engine=rt.engine, positions=store.positions,
            parked=store.parked, apply=apply_registry, batch_size=settings.batch_size)
        app.state.activities = activities
        app.state.registry = labels
        app.state.engine = rt.engine
        app.state.settings = settings
        rt.spawn("activities-projection", activities)
        rt.spawn("registry-projection", labels)
        yield
        await rt.stop()  # stops the projections first

    return rt.app(title="Tongxin reporting", lifespan=lifespan, router=http.router,
                  description="What it adds up to: summaries built only from events.")
