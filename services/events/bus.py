"""The events service on the bus: offers from `tongxin.ingest.>` in batches; rejects to the DLQ.

Every offer in a batch is validated on its own; the valid ones are accepted together (one
transaction, one round of publishes); invalid ones go, unchanged, to `tongxin.dlq.<type>` with a
`Tongxin-Error` header. The batch is acked only after all that, so a crash redelivers it and
idempotency on `event_id` makes the redelivery harmless.
"""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Annotated

from faststream import AckPolicy, Context
from faststream.nats import JStream, NatsBroker, PullSub
from faststream.nats.message import NatsBatchMessage
from nats.aio.msg import Msg
from nats.js.api import ConsumerConfig

from services.events.domain import Offer, parse_offer
from services.events.service import Acceptor
from shared.bus import ERROR_HEADER, MSG_ID, stream_seq
from shared.envelope import Envelope
from shared.errors import FieldError, Rejected
from shared.subjects import Names
from shared.telemetry import batch_span

log = logging.getLogger(__name__)

INGEST_DURABLE = "events-ingest-v1"  # durable settings never update in place: bump to change


async def _raw_bodies(msg) -> list[bytes]:
    # Keep the bytes: decoding is the validator's job, so non-JSON reaches the DLQ, not a crash.
    return [m.data for m in msg.raw_message]


def register(broker: NatsBroker, names: Names, acceptor: Acceptor, batch_size: int) -> None:
    for event_type in ("activity.logged",):
        broker.publisher(names.events(event_type), schema=Envelope,
                         title=f"{names.events(event_type)}:accepted",
                         description=f"Accepted `{event_type}` events, in order.")
    broker.publisher(names.dlq(), title="tongxin.dlq:rejected",
                     description="A rejected offer, unchanged, with header `Tongxin-Error`: "
                                 '`[{"field": ..., "message": ...}]`.')

    @broker.subscriber(
        names.ingest(),
        stream=JStream(names.ingest_stream, declare=False),
        durable=INGEST_DURABLE,
        pull_sub=PullSub(batch_size=batch_size, timeout=0.2, batch=True),
        ack_policy=AckPolicy.MANUAL,
        config=ConsumerConfig(ack_wait=60, max_ack_pending=batch_size * 4),
        decoder=_raw_bodies,
        title="tongxin.ingest:offer",
        description="Offer any event for acceptance: the envelope of CONTRACT.md as JSON, "
                    "header `Nats-Msg-Id` = `event_id`, optional W3C `traceparent`.",
    )
    async def ingest(batch: Annotated[NatsBatchMessage, Context("message")]) -> None:
        msgs: list[Msg] = batch.raw_message
        try:
            with batch_span(f"{names.ingest()} process", [m.headers for m in msgs]):
                await handle_offers(msgs, names, acceptor)
        except Exception:
            log.exception("could not handle %d offers; they will be redelivered", len(msgs))
            await batch.nack(delay=2)
            return
        await batch.ack()


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
        await acceptor.accept_batch([o for _, o in offers], via="bus")
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
    await asyncio.wait_for(asyncio.gather(*futures), acceptor.publish_timeout)
