"""The events service on the bus: offers from `tongxin.ingest.>` in batches; rejects to the DLQ.

A durable pull consumer, shared by every events instance, fetches batches. Every offer is
validated on its own; the valid ones are judged and accepted together (`Acceptor.offer`).
An offer refused for good goes, unchanged, to `tongxin.dlq.<type>` with a `Tongxin-Error`
header; one whose prerequisite has not arrived yet (a need claimed before it was submitted,
by another system) is retried with back-off until `prerequisite_wait` has passed, then
dead-lettered with the reason. Offers are acked only after that, so a crash redelivers them and
idempotency on `event_id` makes the redelivery harmless. A batch that keeps failing is taken
apart so one poisonous offer cannot hold the others back; after `MAX_ATTEMPTS` it is
dead-lettered with the reason.

(The consume loop is ours, on nats-py: FastStream 0.7.8's pull loop lets nats-py's plain
asyncio.TimeoutError escape, restarts, and strands fetched offers until their ack_wait ends.
FastStream still documents the subjects: see `document`.)
"""

from __future__ import annotations

import asyncio
import json
import logging
from datetime import UTC, datetime
from typing import Any

from faststream.nats import JStream, NatsBroker, PullSub
from nats.aio.msg import Msg
from nats.errors import TimeoutError as NatsTimeout
from nats.js import JetStreamContext
from nats.js.api import ConsumerConfig

from services.events.domain import Offer, parse_offer
from services.events.service import Acceptor, Outcome
from shared.bus import ERROR_HEADER, MSG_ID, first_error, gather_acks, stream_seq
from shared.errors import FieldError, Rejected, Unavailable
from shared.event_types import EVENT_TYPES
from shared.retry import Backoff, is_transient
from shared.subjects import Names
from shared.telemetry import batch_span, inject

log = logging.getLogger(__name__)

INGEST_DURABLE = "events-ingest-v1"
# A killed instance's fetched offers go to another instance this long after its last sign of
# life: seconds, not a minute. An instance at work on a batch says so (`in_progress`) every
# third of it, so a long batch (a slow database) is never handed over while still in hand.
ACK_WAIT = 10.0
MAX_ATTEMPTS = 5
IN_FLIGHT = 2
TRACE_HEADERS = ("traceparent", "tracestate")


class Ingest:
    def __init__(self, js: JetStreamContext, names: Names, acceptor: Acceptor,
                 batch_size: int = 500, prerequisite_wait: float = 600.0):
        self.js = js
        self.names = names
        self.acceptor = acceptor
        self.batch_size = batch_size
        self.prerequisite_wait = prerequisite_wait
        self._stopping = asyncio.Event()

    def stop(self) -> None:
        self._stopping.set()

    async def run(self) -> None:
        config = ConsumerConfig(durable_name=INGEST_DURABLE, filter_subject=self.names.ingest(),
                                ack_wait=ACK_WAIT, max_ack_pending=self.batch_size * 4)
        # Created, or brought to this configuration (ack_wait and max_ack_pending are editable
        # in place; pull_subscribe alone would keep an existing durable's old ones).
        await self.js.add_consumer(self.names.ingest_stream, config)
        sub = await self.js.pull_subscribe(
            self.names.ingest(), durable=INGEST_DURABLE, stream=self.names.ingest_stream,
            config=config)
        # Two batches at once: one is judged while the one before it is published (the
        # acceptor keeps their order); more would only wait for the same database.
        handling: set[asyncio.Task] = set()
        try:
            while not self._stopping.is_set():
                if len(handling) >= IN_FLIGHT:
                    await asyncio.wait(handling, return_when=asyncio.FIRST_COMPLETED)
                try:
                    msgs = await sub.fetch(self.batch_size, timeout=1.0)
                except (NatsTimeout, TimeoutError):
                    continue
                task = asyncio.create_task(self.handle(msgs))
                handling.add(task)
                task.add_done_callback(handling.discard)
        finally:  # unfetched offers stay with the durable consumer for the next instance
            if handling:
                await asyncio.gather(*handling, return_exceptions=True)
            try:
                await sub.unsubscribe()
            except Exception:  # the connection may already be gone
                pass

    async def handle(self, msgs: list[Msg]) -> None:
        alive = asyncio.create_task(keep_alive(msgs, ACK_WAIT / 3))
        try:
            await self._handle(msgs)
        finally:
            alive.cancel()

    async def _handle(self, msgs: list[Msg]) -> None:
        try:
            with batch_span(f"{self.names.ingest()} process", [m.headers for m in msgs]):
                await handle_offers(msgs, self.names, self.acceptor, self.prerequisite_wait)
        except Unavailable as exc:  # e.g. the registry replica is behind: later, same answer
            log.warning("%d offers wait: %s", len(msgs), exc)
            await _nak(msgs, delay=2)
        except Exception as exc:
            if is_transient(exc):  # the database or NATS is away: all wait, nothing is lost
                log.warning("%d offers wait: %r", len(msgs), exc)
                await _nak(msgs, delay=5)
                return
            if len(msgs) > 1:  # take the batch apart: one bad offer must not hold the rest
                log.exception("a batch of %d offers failed; handling them one by one", len(msgs))
                for m in msgs:
                    await self._handle([m])
                return
            await self._failed(msgs[0])

    async def _failed(self, msg: Msg) -> None:
        attempts = msg.metadata.num_delivered
        if attempts < MAX_ATTEMPTS:
            log.exception("offer at ingest seq %d failed (attempt %d of %d); it will be retried",
                          stream_seq(msg), attempts, MAX_ATTEMPTS)
            await msg.nak(delay=_backoff(attempts, first=2.0, cap=30.0))
            return
        log.exception("offer at ingest seq %d failed %d times; dead-lettered", stream_seq(msg),
                      attempts)
        await dead_letter(self.acceptor, self.names, [(msg, [FieldError(
            field="", message=f"could not be processed after {attempts} attempts")])])
        await msg.ack()


async def keep_alive(msgs: list[Msg], every: float) -> None:
    """Until cancelled: tell the server every `every` seconds that the offers not settled yet
    are still being worked on, so their ack_wait starts again (and only a dead instance's
    offers are redelivered). A lost one is harmless: the next comes before ack_wait ends."""
    while True:
        await asyncio.sleep(every)
        for m in msgs:
            if not m.is_acked:
                try:
                    await m.in_progress()
                except Exception:  # NATS away: try again next time (a repeat is harmless)
                    break


async def _nak(msgs: list[Msg], delay: float) -> None:
    for m in msgs:
        await m.nak(delay=delay)


def _trace_of(msg: Msg) -> dict[str, str]:
    """The trace an offer came in with, or else the current one (the batch's)."""
    given = {k: v for k, v in (msg.headers or {}).items() if k in TRACE_HEADERS}
    return given if "traceparent" in given else inject()


async def handle_offers(msgs: list[Msg], names: Names, acceptor: Acceptor,
                        prerequisite_wait: float = 600.0) -> None:
    """Validate, accept, dead-letter or put back each offer; then ack what is settled."""
    offers: list[tuple[Msg, Offer]] = []
    rejected: list[tuple[Msg, list[FieldError]]] = []
    for m in msgs:
        try:
            offers.append((m, parse_offer(m.data, names.type_from_subject(m.subject, "ingest"))))
        except Rejected as exc:
            rejected.append((m, exc.errors))
    later: list[tuple[Msg, float]] = []
    if offers:
        outcomes = await acceptor.offer([o for _, o in offers], via="bus",
                                        trace_headers=[_trace_of(m) for m, _ in offers])
        for (m, _), outcome in zip(offers, outcomes, strict=True):
            if outcome.accepted:
                continue
            if outcome.wait and (delay := _retry_in(m, prerequisite_wait)) is not None:
                later.append((m, delay))
            else:
                rejected.append((m, _reasons(m, outcome, prerequisite_wait)))
    if rejected:
        await dead_letter(acceptor, names, rejected)
    waiting = {id(m) for m, _ in later}
    for m, delay in later:
        await m.nak(delay=delay)
    for m in msgs:
        if id(m) not in waiting:
            await m.ack()


def _retry_in(msg: Msg, horizon: float) -> float | None:
    """Seconds until the next try of an offer waiting for its prerequisite, or None once it
    has waited `horizon` seconds since it was first published."""
    age = (datetime.now(UTC) - msg.metadata.timestamp).total_seconds()
    if age >= horizon:
        return None
    return min(_backoff(msg.metadata.num_delivered, first=1.0, cap=60.0),
               max(horizon - age, 0.1))


def _backoff(attempt: int, first: float, cap: float) -> float:
    """The delay before redelivery `attempt + 1`: the same doubling as every loop's."""
    backoff = Backoff(first, cap)
    for _ in range(max(attempt, 1) - 1):
        backoff.next()
    return backoff.delay


def _reasons(msg: Msg, outcome: Outcome, horizon: float) -> list[FieldError]:
    errors = list(outcome.errors)
    if outcome.wait:
        waited = (datetime.now(UTC) - msg.metadata.timestamp).total_seconds()
        errors = [FieldError(field=e.field, message=f"{e.message} (waited {waited:.0f} s for "
                                                     "it to arrive)") for e in errors]
    return errors


async def dead_letter(acceptor: Acceptor, names: Names,
                      rejected: list[tuple[Msg, list[FieldError]]]) -> None:
    futures = []
    for m, errors in rejected:
        offered = names.type_from_subject(m.subject, "ingest") or "unknown"
        reason = json.dumps([e.model_dump() for e in errors], ensure_ascii=False)
        log.warning("rejected offer on %s (ingest seq %d): %s", m.subject, stream_seq(m),
                    ", ".join(e.field for e in errors))
        headers = {k: v for k, v in (m.headers or {}).items() if k != MSG_ID}
        # Keyed by the offer's place in the ingest stream: a redelivery dead-letters it once.
        headers.update({ERROR_HEADER: reason, MSG_ID: f"dlq-{stream_seq(m)}-{m.subject}"})
        futures.append(await acceptor.js.publish_async(names.dlq(offered), m.data,
                                                       headers=headers))
    if error := first_error(await gather_acks(futures, acceptor.publish_timeout)):
        raise error


def document(broker: NatsBroker, names: Names, batch_size: int) -> None:
    """Declare the subjects for the AsyncAPI document, from the event type table (this broker
    is never started)."""
    for event_type in EVENT_TYPES.values():
        model = event_type.envelope
        broker.publisher(names.events(event_type.name), schema=model,
                         title=f"{names.events(event_type.name)}:accepted",
                         description=f"Accepted `{event_type.name}` events, in order. "
                                     f"{event_type.summary}")
        if event_type.sender == "outside":
            broker.subscriber(
                names.ingest(event_type.name),
                stream=JStream(names.ingest_stream, declare=False),
                pull_sub=PullSub(batch_size=batch_size, batch=True),
                title=f"{names.ingest(event_type.name)}:offer",
                description=f"Offer `{event_type.name}`: {event_type.summary} Header "
                            "`Nats-Msg-Id` = `event_id`; optional W3C `traceparent`.",
            )(_documented(model))
    broker.publisher(names.dlq(), title="tongxin.dlq:rejected",
                     description="A rejected offer, unchanged, with header `Tongxin-Error`: "
                                 '`[{"field": ..., "message": ...}]`.')


def _documented(model: type) -> Any:
    async def offer(envelope: Any) -> None:  # pragma: no cover - documentation only
        ...

    offer.__annotations__ = {"envelope": model, "return": None}
    return offer
