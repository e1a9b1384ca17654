"""Sessions ended before their time, known to every instance of every service within moments.

A session cookie is signed with the secret every service shares, so any of them accepts it
without asking anyone (`shared.auth.Gate`). Ending one early (`/logout`), or all of an account's
(an admin deactivates it), is written by the registry in a NATS key-value bucket
(`Names.sessions_bucket`, declared by the operator with the streams); every service follows the
bucket (a watch: the bucket's history first, then each change as it is written) and holds what
it says in memory, so the check on each request asks nobody.

Entries: `s.<session id>` (that session ended) and `a.<account id>` = the time (seconds since
the epoch) before which the account's sessions are ended. The bucket's TTL is the session
lifetime: an entry outlives every cookie it could end.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable

from nats.js.kv import KeyValue

log = logging.getLogger(__name__)


class EndedSessions:
    def __init__(self, bucket: Callable[[], Awaitable[KeyValue]]):
        self._bucket_of = bucket
        self.sessions: set[str] = set()
        self.accounts: dict[str, float] = {}  # account id -> sessions issued before are ended
        self.loaded = asyncio.Event()  # the bucket's history is held

    def ended(self, session_id: str | None, account_id: str, issued_at: float) -> bool:
        """Whether a session (issued at `issued_at`, seconds since the epoch) has ended."""
        if session_id is not None and session_id in self.sessions:
            return True
        return issued_at <= self.accounts.get(account_id, -1.0)

    def note(self, key: str, value: bytes | None) -> None:
        kind, _, id_ = key.partition(".")
        if kind == "s":
            self.sessions.add(id_)
        elif kind == "a" and value:
            try:
                self.accounts[id_] = max(self.accounts.get(id_, -1.0), float(value))
            except ValueError:
                log.warning("unreadable ended-sessions entry %s", key)

    # -- written by the registry --------------------------------------------------------
    async def end_session(self, session_id: str) -> None:
        """End one session everywhere (a logout)."""
        self.sessions.add(session_id)
        await (await self._bucket_of()).put(f"s.{session_id}", b"1")

    async def end_account(self, account_id: str, at: float | None = None) -> None:
        """End every session of an account issued until now (it was deactivated)."""
        at = time.time() if at is None else at
        self.note(f"a.{account_id}", str(at).encode())
        await (await self._bucket_of()).put(f"a.{account_id}", str(at).encode())

    # -- followed by every service ------------------------------------------------------
    async def follow(self) -> None:
        """Hold every entry of the bucket, and each new one as it is written (a worker:
        `Runtime.spawn` restarts it if NATS goes away and comes back)."""
        kv = await self._bucket_of()
        watcher = await kv.watchall()
        try:
            async for entry in watcher:
                if entry is None:  # the history is all held
                    self.loaded.set()
                elif entry.operation in (None, "PUT"):
                    self.note(entry.key, entry.value)
        finally:
            await watcher.stop()
