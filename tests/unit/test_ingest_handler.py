"""The bus handler's sorting of offers into accepted and dead-lettered, with fakes for I/O."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from types import SimpleNamespace

from services.events.bus import handle_offers
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

    async def check(self, offers):
        return [[FieldError(field="data.base_id", message="unknown")]
                if o.data.base_id == "unknown" else [] for o in offers]

    async def accept_batch(self, offers, via):
        self.accepted += [(o, via) for o in offers]


def msg(payload: bytes, seq: int, subject="tongxin.ingest.activity.logged"):
    return SimpleNamespace(data=payload, subject=subject, headers={"Nats-Msg-Id": str(seq)},
                           metadata=SimpleNamespace(sequence=SimpleNamespace(stream=seq)))


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
