"""The notifier's projection over TONGXIN_EVENTS: a batch is loaded in a few queries, its
events are applied one by one in stream order in memory (so what it raises never depends on
where batches happen to break), then written back with the notifications it raised, in the
transaction that stores the position.

State kept: each activity's report deadline and whether its report is in, each unit's
cumulative served (a fair's stalls count for their stall's unit, as in the activity cube),
each need's state, claimer and follow-up."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from nats.aio.msg import Msg
from sqlalchemy import Table, delete, insert, select
from sqlalchemy.ext.asyncio import AsyncConnection

from services.reporting.notify import kinds
from services.reporting.notify.kinds import Draft, utc
from services.reporting.notify.pairings import Pairings, need_submitted
from services.reporting.notify.tables import activities, needs, shares, units
from shared.bus import stream_seq
from shared.envelope import Envelope
from shared.event_types import EVENT_TYPES
from shared.events import ActivityFigures
from shared.projection import upsert
from shared.settings import Settings
from shared.subjects import Names

ACTIVITY_TYPES = {"activity.logged", "activity.corrected", "activity.retracted",
                  "report.submitted", "report.overdue"}
NEED_TYPES = {"need.submitted", "need.claimed", "need.returned", "need.resolved",
              "need.closed", "need.reopened", "need.followup_assigned", "need.linked"}
NEED_STATE = {"need.claimed": "claimed", "need.returned": "open", "need.resolved": "resolved",
              "need.closed": "closed", "need.reopened": "open", "need.linked": "closed"}
FIRST_MILESTONE = 1_000


@dataclass
class Context:
    """What the notifier's parts share."""

    subjects: Names
    settings: Settings
    clock: Callable[[], datetime]

    @property
    def tz(self) -> ZoneInfo:
        return ZoneInfo(self.settings.timezone)

    @property
    def report_due(self) -> timedelta:
        return timedelta(days=self.settings.report_due_days)


@dataclass(frozen=True)
class Event:
    seq: int
    envelope: Envelope
    data: Any

    @property
    def type(self) -> str:
        return self.envelope.type


def decode(msg: Msg) -> Event | None:
    """The event, if the notifier reads its type (None: passed over); raises if unreadable."""
    env = Envelope.model_validate_json(msg.data)
    if env.type in ACTIVITY_TYPES or env.type in NEED_TYPES:
        return Event(stream_seq(msg), env, EVENT_TYPES[env.type].data.model_validate(env.data))
    return None


def milestone(served: int) -> int:
    """The highest of 1,000 / 10,000 / 100,000 / ... that `served` reaches (0 below all)."""
    if served < FIRST_MILESTONE:
        return 0
    threshold = FIRST_MILESTONE
    while threshold * 10 <= served:
        threshold *= 10
    return threshold


def served_by_unit(data: ActivityFigures) -> dict[str, int]:
    """Served per credited unit: a fair's stalls for their units, else all to the activity's."""
    if not data.stalls:
        return {data.organization_id: data.served or 0}
    out: dict[str, int] = defaultdict(int)
    for stall in data.stalls:
        out[stall.organization_id or data.organization_id] += stall.served
    return dict(out)


async def _rows(conn: AsyncConnection, table: Table, key: str, ids: set[str]) -> dict[str, dict]:
    if not ids:
        return {}
    rows = await conn.execute(select(table).where(table.c[key].in_(ids)))
    return {r[0]: dict(r._mapping) for r in rows}


@dataclass
class BatchState:
    ctx: Context
    now: datetime
    activities: dict[str, dict]
    needs: dict[str, dict]
    shares: dict[str, dict[str, int]]
    units: dict[str, dict]
    pairings: Pairings
    drafts: list[Draft] = field(default_factory=list)
    dirty: dict[str, set[str]] = field(default_factory=lambda: defaultdict(set))

    @classmethod
    async def load(cls, conn: AsyncConnection, ctx: Context, events: list[Event]) -> BatchState:
        act_ids = {str(e.data.activity_id) for e in events if e.type in ACTIVITY_TYPES}
        need_ids = {e.data.need_id for e in events if e.type in NEED_TYPES}
        share_map: dict[str, dict[str, int]] = defaultdict(dict)
        if act_ids:
            for aid, unit, served in await conn.execute(
                    select(shares.c.activity_id, shares.c.organization_id, shares.c.served)
                    .where(shares.c.activity_id.in_(act_ids))):
                share_map[aid][unit] = served
        unit_ids = {u for s in share_map.values() for u in s}
        for e in events:
            if isinstance(e.data, ActivityFigures):
                unit_ids |= set(served_by_unit(e.data))
        submitted = [e.data for e in events if e.type == "need.submitted"]
        return cls(
            ctx, utc(ctx.clock()),
            await _rows(conn, activities, "activity_id", act_ids),
            await _rows(conn, needs, "need_id", need_ids),
            dict(share_map),
            await _rows(conn, units, "organization_id", unit_ids),
            await Pairings.load(conn, {d.pairing_id for d in submitted if d.pairing_id},
                                {d.base_id for d in submitted if not d.pairing_id}))

    # -- activities and reports ---------------------------------------------------------------
    def activity(self, activity_id: str) -> dict:
        self.dirty["activities"].add(activity_id)
        return self.activities.setdefault(activity_id, {
            "activity_id": activity_id, "organization_id": None, "base_id": None, "title": None,
            "due_at": None, "reported": False, "retracted": False, "logged": False,
            "due_soon_pending": False})

    def on_figures(self, e: Event) -> None:
        aid, d = str(e.data.activity_id), e.data
        known = self.activities.get(aid)
        if known is not None and (known["retracted"] or (e.type == "activity.logged"
                                                         and known["logged"])):
            return  # first logging wins; a retracted activity stays retracted
        act = self.activity(aid)
        due = utc(d.ended_at + self.ctx.report_due)
        # A deadline already passed when first seen (a history load) gets no reminder.
        act.update(organization_id=d.organization_id, base_id=d.base_id, title=d.title,
                   due_at=due, logged=True,
                   due_soon_pending=not act["reported"] and due > self.now)
        self.credit(aid, served_by_unit(d), e)

    def on_retracted(self, e: Event) -> None:
        aid = str(e.data.activity_id)
        self.activity(aid).update(retracted=True, due_soon_pending=False)
        self.credit(aid, {}, e)

    def on_report(self, e: Event) -> None:
        self.activity(str(e.data.activity_id)).update(reported=True, due_soon_pending=False)

    def on_overdue(self, e: Event) -> None:
        aid, act = str(e.data.activity_id), self.activities.get(str(e.data.activity_id), {})
        self.drafts.append(Draft(
            "report_overdue", e.data.organization_id, e.data.due_at, "activity", aid,
            utc(e.data.due_at).isoformat(),
            {"base_id": act.get("base_id"), "title": act.get("title"), "due_at": e.data.due_at}))

    # -- served and milestones ----------------------------------------------------------------
    def credit(self, activity_id: str, new: dict[str, int], e: Event) -> None:
        old = self.shares.get(activity_id, {})
        self.shares[activity_id] = new
        self.dirty["shares"].add(activity_id)
        for unit_id in sorted(set(old) | set(new)):
            delta = new.get(unit_id, 0) - old.get(unit_id, 0)
            if not delta:
                continue
            unit = self.units.setdefault(unit_id, {"organization_id": unit_id, "served": 0,
                                                   "reached": 0})
            unit["served"] += delta
            self.dirty["units"].add(unit_id)
            threshold = milestone(unit["served"])
            if threshold > unit["reached"]:  # each threshold once per unit, ever
                unit["reached"] = threshold
                self.drafts.append(Draft("milestone", unit_id, e.envelope.occurred_at,
                                         "organization", unit_id, str(threshold),
                                         {"threshold": threshold}))

    # -- needs --------------------------------------------------------------------------------
    def on_need(self, e: Event) -> None:
        d = e.data
        if e.type == "need.submitted":
            if d.need_id in self.needs:
                return
            need = self.needs[d.need_id] = {
                "need_id": d.need_id, "base_id": d.base_id, "pairing_id": d.pairing_id,
                "category": d.category, "urgency": d.urgency, "state": "open",
                "claimed_by": None, "submitted_at": e.envelope.occurred_at, "announced": False,
                "followup_due_on": None, "followup_pending": False}
            if recipients := self.pairings.recipients(d.base_id, d.pairing_id):
                need["announced"] = True
                self.drafts += need_submitted(need, recipients)
        else:
            found = self.needs.get(d.need_id)
            if found is None:
                return  # the events service accepts none before its submission
            need = found
            if e.type == "need.followup_assigned":
                # Pending unless assigned when already due (then it is history, not news).
                need.update(followup_due_on=d.due_on, followup_pending=(
                    e.envelope.occurred_at.astimezone(self.ctx.tz).date() <= d.due_on))
            else:
                need["state"] = NEED_STATE[e.type]
                need["claimed_by"] = (d.organization_id if e.type == "need.claimed"
                                      else None if need["state"] == "open"
                                      else need["claimed_by"])
        self.dirty["needs"].add(d.need_id)

    def apply(self, e: Event) -> None:
        if e.type in ("activity.logged", "activity.corrected"):
            self.on_figures(e)
        elif e.type == "activity.retracted":
            self.on_retracted(e)
        elif e.type == "report.submitted":
            self.on_report(e)
        elif e.type == "report.overdue":
            self.on_overdue(e)
        else:
            self.on_need(e)

    async def flush(self, conn: AsyncConnection) -> None:
        await _upsert(conn, activities, ["activity_id"],
                      [self.activities[k] for k in sorted(self.dirty["activities"])])
        await _upsert(conn, needs, ["need_id"],
                      [self.needs[k] for k in sorted(self.dirty["needs"])])
        await _upsert(conn, units, ["organization_id"],
                      [self.units[k] for k in sorted(self.dirty["units"])])
        if ids := self.dirty["shares"]:
            await conn.execute(delete(shares).where(shares.c.activity_id.in_(ids)))
            rows = [{"activity_id": a, "organization_id": u, "served": s}
                    for a in sorted(ids) for u, s in self.shares[a].items()]
            if rows:
                await conn.execute(insert(shares), rows)
        await kinds.insert(conn, self.ctx.subjects, self.ctx.tz, self.drafts)


async def _upsert(conn: AsyncConnection, table: Table, key: list[str], rows: list[dict]) -> None:
    if not rows:
        return
    stmt = upsert(conn, table)
    await conn.execute(stmt.on_conflict_do_update(
        index_elements=key,
        set_={c.name: stmt.excluded[c.name] for c in table.columns if c.name not in key}),
        rows)


def make_apply(ctx: Context):
    async def apply(conn: AsyncConnection, events: list[Event]) -> None:
        if not events:
            return
        state = await BatchState.load(conn, ctx, events)
        for event in events:
            state.apply(event)
        await state.flush(conn)

    return apply
