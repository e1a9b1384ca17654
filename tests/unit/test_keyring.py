"""The keyring: keys and accounts in memory, kept from the registry's events. A revocation read
is refused at once and never undone by an older record read again; a key not held is found by
catching up (the Gate's refresh) or, in the registry, in its tables.
(Fed by a real projection from a real stream: tests/integration/test_keyring.py; every service
refusing a revoked key: tests/e2e/test_trust.py.)"""

from __future__ import annotations

import asyncio
from types import SimpleNamespace

import pytest
from fastapi import HTTPException
from nats.aio.msg import Msg

from shared.auth import Gate, key_hash, new_key
from shared.envelope import new_envelope
from shared.keyring import Keyring
from shared.subjects import Names
from tests.unit.test_auth import request

NAMES = Names("t1")


def key_record(key_id: str, key: str, *, active: bool = True, at: str = "2026-01-01T00:00:00",
               **fields) -> dict:
    return {"id": key_id, "name": "小程序", "role": "unit", "organization_id": "o1",
            "key_hash": key_hash(key), "rate_limit": None, "active": active,
            "revoked_at": None if active else at, "created_at": "2026-01-01T00:00:00",
            "updated_at": at, **fields}


def message(kind: str, verb: str, record: dict) -> Msg:
    """A registry event as the stream delivers it."""
    env = new_envelope(f"{kind}.{verb}", record, "registry")
    return Msg(_client=None, subject=NAMES.registry(kind, verb),  # type: ignore[arg-type]
               data=env.model_dump_json().encode())


def bearer(key: str):
    return request({"Authorization": f"Bearer {key}"})


def refused(gate: Gate, key: str) -> bool:
    try:
        asyncio.run(gate.identify(bearer(key)))
    except HTTPException as exc:
        assert exc.status_code == 401
        return True
    return False


def test_a_key_read_from_the_stream_is_accepted_and_refused_once_revoked():
    key_id, key = new_key()
    keyring = Keyring()
    gate = Gate(keyring.lookup, "secret", session_hours=1)
    assert refused(gate, key)  # not seen yet
    keyring.observe([message("key", "issued", key_record(key_id, key))])
    who = asyncio.run(gate.identify(bearer(key)))
    assert (who.kind, who.id, who.role, who.scope) == ("key", key_id, "unit", "o1")
    keyring.observe([message("key", "revoked",
                             key_record(key_id, key, active=False, at="2026-02-01T00:00:00"))])
    assert refused(gate, key)


def test_an_older_record_read_again_never_undoes_a_revocation():
    key_id, key = new_key()
    issued = message("key", "issued", key_record(key_id, key))
    revoked = message("key", "revoked",
                      key_record(key_id, key, active=False, at="2026-02-01T00:00:00"))
    keyring = Keyring()
    keyring.observe([issued, revoked])
    keyring.observe([issued])  # a redelivery, or a batch another instance applied
    gate = Gate(keyring.lookup, "secret", session_hours=1)
    assert refused(gate, key)
    # Loaded from the replica table at a restart, in whatever order: still revoked.
    again = Keyring()
    again.keep("key", key_record(key_id, key, active=False, at="2026-02-01T00:00:00"))
    again.observe([issued])
    assert refused(Gate(again.lookup, "secret", session_hours=1), key)


def test_an_unknown_key_is_accepted_once_the_catch_up_brings_it():
    """Issued a moment ago: the Gate's refresh (the replica catching up with the stream)
    feeds the keyring, and the same request is let in."""
    key_id, key = new_key()
    keyring = Keyring()
    caught_up = []

    async def refresh() -> None:
        caught_up.append(True)
        keyring.observe([message("key", "issued", key_record(key_id, key))])

    gate = Gate(keyring.lookup, "secret", session_hours=1, refresh=refresh)
    assert asyncio.run(gate.identify(bearer(key))).id == key_id
    assert caught_up == [True]
    asyncio.run(gate.identify(bearer(key)))
    assert caught_up == [True]  # held now: no catch-up


def test_a_made_up_key_costs_one_catch_up_and_is_refused():
    keyring = Keyring()
    caught_up = []

    async def refresh() -> None:
        caught_up.append(True)

    gate = Gate(keyring.lookup, "secret", session_hours=1, refresh=refresh)
    assert refused(gate, new_key()[1])
    assert caught_up == [True]


def test_the_registry_finds_a_key_not_held_in_its_tables_once():
    key_id, key = new_key()
    looked_up = []

    async def in_tables(kind: str, id_: str) -> dict | None:
        looked_up.append((kind, id_))
        return key_record(key_id, key) if (kind, id_) == ("key", key_id) else None

    keyring = Keyring(fallback=in_tables)
    gate = Gate(keyring.lookup, "secret", session_hours=1)
    for _ in range(3):
        assert asyncio.run(gate.identify(bearer(key))).id == key_id
    assert looked_up == [("key", key_id)]
    # Its relay reads the revocation from the outbox: refused from then on.
    revoked = message("key", "revoked",
                      key_record(key_id, key, active=False, at="2026-02-01T00:00:00"))
    keyring.observe_outbox([SimpleNamespace(subject=revoked.subject,  # an outbox row's columns
                                            payload=revoked.data.decode())])
    assert refused(gate, key)


def test_a_deactivated_account_ends_its_sessions():
    keyring = Keyring()
    account = {"id": "a1", "username": "liu", "name": "刘", "role": "unit",
               "organization_id": "o1", "active": True, "updated_at": "2026-01-01T00:00:00"}
    keyring.observe([message("account", "registered", account)])
    gate = Gate(keyring.lookup, "secret", session_hours=1)
    cookie = gate.sessions.dumps({"account": "a1"})
    session = request({"Cookie": f"tongxin_session={cookie}"})
    assert asyncio.run(gate.identify(session)).id == "a1"
    keyring.observe([message("account", "deactivated",
                             {**account, "active": False, "updated_at": "2026-03-01T00:00:00"})])
    with pytest.raises(HTTPException):
        asyncio.run(gate.identify(session))


def test_only_keys_and_accounts_are_kept():
    keyring = Keyring()
    keyring.observe([message("volunteer", "registered", {"id": "v1", "name": "王",
                                                         "phone": "13800001234"}),
                     message("organization", "registered", {"id": "o1", "name": "x"})])
    assert len(keyring) == 0
