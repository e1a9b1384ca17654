"""Keys made by an operator (`tongxin keys ...`), straight in the registry's database: the first
admin key has no other way in. The registry publishes them from its outbox (within a second
while it runs, else when it starts), so every service knows them."""

from __future__ import annotations

import os

from shared.subjects import Names


async def create_key(database_url: str, schema: str | None, *, role: str,
                     organization_id: str | None, name: str, namespace: str = "",
                     rate_limit: int | None = None) -> str:
    from services.registry import identities
    from shared.db import make_engine, migrate, write_transaction

    spec = identities.KeyCreate(role=role, organization_id=organization_id, name=name,
                                rate_limit=rate_limit)
    await migrate("registry", database_url, schema)
    engine = make_engine(database_url, schema)
    try:
        async with write_transaction(engine) as conn:
            _, key = await identities.issue_key(conn, Names(namespace), spec, OPERATOR)
    finally:
        await engine.dispose()
    return key


async def list_keys(database_url: str, schema: str | None) -> list[dict]:
    from services.registry import identities
    from shared.db import make_engine

    engine = make_engine(database_url, schema)
    try:
        async with engine.connect() as conn:
            items, _ = await identities.list_keys(conn, 10_000, 0)
    finally:
        await engine.dispose()
    return items


async def revoke_key(database_url: str, schema: str | None, key_id: str,
                     namespace: str = "") -> dict | None:
    from services.registry import identities
    from shared.db import make_engine, write_transaction

    engine = make_engine(database_url, schema)
    try:
        async with write_transaction(engine) as conn:
            return await identities.revoke_key(conn, Names(namespace), key_id)
    finally:
        await engine.dispose()


OPERATOR = {"kind": "system", "id": "tongxin-cli", "name": "tongxin keys", "role": "admin",
            "organization_id": None}


def auth_headers(token: str | None = None) -> dict[str, str]:
    """`Authorization` for the CLI's requests: the key given, else `TONGXIN_TOKEN`."""
    token = token or os.environ.get("TONGXIN_TOKEN")
    return {"Authorization": f"Bearer {token}"} if token else {}


def key_id_of_key(key: str) -> str:
    from shared.auth import key_id_of

    return key_id_of(key) or ""
