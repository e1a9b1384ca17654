"""The events service on the bus: offers from `tongxin.ingest.>` in batches; rejects to the DLQ.

A durable pull consumer, shared by every events instance, fetches batches. Every offer is
validated on its own; the valid ones are accepted together (one transaction, one round of
publishes); invalid ones go, unchanged, to `tongxin.dlq.<type>` with a `Tongxin-Error` header.
Offers are acked only after that, so a crash redelivers them and idempotency on `event_id`
makes the redelivery harmless. A batch that keeps failing is taken apart so one poisonous
offer cannot hold the others back; after `MAX_ATTEMPTS` it is dead-lettered with the reason.

(The consume loop is ours, on nats-py: FastStream 0.7.8's pull loop lets nats-py's plain
asyncio.TimeoutError escape, restarts, and strands fetched offers until their ack_wait ends.
FastStream still documents the subjects: see `document`.)
"""

from __future__ import annotations

import asyncio
import json
import logging

import nats.errors
from faststream.nats import JStream, NatsBroker, PullSub
from nats.aio.msg import Msg
from nats.errors import TimeoutError as NatsTimeout
from nats.js import JetStreamContext
from nats.js.api import ConsumerConfig
from sqlalchemy.exc import InterfaceError, OperationalError

from services.events.domain import Offer, parse_offer
from services.events.service import Acceptor
from shared.bus import ERROR_HEADER, MSG_ID, first_error, gather_acks, stream_seq
from shared.envelope import Envelope
from shared.errors import FieldError, Rejected, Unavailable
from shared.subjects import Names
from shared.telemetry import batch_span, inject

log = logging.getLogger(__name__)

INGEST_DURABLE = "events-ingest-v1"  # durable settings never update in place: bump to change
MAX_ATTEMPTS = 5
# Failures of the infrastructure, not of an offer: never a reason to dead-letter anything.
TRANSIENT = (OperationalError, InterfaceError, nats.errors.Error, TimeoutError, OSError)
TRACE_HEADERS = ("traceparent", "tracestate")


class Ingest:
    def __init__(self, js: JetStreamContext, names: Names, acceptor: Acceptor,
                 batch_size: int = 500):
        self.js = js
        self.names = names
        self.acceptor = acceptor
        self.batch_size = batch_size
        self._stopping = asyncio.Event()

    def stop(self) -> None:
        self._stopping.set()

    async def run(self) -> None:
        sub = await self.js.pull_subscribe(
            self.names.ingest(), durable=INGEST_DURABLE, stream=self.names.ingest_stream,
            config=ConsumerConfig(ack_wait=60, max_ack_pending=self.batch_size * 4))
        try:
            while not self._stopping.is_set():
                try:
                    msgs = await sub.fetch(self.batch_size, timeout=1.0)
                except (NatsTimeout, TimeoutError):
                    continue
                await self.handle(msgs)
        finally:  # unfetched offers stay with the durable consumer for the next instance
            try:
                await sub.unsubscribe()
            except Exception:  # the connection may already be gone
                pass

    async def handle(self, msgs: list[Msg]) -> None:
        try:
            with batch_span(f"{self.names.ingest()} process", [m.headers for m in msgs]):
                await handle_offers(msgs, self.names, self.acceptor)
        except Unavailable as exc:  # e.g. the registry replica is behind: later, same answer
            log.warning("%d offers wait: %s", len(msgs), exc)
            await _nak(msgs, delay=2)
            return
        except TRANSIENT as exc:  # the database or NATS is away: everything waits, nothing is lost
            log.warning("%d offers wait: %r", len(msgs), exc)
            await _nak(msgs, delay=5)
            return
        except Exception:
            if len(msgs) > 1:  # take the batch apart: one bad offer must not hold the rest
                log.exception("a batch of %d offers failed; handling them one by one", len(msgs))
                for m in msgs:
                    await self.handle([m])
                return
            await self._failed(msgs[0])
            return
        for m in msgs:
            await m.ack()

    async def _failed(self, msg: Msg) -> None:
        attempts = msg.metadata.num_delivered
        if attempts < MAX_ATTEMPTS:
            log.exception("offer at ingest seq %d failed (attempt %d of %d); it will be retried",
                          stream_seq(msg), attempts, MAX_ATTEMPTS)
            await msg.nak(delay=2 * attempts)
            return
        log.exception("offer at ingest seq %d failed %d times; dead-lettered", stream_seq(msg),
                      attempts)
        await dead_letter(self.acceptor, self.names, [(msg, [FieldError(
            field="", message=f"could not be processed after {attempts} attempts")])])
        await msg.ack()


async def _nak(msgs: list[Msg], delay: float) -> None:
    for m in msgs:
        await m.nak(delay=delay)


def _trace_of(msg: Msg) -> dict[str, str]:
    """The trace an offer came in with, or else the current one (the batch's)."""
    given = {k: v for k, v in (msg.headers or {}).items() if k in TRACE_HEADERS}
    return given if "traceparent" in given else inject()


async def handle_offers(msgs: list[Msg], names: Names, acceptor: Acceptor) -> None:
    offers: list[tuple[Msg, Offer]] = []
    rejected: list[tuple[Msg, list[FieldError]]] = []
    for m in msgs:
        try:
            offers.append((m, parse_offer(m.data, names.type_from_subject(m.subject, "ingest"))))
        except Rejected as exc:
            rejected.append((m, exc.errors))
    if offers:
        ref_errors = await acceptor.check([o for _, o in offers])
        rejected += [(m, e) for (m, _), e in zip(offers, ref_errors, strict=True) if e]
        offers = [(m, o) for (m, o), e in zip(offers, ref_errors, strict=True) if not e]
    if offers:
        receipts = await acceptor.accept_batch([o for _, o in offers], via="bus",
                                               trace_headers=[_trace_of(m) for m, _ in offers])
        rejected += [(m, r.refused) for (m, _), r in zip(offers, receipts, strict=True)
                     if r.refused]
    if rejected:
        await dead_letter(acceptor, names, rejected)


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
    """Declare the subjects for the AsyncAPI document (this broker is never started)."""
    for event_type in ("activity.logged",):
        broker.publisher(names.events(event_type), schema=Envelope,
                         title=f"{names.events(event_type)}:accepted",
                         description=f"Accepted `{event_type}` events, in order.")
    broker.publisher(names.dlq(), title="tongxin.dlq:rejected",
                     description="A rejected offer, unchanged, with header `Tongxin-Error`: "
                                 '`[{"field": ..., "message": ...}]`.')

    @broker.subscriber(
        names.ingest(), stream=JStream(names.ingest_stream, declare=False),
        durable=INGEST_DURABLE, pull_sub=PullSub(batch_size=batch_size, batch=True),
        title="tongxin.ingest:offer",
        description="Offer any event for acceptance: the envelope of CONTRACT.md as JSON, "
                    "header `Nats-Msg-Id` = `event_id`, optional W3C `traceparent`.")
    async def offer(envelope: Envelope) -> None:  # pragma: no cover - documentation only
        ...
