"""Keys and accounts in this process's memory: who is asking is answered from a dict, without a
database query on the request path.

The events and reporting services fill it from their registry replica (`registry_entities`)
when the replica's projection starts, and keep it current with every batch of the registry's
stream the projection reads (`Projection(observe=..., started=...)`): a revoked key or a
deactivated account is refused as soon as the replica has it (well within a second). The
registry fills it from its own tables at start and keeps it current with every key and account
change its outbox relay reads (also those `tongxin keys` writes from outside the process); a
key it has not seen yet is looked up in its tables once.

Newest wins, by the record's version (`updated_at`, as in the replica table): an older record
read again (a restart, a batch applied by another instance) never undoes a revocation.
Only keys and accounts are kept: a few hundred or thousand records, whatever the programme size.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

from nats.aio.msg import Msg
from sqlalchemy import Table, select
from sqlalchemy.ext.asyncio import AsyncEngine

from shared.envelope import Envelope
from shared.replica import record_json, replica_row

log = logging.getLogger(__name__)

KINDS = ("key", "account")


class Keyring:
    def __init__(self, fallback: Callable[[str, str], Awaitable[dict | None]] | None = None):
        # (kind, id) -> (version, record with `active`)
        self._known: dict[tuple[str, str], tuple[str, dict]] = {}
        # Where a record not held is looked for (the registry's own tables); None: nowhere.
        self.fallback = fallback

    def __len__(self) -> int:
        return len(self._known)

    def put(self, kind: str, id_: str, version: str, record: dict) -> None:
        """Keep `record` unless a newer version of it is held."""
        held = self._known.get((kind, id_))
        if held is None or held[0] <= version:
            self._known[(kind, id_)] = (version, record)

    async def lookup(self, kind: str, id_: str) -> dict | None:
        """The record of a key or account (`shared.auth.Gate`'s lookup), or None."""
        held = self._known.get((kind, id_))
        if held is not None:
            return held[1]
        if self.fallback is None:
            return None
        record = await self.fallback(kind, id_)
        if record is not None:
            self.keep(kind, record)
        return record

    def keep(self, kind: str, record: dict) -> None:
        """A key or account as the registry publishes it (its version: `updated_at`)."""
        self.put(kind, str(record["id"]), str(record.get("updated_at") or ""), record)

    # -- from the registry's events (the replica's projection, the registry's outbox) ----
    def note(self, subject: str, payload: bytes | str) -> None:
        """One registry event: kept if it is about a key or an account."""
        if subject.split(".")[-2:-1] not in (["key"], ["account"]):
            return
        try:
            envelope = Envelope.model_validate_json(payload)
            kind, _, verb = envelope.type.partition(".")
            row = replica_row(kind, verb, envelope.data)
        except Exception:  # the replica's projection parks it; nothing to keep here
            log.warning("unreadable registry record on %s", subject)
            return
        self.put(kind, row["id"], row["version"], {**row["record"], "active": row["active"]})

    def observe(self, msgs: Iterable[Msg]) -> None:
        """Messages of the registry's stream, applied to the replica (`Projection.observe`)."""
        for msg in msgs:
            self.note(msg.subject, msg.data)

    def observe_outbox(self, rows: Iterable[Any]) -> None:
        """Outbox rows (subject, payload) the registry's relay has read (`Relay.observe`)."""
        for row in rows:
            self.note(row.subject, row.payload)

    # -- at start --------------------------------------------------------------------------
    async def load_replica(self, engine: AsyncEngine, table: Table) -> None:
        """Every key and account in the replica table (the primary key's first column is
        `kind`: an index range, not a scan)."""
        t = table
        async with engine.connect() as conn:
            result = await conn.execute(select(t.c.kind, t.c.id, t.c.version, t.c.active,
                                               t.c.record).where(t.c.kind.in_(KINDS)))
            for kind, id_, version, active, record in result:
                self.put(kind, id_, version, {**record_json(record), "active": bool(active)})
        log.info("keyring: %d keys and accounts", len(self))
