"""NATS plumbing every service shares: the broker, JetStream publishing, message helpers."""

from __future__ import annotations

import asyncio
import logging
from urllib.parse import unquote, urlsplit

from faststream.nats import NatsBroker
from nats.aio.msg import Msg
from nats.js import JetStreamContext
from nats.js.api import PubAck

log = logging.getLogger(__name__)

MSG_ID = "Nats-Msg-Id"
ERROR_HEADER = "Tongxin-Error"
PING_INTERVAL = 3  # seconds; see make_broker


INBOX = "_INBOX"


def inbox_prefix(url: str) -> str:
    """Where replies to this connection come (JetStream acks, pull deliveries, key-value and
    ordered consumers): `_INBOX_<user>.<id>` for the user named in `url` (its first server),
    so each user may subscribe to its own replies and to nobody else's
    (tongxin/natsauth.py); `_INBOX` when `url` names no user."""
    first = next((u.strip() for u in url.split(",") if u.strip()), "")
    user = urlsplit(first).username
    return inbox_of(unquote(user)) if user else INBOX


def inbox_of(user: str) -> str:
    """A NATS user's own inbox prefix."""
    return f"{INBOX}_{user}"


def make_broker(url: str, name: str) -> NatsBroker:
    # Reconnect forever: an outage of NATS must never stop a service; the outbox holds the work.
    servers = [u.strip() for u in url.split(",") if u.strip()]  # a cluster: "nats://a,nats://b"
    # FastStream's per-batch "Received"/"Processed" lines go to DEBUG, through our log format.
    # reconnect_time_wait is typed int, but nats-py only sleeps for it: seconds, a float is fine.
    # A node that hangs (not dies) keeps its TCP connections open: without an answer to two
    # pings PING_INTERVAL apart the client takes it for dead and goes to another node (nats-py's
    # default is 2 minutes apart: four minutes stalled behind a hung node).
    return NatsBroker(servers, name=name, inbox_prefix=inbox_prefix(url),
                      max_reconnect_attempts=-1,
                      reconnect_time_wait=0.5,  # type: ignore[arg-type]
                      connect_timeout=5, allow_reconnect=True,
                      ping_interval=PING_INTERVAL, max_outstanding_pings=2,
                      logger=logging.getLogger("faststream"), log_level=logging.DEBUG)


def jetstream(broker: NatsBroker) -> JetStreamContext:
    return broker.connection.jetstream()


async def publish(js: JetStreamContext, subject: str, payload: bytes, msg_id: str,
                  headers: dict[str, str] | None = None, timeout: float = 5.0) -> PubAck:
    """Publish with `Nats-Msg-Id`, so a retry after a lost ack is stored once."""
    return await js.publish(subject, payload, timeout=timeout,
                            headers={**(headers or {}), MSG_ID: msg_id})


async def gather_acks(futures: list[asyncio.Future],
                      timeout: float) -> list[PubAck | BaseException]:
    """Wait (bounded) for a window of `publish_async` PubAcks. Each is a PubAck or the error
    it ended with; one that did not come in time is a TimeoutError. Callers decide what a
    failure means (retry the rest; keep what succeeded)."""
    try:
        return list(await asyncio.wait_for(asyncio.gather(*futures, return_exceptions=True),
                                           timeout))
    except TimeoutError:
        return [f.result() if f.done() and not f.cancelled() and f.exception() is None
                else TimeoutError("no PubAck in time") for f in futures]


def first_error(acks: list) -> BaseException | None:
    return next((a for a in acks if isinstance(a, BaseException)), None)


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
