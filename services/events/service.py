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
from sqlalchemy import bindparam, insert, select, update
from sqlalchemy.ext.asyncio import AsyncEngine

from services.events import store
from services.events.domain import Offer, references
from shared.bus import MSG_ID
from shared.errors import FieldError, Rejected
from shared.events import ActivityFigures
from shared.projection import Projection
from shared.replica import known_ids
from shared.subjects import Names
from shared.taxonomy import SERVICE_TYPES
from shared.telemetry import inject, producer_span, tracer

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class _Row:
    """An accepted event as stored, enough to publish it."""

    event_id: str
    type: str
    envelope: str
    trace_headers: dict
    source: str = ""
    occurred_at: datetime | None = None
    received_at: datetime | None = None
    via: str = ""


@dataclass(frozen=True)
class Receipt:
    event_id: str
    seq: int | None
    duplicate: bool


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
            await self.replica.caught_up(timeout=3.0)
        except Exception as exc:  # NATS away: judge by what the replica has
            log.warning("could not check the registry replica is current: %r", exc)
        return await self._reference_errors(offers)

    async def _reference_errors(self, offers: list[Offer]) -> list[list[FieldError]]:
        wanted = {(kind, id_) for o in offers for _, kind, id_ in references(o.data)}
        codes = {c for o in offers if isinstance(o.data, ActivityFigures)
                 for c in o.data.service_types if c not in SERVICE_TYPES}
        wanted |= {("service_type", c) for c in codes}
        async with self.engine.connect() as conn:
            known = await known_ids(conn, store.registry_entities, wanted)
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
                for i, code in enumerate(o.data.service_types):
                    if code not in SERVICE_TYPES and ("service_type", code) not in known:
                        errs.append(FieldError(field=f"data.service_types[{i}]",
                                               message=f"unknown service type {code!r}"))
            out.append(errs)
        return out

    # -- accepting -----------------------------------------------------------------------
    async def accept_one(self, offer: Offer, via: str) -> Receipt:
        (errors,) = await self.check([offer])
        if errors:
            raise Rejected(errors)
        (receipt,) = await self.accept_batch([offer], via)
        return receipt

    async def accept_batch(self, offers: list[Offer], via: str) -> list[Receipt]:
        """Store the (already checked) offers once each and publish what is unpublished."""
        ids = [str(o.envelope.event_id) for o in offers]
        t = store.accepted_events
        now = datetime.now(UTC)
        headers = inject()
        async with self.engine.begin() as conn:
            before = {r.event_id: r.seq for r in await conn.execute(
                select(t.c.event_id, t.c.seq).where(t.c.event_id.in_(ids)))}
            new_rows, seen = [], set(before)
            for o, event_id in zip(offers, ids, strict=True):
                if event_id in seen:
                    continue
                seen.add(event_id)
                new_rows.append({
                    "event_id": event_id, "type": o.envelope.type, "source": o.envelope.source,
                    "occurred_at": o.envelope.occurred_at, "received_at": now, "via": via,
                    "envelope": o.envelope.model_dump_json(), "trace_headers": headers})
            if new_rows:
                await conn.execute(insert(t), new_rows)
        stale = [e for e, s in before.items() if s is None]  # stored earlier, never published
        seqs = dict(before)
        if new_rows or stale:
            try:
                if stale:
                    seqs.update(await self.publish(stale))
                if new_rows:
                    seqs.update(await self._publish_rows([_Row(**r) for r in new_rows]))
            except Exception as exc:  # stored is accepted: the relay publishes it later
                log.warning("accepted %d events but could not publish them yet: %r",
                            len(new_rows) + len(stale), exc)
        receipts, counted = [], set()
        for event_id in ids:
            duplicate = event_id in before or event_id in counted
            counted.add(event_id)
            receipts.append(Receipt(event_id, seqs.get(event_id), duplicate))
        return receipts

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
            # A batch: one span for the round; each event carries on the trace it came in with.
            # (A span per event costs more than the rest of accepting it.)
            with tracer.start_as_current_span(
                    f"{self.names.events()} publish", kind=SpanKind.PRODUCER,
                    attributes={"messaging.system": "nats",
                                "messaging.batch.message_count": len(rows)}):
                for row in rows:
                    futures.append(await self.js.publish_async(
                        self.names.events(row.type), row.envelope.encode(),
                        headers={**(row.trace_headers or {}), MSG_ID: row.event_id}))
        acks = await asyncio.wait_for(asyncio.gather(*futures), self.publish_timeout)
        seqs = {row.event_id: ack.seq for row, ack in zip(rows, acks, strict=True)}
        async with self.engine.begin() as conn:
            await conn.execute(update(t).where(t.c.event_id == bindparam("b_event_id"))
                               .values(seq=bindparam("b_seq")),
                               [{"b_event_id": e, "b_seq": s} for e, s in seqs.items()])
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
