"""Subject and stream names (CONTRACT.md), optionally prefixed by a namespace."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Names:
    namespace: str = ""

    def _subject(self, tail: str) -> str:
        return f"{self.namespace}.{tail}" if self.namespace else tail

    def _stream(self, name: str) -> str:
        return f"{self.namespace.upper()}_{name}" if self.namespace else name

    # streams
    @property
    def ingest_stream(self) -> str:
        return self._stream("TONGXIN_INGEST")

    @property
    def events_stream(self) -> str:
        return self._stream("TONGXIN_EVENTS")

    @property
    def registry_stream(self) -> str:
        return self._stream("TONGXIN_REGISTRY")

    @property
    def dlq_stream(self) -> str:
        return self._stream("TONGXIN_DLQ")

    @property
    def notify_stream(self) -> str:
        return self._stream("TONGXIN_NOTIFY")

    @property
    def photos_bucket(self) -> str:
        """The NATS object store bucket holding report photos (its stream is OBJ_<bucket>)."""
        return self._stream("TONGXIN_PHOTOS")

    @property
    def ratelimit_bucket(self) -> str:
        """The NATS key-value bucket counting each key's writes per minute, shared by every
        instance (its stream is KV_<bucket>)."""
        return self._stream("TONGXIN_RATELIMIT")

    @property
    def sessions_bucket(self) -> str:
        """The NATS key-value bucket of ended sessions (a logout, a deactivated account)."""
        return self._stream("TONGXIN_SESSIONS")

    # subjects
    def ingest(self, event_type: str = ">") -> str:
        return self._subject(f"tongxin.ingest.{event_type}")

    def events(self, event_type: str = ">") -> str:
        return self._subject(f"tongxin.events.{event_type}")

    def registry(self, entity: str = "*", verb: str = "*") -> str:
        if entity == ">":
            return self._subject("tongxin.registry.>")
        return self._subject(f"tongxin.registry.{entity}.{verb}")

    def dlq(self, event_type: str = ">") -> str:
        return self._subject(f"tongxin.dlq.{event_type}")

    def notify(self, organization_id: str = "*", kind: str = ">") -> str:
        return self._subject(f"tongxin.notify.{organization_id}.{kind}")

    def type_from_subject(self, subject: str, kind: str) -> str:
        """`tongxin.ingest.activity.logged` -> `activity.logged`."""
        prefix = self._subject(f"tongxin.{kind}.")
        return subject[len(prefix):] if subject.startswith(prefix) else ""
