"""The notification streams (CONTRACT.md "Notifications"): a consumer of TONGXIN_EVENTS and
TONGXIN_REGISTRY beside the read models and independent of them — its own projections
(`notifier-events`, `notifier-registry`), its own state tables, its own outbox (`notifications`)
published on `tongxin.notify.<organization_id>.<kind>` by a relay, and a sweep for the kinds
that come from the clock. A read model failing never stops it, nor it them.

Exactly once: a notification's id is derived from what caused it; its row is inserted (on
conflict nothing) in the transaction that moves the projection's position, and the relay
publishes it with `Nats-Msg-Id` = that id. The rows are kept, so a replay from position 0
(state tables emptied, positions reset) raises each one again into a row already there.

    notifier = Notifier(js, engine, settings)
    notifier.spawn(rt)            # projections, relay, sweep; /health, /v1/parked, /metrics
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import UTC, datetime

from nats.js import JetStreamContext
from prometheus_client.metrics_core import CounterMetricFamily, Metric
from sqlalchemy import delete, update
from sqlalchemy.ext.asyncio import AsyncEngine

from services.reporting import store
from services.reporting.notify import project, registry, sweep
from services.reporting.notify.kinds import KINDS, Draft
from services.reporting.notify.project import Context
from services.reporting.notify.routes import router
from services.reporting.notify.tables import STATE, notifications
from shared.db import write_transaction
from shared.outbox import Relay
from shared.projection import Projection
from shared.runtime import Runtime
from shared.settings import Settings
from shared.subjects import Names
from shared.sweeps import Passes, sweeps_probe

__all__ = ["KINDS", "Draft", "Notifier", "notifications", "router"]

EVENTS = "notifier-events"
REGISTRY = "notifier-registry"
REGISTRY_WAIT = 2.0  # seconds an events batch waits for the registry projection, at most


def _now() -> datetime:
    return datetime.now(UTC)


class Notifier:
    def __init__(self, js: JetStreamContext, engine: AsyncEngine, settings: Settings,
                 clock: Callable[[], datetime] = _now):
        names = Names(settings.namespace)
        self.engine = engine
        self.ctx = Context(names, settings, clock)

        def projection(name: str, stream: str, subject: str, apply, **steps) -> Projection:
            return Projection(name=name, js=js, stream=stream, subject=subject, engine=engine,
                              positions=store.positions, parked=store.parked, apply=apply,
                              batch_size=settings.batch_size, **steps)

        async def registry_first(msgs) -> None:
            # Names and pairings first, where they are a moment away (a start, a rebuild: the
            # registry stream is short); bounded, so a stuck registry never holds events up.
            # Waited for before the batch's turn to write, which the registry needs too.
            last = (await js.stream_info(names.registry_stream)).state.last_seq
            await self.registry.wait_for(last, REGISTRY_WAIT)

        self.events = projection(EVENTS, names.events_stream, names.events(),
                                 project.make_apply(self.ctx), decode=project.decode,
                                 before=registry_first)
        self.registry = projection(REGISTRY, names.registry_stream, names.registry(">"),
                                   registry.make_apply(self.ctx))
        self.relay = Relay(engine, js, notifications, settings.publish_timeout,
                           settings.batch_size)
        self.passes = Passes("notifier")
        self._stopping = asyncio.Event()

    def spawn(self, rt: Runtime) -> None:
        rt.spawn(EVENTS, self.events)
        rt.spawn(REGISTRY, self.registry)
        rt.spawn("notifier-relay", self.relay.run)
        rt.spawn("notifier-sweep", self.run_sweep)
        rt.metrics.probe("notifications", self._sent)
        rt.metrics.probe("sweeps", sweeps_probe([self.passes]))

    async def _sent(self) -> list[Metric]:
        # Counted by the relay as the server acks them: a number, never whom they went to.
        return [CounterMetricFamily("tongxin_notifications_sent", "notifications this process "
                                    "published on tongxin.notify since it started",
                                    value=self.relay.published)]

    async def run_sweep(self) -> None:
        await sweep.run(self.engine, self.ctx, self._stopping, self.relay.wake, self.passes)

    async def sweep(self, now: datetime | None = None) -> int:
        """One sweep now (tests, operators); returns the notifications it drafted."""
        drafted = await sweep.sweep(self.engine, self.ctx, now)
        self.relay.wake()
        return drafted

    def stop(self) -> None:
        self._stopping.set()
        self.events.stop()
        self.registry.stop()
        self.relay.stop()

    async def reset(self) -> None:
        """Rebuild from scratch: state emptied, both positions back to 0. The notifications
        are kept: they are what was sent, and what a replay must not send again."""
        async with write_transaction(self.engine) as conn:
            for table in STATE:
                await conn.execute(delete(table))
            await conn.execute(update(store.positions)
                               .where(store.positions.c.name.in_([EVENTS, REGISTRY]))
                               .values(position=0))
