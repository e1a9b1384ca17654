"""The bus handler's sorting of offers into accepted and dead-lettered, with fakes for I/O."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace

from services.events.bus import MAX_ATTEMPTS, Ingest, handle_offers
from services.events.service import Outcome
from shared.errors import FieldError
from shared.subjects import Names
from tests.factories import activity, envelope, raw


@dataclass
class FakeJs:
    published: list = field(default_factory=list)

    async def publish_async(self, subject, payload, headers=None):
        self.published.append((subject, payload, headers))
        import asyncio

        fut = asyncio.get_running_loop().create_future()
        fut.set_result(SimpleNamespace(seq=len(self.published)))
        return fut


@dataclass
class FakeAcceptor:
    js: FakeJs = field(default_factory=FakeJs)
    publish_timeout: float = 1.0
    accepted: list = field(default_factory=list)
    traces: list = field(default_factory=list)
    poison: str = "no-such-title"

    async def offer(self, offers, via, trace_headers=None):
        if any(o.data.title == self.poison for o in offers):
            raise ValueError("this offer breaks something")
        outcomes = []
        for o, trace in zip(offers, trace_headers, strict=True):
            if o.data.base_id == "unknown":
                outcomes.append(Outcome(o.event_id, status=422, errors=(
                    FieldError(field="data.base_id", message="unknown"),)))
            elif o.data.base_id == "later":  # its prerequisite has not arrived yet
                outcomes.append(Outcome(o.event_id, status=409, wait=True, errors=(
                    FieldError(field="data.base_id", message="not yet"),)))
            else:
                self.accepted.append((o, via))
                self.traces.append(trace)
                outcomes.append(Outcome(o.event_id, 1))
        return outcomes


class FakeMsg(SimpleNamespace):
    async def ack(self):
        self.outcome = "ack"

    async def nak(self, delay=None):
        self.outcome, self.delay = "nak", delay


def msg(payload: bytes, seq: int, subject="tongxin.ingest.activity.logged", attempt=1,
        age: float = 0.0, **headers):
    published = datetime.now(UTC) - timedelta(seconds=age)
    return FakeMsg(data=payload, subject=subject, headers={"Nats-Msg-Id": str(seq), **headers},
                   metadata=SimpleNamespace(sequence=SimpleNamespace(stream=seq),
                                            num_delivered=attempt, timestamp=published),
                   outcome=None, delay=None)


async def test_valid_offers_are_accepted_and_the_rest_dead_lettered_unchanged():
    good = raw(envelope(activity("org", "base")))
    unknown = raw(envelope(activity("org", "unknown")))
    acceptor = FakeAcceptor()
    await handle_offers([msg(good, 1), msg(b"not json", 2), msg(unknown, 3)], Names(), acceptor)
    assert [via for _, via in acceptor.accepted] == ["bus"]
    dead = acceptor.js.published
    assert [(s, p) for s, p, _ in dead] == [("tongxin.dlq.activity.logged", b"not json"),
                                            ("tongxin.dlq.activity.logged", unknown)]
    assert json.loads(dead[0][2]["Tongxin-Error"])[0]["field"] == "body"
    assert json.loads(dead[1][2]["Tongxin-Error"]) == [{"field": "data.base_id",
                                                        "message": "unknown"}]
    # a redelivered offer is dead-lettered under the same id, so the DLQ keeps it once
    assert dead[0][2]["Nats-Msg-Id"] == "dlq-2-tongxin.ingest.activity.logged"


async def test_each_accepted_offer_carries_its_own_trace():
    acceptor = FakeAcceptor()
    parents = [f"00-{str(i) * 32}-{'1' * 16}-01" for i in (1, 2)]
    await handle_offers([msg(raw(envelope(activity("org", "base"))), i, traceparent=p)
                         for i, p in enumerate(parents)], Names(), acceptor)
    assert [t["traceparent"] for t in acceptor.traces] == parents


async def test_a_poisonous_offer_is_taken_out_of_its_batch_then_dead_lettered():
    acceptor = FakeAcceptor(poison="breaks")
    ingest = Ingest(js=None, names=Names(), acceptor=acceptor)
    good = msg(raw(envelope(activity("org", "base"))), 1)
    bad = msg(raw(envelope(activity("org", "base", title="breaks"))), 2)
    await ingest.handle([good, bad])
    assert (good.outcome, bad.outcome) == ("ack", "nak")  # the good one is not held back
    assert acceptor.js.published == []
    last = msg(raw(envelope(activity("org", "base", title="breaks"))), 2, attempt=MAX_ATTEMPTS)
    await ingest.handle([last])
    assert last.outcome == "ack"
    (subject, payload, headers), = acceptor.js.published
    assert payload == last.data and "could not be processed" in headers["Tongxin-Error"]


async def test_an_offer_waiting_for_its_prerequisite_is_retried_then_dead_lettered():
    acceptor = FakeAcceptor()
    early = msg(raw(envelope(activity("org", "later"))), 1, attempt=3, age=5)
    await handle_offers([early], Names(), acceptor, prerequisite_wait=60)
    assert (early.outcome, early.delay) == ("nak", 4)  # back-off: 1, 2, 4 … seconds
    assert acceptor.js.published == []
    nearly = msg(raw(envelope(activity("org", "later"))), 2, attempt=9, age=59.5)
    await handle_offers([nearly], Names(), acceptor, prerequisite_wait=60)
    assert nearly.outcome == "nak" and nearly.delay <= 0.5  # never past the horizon
    stale = msg(raw(envelope(activity("org", "later"))), 3, attempt=12, age=61)
    await handle_offers([stale], Names(), acceptor, prerequisite_wait=60)
    assert stale.outcome == "ack"
    (subject, payload, headers), = acceptor.js.published
    (reason,) = json.loads(headers["Tongxin-Error"])
    assert reason["field"] == "data.base_id" and "waited 61 s" in reason["message"]
