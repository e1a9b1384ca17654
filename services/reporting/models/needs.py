"""Needs (按需点单): each need's current state, claimer, follow-up and history, from the
`need.*` events (`/v1/reports/needs`, `/v1/reports/needs/items`).

The events service enforces the life cycle (open → claimed → resolved → closed; returned and
reopened → open), so this model only follows the events. A need's `claimed_at` is its first
claim (time to claim counts from submission to the first claim, even if it was returned);
`resolved_at` and `closed_at` are the current ones, cleared when it is reopened.

A need's `description` is residents' free text: it is never stored here, nor reported.

The 12345 rates (三率), over the needs submitted in the scope's period, a need withdrawn or
closed as a duplicate (a repeat linked to its original) counting in none of them:
- response (按时响应率): claimed within `need_response_hours` of submission (the first claim),
  ÷ needs claimed, plus those never claimed whose time has passed (`at`); a need still within
  its time and unclaimed is not yet due.
- resolution (实际解决率): needs resolved now (resolved, or closed as confirmed) whose latest
  answer is not "unsatisfied", ÷ needs ever resolved or closed. Closing is not solving: a need
  closed as unresolved, or reopened (it stays in the divisor), or answered "unsatisfied" is not
  resolved until it is resolved again and not answered "unsatisfied" last.
- satisfaction (满意率): needs whose latest answer (`need.feedback`) is "satisfied" ÷ needs
  answered; "partly" is shown on its own and is not satisfied. An answer stands through a
  reopening until a newer one replaces it; needs reopened after an "unsatisfied" answer are
  counted (`reopened_after_unsatisfied`). The answer's reason is free text: never stored here.

A need submitted at the same base, of the same category, within `need_duplicate_hours` of one
still open or claimed there is flagged `possible_duplicate_of` the earliest such need (decided
when it is applied, in stream order, so a replay decides the same); the flag shows while the
need is open or claimed. `need.linked` closes it as a duplicate, `linked_to` its original.

What is merely early is applied by state, never parked: TONGXIN_EVENTS holds each need's events
in the order they were accepted (the events relay's design), but should a claim (or any later
step) ever be read before its need's submission, it is held (`need_early`) and applied, in
stream order, the moment the submission arrives.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Depends, Query, Request
from pydantic import Field, create_model
from sqlalchemy import (
    BigInteger,
    Column,
    ColumnElement,
    Date,
    DateTime,
    Float,
    Integer,
    Select,
    String,
    Table,
    Text,
    and_,
    case,
    delete,
    func,
    literal_column,
    or_,
    select,
)
from sqlalchemy.ext.asyncio import AsyncConnection

from services.reporting.models.labels import label_map, registry_entities
from services.reporting.readmodel import Batch, Event, ReadModel
from services.reporting.reports import Column as Col
from services.reporting.reports import (
    FormatQuery,
    HeadersQuery,
    MinSeq,
    Report,
    answer,
    documented,
)
from services.reporting.scope import Scope, scope_query
from services.reporting.store import metadata
from shared.dates import Instant
from shared.envelope import Envelope
from shared.event_types import EVENT_TYPES
from shared.http import Offset
from shared.need_duplicates import possible_original
from shared.projection import upsert
from shared.responses import Answer, DateText, DateTimeText
from shared.settings import Settings
from shared.taxonomy import SERVICE_TYPES

NAME = "reporting-needs"

GroupBy = Literal["base", "organization", "pairing", "category", "month"]
State = Literal["open", "claimed", "resolved", "closed"]
STATES = ("open", "claimed", "resolved", "closed")
OUTCOMES = ("confirmed", "unresolved", "withdrawn", "duplicate")
LIVE = ("open", "claimed")  # a follow-up still owed
# TONGXIN_NEED_RESPONSE_HOURS's default, for callers without the settings at hand.
RESPONSE_HOURS: float = Settings.model_fields["need_response_hours"].default
ANSWERS = ("satisfied", "partly", "unsatisfied")

needs = Table(
    "need_items", metadata,
    Column("need_id", String(64), primary_key=True),
    Column("seq", BigInteger, nullable=False),  # the last event applied to it
    Column("base_id", String(64), nullable=False, index=True),
    Column("pairing_id", String(64), nullable=True, index=True),
    Column("title", String(200), nullable=False),
    Column("category", String(40), nullable=False),
    Column("urgency", String(10), nullable=False),
    Column("channel", String(10), nullable=False),
    Column("state", String(10), nullable=False),
    Column("outcome", String(12), nullable=True),
    Column("claimer_id", String(64), nullable=True, index=True),
    Column("submitted_at", DateTime(timezone=True), nullable=False),
    Column("day", Date, nullable=False, index=True),  # submitted, local: the period
    Column("claimed_at", DateTime(timezone=True), nullable=True),
    Column("resolved_at", DateTime(timezone=True), nullable=True),
    Column("closed_at", DateTime(timezone=True), nullable=True),
    Column("hours_to_claim", Float, nullable=True),
    Column("hours_to_resolve", Float, nullable=True),
    Column("followup_assignee_id", String(64), nullable=True),
    Column("followup_due_on", Date, nullable=True),
    Column("followup_note", Text, nullable=True),
    # The 12345 rates (0014_need_rates)
    Column("month", String(7), nullable=True, index=True),  # of `day`: group_by=month
    Column("settled_at", DateTime(timezone=True), nullable=True),  # first resolved or closed
    Column("satisfaction", String(12), nullable=True),  # the latest answer
    Column("respondent", String(10), nullable=True),
    Column("answered_at", DateTime(timezone=True), nullable=True),
    Column("reopened_unsatisfied", Integer, nullable=False, default=0),
    Column("duplicate_of", String(64), nullable=True),  # flagged when applied
    Column("linked_to", String(64), nullable=True),
)

history = Table(
    "need_history", metadata,
    Column("need_id", String(64), primary_key=True),
    Column("seq", BigInteger, primary_key=True),
    Column("type", String(40), nullable=False),
    Column("at", DateTime(timezone=True), nullable=False),
    Column("organization_id", String(64), nullable=True),
    Column("reason", Text, nullable=True),
    Column("note", Text, nullable=True),
    Column("outcome", String(12), nullable=True),
    Column("assignee_id", String(64), nullable=True),
    Column("due_on", Date, nullable=True),
    Column("satisfaction", String(12), nullable=True),  # need.feedback (its reason is not kept)
    Column("original_id", String(64), nullable=True),   # need.linked
)


early = Table(
    "need_early", metadata,  # a need's events read before its submission, until it arrives
    Column("need_id", String(64), primary_key=True),
    Column("seq", BigInteger, primary_key=True),
    Column("envelope", Text, nullable=False),
)


# -- handlers ---------------------------------------------------------------------------------

def utc(moment: datetime) -> datetime:
    """Stored in UTC (SQLite keeps no offset); a naive value read back is UTC."""
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def _hours(start: datetime, end: datetime) -> float:
    return max((utc(end) - utc(start)).total_seconds() / 3600, 0.0)


def _submitted(event: Event, batch: Batch) -> dict[str, Any]:
    d, at = event.data, event.envelope.occurred_at
    return {"need_id": d.need_id, "seq": event.seq, "base_id": d.base_id,
            "pairing_id": d.pairing_id, "title": d.title, "category": d.category,
            "urgency": d.urgency, "channel": d.channel, "state": "open", "outcome": None,
            "claimer_id": None, "submitted_at": utc(at), "day": batch.local_day(at),
            "claimed_at": None, "resolved_at": None, "closed_at": None,
            "hours_to_claim": None, "hours_to_resolve": None, "followup_assignee_id": None,
            "followup_due_on": None, "followup_note": None,
            "month": f"{batch.local_day(at):%Y-%m}", "settled_at": None, "satisfaction": None,
            "respondent": None, "answered_at": None, "reopened_unsatisfied": 0,
            "duplicate_of": None, "linked_to": None}


def _follow(row: dict[str, Any], event: Event) -> None:
    """The need's row after one event of its life cycle."""
    d, at, kind = event.data, utc(event.envelope.occurred_at), event.type
    if kind == "need.claimed":
        row.update(state="claimed", claimer_id=d.organization_id)
        if row["claimed_at"] is None:
            row.update(claimed_at=at, hours_to_claim=_hours(row["submitted_at"], at))
    elif kind == "need.returned":
        row.update(state="open", claimer_id=None)
    elif kind == "need.followup_assigned":
        row.update(followup_assignee_id=d.assignee_id, followup_due_on=d.due_on,
                   followup_note=d.note)
    elif kind == "need.resolved":
        row.update(state="resolved", resolved_at=at,
                   hours_to_resolve=_hours(row["submitted_at"], at))
        row["settled_at"] = row["settled_at"] or at
    elif kind == "need.closed":
        row.update(state="closed", outcome=d.outcome, closed_at=at)
        row["settled_at"] = row["settled_at"] or at
    elif kind == "need.reopened":
        if row["satisfaction"] == "unsatisfied":
            row["reopened_unsatisfied"] = (row["reopened_unsatisfied"] or 0) + 1
        row.update(state="open", claimer_id=None, outcome=None, resolved_at=None,
                   hours_to_resolve=None, closed_at=None, linked_to=None)
    elif kind == "need.feedback":
        row.update(satisfaction=d.satisfaction, respondent=d.respondent, answered_at=at)
    elif kind == "need.linked":
        row.update(state="closed", outcome="duplicate", closed_at=at, linked_to=d.original_id)


async def _live_near(conn: AsyncConnection, submitted: list[Event],
                     window: timedelta) -> dict[str, dict[str, Any]]:
    """The needs open or claimed that a batch's new needs may repeat (as stored before it)."""
    if not submitted or window <= timedelta(0):
        return {}
    t, times = needs, [utc(e.envelope.occurred_at) for e in submitted]
    found = await conn.execute(
        select(t.c.need_id, t.c.base_id, t.c.category, t.c.state, t.c.submitted_at).where(
            t.c.state.in_(LIVE), t.c.base_id.in_({e.data.base_id for e in submitted}),
            t.c.category.in_({e.data.category for e in submitted}),
            t.c.submitted_at >= min(times) - window, t.c.submitted_at <= max(times) + window))
    return {r["need_id"]: dict(r) for r in found.mappings()}


async def _held(conn: AsyncConnection, ids: list[str]) -> dict[str, list[Event]]:
    """The events held for needs not submitted yet, per need, in stream order."""
    if not ids:
        return {}
    out: dict[str, list[Event]] = defaultdict(list)
    for r in await conn.execute(select(early).where(early.c.need_id.in_(ids))
                                .order_by(early.c.need_id, early.c.seq)):
        env = Envelope.model_validate_json(r.envelope)
        out[r.need_id].append(Event(r.seq, env, EVENT_TYPES[env.type].data.model_validate(
            env.data)))
    return dict(out)


def _history_row(event: Event) -> dict[str, Any]:
    d = event.data
    return {"need_id": d.need_id, "seq": event.seq, "type": event.type,
            "at": utc(event.envelope.occurred_at),
            "organization_id": getattr(d, "organization_id", None),
            "reason": None if event.type == "need.feedback" else getattr(d, "reason", None),
            "note": getattr(d, "note", None),
            "outcome": getattr(d, "outcome", None), "assignee_id": getattr(d, "assignee_id", None),
            "due_on": getattr(d, "due_on", None),
            "satisfaction": getattr(d, "satisfaction", None),
            "original_id": getattr(d, "original_id", None)}


async def on_need(batch: Batch) -> None:
    """Every `need.*` type: read the batch's needs once, follow their events in stream order,
    write them back in one statement. An event already applied (seq not newer) is skipped; one
    of a need not submitted yet is held until the submission comes (never parked)."""
    conn = batch.conn
    ids = list({e.data.need_id for e in batch.events})
    rows: dict[str, dict[str, Any]] = {
        r["need_id"]: dict(r) for r in (await conn.execute(
            select(needs).where(needs.c.need_id.in_(ids)))).mappings()}
    window = timedelta(hours=batch.settings.need_duplicate_hours)
    near = await _live_near(conn, [e for e in batch.events if e.type == "need.submitted"],
                            window)
    held = await _held(conn, [i for i in ids if i not in rows])
    changed: dict[str, dict[str, Any]] = {}
    events = []
    hold: list[dict[str, Any]] = []
    released: list[str] = []
    for event in batch.events:
        need_id = event.data.need_id
        row = rows.get(need_id)
        if row is not None and row["seq"] >= event.seq:
            continue
        if event.type == "need.submitted":
            if row is not None:
                raise ValueError(f"need {need_id} was already submitted (seq {row['seq']})")
            row = rows[need_id] = _submitted(event, batch)
            pool = [*rows.values(), *(r for k, r in near.items() if k not in rows)]
            row["duplicate_of"] = possible_original(row, pool, window)
            events.append(_history_row(event))
            # What came early, applied after the submission, in the order it was read.
            for waiting in held.pop(need_id, []):
                _follow(row, waiting)
                events.append(_history_row(waiting))
                released.append(need_id)
            row["seq"] = max(event.seq, row["seq"])
            changed[need_id] = row
            continue
        if row is None:
            held.setdefault(need_id, []).append(event)
            hold.append({"need_id": need_id, "seq": event.seq,
                         "envelope": event.envelope.model_dump_json()})
            continue
        _follow(row, event)
        row["seq"] = event.seq
        changed[need_id] = row
        events.append(_history_row(event))
    if hold:
        await conn.execute(upsert(conn, early).on_conflict_do_nothing(
            index_elements=["need_id", "seq"]), hold)
    if released:
        await conn.execute(delete(early).where(early.c.need_id.in_(set(released))))
    if not changed:
        return
    stmt = upsert(conn, needs)
    await conn.execute(stmt.on_conflict_do_update(
        index_elements=["need_id"],
        set_={c.name: stmt.excluded[c.name] for c in needs.columns if c.name != "need_id"}),
        list(changed.values()))
    stmt = upsert(conn, history)
    await conn.execute(stmt.on_conflict_do_nothing(index_elements=["need_id", "seq"]), events)


# -- queries ----------------------------------------------------------------------------------

def in_scope(scope: Scope) -> list[ColumnElement[bool]]:
    """A unit sees the needs it claimed, those under its pairings and those at the bases it is
    paired with; a base or region narrows on the need's base; the period on its submission."""
    t, reg = needs, registry_entities
    out: list[ColumnElement[bool]] = []
    if scope.organization_id:
        units = scope.units()
        pairings = select(reg.c.id).where(reg.c.kind == "pairing",
                                          reg.c.organization_id.in_(units))
        out.append(or_(t.c.claimer_id.in_(units), t.c.pairing_id.in_(pairings),
                       t.c.base_id.in_(scope.paired_bases())))
    return out + replace(scope, organization_id=None).where(base=t.c.base_id, day=t.c.day)


def today(tz: ZoneInfo, at: datetime | None = None) -> date:
    """The local day of `at` (a naive `at` is local), or of now."""
    at = at or datetime.now(UTC)
    return (at.replace(tzinfo=tz) if at.tzinfo is None else at).astimezone(tz).date()


def _overdue(on: date) -> ColumnElement[bool]:
    return and_(needs.c.state.in_(LIVE), needs.c.followup_due_on < on)


def _count(cond: ColumnElement[bool], label: str):
    return func.coalesce(func.sum(case((cond, 1), else_=0)), 0).label(label)


def _counts(on: date, rates: Rates) -> list:
    t = needs
    return [func.count().label("total"),
            *(_count(t.c.state == s, s) for s in STATES),
            *(_count(and_(t.c.state == "closed", t.c.outcome == o), f"closed_{o}")
              for o in OUTCOMES),
            _count(_overdue(on), "followups_overdue"),
            _count(and_(t.c.duplicate_of.is_not(None), t.c.state.in_(LIVE)),
                   "possible_duplicates"),
            *(_count(cond, name) for name, cond in rates.conditions().items())]


class Rates:
    """The conditions of the 12345 rates (the module's doc says what each counts): a need
    claimed within `response_hours` was answered on time; one never claimed is due once that
    time has passed at `at`."""

    def __init__(self, response_hours: float = RESPONSE_HOURS, at: datetime | None = None):
        self.response_hours = response_hours
        self.cutoff = utc(at or datetime.now(UTC)) - timedelta(hours=response_hours)

    def conditions(self) -> dict[str, ColumnElement[bool]]:
        t = needs
        counted = or_(t.c.state != "closed", t.c.outcome.is_(None),
                      t.c.outcome.not_in(("withdrawn", "duplicate")))
        claimed = t.c.claimed_at.is_not(None)
        solved = or_(t.c.state == "resolved", and_(t.c.state == "closed",
                                                   t.c.outcome == "confirmed"))
        not_unsatisfied = or_(t.c.satisfaction.is_(None), t.c.satisfaction != "unsatisfied")
        return {
            "responded_on_time": and_(counted, claimed,
                                      t.c.hours_to_claim <= self.response_hours),
            "responded_late": and_(counted, claimed, t.c.hours_to_claim > self.response_hours),
            "never_claimed": and_(counted, t.c.claimed_at.is_(None),
                                  t.c.submitted_at < self.cutoff),
            "settled": and_(counted, t.c.settled_at.is_not(None)),
            "solved": and_(counted, t.c.settled_at.is_not(None), solved, not_unsatisfied),
            **{f"answered_{a}": and_(counted, t.c.satisfaction == a) for a in ANSWERS},
            "reopened_after_unsatisfied": and_(counted, t.c.reopened_unsatisfied > 0),
        }


RATE_COUNTS = ("responded_on_time", "responded_late", "never_claimed", "settled", "solved",
               *(f"answered_{a}" for a in ANSWERS), "reopened_after_unsatisfied")
COUNTS = ("total", *STATES, *(f"closed_{o}" for o in OUTCOMES), "followups_overdue",
          "possible_duplicates", *RATE_COUNTS)
RATES = ("response_rate", "resolution_rate", "satisfaction_rate")
KEYS = {"base": needs.c.base_id, "organization": needs.c.claimer_id,
        "pairing": needs.c.pairing_id, "category": needs.c.category, "month": needs.c.month}


def _ratio(part: int, whole: int) -> float | None:
    return round(part / whole, 4) if whole else None


def with_rates(counts: dict[str, Any]) -> dict[str, Any]:
    """The three rates of one group's counts (None when nothing is due)."""
    responded = counts["responded_on_time"] + counts["responded_late"]
    answered = sum(counts[f"answered_{a}"] for a in ANSWERS)
    return {**counts,
            "response_due": responded + counts["never_claimed"],
            "response_rate": _ratio(counts["responded_on_time"],
                                    responded + counts["never_claimed"]),
            "resolution_rate": _ratio(counts["solved"], counts["settled"]),
            "answered": answered,
            "satisfaction_rate": _ratio(counts["answered_satisfied"], answered)}


def medians(value: ColumnElement[Any], where: list[ColumnElement[bool]],
            key: ColumnElement[Any] | None = None) -> Select:
    """The median of `value` per `key` (or over everything), in SQL on both back-ends: the
    mean of the middle one or two values, found by row number within each group, so no row
    leaves the database (`percentile_cont` is PostgreSQL's alone)."""
    group = key if key is not None else literal_column("0")
    ranked = (select(group.label("key"), value.label("v"),
                     func.row_number().over(partition_by=key, order_by=value).label("rn"),
                     func.count().over(partition_by=key).label("n"))
              .where(*where, value.is_not(None)).subquery())
    return (select(ranked.c.key, func.avg(ranked.c.v).label("median"))
            .where(ranked.c.rn.in_([(ranked.c.n + 1) // 2, (ranked.c.n + 2) // 2]))
            .group_by(ranked.c.key))


async def _medians(conn: AsyncConnection, value: ColumnElement[Any],
                   where: list[ColumnElement[bool]],
                   key: ColumnElement[Any] | None = None) -> dict[Any, float]:
    return {k: round(float(m), 2)
            for k, m in await conn.execute(medians(value, where, key))}


async def report_rows(conn: AsyncConnection, group_by: GroupBy, scope: Scope,
                      on: date, rates: Rates | None = None) -> tuple[list[dict], dict]:
    """Rows per group and the totals; medians from each need's own durations (the totals'
    over every need in scope, never from the rows'); the rates from each group's counts."""
    key, where = KEYS[group_by], in_scope(scope)
    rates = rates or Rates()
    grouped = await conn.execute(select(key.label("key"), *_counts(on, rates)).where(*where)
                                 .group_by(key))
    counts = {r.key: with_rates({k: int(r._mapping[k]) for k in COUNTS}) for r in grouped}
    total_row = (await conn.execute(select(*_counts(on, rates)).where(*where))).one()
    totals: dict[str, Any] = with_rates({k: int(total_row._mapping[k]) for k in COUNTS})

    claim, resolve = needs.c.hours_to_claim, needs.c.hours_to_resolve
    totals["median_hours_to_claim"] = (await _medians(conn, claim, where)).get(0)
    totals["median_hours_to_resolve"] = (await _medians(conn, resolve, where)).get(0)
    to_claim = await _medians(conn, claim, where, key)
    to_resolve = await _medians(conn, resolve, where, key)

    keys = sorted(counts, key=lambda k: (k is None, k or ""))
    labels = ({k: k for k in keys} if group_by == "month"
              else await label_map(conn, group_by, keys))
    rows = [{"key": k, "label": labels.get(k, k), **counts[k],
             "median_hours_to_claim": to_claim.get(k),
             "median_hours_to_resolve": to_resolve.get(k)} for k in keys]
    return rows, totals


async def unit_figures(conn: AsyncConnection, scope: Scope,
                       at: datetime | None = None,
                       tz: ZoneInfo = ZoneInfo("Asia/Shanghai"),
                       response_hours: float = RESPONSE_HOURS) -> dict[str, dict[str, float]]:
    """{claiming organization_id: {needs_claimed, needs_resolved, followups_overdue,
    need_response_rate, need_resolution_rate, need_satisfaction_rate}} within the scope (the
    year-end assessment's input): needs it holds now, those resolved or closed as confirmed,
    its follow-ups overdue on `at`'s day (default today), and the three rates of the needs it
    holds (a rate with nothing due is 0, as a figure a unit has none of)."""
    t, on = needs, today(tz, at)
    done = or_(t.c.state == "resolved", and_(t.c.state == "closed", t.c.outcome == "confirmed"))
    rates = Rates(response_hours, at)
    result = await conn.execute(
        select(t.c.claimer_id.label("key"), func.count().label("n"),
               _count(done, "done"), _count(_overdue(on), "overdue"),
               *(_count(cond, name) for name, cond in rates.conditions().items()))
        .where(*in_scope(scope), t.c.claimer_id.is_not(None)).group_by(t.c.claimer_id))
    out: dict[str, dict[str, float]] = {}
    for r in result.mappings():
        figures = with_rates({k: int(r[k]) for k in RATE_COUNTS})
        out[r["key"]] = {"needs_claimed": float(r["n"]), "needs_resolved": float(r["done"]),
                         "followups_overdue": float(r["overdue"]),
                         **{f"need_{k}": float(figures[k] or 0.0) for k in RATES}}
    return out


# -- items ------------------------------------------------------------------------------------

def _items_query(scope: Scope, state: str | None, category: str | None,
                 overdue_on: date | None = None,
                 possible_duplicate: bool = False) -> Select:
    t, reg = needs, registry_entities
    base, org = reg.alias("base_record"), reg.alias("claimer_record")
    stmt = (select(t, base.c.name.label("base_label"), org.c.name.label("claimer_label"))
            .select_from(t.outerjoin(base, and_(base.c.kind == "base", base.c.id == t.c.base_id))
                         .outerjoin(org, and_(org.c.kind == "organization",
                                              org.c.id == t.c.claimer_id)))
            .where(*in_scope(scope)))
    if state:
        stmt = stmt.where(t.c.state == state)
    if category:
        stmt = stmt.where(t.c.category == category)
    if possible_duplicate:
        stmt = stmt.where(t.c.duplicate_of.is_not(None), t.c.state.in_(LIVE))
    if overdue_on is not None:  # follow-ups overdue, the longest overdue first
        return stmt.where(_overdue(overdue_on)).order_by(t.c.followup_due_on, t.c.need_id)
    return stmt.order_by(t.c.submitted_at, t.c.need_id)


def _local(moment: datetime | None, tz: ZoneInfo) -> str | None:
    return utc(moment).astimezone(tz).isoformat() if moment is not None else None


def _item(r: Any, tz: ZoneInfo, on: date) -> dict[str, Any]:
    due = r.followup_due_on
    followup = None
    if r.followup_assignee_id:
        followup = {"assignee_id": r.followup_assignee_id,
                    "due_on": due.isoformat() if due else None, "note": r.followup_note,
                    "overdue": bool(due and due < on and r.state in LIVE)}
    return {"need_id": r.need_id, "base_id": r.base_id, "base_label": r.base_label or r.base_id,
            "pairing_id": r.pairing_id, "title": r.title, "category": r.category,
            "category_label": SERVICE_TYPES.get(r.category, (r.category,))[0],
            "urgency": r.urgency, "channel": r.channel, "state": r.state, "outcome": r.outcome,
            "organization_id": r.claimer_id,
            "organization_label": (r.claimer_label or r.claimer_id) if r.claimer_id else None,
            "followup": followup,
            "possible_duplicate_of": r.duplicate_of if r.state in LIVE else None,
            "linked_to": r.linked_to, "satisfaction": r.satisfaction,
            "respondent": r.respondent,
            "reopened_after_unsatisfied": int(r.reopened_unsatisfied or 0),
            "submitted_at": _local(r.submitted_at, tz),
            "claimed_at": _local(r.claimed_at, tz), "resolved_at": _local(r.resolved_at, tz),
            "closed_at": _local(r.closed_at, tz)}


async def resolved(conn: AsyncConnection, scope: Scope, tz: ZoneInfo, on: date,
                   limit: int) -> list[dict]:
    """Needs in scope that were resolved, first resolved first (a report names them)."""
    stmt = (_items_query(scope, None, None).where(needs.c.resolved_at.is_not(None))
            .order_by(None).order_by(needs.c.resolved_at, needs.c.need_id).limit(limit))
    return [_item(r, tz, on) for r in await conn.execute(stmt)]


_EVENT_FIELDS = ("organization_id", "reason", "note", "outcome", "assignee_id",
                 "satisfaction", "original_id")


async def _histories(conn: AsyncConnection, ids: list[str],
                     tz: ZoneInfo) -> dict[str, list[dict]]:
    out: dict[str, list[dict]] = defaultdict(list)
    if not ids:
        return out
    h = history
    for r in await conn.execute(select(h).where(h.c.need_id.in_(ids)).order_by(h.c.seq)):
        entry: dict[str, Any] = {"type": r.type, "at": _local(r.at, tz)}
        entry.update({k: getattr(r, k) for k in _EVENT_FIELDS if getattr(r, k) is not None})
        if r.due_on is not None:
            entry["due_on"] = r.due_on.isoformat()
        out[r.need_id].append(entry)
    return out


ITEM_COLUMNS = [
    Col("need_id", "需求编号", "Need"), Col("base_label", "服务基地", "Base"),
    Col("pairing_id", "结对", "Pairing"), Col("title", "需求", "Title"),
    Col("category_label", "类别", "Category"), Col("urgency", "紧急程度", "Urgency"),
    Col("channel", "渠道", "Channel"), Col("state", "状态", "State"),
    Col("outcome", "办结结果", "Outcome"), Col("organization_label", "认领单位", "Claimed by"),
    Col("followup.assignee_id", "落实专人", "Follow-up by"),
    Col("followup.due_on", "跟踪期限", "Follow-up due"),
    Col("followup.overdue", "跟踪逾期", "Follow-up overdue"),
    Col("possible_duplicate_of", "疑似重复(原需求)", "Possible duplicate of"),
    Col("linked_to", "已关联原需求", "Linked to"),
    Col("satisfaction", "评价", "Answer"), Col("respondent", "评价方", "Answered by"),
    Col("reopened_after_unsatisfied", "不满意后重办次数", "Reopened after unsatisfied"),
    Col("submitted_at", "提交时间", "Submitted"), Col("claimed_at", "认领时间", "Claimed"),
    Col("resolved_at", "解决时间", "Resolved"), Col("closed_at", "办结时间", "Closed"),
]


async def items_report(conn: AsyncConnection, scope: Scope, tz: ZoneInfo, on: date, *,
                       state: str | None = None, category: str | None = None,
                       limit: int | None = 100, offset: int = 0,
                       followup_overdue: bool = False,
                       possible_duplicate: bool = False) -> Report:
    """A page of needs with their history (JSON), or every need streamed (limit None: the
    spreadsheets, which leave the history out). `followup_overdue`: only the needs whose
    follow-up is overdue on `on`, the longest overdue first; `possible_duplicate`: only the
    needs flagged as possible duplicates."""
    stmt = _items_query(scope, state, category, on if followup_overdue else None,
                        possible_duplicate)
    title = ("需求清单办理台账", "Needs and their handling")
    if limit is None:
        async def stream() -> AsyncIterator[dict]:
            async for r in await conn.stream(stmt):
                yield _item(r, tz, on)
        return Report(*title, ITEM_COLUMNS, stream())
    count = (await conn.execute(select(func.count()).select_from(
        stmt.order_by(None).subquery()))).scalar_one()
    rows = [_item(r, tz, on) for r in await conn.execute(stmt.limit(limit).offset(offset))]
    histories = await _histories(conn, [r["need_id"] for r in rows], tz)
    for row in rows:
        row["history"] = histories.get(row["need_id"], [])
    return Report(*title, ITEM_COLUMNS, rows,
                  extra={"total": int(count), "limit": limit, "offset": offset})


# -- the report -------------------------------------------------------------------------------

REPORT_COLUMNS = [
    Col("label", "名称", "Name"), Col("key", "编码", "Key"), Col("total", "需求总数", "Needs"),
    Col("open", "待认领", "Open"), Col("claimed", "已认领", "Claimed"),
    Col("resolved", "已解决", "Resolved"), Col("closed", "已办结", "Closed"),
    Col("closed_confirmed", "办结·确认解决", "Closed: confirmed"),
    Col("closed_unresolved", "办结·未解决", "Closed: unresolved"),
    Col("closed_withdrawn", "办结·撤回", "Closed: withdrawn"),
    Col("closed_duplicate", "办结·重复", "Closed: duplicate"),
    Col("median_hours_to_claim", "认领用时中位数(小时)", "Median hours to claim"),
    Col("median_hours_to_resolve", "解决用时中位数(小时)", "Median hours to resolve"),
    Col("followups_overdue", "跟踪逾期", "Follow-ups overdue"),
    Col("possible_duplicates", "疑似重复", "Possible duplicates"),
    Col("response_due", "应响应", "Response due"),
    Col("responded_on_time", "按时响应", "Claimed on time"),
    Col("responded_late", "超时响应", "Claimed late"),
    Col("never_claimed", "超时未响应", "Never claimed"),
    Col("response_rate", "按时响应率", "Response rate"),
    Col("settled", "已办理(解决或办结)", "Settled"), Col("solved", "实际解决", "Solved"),
    Col("resolution_rate", "实际解决率", "Resolution rate"),
    Col("answered", "已评价", "Answered"), Col("answered_satisfied", "满意", "Satisfied"),
    Col("answered_partly", "部分满意", "Partly satisfied"),
    Col("answered_unsatisfied", "不满意", "Not satisfied"),
    Col("satisfaction_rate", "满意率", "Satisfaction rate"),
    Col("reopened_after_unsatisfied", "不满意后重办", "Reopened after unsatisfied"),
]
GROUP_TITLES = {"base": ("按服务基地", "by base"), "organization": ("按认领单位", "by claimer"),
                "pairing": ("按结对", "by pairing"), "category": ("按类别", "by category"),
                "month": ("按月", "by month")}


async def needs_report(conn: AsyncConnection, group_by: GroupBy, scope: Scope,
                       on: date, rates: Rates | None = None) -> Report:
    rates = rates or Rates()
    rows, totals = await report_rows(conn, group_by, scope, on, rates)
    zh, en = GROUP_TITLES[group_by]
    return Report(f"按需点单台账（{zh}）", f"Needs ({en})", REPORT_COLUMNS, rows,
                  {"key": None, "label": None, **totals},
                  extra={"group_by": group_by, "today": on.isoformat(),
                         "response_hours": rates.response_hours})



# -- what the routes answer -------------------------------------------------------------------

_ROW: dict[str, Any] = {
    "key": (str | None, ...), "label": (str | None, ...),
    **{count: (int, ...) for count in (*COUNTS, "response_due", "answered")},
    **{rate: (float | None, ...) for rate in RATES},
    "median_hours_to_claim": (float | None, ...), "median_hours_to_resolve": (float | None, ...)}
NeedsRow = create_model(
    "NeedsRow", __base__=Answer,
    __doc__="One group's needs by state, and closed by outcome (in `totals`: every need in "
            "scope; key and label null). Medians in hours, from each need's own durations. "
            "The 12345 rates (0-1, null when nothing is due): response_rate = "
            "responded_on_time ÷ response_due (responded_on_time + responded_late + "
            "never_claimed); resolution_rate = solved ÷ settled; satisfaction_rate = "
            "answered_satisfied ÷ answered. Withdrawn and duplicate needs are in none.",
    **_ROW)


class Needs(Answer):
    rows: list[NeedsRow]  # type: ignore[valid-type]
    totals: NeedsRow  # type: ignore[valid-type]
    group_by: str
    today: DateText = Field(description="the day follow-ups are judged overdue on")
    response_hours: float = Field(description="a need claimed within this many hours of its "
                                              "submission was claimed on time (a setting)")
    as_of: int


class Followup(Answer):
    assignee_id: str
    due_on: DateText | None
    note: str | None
    overdue: bool


class NeedEvent(Answer):
    """One event in a need's history (its fields only where it has them)."""

    type: str
    at: DateTimeText | None
    organization_id: str | None = None
    reason: str | None = None
    note: str | None = None
    outcome: str | None = None
    assignee_id: str | None = None
    due_on: DateText | None = None
    satisfaction: str | None = None
    original_id: str | None = None


class NeedItem(Answer):
    need_id: str
    base_id: str
    base_label: str | None
    pairing_id: str | None
    title: str
    category: str
    category_label: str
    urgency: str
    channel: str
    state: State
    outcome: str | None
    organization_id: str | None = Field(description="the claimer")
    organization_label: str | None
    followup: Followup | None
    possible_duplicate_of: str | None = Field(description=(
        "while open or claimed: the earliest need still open or claimed at its base, of its "
        "category, submitted within TONGXIN_NEED_DUPLICATE_HOURS of it"))
    linked_to: str | None = Field(description="the original, when linked as its repeat")
    satisfaction: Literal["satisfied", "partly", "unsatisfied"] | None = Field(
        description="the latest answer (need.feedback); its reason is never reported")
    respondent: Literal["community", "resident"] | None
    reopened_after_unsatisfied: int
    submitted_at: DateTimeText | None
    claimed_at: DateTimeText | None
    resolved_at: DateTimeText | None
    closed_at: DateTimeText | None
    history: list[NeedEvent]


class NeedItems(Answer):
    rows: list[NeedItem]
    total: int
    limit: int | None
    offset: int
    as_of: int

router = APIRouter(tags=["reports"])
AtQuery = Annotated[Instant | None, Query(description=(
    "the moment follow-ups are judged overdue at (default now; without an offset: local)"))]


def _tz(request: Request) -> ZoneInfo:
    return ZoneInfo(request.app.state.settings.timezone)


def _clock(at: datetime | None) -> tuple[()] | None:
    """What the answer varies with beyond its query: judged now (None: the clock, so it is
    computed each time), or at the moment asked (in the query)."""
    return None if at is None else ()


def _moment(at: datetime | None, tz: ZoneInfo) -> datetime | None:
    """`at` as an aware moment (a naive one is local), or None for now."""
    return None if at is None else at.replace(tzinfo=tz) if at.tzinfo is None else at


@router.get("/v1/reports/needs", summary="Needs by state per group, medians, overdue "
            "follow-ups, the 12345 rates", **documented(Needs))
async def get_needs(
    request: Request, scope: Annotated[Scope, Depends(scope_query)],
    group_by: GroupBy = "base", at: AtQuery = None,
    min_seq: MinSeq = None, format: FormatQuery = "json", headers: HeadersQuery = "zh",
) -> Any:
    """Counts by state (and closed by outcome), median hours from submission to the first
    claim and to resolution, follow-ups overdue (due before today, need still open or
    claimed), possible duplicates, and the 12345 rates (response, resolution, satisfaction)
    with their counts. `group_by=organization` is the current claimer (unclaimed needs: key
    null); `month` the month of submission. A need never claimed is due for response once
    TONGXIN_NEED_RESPONSE_HOURS have passed at `at`."""
    on = today(_tz(request), at)
    rates = Rates(request.app.state.settings.need_response_hours,
                  _moment(at, _tz(request)))
    return await answer(request, lambda conn: needs_report(conn, group_by, scope, on, rates),
                        models=(NAME,), min_seq=min_seq, format=format, headers=headers,
                        filename=f"needs-{group_by}", scope=scope, varies=_clock(at))


@router.get("/v1/reports/needs/items", summary="Each need with its state, claimer and history",
            **documented(NeedItems))
async def get_need_items(
    request: Request, scope: Annotated[Scope, Depends(scope_query)],
    state: State | None = None,
    category: Annotated[str | None, Query(max_length=40)] = None,
    possible_duplicate: Annotated[bool, Query(description=(
        "only the needs flagged as possible duplicates (open or claimed), for their claimer "
        "to link or not"))] = False,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    offset: Offset = 0, at: AtQuery = None,
    followup: Annotated[Literal["overdue"] | None, Query(description=(
        "overdue: only needs whose follow-up is overdue (due before today, need still open "
        "or claimed), the longest overdue first"))] = None,
    min_seq: MinSeq = None, format: FormatQuery = "json", headers: HeadersQuery = "zh",
) -> Any:
    """JSON: a page (`limit`, `offset`, `total`), each need with its `history`. CSV/XLSX:
    every need in scope, without the history. `followup=overdue`: the follow-ups overdue."""
    tz = _tz(request)
    on = today(tz, at)
    page = limit if format == "json" else None
    return await answer(
        request, lambda conn: items_report(conn, scope, tz, on, state=state, category=category,
                                           limit=page, offset=offset,
                                           followup_overdue=followup == "overdue",
                                           possible_duplicate=possible_duplicate),
        models=(NAME,), min_seq=min_seq, format=format, headers=headers, filename="need-items",
        scope=scope, varies=_clock(at))


MODEL = ReadModel(
    name=NAME, tables=(needs, history, early),
    handlers={t: on_need for t in ("need.submitted", "need.claimed", "need.returned",
                                   "need.followup_assigned", "need.resolved", "need.closed",
                                   "need.reopened", "need.feedback", "need.linked")},
    router=router, description="needs: state, claimer, follow-up, history")
