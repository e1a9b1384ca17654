"""Per-key rate limits counted in the NATS key-value bucket every instance shares
(`shared.ratelimit`), on a real NATS server: two limiters on two connections (as two instances
of a service are) take a key's limit exactly once between them, even racing for its last writes;
another key is not limited by it; with the bucket away each counts in its own memory."""

from __future__ import annotations

import asyncio

import nats
import pytest
from fastapi import HTTPException

from shared.auth import Principal
from shared.ratelimit import RateLimiter

pytestmark = pytest.mark.asyncio(loop_scope="session")


def key(id_: str, limit: int | None = None) -> Principal:
    return Principal(kind="key", id=id_, name="k", role="unit", organization_id=None,
                     rate_limit=limit)


async def outcomes(limiter: RateLimiter, who: Principal, times: int) -> list[int]:
    async def one() -> int:
        try:
            await limiter.hit(who)
        except HTTPException as exc:
            assert exc.headers and int(exc.headers["Retry-After"]) >= 1
            return exc.status_code
        return 200
    return list(await asyncio.gather(*(one() for _ in range(times))))


async def test_two_instances_share_a_keys_limit(nats_url, names):
    conns = [await nats.connect(nats_url) for _ in range(2)]
    try:
        limiters = [RateLimiter(600, bucket=lambda nc=nc: nc.jetstream(timeout=2).key_value(
            names.ratelimit_bucket)) for nc in conns]
        limited = key("shared-limit", limit=7)
        # Both at once, each trying more than the whole limit.
        first, second = await asyncio.gather(*(outcomes(lim, limited, 10) for lim in limiters))
        assert sorted(first + second).count(200) == 7, (first, second)
        assert (first + second).count(429) == 13
        assert [lim.local_hits for lim in limiters] == [0, 0]  # all counted in the bucket
        # Another key is not limited by this one's writes, on either instance.
        assert await outcomes(limiters[1], key("another", limit=7), 3) == [200] * 3
        assert await outcomes(limiters[0], limited, 1) == [429]
    finally:
        for nc in conns:
            await nc.close()


async def test_without_the_bucket_each_instance_counts_for_itself():
    async def away():
        raise ConnectionError("NATS is not connected")

    limiter = RateLimiter(600, bucket=away)
    got = await outcomes(limiter, key("alone", limit=3), 5)
    assert got.count(200) == 3 and got.count(429) == 2
    assert limiter.local_hits == 5
