"""NATS plumbing every service shares: the broker, JetStream publishing, message helpers."""

from __future__ import annotations

import asyncio
import logging

from faststream.nats import NatsBroker
from nats.aio.msg import Msg
from nats.js import JetStreamContext
from nats.js.api import PubAck

log = logging.getLogger(__name__)

MSG_ID = "Nats-Msg-Id"
ERROR_HEADER = "Tongxin-Error"


def make_broker(url: str, name: str) -> NatsBroker:
    # Reconnect forever: an outage of NATS must never stop a service; the outbox holds the work.
    servers = [u.strip() for u in url.split(",") if u.strip()]  # a cluster: "nats://a,nats://b"
    # FastStream's per-batch "Received"/"Processed" lines go to DEBUG, through our log format.
    return NatsBroker(servers, name=name, max_reconnect_attempts=-1, reconnect_time_wait=0.5,
                      connect_timeout=5, allow_reconnect=True,
                      logger=logging.getLogger("faststream"), log_level=logging.DEBUG)


def jetstream(broker: NatsBroker) -> JetStreamContext:
    return broker.connection.jetstream()


async def publish(js: JetStreamContext, subject: str, payload: bytes, msg_id: str,
                  headers: dict[str, str] | None = None, timeout: float = 5.0) -> PubAck:
    """Publish with `Nats-Msg-Id`, so a retry after a lost ack is stored once."""
    return await js.publish(subject, payload, timeout=timeout,
                            headers={**(headers or {}), MSG_ID: msg_id})


def stream_seq(msg: Msg) -> int:
    return msg.metadata.sequence.stream


async def wait_connected(broker: NatsBroker, timeout: float) -> bool:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while loop.time() < deadline:
        if broker.connection.is_connected:
            return True
        await asyncio.sleep(0.1)
    return broker.connection.is_connected
