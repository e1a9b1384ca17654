"""What every service process does the same way: telemetry, database, NATS, streams, workers."""

from __future__ import annotations

import asyncio
import io
import logging
import signal
from collections.abc import Awaitable, Callable, Coroutine

from fastapi import APIRouter, Depends, FastAPI
from nats.js.kv import KeyValue
from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor
from opentelemetry.instrumentation.sqlalchemy import SQLAlchemyInstrumentor
from pydantic import BaseModel
from sqlalchemy import text

from shared.auth import Gate, Lookup, allow, authenticate, identity_router
from shared.bus import jetstream, make_broker
from shared.db import make_engine, migrate
from shared.errors import Unavailable
from shared.http import (
    Limit,
    Offset,
    add_docs,
    add_health,
    document_errors,
    document_models,
    install_error_handlers,
    refuse_nul,
)
from shared.metrics import (
    Metrics,
    add_metrics,
    health_probe,
    projections_probe,
    relays_probe,
    write_waits_probe,
)
from shared.outbox import Relay
from shared.projection import Projection, ProjectionGroup, reason_of
from shared.ratelimit import RateLimiter
from shared.responses import Page, ParkedMessage, Replayed
from shared.retry import Backoff, is_transient
from shared.sessions import EndedSessions
from shared.settings import Settings
from shared.streams import StreamsMissing, verify
from shared.subjects import Names
from shared.telemetry import setup_logging, setup_telemetry
from shared.webassets import WebAssets

log = logging.getLogger(__name__)


def log_tasks() -> None:
    out = io.StringIO()
    for task in asyncio.all_tasks():
        out.write(f"\n{task!r}\n")
        task.print_stack(limit=12, file=out)
    log.warning("asyncio tasks:%s", out.getvalue())


class Runtime:
    def __init__(self, service: str, settings: Settings):
        self.service = service
        self.settings = settings
        self.names = Names(settings.namespace)
        self.database_url = settings.database_url(service)
        setup_logging(f"tongxin-{service}", settings.log_level)
        self.tracer_provider = setup_telemetry(f"tongxin-{service}")
        self.engine = make_engine(self.database_url, settings.db_schema, settings.db_pool_size,
                                  settings.db_max_overflow)
        SQLAlchemyInstrumentor().instrument(engine=self.engine.sync_engine,
                                            tracer_provider=self.tracer_provider)
        self.broker = make_broker(settings.nats_url, f"tongxin-{service}")
        self.tasks: dict[str, asyncio.Task] = {}
        self.checks: dict[str, Callable[[], bool]] = {}
        self.projections: list[Projection] = []  # spawned ones: their parked messages
        self.relays: list[Relay] = []  # spawned ones: their backlogs
        self.metrics = Metrics()
        self.metrics.probe("health", health_probe(self.health))
        self.metrics.probe("projections", projections_probe(self.projections))
        self.metrics.probe("outboxes", relays_probe(self.relays))
        self.metrics.probe("writes", write_waits_probe())
        self._app: FastAPI | None = None
        self.ended_sessions: EndedSessions | None = None  # guard() makes it
        self.assets = WebAssets(settings.web_assets)  # the docs pages' browser files

    def app(self, *, title: str, description: str, lifespan, router: APIRouter,
            models: tuple[type[BaseModel], ...] = ()) -> FastAPI:
        """The service's HTTP app, made the same way for every service: one error shape,
        `/health`, `/metrics`, OpenAPI with the documented models and every route's error
        responses, traced and timed requests."""
        # Who is asking is checked first, for every route but /health (and the login page);
        # the docs too, so they are served as routes of the app, behind the same check.
        app = self._app = FastAPI(title=title, version="1", description=description,
                                  lifespan=lifespan, docs_url=None, redoc_url=None,
                                  openapi_url=None,
                                  dependencies=[Depends(authenticate), Depends(refuse_nul)])
        install_error_handlers(app)
        add_health(app, self.health, self.health_details)
        add_metrics(app, self.metrics)
        add_docs(app, self.assets)
        app.include_router(identity_router())
        app.include_router(router)
        document_models(app, *models)
        document_errors(app)
        # A span per request; not one more per ASGI message sent or received (two or three a
        # request, each costing about what the span does, and telling nothing).
        FastAPIInstrumentor.instrument_app(app, tracer_provider=self.tracer_provider,
                                           excluded_urls="health",
                                           exclude_spans=["receive", "send"])
        return app

    def guard(self, lookup: Lookup, refresh: Callable[[], Awaitable[object]] | None = None,
              ) -> None:
        """Keys and sessions checked against `lookup` (this service's copy of them); writes
        limited per key."""
        assert self._app is not None  # app() first
        self.ended_sessions = EndedSessions(self._sessions_bucket)
        self._app.state.ended_sessions = self.ended_sessions
        self._app.state.gate = Gate(lookup, self.settings.session_secret(),
                                    self.settings.session_hours, refresh, self.ended_sessions)
        # Counted in the bucket every instance shares (in memory while NATS is away).
        self._app.state.rate_limiter = RateLimiter(self.settings.rate_limit,
                                                   bucket=self._ratelimit_bucket)
        self._app.state.settings = self.settings

    @property
    def js(self):
        return jetstream(self.broker)

    async def _sessions_bucket(self) -> KeyValue:
        return await self.js.key_value(self.names.sessions_bucket)

    async def _ratelimit_bucket(self) -> KeyValue:
        if not self.broker.connection.is_connected:
            raise ConnectionError("NATS is not connected")
        return await self.broker.connection.jetstream(timeout=1.0).key_value(
            self.names.ratelimit_bucket)

    async def start(self) -> None:
        # `kill -USR2 <pid>`: every asyncio task's stack to the log (SIGUSR1 gives threads'):
        # a request awaiting forever shows here, not in any thread.
        asyncio.get_running_loop().add_signal_handler(signal.SIGUSR2, log_tasks)
        # What a service needs may come up after it (a cluster electing its leaders, a
        # database starting): each step is waited for, never a reason to exit.
        if self.settings.migrate_on_start:
            await self.until_done("migrating the database", lambda: migrate(
                self.service, self.database_url, self.settings.db_schema))
        await self.until_done("connecting to NATS", self._connect)
        # Declared by the operator (`tongxin bus streams`), never by a service: waited for.
        await self.until_done("waiting for the streams", self.streams_declared)
        await self.broker.start()
        if self.ended_sessions is not None:  # guarded: sessions ended elsewhere, followed
            self.spawn("ended-sessions", self.ended_sessions.follow)
            try:  # held before the first request is served (a restart forgets nothing)
                await asyncio.wait_for(self.ended_sessions.loaded.wait(), 10)
            except TimeoutError:
                log.warning("ended sessions not read in 10 s: following them meanwhile")

    async def streams_declared(self) -> None:
        """Wait until the operator has declared every stream this service needs
        (`tongxin bus streams`): a service may not create one (tongxin/natsauth.py)."""
        backoff = Backoff(first=0.5, cap=10)
        while True:
            try:
                await verify(self.js, self.names)
                return
            except StreamsMissing as exc:
                log.warning("%s; waiting %.1fs", exc, backoff.delay)
            await backoff.sleep()

    async def _connect(self, every: float = 5.0) -> None:
        """Connect to NATS; nats-py tries every server again and again, silently: say so."""
        connecting = asyncio.ensure_future(self.broker.connect())
        while not (await asyncio.wait({connecting}, timeout=every))[0]:
            log.warning("connecting to NATS: no server reachable yet; still trying")
        connecting.result()

    async def until_done(self, what: str, step: Callable[[], Awaitable[object]],
                         backoff: Backoff | None = None) -> None:
        """Run a start-up `step` until it succeeds: an outage (`is_transient`: NATS or the
        database away, a JetStream request timing out while a cluster elects its leaders) is
        logged and tried again with back-off, however long it lasts; anything else raises."""
        backoff = backoff or Backoff(first=0.5, cap=10)
        while True:
            try:
                await step()
                return
            except Exception as exc:
                if not is_transient(exc):
                    raise
                log.warning("%s: %s; trying again in %.1fs", what, reason_of(exc),
                            backoff.delay)
                await backoff.sleep()

    def spawn(self, name: str, work: Callable[[], Coroutine] | Projection | ProjectionGroup,
              healthy: Callable[[], bool] | None = None) -> None:
        """Run a background worker for the life of the service, restarting it if it dies
        (logged loudly); `/health` reports it, and whatever `healthy` says of it.

        A projection (or its `run`) is also registered: `/health` counts its parked messages,
        `/metrics` its lag, and the service gets `GET /v1/parked` and `POST /v1/parked/replay`.
        An outbox relay's `run` is too: `/metrics` counts its backlog. So is each member of a
        group of projections."""
        if isinstance(work, ProjectionGroup):
            group = work
            for member in group.members:
                self._add_projection(member)
            work = group.run
            healthy = healthy or (lambda: group.healthy)
        owner = work if isinstance(work, Projection) else getattr(work, "__self__", None)
        if isinstance(owner, Relay):
            self.relays.append(owner)
        if isinstance(owner, Projection):
            projection = owner
            self._add_projection(projection)
            work = projection.run
            healthy = healthy or (lambda: projection.healthy)
        # a projection (or group) was swapped for its run above
        assert not isinstance(work, Projection | ProjectionGroup)

        async def supervise() -> None:
            backoff = Backoff(first=1.0, cap=30)
            loop = asyncio.get_running_loop()
            while True:
                started = loop.time()
                try:
                    await work()
                    return
                except asyncio.CancelledError:
                    raise
                except Exception:
                    if loop.time() - started > backoff.cap:
                        backoff.reset()  # it ran a good while: a new failure, not a loop
                    log.exception("worker %s died; restarting in %.0fs", name, backoff.delay)
                    await backoff.sleep()

        self.tasks[name] = asyncio.create_task(supervise(), name=name)
        self.checks[name] = healthy or (lambda: True)

    def _add_projection(self, projection: Projection) -> None:
        if not self.projections and self._app is not None:
            # Routes only where projections run; added as the first one starts (the app is
            # made before its lifespan creates them).
            self._app.include_router(self._parked_router())
        self.projections.append(projection)

    def _parked_router(self) -> APIRouter:
        router = APIRouter(tags=["operations"])

        @router.get("/v1/parked", dependencies=[allow("admin")],
                    summary="Messages a projection could not apply (admins)",
                    response_model=Page[ParkedMessage])
        async def list_parked(limit: Limit = 100, offset: Offset = 0) -> dict:
            """Each parked message: projection, stream seq, subject, event id and type, reason
            and when. Not counted anywhere until replayed; the stream keeps the message."""
            try:
                totals = [(await p.parked_summary())[0] for p in self.projections]
                items: list[dict] = []
                for p, total in zip(self.projections, totals, strict=True):
                    if total and len(items) < offset + limit:
                        items += await p.list_parked(offset + limit - len(items))
            except Exception as exc:
                if is_transient(exc):
                    raise Unavailable(f"try again: {reason_of(exc)}") from exc
                raise
            return {"items": items[offset:offset + limit], "total": sum(totals),
                    "limit": limit, "offset": offset}

        @router.post("/v1/parked/replay", dependencies=[allow("admin")],
                     summary="Apply parked messages again (after a fix; admins)",
                     response_model=Replayed)
        async def replay_parked() -> dict:
            """Each parked message is applied again, alone: done, it is no longer parked;
            failing again, it stays parked with the new reason."""
            replayed, parked = {}, {}
            try:
                for p in self.projections:
                    replayed[p.name], parked[p.name] = await p.replay_parked()
            except Exception as exc:
                if is_transient(exc):
                    raise Unavailable(f"try again: {reason_of(exc)}") from exc
                raise
            return {"replayed": replayed, "parked": parked}

        return router

    async def stop(self, grace: float = 5.0) -> None:
        """Stop workers, then NATS, then the database; each step bounded, so a stuck part
        never keeps the process from exiting (it is named in the log instead)."""
        for projection in self.projections:
            projection.stop()
        for task in self.tasks.values():
            task.cancel()
        steps: list[tuple[str, Callable[[], Awaitable[object]]]] = [
            ("workers", lambda: asyncio.gather(*self.tasks.values(), return_exceptions=True)),
            ("nats", self.broker.stop), ("database", self.engine.dispose)]
        # Whatever went away first (NATS, the database), the rest is still stopped and the
        # process exits cleanly: a step that fails is logged, not raised.
        for name, step in steps:
            try:
                await asyncio.wait_for(step(), grace)
            except TimeoutError:
                stuck = [n for n, t in self.tasks.items() if not t.done()]
                log.warning("stopping %s took over %.0fs; going on%s", name, grace,
                            f" (still running: {', '.join(stuck)})" if stuck else "")
            except Exception as exc:
                log.warning("stopping %s failed (%s); going on", name, reason_of(exc))
        try:
            self.tracer_provider.shutdown()
        except Exception as exc:
            log.warning("stopping telemetry failed (%s)", reason_of(exc))

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

    async def health_details(self) -> dict:
        """What `/health` shows beside its checks, without changing its status: parked
        messages are not an outage, but someone must see them."""
        if not self.projections:
            return {}
        parked: dict[str, int] = {}  # only projections with some
        newest: dict | None = None
        try:
            for p in self.projections:
                count, last = await p.parked_summary()
                if count:
                    assert last is not None  # some parked: parked_summary gives the newest
                    parked[p.name] = count
                    if newest is None or last["parked_at"] > newest["parked_at"]:
                        newest = last
        except Exception:  # the database is away: the checks say so
            return {}
        return {"parked": parked, **({"parked_newest": newest} if newest else {})}
