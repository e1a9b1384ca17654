"""services.events.service.Acceptor in-process, on a real NATS server and a real database
(each back-end), with the registry replica running as services/events/app.py runs it."""

from __future__ import annotations

import asyncio
import json
import uuid
from datetime import UTC, datetime, timedelta

import nats
import pytest
from sqlalchemy import select

from services.events import store
from services.events.domain import Offer, parse_offer
from services.events.facts import load_facts
from services.events.service import Acceptor, Outcome
from shared.bus import MSG_ID
from shared.db import migrate
from shared.envelope import new_envelope
from shared.errors import Conflict, Rejected, Unavailable
from shared.outbox import Relay, seqs_of
from shared.projection import Projection
from shared.replica import apply_registry_events
from tests.factories import activity, envelope
from tests.integration.conftest import db_for

pytestmark = pytest.mark.asyncio(loop_scope="session")


class Events:
    """The acceptor, its replica, and what the test needs to look at both."""

    def __init__(self, acceptor: Acceptor, replica: Projection, gate: asyncio.Event):
        self.acceptor = acceptor
        self.replica = replica
        self.gate = gate  # while cleared, the replica cannot apply anything
        self.names = acceptor.names
        self.js = acceptor.js
        self.engine = acceptor.engine

    async def register(self, entity: str, verb: str = "registered", **record) -> dict:
        """Publish a registry event as the registry's outbox relay does."""
        record.setdefault("id", str(uuid.uuid4()))
        env = new_envelope(f"{entity}.{verb}", {**record, "active": verb != "deactivated"},
                           "registry")
        await self.js.publish(self.names.registry(entity, verb), env.model_dump_json().encode(),
                              headers={MSG_ID: str(env.event_id)}, timeout=5)
        return record

    async def org_and_base(self) -> tuple[dict, dict]:
        org = await self.register("organization", name="淄博市工商联", kind="enterprise")
        base = await self.register("base", name="博山区源泉镇", kind="village")
        assert await self.replica.caught_up(10)
        return org, base

    async def stream(self) -> list:
        """Every message in this test's TONGXIN_EVENTS, in order."""
        info = await self.js.stream_info(self.names.events_stream)
        return [await self.js.get_msg(self.names.events_stream, seq)
                for seq in range(info.state.first_seq, info.state.last_seq + 1)
                if info.state.messages]

    async def stored(self) -> list:
        t = store.accepted_events
        async with self.engine.connect() as conn:
            rows = (await conn.execute(select(t.c.id, t.c.event_id).order_by(t.c.id))).all()
            seqs = await seqs_of(conn, t, [r.id for r in rows])
        return [(r.event_id, seqs.get(r.id)) for r in rows]


@pytest.fixture
async def events(backend, tag, nc, names):
    db = db_for(backend, "events", tag)
    await migrate("events", db.url, db.schema)
    engine = db.engine()
    gate = asyncio.Event()
    gate.set()

    async def apply(conn, msgs) -> None:
        await gate.wait()
        await apply_registry_events(conn, store.registry_entities, msgs)

    js = nc.jetstream()
    replica = Projection(name="events-registry-replica", js=js, stream=names.registry_stream,
                         subject=names.registry(">"), engine=engine, positions=store.positions,
                         parked=store.parked, apply=apply, batch_size=500)
    task = asyncio.create_task(replica.run())
    try:
        relay = Relay(engine, js, store.accepted_events, timeout=5.0,
                      stream=names.events_stream)
        yield Events(Acceptor(engine, js, names, replica, relay), replica, gate)
    finally:
        gate.set()
        replica.stop()
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await engine.dispose()


def offer_for(org: dict, base: dict, **changes) -> Offer:
    return parse_offer(envelope(activity(org["id"], base["id"], **changes)))


async def test_the_same_event_twice_in_a_batch_is_stored_and_published_once(events):
    org, base = await events.org_and_base()
    offer, other = offer_for(org, base), offer_for(org, base, served=7)
    event_id = str(offer.envelope.event_id)

    assert await events.acceptor.check([offer, other, offer]) == [[], [], []]
    receipts = await events.acceptor.offer([offer, other, offer], via="bus")
    seq = receipts[0].seq
    assert receipts == [Outcome(event_id, seq, False),
                        Outcome(str(other.envelope.event_id), seq + 1, False),
                        Outcome(event_id, seq, True)]

    msgs = await events.stream()
    assert [m.seq for m in msgs] == [seq, seq + 1]
    assert msgs[0].headers[MSG_ID] == event_id == json.loads(msgs[0].data)["event_id"]
    assert json.loads(msgs[0].data) == json.loads(offer.envelope.model_dump_json())
    assert msgs[0].subject == events.names.events("activity.logged")
    assert [tuple(r) for r in await events.stored()] == [
        (event_id, seq), (str(other.envelope.event_id), seq + 1)]

    # Offered again later (HTTP this time): the same event, same seq, nothing new published.
    assert await events.acceptor.accept_one(offer, via="http") == Outcome(event_id, seq, True)
    assert len(await events.stream()) == 2


async def test_a_base_registered_a_moment_ago_is_accepted_after_catching_up(events):
    org, _ = await events.org_and_base()
    events.gate.clear()  # the replica receives the next registry event but cannot apply it yet...
    base = await events.register("base", name="临淄区皇城镇", kind="village")
    offer = offer_for(org, base)

    original = events.replica.caught_up
    catch_ups = []

    async def caught_up(timeout: float) -> bool:
        catch_ups.append(events.replica.position)
        events.gate.set()  # ...until the acceptor asks it to catch up
        return await original(timeout)

    events.replica.caught_up = caught_up
    receipt = await events.acceptor.accept_one(offer, via="http")

    assert len(catch_ups) == 1, "the unknown base made the acceptor wait for the replica"
    assert receipt.duplicate is False and receipt.seq is not None
    assert [m.seq for m in await events.stream()] == [receipt.seq]


async def test_unknown_or_deactivated_references_are_rejected_naming_the_field(events):
    org, base = await events.org_and_base()
    with pytest.raises(Rejected) as unknown:
        await events.acceptor.accept_one(
            parse_offer(envelope(activity(org["id"], "no-such-base"))), via="http")
    assert [e.field for e in unknown.value.errors] == ["data.base_id"]
    assert "no-such-base" in unknown.value.errors[0].message

    # Deactivated a moment ago: the acceptor catches up with the registry stream first.
    await events.register("organization", "deactivated", id=org["id"], name=org["name"])
    with pytest.raises(Rejected) as deactivated:
        await events.acceptor.accept_one(offer_for(org, base), via="http")
    assert [(e.field, e.message) for e in deactivated.value.errors] == [
        ("data.organization_id", f"organization {org['id']!r} is deactivated")]

    assert await events.stream() == []
    assert await events.stored() == []


async def test_events_stored_while_publishing_fails_are_published_later_in_order(
        events, nats_url):
    org, base = await events.org_and_base()
    first, second, third = (offer_for(org, base, served=n) for n in (1, 2, 3))
    ids = [str(o.envelope.event_id) for o in (first, second, third)]

    # NATS unreachable while accepting: the events are stored and accepted, without a seq yet.
    broken_nc = await nats.connect(nats_url)
    await broken_nc.close()
    broken_relay = Relay(events.engine, broken_nc.jetstream(), store.accepted_events, 2.0)
    broken = Acceptor(events.engine, broken_nc.jetstream(), events.names, events.replica,
                      broken_relay)
    receipts = await broken.offer([first, second], via="bus")
    assert [(r.event_id, r.seq, r.duplicate) for r in receipts] == [
        (ids[0], None, False), (ids[1], None, False)]
    assert [tuple(r) for r in await events.stored()] == [(i, None) for i in ids[:2]]

    # NATS is back: the next acceptance publishes the waiting ones first, in commit order.
    (receipt,) = await events.acceptor.offer([third], via="http")
    msgs = await events.stream()
    assert [m.headers[MSG_ID] for m in msgs] == ids
    assert receipt.seq == msgs[-1].seq
    assert [tuple(r) for r in await events.stored()] == [(i, m.seq) for i, m in zip(
        ids, msgs, strict=True)]
    assert await events.acceptor.relay.publish_pending() == 0
    assert await events.acceptor.offer([first], via="bus") == [
        Outcome(ids[0], msgs[0].seq, True)]
    assert len(await events.stream()) == 3


async def test_the_relay_publishes_what_was_stored_but_never_published(events, nats_url):
    org, base = await events.org_and_base()
    offer = offer_for(org, base)
    broken_nc = await nats.connect(nats_url)
    await broken_nc.close()
    broken = Acceptor(events.engine, broken_nc.jetstream(), events.names, events.replica,
                      Relay(events.engine, broken_nc.jetstream(), store.accepted_events, 2.0))
    (receipt,) = await broken.offer([offer], via="bus")
    assert receipt.seq is None
    assert await events.acceptor.relay.publish_pending() == 1  # what the relay loop runs
    (msg,) = await events.stream()
    assert [tuple(r) for r in await events.stored()] == [(offer.event_id, msg.seq)]


async def test_the_same_event_offered_at_once_from_many_sides_is_stored_once(events):
    org, base = await events.org_and_base()
    offer = offer_for(org, base)
    receipts = await asyncio.gather(*(events.acceptor.offer([offer], via="http")
                                      for _ in range(6)))
    flat = [r for batch in receipts for r in batch]
    assert sum(not r.duplicate for r in flat) == 1, flat
    assert len(await events.stored()) == 1
    assert len(await events.stream()) == 1


async def test_an_unknown_reference_while_the_replica_cannot_catch_up_is_not_refused(events):
    org, _ = await events.org_and_base()
    events.gate.clear()  # the replica is stuck behind the registry stream
    base = await events.register("base", name="沂源县燕崖镇", kind="village")
    with pytest.raises(Unavailable):
        await events.acceptor.accept_one(offer_for(org, base), via="http")
    assert await events.stored() == []
    events.gate.set()
    receipt = await events.acceptor.accept_one(offer_for(org, base), via="http")
    assert receipt.seq is not None


def need_offer(event_type: str, **data) -> Offer:
    return parse_offer(envelope(data, event_type))


async def test_two_instances_claiming_one_need_at_once_accept_one_claim(events):
    """Two events instances share a database: the state row is the arbiter. Whoever stores
    second judges again against what the first stored."""
    org, base = await events.org_and_base()
    other = await events.register("organization", name="博山区统战部", kind="party_organization")
    for unit in (org, other):
        await events.register("pairing", organization_id=unit["id"], base_id=base["id"],
                              starts_on="2013-01-01", status="active")
    assert await events.replica.caught_up(10)
    twin = Acceptor(events.engine, events.js, events.names, events.replica,
                    Relay(events.engine, events.js, store.accepted_events, 5.0))
    need_id = f"12345-{uuid.uuid4().hex[:8]}"
    await events.acceptor.accept_one(need_offer(
        "need.submitted", need_id=need_id, base_id=base["id"], title="楼道灯坏了",
        category="repair", channel="hotline"), via="http")
    claims = [need_offer("need.claimed", need_id=need_id, organization_id=unit["id"])
              for unit in (org, other)]
    results = await asyncio.gather(events.acceptor.offer([claims[0]], via="bus"),
                                   twin.offer([claims[1]], via="bus"))
    outcomes = [r[0] for r in results]
    assert sorted(o.status for o in outcomes) == [202, 409], outcomes
    (refused,) = [o for o in outcomes if o.status == 409]
    assert "is claimed by" in refused.errors[0].message
    # submitting the same need twice at once: one need, one refusal
    submit = [need_offer("need.submitted", need_id=f"{need_id}-b", base_id=base["id"],
                         title="下水道堵了", category="repair", channel="hotline")
              for _ in range(2)]
    results = await asyncio.gather(events.acceptor.offer([submit[0]], via="bus"),
                                   twin.offer([submit[1]], via="bus"))
    assert sorted(r[0].status for r in results) == [202, 409]


async def test_a_batch_judges_each_offer_against_the_ones_before_it(events):
    org, base = await events.org_and_base()
    await events.register("pairing", organization_id=org["id"], base_id=base["id"],
                          starts_on="2013-01-01", status="active")
    assert await events.replica.caught_up(10)
    need_id = f"n-{uuid.uuid4().hex[:8]}"
    batch = [need_offer("need.submitted", need_id=need_id, base_id=base["id"], title="送药",
                        category="free_clinic", channel="community"),
             need_offer("need.claimed", need_id=need_id, organization_id=org["id"]),
             need_offer("need.claimed", need_id=need_id, organization_id=org["id"]),
             need_offer("need.resolved", need_id=need_id, organization_id=org["id"])]
    outcomes = await events.acceptor.offer(batch, via="bus")
    assert [o.status for o in outcomes] == [202, 202, 409, 202]
    assert [json.loads(m.data)["type"] for m in await events.stream()] == [
        "need.submitted", "need.claimed", "need.resolved"]
    with pytest.raises(Conflict) as exc:
        await events.acceptor.accept_one(batch[1].__class__(
            batch[1].envelope.model_copy(update={"event_id": uuid.uuid4()}), batch[1].data,
            batch[1].type), via="http")
    assert "is resolved" in exc.value.errors[0].message


async def test_an_overlap_is_judged_against_the_hours_of_that_time_only(events):
    """A volunteer's hours are checked against the activities within the batch's time: an
    overlapping one is refused (in the same batch too), and years of earlier hours are not
    read (nor locked) to judge it."""
    org, base = await events.org_and_base()
    volunteer = await events.register("volunteer", name="志愿者", organization_id=org["id"])
    assert await events.replica.caught_up(10)
    morning, late, years_ago, same_batch = (
        offer_for(org, base),  # 09:00-12:00
        offer_for(org, base, started_at="2013-10-20T11:00:00+08:00",
                  ended_at="2013-10-20T14:00:00+08:00"),
        offer_for(org, base, started_at="2010-05-01T09:00:00+08:00",
                  ended_at="2010-05-01T12:00:00+08:00"),
        offer_for(org, base, started_at="2013-10-20T11:30:00+08:00",
                  ended_at="2013-10-20T12:30:00+08:00"))

    def hours_at(act: Offer) -> Offer:
        return need_offer("attendance.recorded", activity_id=act.envelope.data["activity_id"],
                          volunteer_id=volunteer["id"], hours=1, method="sign_in")

    assert [o.status for o in await events.acceptor.offer(
        [morning, late, years_ago, hours_at(morning), hours_at(years_ago)], via="bus")] == [
        202] * 5

    async with events.engine.connect() as conn:
        facts = await load_facts(conn, [hours_at(late)], now=datetime.now(UTC),
                                 report_due=timedelta(days=7), photos=set())
    assert {k[0] for k in facts.attendance} == {morning.envelope.data["activity_id"]}
    assert years_ago.envelope.data["activity_id"] not in {k[0] for k in facts.activities}

    outcomes = await events.acceptor.offer([hours_at(late), same_batch, hours_at(same_batch)],
                                           via="bus")
    assert [o.status for o in outcomes] == [409, 202, 409]
    assert morning.envelope.data["activity_id"] in outcomes[0].errors[0].message
