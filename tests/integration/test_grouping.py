"""services.events.grouping.Grouper on the real acceptor (real NATS, each back-end): requests
arriving while a batch is in hand go together as the next one, each with its own answer; a
batch that fails as a whole is offered again one request at a time."""

from __future__ import annotations

import asyncio

import pytest

from services.events.grouping import Grouper
from services.events.service import Outcome
from tests.integration.test_acceptor import events, offer_for  # noqa: F401 (a fixture)

pytestmark = pytest.mark.asyncio(loop_scope="session")


async def test_a_group_that_fails_is_taken_apart_and_only_the_bad_request_fails(events):  # noqa: F811
    org, base = await events.org_and_base()
    acceptor = events.acceptor
    batches: asyncio.Queue[int] = asyncio.Queue()  # each batch's size as it starts
    # A long window: the five below go together because five is the most a batch takes.
    grouper = Grouper(acceptor, window=60.0, max_size=5, observe=batches.put_nowait)
    first, poison = offer_for(org, base), offer_for(org, base, served=13)
    rest = [offer_for(org, base, served=k) for k in range(3)]

    store = acceptor._store

    async def failing(offers, *args, **kwargs):
        if any(o.event_id == poison.event_id for o in offers):
            raise RuntimeError("a poisonous offer")
        return await store(offers, *args, **kwargs)

    acceptor._store = failing  # type: ignore[method-assign]
    async with acceptor._judging:  # the first request's batch waits for its turn to write...
        alone = asyncio.create_task(grouper.offer(first, None))
        assert await batches.get() == 1
        # ...while five more arrive: the poisonous one, three others, and the first again.
        together = [asyncio.create_task(grouper.offer(o, None))
                    for o in (poison, *rest, first)]
        assert await batches.get() == 5

    accepted = await alone
    assert accepted.seq is not None and not accepted.duplicate
    answers = await asyncio.gather(*together, return_exceptions=True)
    assert isinstance(answers[0], RuntimeError)
    assert [a.duplicate for a in answers[1:]] == [False, False, False, True]
    assert answers[4] == Outcome(first.event_id, accepted.seq, True)
    seqs = [a.seq for a in answers[1:4]]
    assert seqs == sorted(seqs) and seqs[0] > accepted.seq
    assert [m.seq for m in await events.stream()] == [accepted.seq, *seqs]
