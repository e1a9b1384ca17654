"""Time-based notifications, from a sweep over the notifier's own state every
`deadline_sweep_seconds`: a report due within a day (`report_due_soon`), a follow-up whose day
has passed with its need still open or claimed (`followup_overdue`). Several instances may sweep
at once: notification ids are derived, so the second insert of one does nothing."""

from __future__ import annotations

import asyncio
import logging
from datetime import datetime, time, timedelta

from sqlalchemy import and_, exists, or_, select, update
from sqlalchemy.ext.asyncio import AsyncEngine

from services.reporting.notify import kinds
from services.reporting.notify.kinds import Draft, utc
from services.reporting.notify.pairings import Pairings, followup_overdue
from services.reporting.notify.project import Context
from services.reporting.notify.tables import activities, needs
from shared.db import write_transaction
from shared.retry import Backoff
from shared.sweeps import Passes

log = logging.getLogger(__name__)

SOON = timedelta(days=1)


async def sweep(engine: AsyncEngine, ctx: Context, now: datetime | None = None) -> int:
    """One pass; returns how many notifications it drafted."""
    now = utc(now or ctx.clock())
    today = now.astimezone(ctx.tz).date()
    a, n = activities, needs
    due_soon = and_(a.c.due_soon_pending.is_(True), a.c.due_at <= now + SOON)
    followup_due = and_(n.c.followup_pending.is_(True), n.c.followup_due_on < today)
    async with engine.connect() as conn:  # most passes find nothing: no turn to write for them
        anything = (await conn.execute(
            select(or_(exists().where(due_soon), exists().where(followup_due))))).scalar()
    if not anything:
        return 0
    async with write_transaction(engine) as conn:  # PostgreSQL: another sweep skips the rows
        due = [dict(r._mapping) for r in await conn.execute(
            select(a).where(due_soon)
            .order_by(a.c.activity_id).with_for_update(skip_locked=True))]
        followups = [dict(r._mapping) for r in await conn.execute(
            select(n).where(followup_due)
            .order_by(n.c.need_id).with_for_update(skip_locked=True))]
        if not due and not followups:
            return 0
        drafts: list[Draft] = []
        for act in due:
            due_at = utc(act["due_at"])
            # Still owed and not yet past (a reminder after the deadline says nothing).
            if due_at > now and not act["reported"] and not act["retracted"]:
                drafts.append(Draft("report_due_soon", act["organization_id"], due_at - SOON,
                                    "activity", act["activity_id"], due_at.isoformat(),
                                    {"base_id": act["base_id"], "title": act["title"],
                                     "due_at": due_at}))
        pairings = await Pairings.load(
            conn, {f["pairing_id"] for f in followups if f["pairing_id"]},
            {f["base_id"] for f in followups if not f["pairing_id"]})
        for need in followups:
            if need["state"] not in ("open", "claimed"):
                continue
            units = ([need["claimed_by"]] if need["state"] == "claimed" and need["claimed_by"]
                     else pairings.recipients(need["base_id"], need["pairing_id"]))
            deadline = datetime.combine(need["followup_due_on"] + timedelta(days=1), time(),
                                        ctx.tz)
            drafts += followup_overdue(need, units, deadline)
        if due:
            await conn.execute(update(a).where(a.c.activity_id.in_(
                [r["activity_id"] for r in due])).values(due_soon_pending=False))
        if followups:
            await conn.execute(update(n).where(n.c.need_id.in_(
                [r["need_id"] for r in followups])).values(followup_pending=False))
        await kinds.insert(conn, ctx.subjects, ctx.tz, drafts)
    return len(drafts)


async def run(engine: AsyncEngine, ctx: Context, stopping: asyncio.Event,
              wake=lambda: None, passes: Passes | None = None) -> None:
    """Sweep every `deadline_sweep_seconds` until stopped; a failing pass is tried again."""
    backoff = Backoff(first=ctx.settings.deadline_sweep_seconds, cap=60)
    passes = passes or Passes("notifier")
    while not stopping.is_set():
        started = passes.started()
        try:
            if await sweep(engine, ctx):
                wake()
            passes.finished(started)
        except Exception as exc:
            log.warning("notifier sweep failed (%r); trying again in %.1fs", exc, backoff.delay)
            await backoff.sleep(stopping)
            continue
        backoff.reset()
        try:
            await asyncio.wait_for(stopping.wait(), ctx.settings.deadline_sweep_seconds)
        except TimeoutError:
            pass
