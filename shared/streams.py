"""Every JetStream stream, declared in one place with every field spelled out.

FastStream rewrites an existing stream to match whatever a subscriber declares, dropping fields it
does not name (NATS-NOTES.md), so subscribers use `JStream(name, declare=False)` and only
`ensure_streams` creates or updates streams.
"""

from __future__ import annotations

from nats.js import JetStreamContext
from nats.js.api import DiscardPolicy, RetentionPolicy, StorageType, StreamConfig
from nats.js.errors import NotFoundError

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
