"""What every service process does the same way: telemetry, database, NATS, streams, workers."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Coroutine

from fastapi import APIRouter, FastAPI
from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor
from opentelemetry.instrumentation.sqlalchemy import SQLAlchemyInstrumentor
from pydantic import BaseModel
from sqlalchemy import text

from shared.bus import jetstream, make_broker
from shared.db import make_engine, migrate
from shared.http import add_health, document_models, install_error_handlers
from shared.settings import Settings
from shared.streams import ensure_streams
from shared.subjects import Names
from shared.telemetry import setup_logging, setup_telemetry

log = logging.getLogger(__name__)


class Runtime:
    def __init__(self, service: str, settings: Settings):
        self.service = service
        self.settings = settings
        self.names = Names(settings.namespace)
        self.database_url = settings.database_url(service)
        setup_logging(f"tongxin-{service}", settings.log_level)
        self.tracer_provider = setup_telemetry(f"tongxin-{service}")
        self.engine = make_engine(self.database_url, settings.db_schema)
        SQLAlchemyInstrumentor().instrument(engine=self.engine.sync_engine,
                                            tracer_provider=self.tracer_provider)
        self.broker = make_broker(settings.nats_url, f"tongxin-{service}")
        self.tasks: dict[str, asyncio.Task] = {}
        self.checks: dict[str, Callable[[], bool]] = {}

    def app(self, *, title: str, description: str, lifespan, router: APIRouter,
            models: tuple[type[BaseModel], ...] = ()) -> FastAPI:
        """The service's HTTP app, made the same way for every service: one error shape,
        `/health`, OpenAPI with the documented models, traced requests."""
        app = FastAPI(title=title, version="1", description=description, lifespan=lifespan)
        install_error_handlers(app)
        add_health(app, self.health)
        app.include_router(router)
        document_models(app, *models)
        FastAPIInstrumentor.instrument_app(app, tracer_provider=self.tracer_provider,
                                           excluded_urls="health")
        return app

    @property
    def js(self):
        return jetstream(self.broker)

    async def start(self) -> None:
        if self.settings.migrate_on_start:
            await migrate(self.service, self.database_url, self.settings.db_schema)
        await self.broker.connect()
        await ensure_streams(self.js, self.names, self.settings.stream_replicas)
        await self.broker.start()

    def spawn(self, name: str, work: Callable[[], Coroutine],
              healthy: Callable[[], bool] = lambda: True) -> None:
        """Run a background worker for the life of the service, restarting it if it dies
        (logged loudly); `/health` reports it, and whatever `healthy` says of it."""

        async def supervise() -> None:
            delay = 1.0
            while True:
                try:
                    await work()
                    return
                except asyncio.CancelledError:
                    raise
                except Exception:
                    log.exception("worker %s died; restarting in %.0fs", name, delay)
                    await asyncio.sleep(delay)
                    delay = min(delay * 2, 30)

        self.tasks[name] = asyncio.create_task(supervise(), name=name)
        self.checks[name] = healthy

    async def stop(self, grace: float = 5.0) -> None:
        """Stop workers, then NATS, then the database; each step bounded, so a stuck part
        never keeps the process from exiting (it is named in the log instead)."""
        for task in self.tasks.values():
            task.cancel()
        steps = [("workers", asyncio.gather(*self.tasks.values(), return_exceptions=True)),
                 ("nats", self.broker.stop()), ("database", self.engine.dispose())]
        for name, step in steps:
            try:
                await asyncio.wait_for(step, grace)
            except TimeoutError:
                stuck = [n for n, t in self.tasks.items() if not t.done()]
                log.warning("stopping %s took over %.0fs; going on%s", name, grace,
                            f" (still running: {', '.join(stuck)})" if stuck else "")
        self.tracer_provider.shutdown()

    async def health(self) -> dict[str, bool]:
        try:
            async with self.engine.connect() as conn:
                await conn.execute(text("SELECT 1"))
            db = True
        except Exception:
            db = False
        nats = self.broker.connection is not None and self.broker.connection.is_connected
        workers = all(not t.done() and self.checks[n]() for n, t in self.tasks.items())
        return {"nats": nats, "database": db, "workers": workers}
