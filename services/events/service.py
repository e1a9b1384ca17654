"""Accepting events: check references, judge by the type's rule, store once, publish in order.

Every door (HTTP, the bus, bulk files, Tongxin's own deadlines) goes through `Acceptor.offer`
with a batch of valid offers: one read of the registry replica for references, one transaction
that loads the facts the rules need, stores the accepted events and the state they leave
behind, and one pipelined round of publishes to `TONGXIN_EVENTS`. Nothing here knows one event
type from another: `shared.event_types` and `services.events.rules` do.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, tzinfo
from typing import Any, Protocol

from nats.js import JetStreamContext
from sqlalchemy import insert, select
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from services.events import access, store
from services.events.domain import Offer
from services.events.facts import load_facts
from services.events.rules import Refuse, judge
from services.events.state import Facts
from shared.auth import Principal
from shared.db import write_transaction
from shared.errors import Conflict, FieldError, Forbidden, Rejected, Unavailable
from shared.outbox import Relay, seqs_of, take_turn
from shared.projection import Projection, upsert
from shared.replica import records_of
from shared.subjects import Names
from shared.taxonomy import INDICATORS, SERVICE_TYPES
from shared.telemetry import inject

log = logging.getLogger(__name__)

# Codes Tongxin ships; the registry's replica holds the ones organisers added.
BUILTIN: dict[str, Any] = {"service_type": SERVICE_TYPES, "indicator": INDICATORS}
STORE_ATTEMPTS = 3


class PhotoStore(Protocol):
    async def existing(self, refs: Sequence[str]) -> set[str]: ...


@dataclass(frozen=True)
class Outcome:
    """What became of one offer."""

    event_id: str
    seq: int | None = None       # its place in TONGXIN_EVENTS, once published
    duplicate: bool = False      # accepted before (same event_id, same data)
    errors: tuple[FieldError, ...] = ()
    status: int = 202            # 202 accepted; 409 at odds with what was accepted; 422 invalid
    wait: bool = False           # refused for now: its prerequisite may still arrive

    @property
    def accepted(self) -> bool:
        return self.status == 202


@dataclass(frozen=True)
class _Row:
    """An accepted event just stored, for the relay to publish."""

    id: int
    event_id: str


# Who offered what came through a door without a key: NATS's user permissions let only
# outside publishers offer on tongxin.ingest; the deadline sweep is the service itself.
PRINCIPAL_OF_DOOR = {"bus": "nats:publisher", "internal": "system:events"}


class ReplicaBehind(Unavailable):
    """References are unknown and the registry replica could not be brought up to date:
    refusing now could refuse what the registry knows. Try again shortly (HTTP 503)."""


class Acceptor:
    def __init__(self, engine: AsyncEngine, js: JetStreamContext, names: Names,
                 replica: Projection, relay: Relay, photos: PhotoStore | None = None,
                 report_due: timedelta = timedelta(days=7),
                 future_grace: timedelta = timedelta(hours=24), zone: tzinfo | None = None):
        self.engine = engine
        self.js = js
        self.names = names
        self.replica = replica
        self.relay = relay
        self.photos = photos
        self.report_due = report_due
        self.future_grace = future_grace
        self.zone = zone
        # One batch at a time is judged and stored, so rules see every earlier acceptance. A
        # batch publishes only after the one stored before it has, so the stream takes events
        # in the order they were accepted; meanwhile the next batch is already being judged.
        self._judging = asyncio.Lock()
        self._published_before: asyncio.Future | None = None

    @property
    def publish_timeout(self) -> float:
        return self.relay.timeout

    async def offer(self, offers: list[Offer], via: str,
                    trace_headers: list[dict] | None = None,
                    principal: Principal | None = None,
                    principals: Sequence[Principal | None] | None = None) -> list[Outcome]:
        """Judge, store and publish valid offers; one `Outcome` each, in order. Offers sent
        with a key or login (`principal`, or `principals`, one an offer, when requests of
        several callers are offered together) must be within its reach (403 otherwise); from
        the bus, NATS's permissions have already said who may offer."""
        traces = trace_headers or [inject()] * len(offers)
        whose = list(principals) if principals is not None else [principal] * len(offers)
        ref_errors, records = await self._references(offers)
        outcomes: list[Outcome | None] = [
            Outcome(o.event_id, errors=tuple(e), status=422) if e else None
            for o, e in zip(offers, ref_errors, strict=True)]
        if any(p is not None for p in whose):
            async with self.engine.connect() as conn:
                for k, (offer, p) in enumerate(zip(offers, whose, strict=True)):
                    if outcomes[k] is None and p is not None and (
                            refused := await access.refusals(conn, p, offer)):
                        outcomes[k] = Outcome(offer.event_id, errors=tuple(refused),
                                              status=403)
        todo = [k for k, o in enumerate(outcomes) if o is None]
        if todo:
            who = [p.label if (p := whose[k]) is not None else PRINCIPAL_OF_DOOR.get(via)
                   for k in todo]
            judged = await self._store([offers[k] for k in todo], via,
                                       [traces[k] for k in todo], records, who)
            for k, outcome in zip(todo, judged, strict=True):
                outcomes[k] = outcome
        return [o for o in outcomes if o is not None]

    async def accept_one(self, offer: Offer, via: str,
                         principal: Principal | None = None) -> Outcome:
        """One offer from HTTP: refusals raise (422, 409 or 403 with the reasons)."""
        (outcome,) = await self.offer([offer], via, principal=principal)
        return answered(outcome)

    # -- references ----------------------------------------------------------------------
    async def check(self, offers: list[Offer]) -> list[list[FieldError]]:
        """Reference errors per offer (see `_references`)."""
        return (await self._references(offers))[0]

    async def _references(self, offers: list[Offer]) -> tuple[list[list[FieldError]], dict]:
        """Reference errors per offer, judged against everything the registry stream holds
        now: a base registered (or deactivated) a moment ago counts as such. The replica is
        usually current, so catching up is one stream-info request. Also the records found,
        which the rules read."""
        try:
            current = await self.replica.caught_up(timeout=3.0)
        except Exception as exc:  # NATS away: the replica may still know enough
            log.warning("could not check the registry replica is current: %r", exc)
            current = False
        refs = [o.references for o in offers]
        wanted = {(kind, id_) for rs in refs for _, kind, id_ in rs
                  if id_ not in BUILTIN.get(kind, ())}
        async with self.engine.connect() as conn:
            known = await records_of(conn, store.registry_entities, wanted)
        if set(wanted) - known.keys() and not current:
            raise ReplicaBehind("the registry replica is behind the registry stream")
        out = []
        for rs in refs:
            errs = []
            for field, kind, id_ in rs:
                what = kind.replace("_", " ")
                if id_ in BUILTIN.get(kind, ()):
                    continue
                if (kind, id_) not in known:
                    errs.append(FieldError(field=field, message=f"no {what} {id_!r} is known "
                                                                "to the registry"))
                elif not known[(kind, id_)].active:
                    errs.append(FieldError(field=field, message=f"{what} {id_!r} is "
                                                                "deactivated"))
            out.append(errs)
        return out, {key: k.record for key, k in known.items()}

    # -- judging and storing -------------------------------------------------------------
    async def _store(self, offers: list[Offer], via: str, traces: list[dict],
                     records: dict, principals: list[str | None]) -> list[Outcome]:
        photos = await self._photos_in(offers)
        for offer in offers:  # the CPU work before the turn to write
            offer.payload, offer.digest  # noqa: B018
        async with self._judging:
            for attempt in range(1, STORE_ATTEMPTS + 1):
                try:
                    async with write_transaction(self.engine) as conn:
                        outcomes, rows = await self._judge(conn, offers, via, traces, photos,
                                                           records, principals)
                    break
                except (IntegrityError, OperationalError) as exc:
                    # Another instance stored the same event or state first (or SQLite was
                    # busy): judge again against what it stored.
                    if attempt == STORE_ATTEMPTS:
                        raise
                    log.info("storing %d offers raced another writer (%s); judging again",
                             len(offers), type(exc).__name__)
            before = self._published_before
            mine = self._published_before = asyncio.get_running_loop().create_future()
        seqs: dict[str, int] = {}
        try:
            if before is not None:
                await asyncio.shield(before)
            if rows:
                seqs = await self.relay.publish_now(rows)
        except asyncio.CancelledError:
            self.relay.behind()  # ours wait in the table: whoever publishes next takes them first
            raise
        except Exception as exc:  # stored is accepted: the relay publishes it later
            log.warning("accepted %d events but could not publish them yet: %r", len(rows), exc)
        finally:
            mine.set_result(None)
        if missing := [o.event_id for o in outcomes
                       if o.duplicate and o.seq is None and o.event_id not in seqs]:
            # Repeats of events the batches before this one stored but had not published
            # when it was judged (requests sent together): they have been since.
            seqs.update(await self._seqs_by_event_id(missing))
        return [o if o.seq is not None or not o.accepted else
                Outcome(o.event_id, seqs.get(o.event_id), o.duplicate) for o in outcomes]

    async def _seqs_by_event_id(self, event_ids: list[str]) -> dict[str, int]:
        t = store.accepted_events
        try:
            async with self.engine.connect() as conn:
                ids = {r.id: r.event_id for r in await conn.execute(
                    select(t.c.id, t.c.event_id).where(t.c.event_id.in_(event_ids)))}
                found = await seqs_of(conn, t, ids)
        except Exception as exc:  # a duplicate's seq is a courtesy: the answer stands
            log.warning("could not read the seqs of %d repeated events: %r", len(event_ids), exc)
            return {}
        return {ids[i]: seq for i, seq in found.items()}

    async def _judge(self, conn: AsyncConnection, offers: list[Offer], via: str,
                     traces: list[dict], photos: set[str], records: dict,
                     principals: list[str | None]) -> tuple[list[Outcome], list[_Row]]:
        t = store.accepted_events
        # The outbox's turn first, before any row lock: ids follow commit order, and every
        # instance takes its locks in the same order.
        await take_turn(conn, t)
        ids = list({o.event_id for o in offers})
        stored = {r.event_id: r for r in await conn.execute(
            select(t.c.id, t.c.event_id, t.c.digest).where(t.c.event_id.in_(ids)))}
        seq_of = await seqs_of(conn, t, (r.id for r in stored.values())) if stored else {}
        facts = await load_facts(conn, [o for o in offers if o.event_id not in stored],
                                 now=datetime.now(UTC), report_due=self.report_due,
                                 photos=photos, registry=records, history=via == "bulk",
                                 future_grace=self.future_grace, zone=self.zone)
        outcomes: list[Outcome] = []
        accepted: dict[str, Offer] = {}
        new: list[dict] = []
        now = datetime.now(UTC)
        for offer, trace, principal in zip(offers, traces, principals, strict=True):
            earlier = stored.get(offer.event_id)
            if earlier is not None or offer.event_id in accepted:
                digest = earlier.digest if earlier is not None else \
                    accepted[offer.event_id].digest
                outcomes.append(_repeat(offer, digest,
                                        seq_of.get(earlier.id) if earlier else None))
                continue
            verdict = judge(offer.type.name, offer.data, offer.envelope, facts)
            if isinstance(verdict, Refuse):
                outcomes.append(Outcome(offer.event_id, errors=verdict.errors,
                                        status=422 if verdict.invalid else 409,
                                        wait=verdict.wait))
                continue
            for change in verdict.changes:
                facts.put(change)
            accepted[offer.event_id] = offer
            outcomes.append(Outcome(offer.event_id))
            new.append({
                "event_id": offer.event_id, "subject": self.names.events(offer.type.name),
                "payload": offer.payload, "headers": trace,
                "created_at": now, "type": offer.type.name, "source": offer.envelope.source,
                # In UTC: SQLite keeps a time's wall clock and drops its offset.
                "occurred_at": offer.envelope.occurred_at.astimezone(UTC), "via": via,
                "digest": offer.digest, "about": offer.about, "principal": principal})
        rows: list[_Row] = []
        if new:
            # Ids matched by event_id: asking for them in parameter order makes SQLite insert
            # row by row.
            result = await conn.execute(insert(t).returning(t.c.id, t.c.event_id), new)
            ids_of = {r.event_id: r.id for r in result}
            rows = sorted((_Row(ids_of[n["event_id"]], n["event_id"]) for n in new),
                          key=lambda r: r.id)
        await _write_state(conn, facts)
        return outcomes, rows

    async def _photos_in(self, offers: list[Offer]) -> set[str]:
        refs = {ref for o in offers for ref in o.envelope.data.get("photos") or ()}
        if not refs or self.photos is None:
            return set()
        return await self.photos.existing(sorted(refs))


def answered(outcome: Outcome) -> Outcome:
    """An accepted outcome as it is; a refusal raised (403, 422 or 409 with the reasons)."""
    if outcome.status == 403:
        raise Forbidden(outcome.errors)
    if outcome.status == 422:
        raise Rejected(outcome.errors)
    if outcome.status == 409:
        raise Conflict(outcome.errors)
    return outcome


def _repeat(offer: Offer, digest: str | None, seq: int | None) -> Outcome:
    """The same event_id again: a retry if it says the same, else a mistake to refuse."""
    if digest and digest != offer.digest:
        return Outcome(offer.event_id, status=409, errors=(FieldError(
            field="event_id", message=f"event {offer.event_id} was accepted earlier with "
                                      "different data; a retry must send the same event, a new "
                                      "event needs a new event_id"),))
    return Outcome(offer.event_id, seq, duplicate=True)


async def _write_state(conn: AsyncConnection, facts: Facts) -> None:
    """Write the state rows the batch's rules changed: updates of rows read (locked) at the
    start, inserts of new ones, one statement each per table."""
    updates: dict[type, list[dict]] = {}
    inserts: dict[type, list[dict]] = {}
    for (kind, key), state in facts.dirty.items():
        into = updates if (kind, key) in facts.loaded else inserts
        into.setdefault(kind, []).append(store.state_row(state))
    for kind, rows in inserts.items():
        await conn.execute(insert(store.STATE_TABLES[kind]), rows)
    for kind, rows in updates.items():
        table = store.STATE_TABLES[kind]
        keys = [c.name for c in table.primary_key.columns]
        stmt = upsert(conn, table)
        stmt = stmt.on_conflict_do_update(
            index_elements=keys,
            set_={c.name: stmt.excluded[c.name] for c in table.columns if c.name not in keys})
        await conn.execute(stmt, rows)
