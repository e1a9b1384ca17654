"""Keys, sessions and the subtree check, without services: what `shared.auth` decides alone.
(Every service enforcing them, over HTTP and the bus, is tests/e2e/test_trust.py.)"""

from __future__ import annotations

import asyncio

import pytest
from fastapi import HTTPException
from starlette.requests import Request

from shared.auth import (
    SESSION_COOKIE,
    Gate,
    Principal,
    in_subtree,
    key_hash,
    key_id_of,
    new_key,
)
from shared.ratelimit import RateLimiter


def request(headers: dict[str, str] | None = None) -> Request:
    raw = [(k.lower().encode(), v.encode()) for k, v in (headers or {}).items()]
    return Request({"type": "http", "method": "GET", "path": "/v1/x", "headers": raw,
                    "query_string": b""})


def gate_with(records: dict[tuple[str, str], dict], refreshed: list | None = None) -> Gate:
    async def lookup(kind: str, id_: str) -> dict | None:
        return records.get((kind, id_))

    async def refresh() -> None:
        if refreshed is not None:
            refreshed.append(True)

    return Gate(lookup, "a secret of the test", session_hours=1, refresh=refresh)


def test_a_key_names_its_id_and_only_its_hash_is_kept():
    key_id, key = new_key()
    assert key.startswith(f"txk_{key_id}_") and key_id_of(key) == key_id
    assert len(key) > 50 and key_hash(key) != key and len(key_hash(key)) == 64
    assert new_key()[1] != key
    for bad in ("", "txk", "txk__x", "abc_def_ghi", "txk_id_"):
        assert key_id_of(bad) is None, bad


def test_a_key_is_accepted_only_whole_and_while_active():
    key_id, key = new_key()
    record = {"id": key_id, "name": "小程序", "role": "unit", "organization_id": "o1",
              "key_hash": key_hash(key), "active": True}
    gate = gate_with({("key", key_id): record})
    who = asyncio.run(gate.identify(request({"Authorization": f"Bearer {key}"})))
    assert (who.kind, who.id, who.role, who.scope) == ("key", key_id, "unit", "o1")
    for wrong in (key[:-1] + ("A" if key[-1] != "A" else "B"), f"txk_{key_id}_x",
                  "Basic abc", ""):
        header = wrong if wrong.startswith("Basic") else f"Bearer {wrong}"
        with pytest.raises(HTTPException) as refused:
            asyncio.run(gate.identify(request({"Authorization": header})))
        assert refused.value.status_code == 401
        assert refused.value.headers == {"WWW-Authenticate": "Bearer"}
    record["active"] = False
    with pytest.raises(HTTPException):
        asyncio.run(gate.identify(request({"Authorization": f"Bearer {key}"})))


def test_an_unknown_key_makes_the_copy_catch_up_once_before_refusing():
    refreshed: list = []
    gate = gate_with({}, refreshed)
    with pytest.raises(HTTPException):
        asyncio.run(gate.identify(request({"Authorization": f"Bearer {new_key()[1]}"})))
    assert refreshed == [True]


def test_a_session_names_an_account_that_must_still_be_active():
    account = {"id": "a1", "name": "王老师", "role": "organiser", "organization_id": "o1",
               "active": True}
    gate = gate_with({("account", "a1"): account})
    cookie = gate.sessions.dumps({"account": "a1"})
    who = asyncio.run(gate.identify(request({"Cookie": f"{SESSION_COOKIE}={cookie}"})))
    assert (who.kind, who.id, who.role) == ("account", "a1", "organiser")
    forged = gate_with({("account", "a1"): account})
    forged.sessions = Gate(forged.lookup, "another secret", 1).sessions
    for bad in (cookie[:-2] + "xx", forged.sessions.dumps({"account": "a1"})):
        with pytest.raises(HTTPException):
            asyncio.run(gate.identify(request({"Cookie": f"{SESSION_COOKIE}={bad}"})))
    account["active"] = False
    with pytest.raises(HTTPException):
        asyncio.run(gate.identify(request({"Cookie": f"{SESSION_COOKIE}={cookie}"})))


def test_the_subtree_is_the_unit_and_everything_under_it_never_above_or_beside():
    parents = {"a": "c", "b": "c", "a1": "a", "c": None, "loop1": "loop2", "loop2": "loop1"}

    async def parent_of(id_: str) -> str | None:
        return parents.get(id_)

    def inside(org: str, root: str) -> bool:
        return asyncio.run(in_subtree(org, root, parent_of))

    assert inside("a", "a") and inside("a1", "a") and inside("a1", "c") and inside("b", "c")
    assert not inside("b", "a") and not inside("c", "a") and not inside("nobody", "a")
    assert not inside("loop1", "a")  # a cycle in the data ends, refused


def test_an_admin_is_bound_to_nothing_and_the_others_to_their_organisation():
    assert Principal("key", "k", "", "admin", "o1").scope is None
    assert Principal("key", "k", "", "reader", "o1").scope == "o1"
    assert Principal("key", "k", "", "publisher", None).scope is None


def test_writes_beyond_a_keys_limit_are_429_with_retry_after():
    limiter = RateLimiter(per_minute=100)
    small = Principal("key", "k1", "", "unit", "o1", rate_limit=3)
    other = Principal("key", "k2", "", "unit", "o1", rate_limit=3)

    async def run() -> HTTPException:
        for _ in range(3):
            await limiter.hit(small)
        await limiter.hit(other)  # counted apart
        with pytest.raises(HTTPException) as refused:
            await limiter.hit(small)
        return refused.value

    refused = asyncio.run(run())
    assert refused.status_code == 429
    assert refused.headers is not None and 1 <= int(refused.headers["Retry-After"]) <= 60
