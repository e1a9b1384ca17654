"""Per-key order by design: two events instances on one database (each its own NATS
connection and relay), one of them slow to publish on purpose. Whatever must stay in order (a
need's life cycle here) reaches TONGXIN_EVENTS in the order it was accepted, each event once:
the relays state `Nats-Expected-Last-Sequence`, so the server refuses a stale publish.

The slow relay is held past the stream's duplicate window, so `Nats-Msg-Id` alone could not
save the order: its late copy of the submission would be stored again, after the claim.
"""

from __future__ import annotations

import asyncio
import json
import random
import uuid

import nats
import pytest
from nats.js.errors import APIError
from sqlalchemy import select

from services.events import store
from services.events.domain import Offer, parse_offer
from services.events.service import Acceptor
from shared.bus import MSG_ID
from shared.outbox import EXPECTED_LAST_SEQ, Relay, seqs_of
from shared.streams import ensure_streams
from tests.factories import envelope
from tests.integration import test_acceptor
from tests.integration.test_acceptor import Events

pytestmark = pytest.mark.asyncio(loop_scope="session")

events = test_acceptor.events  # the fixture: an events instance (acceptor, replica, relay)
WINDOW = 0.5  # this test's duplicate window (seconds)


def need_offer(event_type: str, **data) -> Offer:
    return parse_offer(envelope(data, event_type))


class Paused:
    """A relay hook: the next round stops before sending until released."""

    def __init__(self) -> None:
        self.entered = asyncio.Event()
        self.release = asyncio.Event()
        self.rows: list = []

    async def __call__(self, rows) -> None:
        if self.entered.is_set():
            return  # only the first round is held
        self.rows = [r.event_id for r in rows]
        self.entered.set()
        await self.release.wait()


async def _instance(events: Events, nats_url: str) -> tuple[Acceptor, nats.NATS]:
    """A second events instance: the same database, its own connection and relay."""
    nc = await nats.connect(nats_url)
    js = nc.jetstream()
    relay = Relay(events.engine, js, store.accepted_events, timeout=5.0,
                  stream=events.names.events_stream)
    return Acceptor(events.engine, js, events.names, events.replica, relay), nc


async def _paired(events: Events) -> tuple[dict, dict]:
    org, base = await events.org_and_base()
    await events.register("pairing", organization_id=org["id"], base_id=base["id"],
                          starts_on="2013-01-01", status="active")
    assert await events.replica.caught_up(10)
    return org, base


async def _forgotten(events: Events, event_id: str) -> bool:
    """Whether the stream no longer remembers `event_id` as a duplicate: a publish of it that
    expects an empty stream is then refused (nothing stored) rather than answered as a
    duplicate."""
    try:
        await events.js.publish(events.names.events("need.submitted"), b"{}", timeout=5,
                                headers={MSG_ID: event_id, EXPECTED_LAST_SEQ: "0"})
    except APIError as exc:
        assert exc.err_code == 10071, exc  # wrong last sequence
        return True
    return False


async def _until(check, what: str, timeout: float = 30.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not await check():
        assert loop.time() < deadline, f"{what} within {timeout}s"
        await asyncio.sleep(0.05)


async def _accepted_order(events: Events) -> list[str]:
    t = store.accepted_events
    async with events.engine.connect() as conn:
        return [r.event_id for r in await conn.execute(select(t.c.event_id).order_by(t.c.id))]


async def test_a_slow_instance_cannot_put_a_claim_before_its_submission(events, nats_url):
    await ensure_streams(events.js, events.names, duplicate_window=WINDOW)
    org, base = await _paired(events)
    twin, twin_nc = await _instance(events, nats_url)
    paused = events.acceptor.relay.before_send = Paused()
    try:
        need_id = f"12345-{uuid.uuid4().hex[:8]}"
        submitted = need_offer("need.submitted", need_id=need_id, base_id=base["id"],
                               title="楼道灯坏了", category="repair", channel="hotline")
        # Instance A accepts the submission; its relay stops before publishing it.
        a = asyncio.create_task(events.acceptor.offer([submitted], via="http"))
        await asyncio.wait_for(paused.entered.wait(), 30)
        assert paused.rows == [submitted.event_id]

        # Instance B accepts the claim, right after (the submission is committed).
        claimed = need_offer("need.claimed", need_id=need_id, organization_id=org["id"])
        (claim,) = await twin.offer([claimed], via="http")
        assert claim.status == 202 and claim.seq is not None

        # A's relay stays paused until the stream has forgotten the submission's id.
        await _until(lambda: _forgotten(events, submitted.event_id),
                     "the duplicate window passing")
        paused.release.set()
        (sub,) = await asyncio.wait_for(a, 30)
        assert sub.status == 202
        assert await events.acceptor.relay.publish_pending() == 0
        assert await twin.relay.publish_pending() == 0

        msgs = await events.stream()
        ids = [m.headers[MSG_ID] for m in msgs]
        assert ids == [submitted.event_id, claimed.event_id] == await _accepted_order(events)
        assert [json.loads(m.data)["type"] for m in msgs] == ["need.submitted", "need.claimed"]
        assert (sub.seq, claim.seq) == (msgs[0].seq, msgs[1].seq)
        assert events.acceptor.relay.reconciled >= 1  # A learned it from the stream
        t = store.accepted_events
        async with events.engine.connect() as conn:
            rows = (await conn.execute(select(t.c.id, t.c.event_id).order_by(t.c.id))).all()
            seqs = await seqs_of(conn, t, [r.id for r in rows])
        assert [seqs[r.id] for r in rows] == [m.seq for m in msgs]
    finally:
        await twin_nc.close()


async def test_the_other_instance_takes_over_publishing_when_one_dies(events, nats_url):
    """A dies between committing and publishing (its relay holds rows it never sends): the
    surviving instance's relay publishes them, in order, before what it accepts itself; the
    dead one's connection closing sends nothing; nothing is lost or doubled."""
    org, base = await _paired(events)
    dying, dying_nc = await _instance(events, nats_url)
    paused = dying.relay.before_send = Paused()
    survivor: asyncio.Task | None = None
    try:
        need_ids = [f"hotline-{uuid.uuid4().hex[:8]}" for _ in range(3)]
        submitted = [need_offer("need.submitted", need_id=n, base_id=base["id"],
                                title="独居老人送餐", category="repair", channel="community")
                     for n in need_ids]
        task = asyncio.create_task(dying.offer(submitted, via="bus"))
        entered = asyncio.create_task(paused.entered.wait())
        await asyncio.wait([task, entered], timeout=30, return_when=asyncio.FIRST_COMPLETED)
        assert paused.entered.is_set(), task.result() if task.done() else "no round held"
        task.cancel()  # killed: it never publishes what it stored
        await asyncio.gather(task, return_exceptions=True)
        await dying_nc.close()
        survivor = asyncio.create_task(events.acceptor.relay.run())  # its loop, as deployed

        # The survivor accepts the next event of each need; its relay (run loop) publishes the
        # dead instance's rows first.
        claims = [need_offer("need.claimed", need_id=n, organization_id=org["id"])
                  for n in need_ids]
        outcomes = await events.acceptor.offer(claims, via="bus")
        assert [o.status for o in outcomes] == [202] * 3
        await _until(lambda: _stream_holds(events, 6), "six events in the stream")
        msgs = await events.stream()
        ids = [m.headers[MSG_ID] for m in msgs]
        assert ids == await _accepted_order(events)
        assert ids == [o.event_id for o in submitted + claims]
        assert len(set(ids)) == 6
        for n in need_ids:  # per need: submitted, then claimed
            assert [json.loads(m.data)["type"] for m in msgs
                    if json.loads(m.data)["data"]["need_id"] == n] == [
                "need.submitted", "need.claimed"]
    finally:
        if survivor is not None:
            events.acceptor.relay.stop()
            await asyncio.gather(survivor, return_exceptions=True)
        if not dying_nc.is_closed:
            await dying_nc.close()


async def _stream_holds(events: Events, n: int) -> bool:
    info = await events.js.stream_info(events.names.events_stream)
    return info.state.messages >= n


async def test_rows_a_dead_relay_published_but_never_marked_are_not_published_again(events):
    """A relay that died after the server stored its publishes, before it recorded them, and
    longer ago than the duplicate window: the next relay is refused (the stream has moved on),
    reads the stream back and records where the rows are, instead of storing them twice."""
    await ensure_streams(events.js, events.names, duplicate_window=WINDOW)
    org, base = await _paired(events)
    need_id = f"12345-{uuid.uuid4().hex[:8]}"
    submitted = need_offer("need.submitted", need_id=need_id, base_id=base["id"],
                           title="路灯不亮", category="repair", channel="hotline")
    relay = events.acceptor.relay
    # The acceptor stores; a relay that is about to die publishes (as the relay would) and is
    # gone before it records anything.
    relay.before_send = _die_after_publishing(events)
    (outcome,) = await events.acceptor.offer([submitted], via="http")
    assert outcome.status == 202 and outcome.seq is None
    relay.before_send = None
    await _until(lambda: _forgotten(events, submitted.event_id),
                 "the duplicate window passing")

    claimed = need_offer("need.claimed", need_id=need_id, organization_id=org["id"])
    (claim,) = await events.acceptor.offer([claimed], via="http")
    assert claim.status == 202
    msgs = await events.stream()
    assert [m.headers[MSG_ID] for m in msgs] == [submitted.event_id, claimed.event_id]
    assert claim.seq == msgs[1].seq
    assert relay.reconciled >= 1  # found in the stream, not stored again
    assert [seq for _, seq in await events.stored()] == [m.seq for m in msgs]


def _die_after_publishing(events: Events):
    async def hook(rows) -> None:
        for row in rows:
            await events.js.publish(row.subject, row.payload.encode(), timeout=5,
                                    headers={MSG_ID: row.event_id})
        raise ConnectionError("the relay's process died")
    return hook


async def test_a_message_from_elsewhere_in_the_stream_does_not_stall_the_relay(events):
    """TONGXIN_EVENTS is written by the events relay alone; should anything else publish
    there, the relay is refused once, sees the messages are not its rows, and follows them
    (a long stretch of them, e.g. a stream that outlived its database, is stepped over
    unread: the relay reads back at most ten rounds of rows)."""
    org, base = await _paired(events)
    events.acceptor.relay.batch_size = 2
    strangers = [f"from-elsewhere-{i}" for i in range(25)]
    for msg_id in strangers:
        await events.js.publish(events.names.events("need.submitted"), b"{}", timeout=5,
                                headers={MSG_ID: msg_id})
    need_id = f"12345-{uuid.uuid4().hex[:8]}"
    submitted = need_offer("need.submitted", need_id=need_id, base_id=base["id"],
                           title="井盖松动", category="repair", channel="hotline")
    (outcome,) = await events.acceptor.offer([submitted], via="http")
    assert outcome.status == 202
    if outcome.seq is None:  # refused once, followed on the next round
        assert await events.acceptor.relay.publish_pending() == 1
    msgs = await events.stream()
    assert [m.headers[MSG_ID] for m in msgs] == [*strangers, submitted.event_id]
    assert [seq for _, seq in await events.stored()] == [msgs[-1].seq]


async def test_overlapping_runs_recorded_by_two_relays_still_give_each_row_its_seq(events):
    """One relay's round cut short records a run inside another's whole one: every row is
    still found in the run that reaches it."""
    org, base = await _paired(events)
    offers = [need_offer("need.submitted", need_id=f"n-{uuid.uuid4().hex[:8]}",
                         base_id=base["id"], title="修水管", category="repair",
                         channel="hotline") for _ in range(3)]
    outcomes = await events.acceptor.offer(offers, via="bus")
    before = await events.stored()
    assert [seq for _, seq in before] == [o.seq for o in outcomes]
    t = store.accepted_events
    runs = t.metadata.tables["outbox_seqs"]
    async with events.engine.begin() as conn:
        ids = [r.id for r in await conn.execute(select(t.c.id).order_by(t.c.id))]
        await conn.execute(runs.insert().values(outbox=t.name, first_id=ids[1], last_id=ids[1],
                                                first_seq=before[1][1]))
    assert await events.stored() == before


async def test_two_instances_with_stalling_relays_keep_every_needs_life_cycle_in_order(
        events, nats_url):
    """Many needs, each step accepted by whichever instance, both relays running and each
    round stalling at random, some longer than the duplicate window: the stream is the
    acceptance order, each event once, so every need's steps are in life-cycle order."""
    await ensure_streams(events.js, events.names, duplicate_window=0.2)
    org, base = await _paired(events)
    twin, twin_nc = await _instance(events, nats_url)
    rng = random.Random(15)

    async def stall(rows) -> None:  # a GC pause, a reconnect: fault injection, not a wait
        await asyncio.sleep(rng.choice((0, 0, 0.05, 0.3)))

    instances = [events.acceptor, twin]
    loops = []
    for acceptor in instances:
        acceptor.relay.before_send = stall
        loops.append(asyncio.create_task(acceptor.relay.run()))
    steps = ("need.submitted", "need.claimed", "need.resolved", "need.closed")

    async def life(n: int) -> None:
        need_id = f"stress-{n}-{uuid.uuid4().hex[:6]}"
        data = [dict(need_id=need_id, base_id=base["id"], title="电梯维修", category="repair",
                     channel="hotline"),
                dict(need_id=need_id, organization_id=org["id"]),
                dict(need_id=need_id, organization_id=org["id"]),
                dict(need_id=need_id, outcome="confirmed")]
        for step, d in zip(steps, data, strict=True):
            (outcome,) = await rng.choice(instances).offer([need_offer(step, **d)], via="bus")
            assert outcome.status == 202, outcome

    try:
        await asyncio.gather(*(life(n) for n in range(20)))
        await _until(lambda: _stream_holds(events, 80), "all 80 events in the stream")
        for acceptor in instances:
            acceptor.relay.before_send = None
        assert await events.acceptor.relay.publish_pending() == 0
        msgs = await events.stream()
        ids = [m.headers[MSG_ID] for m in msgs]
        assert ids == await _accepted_order(events)  # acceptance order, each once
        assert len(set(ids)) == 80
        by_need: dict[str, list[str]] = {}
        for m in msgs:
            body = json.loads(m.data)
            by_need.setdefault(body["data"]["need_id"], []).append(body["type"])
        assert all(types == list(steps) for types in by_need.values()), by_need
        assert [seq for _, seq in await events.stored()] == [m.seq for m in msgs]
    finally:
        for acceptor in instances:
            acceptor.relay.stop()
        await asyncio.gather(*loops, return_exceptions=True)
        await twin_nc.close()
