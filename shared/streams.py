"""Every JetStream stream, declared in one place with every field spelled out.

FastStream rewrites an existing stream to match whatever a subscriber declares, dropping fields it
does not name (NATS-NOTES.md), so subscribers use `JStream(name, declare=False)` and only
`declare` creates or updates streams (and the buckets, which are streams too). It is the
operator's step (`tongxin bus streams`, also run by `tongxin migrate` and `tongxin up`): the
services' NATS users may not create, update or delete a stream (tongxin/natsauth.py); a
service only checks at start that what it needs is there (`missing`).
"""

from __future__ import annotations

from nats.js import JetStreamContext
from nats.js.api import (
    DiscardPolicy,
    KeyValueConfig,
    ObjectStoreConfig,
    RetentionPolicy,
    StorageType,
    StreamConfig,
)
from nats.js.errors import BadRequestError, BucketNotFoundError, NotFoundError

from shared.subjects import Names

DAY = 24 * 3600.0


# JetStream remembers every Nats-Msg-Id for this long, in the server's memory: a day of them at
# 14,000 events/s is a billion ids. It needs to cover only a publisher's retry of one publish
# (a timeout whose message was stored after all): seconds. Whatever comes later is still taken
# once, as `event_id` is unique where it counts: offers in the events service's table, and
# every consumer applies a repeat by its id (a record by version, an activity by activity_id).
DUPLICATE_WINDOW = 120.0


def stream_configs(names: Names, replicas: int = 1,
                   duplicate_window: float = DUPLICATE_WINDOW) -> list[StreamConfig]:
    def config(name: str, subjects: list[str], description: str, *,
               max_age: float) -> StreamConfig:
        return StreamConfig(
            name=name,
            description=description,
            subjects=subjects,
            retention=RetentionPolicy.LIMITS,  # history kept for replay; consumers don't delete it
            max_consumers=-1,
            max_msgs=-1,
            max_bytes=-1,
            max_age=max_age,
            max_msgs_per_subject=-1,
            max_msg_size=1024 * 1024,
            discard=DiscardPolicy.OLD,
            storage=StorageType.FILE,
            num_replicas=replicas,
            no_ack=False,
            duplicate_window=duplicate_window,
            allow_direct=True,
            deny_delete=True,
            deny_purge=False,
            allow_rollup_hdrs=False,
        )

    return [
        # Offers wait here while the events service is down (event_id dedupe: its table).
        config(names.ingest_stream, [names.ingest()], "events offered by outside systems",
               max_age=30 * DAY),
        # The record read models replay: kept forever.
        config(names.events_stream, [names.events()], "accepted events, in order", max_age=0),
        config(names.registry_stream, [names.registry(">")], "registry changes, in order",
               max_age=0),
        config(names.dlq_stream, [names.dlq()], "rejected offers with Tongxin-Error",
               max_age=90 * DAY),
        config(names.notify_stream, [names.notify()], "notifications per organisation",
               max_age=90 * DAY),
    ]


async def ensure_streams(js: JetStreamContext, names: Names, replicas: int = 1,
                         duplicate_window: float = DUPLICATE_WINDOW) -> None:
    """Create each stream, or bring an existing one back to the declared configuration (a
    stream made with a day's duplicate window is given the declared one at the next start)."""
    for config in stream_configs(names, replicas, duplicate_window):
        assert config.name is not None  # stream_configs names every stream
        try:
            await js.stream_info(config.name)
        except NotFoundError:
            await js.add_stream(config)
        else:
            await js.update_stream(config)


# A key's writes are counted per minute (shared/ratelimit.py): this minute's and the last one's
# count; older ones go by themselves.
RATELIMIT_TTL = 180.0


def bucket_configs(names: Names, replicas: int = 1,
                   session_hours: float = 12.0) -> list[KeyValueConfig]:
    """The key-value buckets the services share (each is the stream KV_<bucket>)."""
    return [
        KeyValueConfig(bucket=names.ratelimit_bucket, history=1, ttl=RATELIMIT_TTL,
                       storage=StorageType.MEMORY, replicas=replicas, direct=True,
                       description="writes per key per minute, counted by every instance"),
        # An ended session matters only while its cookie could still be good.
        KeyValueConfig(bucket=names.sessions_bucket, history=1, ttl=session_hours * 3600,
                       storage=StorageType.FILE, replicas=replicas, direct=True,
                       description="ended sessions: a logout, a deactivated account"),
    ]


def photos_config(replicas: int = 1) -> ObjectStoreConfig:
    return ObjectStoreConfig(description="Tongxin report photos, named by SHA-256",
                             storage=StorageType.FILE, replicas=replicas)


def stream_names(names: Names) -> list[str]:
    """Every stream a service needs, the buckets' included."""
    return [*(str(c.name) for c in stream_configs(names)),
            *(f"KV_{c.bucket}" for c in bucket_configs(names)), f"OBJ_{names.photos_bucket}"]


async def declare(js: JetStreamContext, names: Names, replicas: int = 1,
                  duplicate_window: float = DUPLICATE_WINDOW,
                  session_hours: float = 12.0) -> None:
    """The operator's step: every stream and bucket created, or brought to its declaration."""
    await ensure_streams(js, names, replicas, duplicate_window)
    for kv in bucket_configs(names, replicas, session_hours):
        try:
            await js.key_value(kv.bucket)
        except BucketNotFoundError:
            await js.create_key_value(config=kv)
    try:
        await js.object_store(names.photos_bucket)
    except BucketNotFoundError:
        try:
            await js.create_object_store(names.photos_bucket, config=photos_config(replicas))
        except BadRequestError:  # made by another operator step meanwhile
            pass


async def missing(js: JetStreamContext, names: Names) -> list[str]:
    """The streams (and buckets) a service needs that are not there: it does not make them."""
    absent = []
    for name in stream_names(names):
        try:
            await js.stream_info(name)
        except NotFoundError:
            absent.append(name)
    return absent


class StreamsMissing(RuntimeError):
    def __init__(self, absent: list[str]):
        super().__init__(f"streams not declared: {', '.join(absent)} (run `tongxin bus streams`"
                         " or `tongxin migrate` first, as the operator)")
        self.absent = absent


async def verify(js: JetStreamContext, names: Names) -> None:
    """Raise StreamsMissing unless every stream a service needs is there."""
    if absent := await missing(js, names):
        raise StreamsMissing(absent)
