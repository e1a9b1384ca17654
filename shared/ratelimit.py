"""Write requests per key per minute, counted once for every instance of every service: a script
gone wrong, or a leaked key, cannot flood the system, however many instances a load balancer
spreads it over. Reads are not limited here; the database pool bounds reports built at once, and
identical reports share one answer (services/reporting/answers.py).

The count lives in a NATS key-value bucket (`Names.ratelimit_bucket`, declared by the operator
with the streams): one entry per key per minute, raised by compare-and-set (`update(last=...)`),
so two instances cannot both take the last write of a minute. The window slides: a write is
refused once this minute's writes plus the last minute's, weighted by how much of it is still
within 60 s (rounded up), reach the limit. Old minutes expire with the bucket's TTL.

When the bucket cannot be reached within `timeout` (NATS away, a leader election), each process
counts in its own memory for as long (a moving window, as before this was shared): writes go on,
a key gets at most its limit per instance, and a warning is logged. It is a bound on damage that
holds either way, not a quota to bill by.
"""

from __future__ import annotations

import asyncio
import logging
import math
import re
import time
import weakref
from collections.abc import Awaitable, Callable

from fastapi import HTTPException
from limits import RateLimitItemPerMinute
from limits.aio.storage import MemoryStorage
from limits.aio.strategies import MovingWindowRateLimiter
from nats.js.errors import KeyNotFoundError, KeyWrongLastSequenceError
from nats.js.kv import KeyValue

from shared.auth import Principal

log = logging.getLogger(__name__)

WINDOW = 60.0
RETRIES = 20  # compare-and-set rounds lost to other instances before counting locally
NOT_KEY = re.compile(r"[^-_=a-zA-Z0-9]")


class Contended(RuntimeError):
    pass


class RateLimiter:
    def __init__(self, per_minute: int,
                 bucket: Callable[[], Awaitable[KeyValue]] | None = None,
                 timeout: float = 1.0):
        """`bucket`: the shared bucket (None: this process's memory only, e.g. unit tests)."""
        self.per_minute = per_minute
        self._bucket_of = bucket
        self._kv: KeyValue | None = None
        self.timeout = timeout
        self._local = MovingWindowRateLimiter(MemoryStorage())
        # One count at a time per key in this process (its requests never race each other
        # for a compare-and-set), and each key's last-minute count, read once per minute.
        self._turns: weakref.WeakValueDictionary[str, asyncio.Lock] = (
            weakref.WeakValueDictionary())
        self._last: dict[str, tuple[int, int]] = {}  # key -> (minute, its last minute's count)
        self._warned_at = -math.inf
        self.local_hits = 0  # writes counted in memory because the bucket was away

    async def hit(self, principal: Principal) -> None:
        """Count one write by `principal`; 429 with Retry-After once over its limit."""
        limit = principal.rate_limit or self.per_minute
        if self._bucket_of is not None:
            turn = self._turns.setdefault(principal.label, asyncio.Lock())
            try:
                async with asyncio.timeout(self.timeout), turn:
                    wait = await self._shared(principal.label, limit)
            except Exception as exc:  # away, slow, contended: count here for now
                self._warn(exc)
            else:
                if wait is None:
                    return
                raise over(principal.label, limit, wait)
        self.local_hits += 1
        await self._local_hit(principal.label, limit)

    async def _shared(self, label: str, limit: int) -> int | None:
        """None if the write is counted; else the seconds to wait."""
        if self._kv is None:
            assert self._bucket_of is not None
            self._kv = await self._bucket_of()
        kv = self._kv
        now = time.time()
        minute = int(now // WINDOW)
        name = NOT_KEY.sub("_", label)
        held = self._last.get(name)
        if held is None or held[0] != minute:
            if len(self._last) > 10_000:  # keys of past minutes
                self._last.clear()
            held = (minute, (await _count(kv, f"{name}.{minute - 1}"))[0])
            self._last[name] = held
        last = held[1]
        into = now - minute * WINDOW
        carried = math.ceil(last * (1 - into / WINDOW))  # the last minute's, still in the window
        for _ in range(RETRIES):
            count, revision = await _count(kv, f"{name}.{minute}")
            if carried + count >= limit:
                if count >= limit or last == 0:
                    return max(1, math.ceil(WINDOW - into))
                # until enough of the last minute has slid out of the window
                out_at = WINDOW * (1 - (limit - count - 1) / last)
                return max(1, math.ceil(min(out_at, WINDOW) - into))
            try:
                if revision is None:
                    await kv.create(f"{name}.{minute}", b"1")
                else:
                    await kv.update(f"{name}.{minute}", str(count + 1).encode(), last=revision)
                return None
            except KeyWrongLastSequenceError:  # another instance counted one meanwhile
                continue
        raise Contended(f"{RETRIES} rounds lost to other instances")

    async def _local_hit(self, label: str, limit: int) -> None:
        item = RateLimitItemPerMinute(limit)
        if await self._local.hit(item, label):
            return
        stats = await self._local.get_window_stats(item, label)
        raise over(label, limit, max(1, math.ceil(stats.reset_time - time.time())))

    def _warn(self, exc: BaseException) -> None:
        self._kv = None  # bound again next time (NATS may have come back elsewhere)
        now = time.monotonic()
        if now - self._warned_at > WINDOW:
            self._warned_at = now
            log.warning("rate limits counted in this process only for now (the shared bucket: "
                        "%r)", exc)


async def _count(kv: KeyValue, key: str) -> tuple[int, int | None]:
    """(count, revision) of one key's minute; (0, None) if none is held."""
    try:
        entry = await kv.get(key)
    except KeyNotFoundError:  # also a deleted one
        return 0, None
    try:
        return int(entry.value or b"0"), entry.revision
    except ValueError:
        return 0, entry.revision


def over(label: str, limit: int, wait: int) -> HTTPException:
    return HTTPException(429, f"{label} has made its {limit} writes this minute: try again in "
                              f"{wait} s", headers={"Retry-After": str(wait)})
