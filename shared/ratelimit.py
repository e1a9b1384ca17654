"""Write requests per key per minute (a moving window, kept in this process's memory): a script
gone wrong, or a leaked key, cannot flood a service. Reads are not limited here; reports queue
on `report_concurrency` instead. Each process counts its own requests, so behind a load balancer
with N instances a key gets up to N times its limit: a bound on damage, not a quota."""

from __future__ import annotations

import math
import time

from fastapi import HTTPException
from limits import RateLimitItemPerMinute
from limits.aio.storage import MemoryStorage
from limits.aio.strategies import MovingWindowRateLimiter

from shared.auth import Principal


class RateLimiter:
    def __init__(self, per_minute: int):
        self.per_minute = per_minute
        self._limiter = MovingWindowRateLimiter(MemoryStorage())

    async def hit(self, principal: Principal) -> None:
        """Count one write by `principal`; 429 with Retry-After once over its limit."""
        item = RateLimitItemPerMinute(principal.rate_limit or self.per_minute)
        if await self._limiter.hit(item, principal.label):
            return
        stats = await self._limiter.get_window_stats(item, principal.label)
        wait = max(1, math.ceil(stats.reset_time - time.time()))
        raise HTTPException(429, f"{principal.label} has made its {item.amount} writes this "
                                 f"minute: try again in {wait} s",
                            headers={"Retry-After": str(wait)})
