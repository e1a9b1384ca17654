"""Accepting events: check references, store once, publish to `TONGXIN_EVENTS`, report `seq`.

HTTP offers one event at a time; the bus offers batches. Both go through `accept_batch`: one
transaction to store, one pipelined round of publishes, one transaction to record the seqs.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from datetime import UTC, datetime

from nats.js import JetStreamContext
from opentelemetry.trace import SpanKind
from sqlalchemy import bindparam, select, update
from sqlalchemy.ext.asyncio import AsyncEngine

from services.events import store
from services.events.domain import Offer, references
from shared.bus import MSG_ID, first_error, gather_acks
from shared.errors import Conflict, FieldError, Rejected, Unavailable
from shared.events import ActivityFigures
from shared.projection import Projection, upsert
from shared.replica import known_ids, record_json
from shared.subjects import Names
from shared.taxonomy import SERVICE_TYPES
from shared.telemetry import inject, producer_span, tracer

log = logging.getLogger(__name__)


async def _team_units(conn, team_ids: set[str]) -> dict[str, str]:
    """{team id: the organisation leading it}, from the registry replica."""
    if not team_ids:
        return {}
    t = store.registry_entities
    rows = await conn.execute(select(t.c.id, t.c.record).where(t.c.kind == "team",
                                                                t.c.id.in_(team_ids)))
    return {r.id: record_json(r.record).get("organization_id") for r in rows}


@dataclass(frozen=True)
class _Row:
    """An accepted event as stored, enough to publish it."""

    event_id: str
    type: str
    envelope: str
    trace_headers: dict


@dataclass(frozen=True)
class Receipt:
    event_id: str
    seq: int | None
    duplicate: bool
    refused: list[FieldError] | None = None  # valid alone, at odds with what was accepted


class ReplicaBehind(Unavailable):
    """References are unknown and the registry replica could not be brought up to date:
    refusing now could refuse what the registry knows. Try again shortly (HTTP 503)."""


class Acceptor:
    def __init__(self, engine: AsyncEngine, js: JetStreamContext, names: Names,
                 replica: Projection, publish_timeout: float = 5.0):
        self.engine = engine
        self.js = js
        self.names = names
        self.replica = replica
        self.publish_timeout = publish_timeout

    # -- references ----------------------------------------------------------------------
    async def check(self, offers: list[Offer]) -> list[list[FieldError]]:
        """Reference errors per offer, judged against everything the registry stream holds
        now: a base registered (or deactivated) a moment ago counts as such. The replica is
        usually current, so catching up is one stream-info request."""
        try:
            current = await self.replica.caught_up(timeout=3.0)
        except Exception as exc:  # NATS away: the replica may still know enough
            log.warning("could not check the registry replica is current: %r", exc)
            current = False
        errors, unknown = await self._reference_errors(offers)
        if unknown and not current:
            raise ReplicaBehind("the registry replica is behind the registry stream")
        return errors

    async def _reference_errors(self, offers: list[Offer]) -> tuple[list[list[FieldError]],
                                                                       bool]:
        wanted = {(kind, id_) for o in offers for _, kind, id_ in references(o.data)}
        codes = {c for o in offers if isinstance(o.data, ActivityFigures)
                 for c in o.data.service_types if c not in SERVICE_TYPES}
        wanted |= {("service_type", c) for c in codes}
        teams = {o.data.team_id for o in offers
                 if isinstance(o.data, ActivityFigures) and o.data.team_id}
        async with self.engine.connect() as conn:
            known = await known_ids(conn, store.registry_entities, wanted)
            team_units = await _team_units(conn, teams)
        out = []
        for o in offers:
            errs = []
            for field, kind, id_ in references(o.data):
                if (kind, id_) not in known:
                    errs.append(FieldError(field=field, message=f"no {kind} with id {id_!r} is "
                                                                "known to the registry"))
                elif not known[(kind, id_)]:
                    errs.append(FieldError(field=field, message=f"{kind} {id_!r} is deactivated"))
            if isinstance(o.data, ActivityFigures):
                unit = team_units.get(o.data.team_id)
                if unit and unit != o.data.organization_id:
                    errs.append(FieldError(field="data.team_id", message=(
                        f"team {o.data.team_id!r} belongs to another organisation ({unit})")))
                for i, code in enumerate(o.data.service_types):
                    if code not in SERVICE_TYPES and ("service_type", code) not in known:
                        errs.append(FieldError(field=f"data.service_types[{i}]",
                                               message=f"unknown service type {code!r}"))
            out.append(errs)
        return out, bool(wanted - known.keys())

    # -- accepting -----------------------------------------------------------------------
    async def accept_one(self, offer: Offer, via: str) -> Receipt:
        (errors,) = await self.check([offer])
        if errors:
            raise Rejected(errors)
        (receipt,) = await self.accept_batch([offer], via, [inject()])
        if receipt.refused:
            raise Conflict(receipt.refused)
        return receipt

    async def accept_batch(self, offers: list[Offer], via: str,
                           trace_headers: list[dict] | None = None) -> list[Receipt]:
        """Store the (already checked) offers once each and publish what is unpublished.
        `trace_headers[i]` is the trace offer i came in with; its event carries it on."""
        ids = [str(o.envelope.event_id) for o in offers]
        traces = trace_headers or [inject()] * len(offers)
        rows = self._new_rows(offers, ids, traces, via)
        t = store.accepted_events
        async with self.engine.begin() as conn:
            before = {r.event_id: r.seq for r in await conn.execute(
                select(t.c.event_id, t.c.seq).where(t.c.event_id.in_(ids)))}
            rows = [r for r in rows if r["event_id"] not in before]
            inserted: set[str] = set()
            if rows:  # a concurrent offer of the same event, or of the same activity, loses
                inserted = set((await conn.execute(
                    upsert(conn, t).on_conflict_do_nothing().returning(t.c.event_id),
                    rows)).scalars())
            lost = [r for r in rows if r["event_id"] not in inserted]
            if lost:
                raced = {r.event_id: r.seq for r in await conn.execute(
                    select(t.c.event_id, t.c.seq).where(
                        t.c.event_id.in_([r["event_id"] for r in lost])))}
                before |= raced
                refused = {r["event_id"]: await self._logged_by(conn, r) for r in lost
                           if r["event_id"] not in raced}
            else:
                refused = {}
        new = [_Row(r["event_id"], r["type"], r["envelope"], r["trace_headers"])
               for r in rows if r["event_id"] in inserted]
        stale = [e for e, s in before.items() if s is None]  # stored earlier, never published
        seqs = dict(before)
        if new or stale:
            try:
                if stale:
                    seqs.update(await self.publish(stale))
                if new:
                    seqs.update(await self._publish_rows(new))
            except Exception as exc:  # stored is accepted: the relay publishes it later
                log.warning("accepted %d events but could not publish them yet: %r",
                            len(new) + len(stale), exc)
        receipts, counted = [], set()
        for event_id in ids:
            duplicate = event_id in before or event_id in counted
            counted.add(event_id)
            receipts.append(Receipt(event_id, seqs.get(event_id), duplicate,
                                    refused.get(event_id)))
        return receipts

    @staticmethod
    def _new_rows(offers: list[Offer], ids: list[str], traces: list[dict],
                  via: str) -> list[dict]:
        now, rows, seen = datetime.now(UTC), [], set()
        for o, event_id, trace in zip(offers, ids, traces, strict=True):
            if event_id in seen:  # a repeat inside one batch is a duplicate of the first
                continue
            seen.add(event_id)
            rows.append({
                "event_id": event_id, "type": o.envelope.type, "source": o.envelope.source,
                "occurred_at": o.envelope.occurred_at, "received_at": now, "via": via,
                "envelope": o.envelope.model_dump_json(), "trace_headers": trace,
                "logged_activity_id": (str(o.data.activity_id)
                                       if o.envelope.type == "activity.logged" else None)})
        return rows

    @staticmethod
    async def _logged_by(conn, row: dict) -> list[FieldError]:
        t = store.accepted_events
        other = (await conn.execute(select(t.c.event_id).where(
            t.c.logged_activity_id == row["logged_activity_id"]))).scalar()
        return [FieldError(field="data.activity_id", message=(
            f"activity {row['logged_activity_id']} was already logged (event {other}); "
            "send activity.corrected to change its figures"))]

    async def publish(self, event_ids: list[str]) -> dict[str, int]:
        """Publish stored events in their stored order; record and return their seqs."""
        t = store.accepted_events
        async with self.engine.connect() as conn:
            rows = (await conn.execute(
                select(t.c.event_id, t.c.type, t.c.envelope, t.c.trace_headers)
                .where(t.c.event_id.in_(event_ids)).order_by(t.c.id))).all()
        return await self._publish_rows(rows)

    async def _publish_rows(self, rows: list) -> dict[str, int]:
        t = store.accepted_events
        futures = []
        if len(rows) == 1:
            # One event (an HTTP request): a producer span of its own, in the caller's trace.
            row = rows[0]
            subject = self.names.events(row.type)
            with producer_span(subject, parent_headers=row.trace_headers,
                               **{"messaging.message.id": row.event_id}):
                futures.append(await self.js.publish_async(
                    subject, row.envelope.encode(), headers=inject({MSG_ID: row.event_id})))
        else:
            # A batch: one span for the round; each event carries on the trace it was offered
            # in. (A span per event would cost more than the rest of accepting it.)
            with tracer.start_as_current_span(
                    f"{self.names.events()} publish", kind=SpanKind.PRODUCER,
                    attributes={"messaging.system": "nats",
                                "messaging.batch.message_count": len(rows)}):
                for row in rows:
                    futures.append(await self.js.publish_async(
                        self.names.events(row.type), row.envelope.encode(),
                        headers={**(row.trace_headers or {}), MSG_ID: row.event_id}))
        acks = await gather_acks(futures, self.publish_timeout)
        seqs = {row.event_id: ack.seq for row, ack in zip(rows, acks, strict=True)
                if not isinstance(ack, BaseException)}
        if seqs:  # keep what made it; the rest stay unpublished for the relay
            async with self.engine.begin() as conn:
                await conn.execute(update(t).where(t.c.event_id == bindparam("b_event_id"))
                                   .values(seq=bindparam("b_seq")),
                                   [{"b_event_id": e, "b_seq": s} for e, s in seqs.items()])
        if error := first_error(acks):
            raise error
        return seqs

    async def publish_leftovers(self) -> int:
        """Events stored but never published (NATS was away): publish them, oldest first."""
        t = store.accepted_events
        async with self.engine.connect() as conn:
            ids = list((await conn.execute(select(t.c.event_id).where(t.c.seq.is_(None))
                                           .order_by(t.c.id).limit(500))).scalars())
        if ids:
            await self.publish(ids)
        return len(ids)

    async def run_relay(self) -> None:
        while True:
            try:
                sent = await self.publish_leftovers()
            except Exception as exc:
                log.warning("could not publish stored events yet: %s", exc)
                sent = 0
            await asyncio.sleep(0 if sent else 2.0)
