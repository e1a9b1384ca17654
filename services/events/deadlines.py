"""Report deadlines (服务旗帜接传): `report.overdue`, exactly once per activity whose report is
missing when it falls due, across restarts.

The deadline lives in the events service's own `activities` row, written with the event that
set it (a correction moves it; a report or a retraction ends it). A sweep every few seconds
offers `report.overdue` for rows past due through the same accept path as any event, under an
event_id derived from the activity: however often the sweep runs, on however many instances,
and whatever it finds after a restart, one activity gives one event.

Why not JetStream message schedules (`Nats-Schedule`, nats-server ≥ 2.12)? The servers these
machines and many intranets run (2.9.10 here) lack them; a schedule would still need this
state check when it fires, as a report may have come in; and a corrected end time would mean
finding and replacing the schedule. The row is the state either way, so the sweep is the
simpler whole.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from datetime import UTC, datetime

from sqlalchemy import select

from services.events import store
from services.events.domain import offer_of
from services.events.service import Acceptor
from shared.sweeps import Passes

log = logging.getLogger(__name__)

OVERDUE_NAMESPACE = uuid.UUID("0b7f3a3e-61a4-4f0e-8a57-5f2b3c1d9e42")
SOURCE = "tongxin-events"


def overdue_event_id(activity_id: str) -> uuid.UUID:
    return uuid.uuid5(OVERDUE_NAMESPACE, f"report.overdue/{activity_id}")


class Deadlines:
    def __init__(self, acceptor: Acceptor, every: float = 5.0, batch_size: int = 500,
                 passes: Passes | None = None):
        self.acceptor = acceptor
        self.every = every
        self.batch_size = batch_size
        self.fired = 0
        self.passes = passes or Passes("report-deadlines")
        self._stopping = asyncio.Event()

    def stop(self) -> None:
        self._stopping.set()

    async def run(self) -> None:
        while not self._stopping.is_set():
            started = self.passes.started()
            while await self.sweep() == self.batch_size:
                pass  # more are due
            self.passes.finished(started)
            try:
                await asyncio.wait_for(self._stopping.wait(), self.every)
            except TimeoutError:
                pass

    async def sweep(self) -> int:
        """Offer `report.overdue` for every activity now past its deadline; how many fired."""
        a = store.activities
        now = datetime.now(UTC)
        async with self.acceptor.engine.connect() as conn:
            due = (await conn.execute(
                select(a.c.activity_id, a.c.organization_id, a.c.report_due_at)
                .where(a.c.state == "logged", a.c.reported_at.is_(None),
                       a.c.overdue.is_(False), a.c.report_due_at <= now)
                .order_by(a.c.report_due_at).limit(self.batch_size))).all()
        if not due:
            return 0
        offers = [offer_of("report.overdue", {
            "activity_id": r.activity_id, "organization_id": r.organization_id,
            "due_at": _utc(r.report_due_at).isoformat()}, SOURCE,
            event_id=str(overdue_event_id(r.activity_id)),
            occurred_at=_utc(r.report_due_at).isoformat()) for r in due]
        outcomes = await self.acceptor.offer(offers, via="internal")
        fired = sum(1 for o in outcomes if o.accepted and not o.duplicate)
        self.fired += fired
        if fired:
            log.info("%d reports fell overdue", fired)
        return len(due)


def _utc(value: datetime) -> datetime:
    return value if value.tzinfo else value.replace(tzinfo=UTC)
