"""The ingest consumer's short ack_wait is kept alive while an instance works on a batch
(`in_progress`): on a real server, a batch held longer than ack_wait by a live instance is not
given to another, and is given to another soon after the holder goes quiet (killed)."""

from __future__ import annotations

import asyncio

import nats.errors
import pytest
from nats.js.api import ConsumerConfig, StreamConfig

from services.events.bus import keep_alive
from tests.integration.conftest import new_tag

pytestmark = pytest.mark.asyncio(loop_scope="session")

ACK_WAIT = 1.0  # the service's is 10 s; the same mechanism, faster


async def test_in_progress_keeps_a_held_batch_from_others_until_the_holder_stops(nc):
    js = nc.jetstream()
    tag = new_tag()
    stream, subject, durable = f"{tag}_KEEPALIVE", f"{tag}.keepalive", "keepalive"
    await js.add_stream(StreamConfig(name=stream, subjects=[subject]))
    try:
        for n in range(5):
            await js.publish(subject, str(n).encode())
        config = ConsumerConfig(durable_name=durable, ack_wait=ACK_WAIT, filter_subject=subject)
        await js.add_consumer(stream, config)
        holder = await js.pull_subscribe_bind(durable, stream)
        other = await js.pull_subscribe_bind(durable, stream)
        held = await holder.fetch(5, timeout=5)
        assert len(held) == 5
        alive = asyncio.create_task(keep_alive(held, ACK_WAIT / 3))
        # Three ack_waits with the batch in hand: nothing of it goes to the other instance.
        with pytest.raises((nats.errors.TimeoutError, TimeoutError)):
            await other.fetch(5, timeout=3 * ACK_WAIT)
        alive.cancel()  # the holder dies: no more signs of life
        loop = asyncio.get_running_loop()
        gone = loop.time()
        taken = await other.fetch(5, timeout=5 * ACK_WAIT)
        took = loop.time() - gone
        assert sorted(m.data for m in taken) == sorted(m.data for m in held)
        assert all(m.metadata.num_delivered == 2 for m in taken)
        print(f"held {3 * ACK_WAIT:.0f}s past ack_wait {ACK_WAIT:.0f}s without a redelivery; "
              f"redelivered to the other {took:.2f}s after the holder went quiet")
    finally:
        await js.delete_stream(stream)
