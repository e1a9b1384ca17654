"""Keys, accounts and the audit log: the registry keeps them, and publishes keys and accounts
(never a password, only a hash of each key) on its stream so every service can check them.

A key is shown once, when issued; what is stored and published is its SHA-256. A password is
hashed with argon2id (pwdlib) and never leaves the registry. Every read of a volunteer's
contact details, and every refusal of one, is written to the audit log with who asked.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Annotated, Any

from pwdlib import PasswordHash
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StringConstraints
from sqlalchemy import (
    JSON,
    Boolean,
    Column,
    DateTime,
    Integer,
    String,
    Table,
    func,
    select,
    update,
)
from sqlalchemy.ext.asyncio import AsyncConnection

from services.registry import store
from shared import outbox
from shared.auth import Principal, Role, key_hash, new_key
from shared.envelope import new_envelope
from shared.errors import FieldError, Rejected
from shared.responses import Answer, DateTimeText
from shared.subjects import Names
from shared.text import refuse_nul

SOURCE = "registry"
passwords = PasswordHash.recommended()

api_keys = Table(
    "api_keys", store.metadata,
    Column("id", String(32), primary_key=True),
    Column("name", String(200), nullable=False),
    Column("role", String(20), nullable=False),
    Column("organization_id", String(64), nullable=True),
    Column("key_hash", String(64), nullable=False),
    Column("rate_limit", Integer, nullable=True),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("created_by", JSON, nullable=False),
    Column("revoked_at", DateTime(timezone=True), nullable=True),
)

accounts = Table(
    "accounts", store.metadata,
    Column("id", String(64), primary_key=True),
    Column("username", String(64), nullable=False, unique=True),
    Column("name", String(200), nullable=False),
    Column("role", String(20), nullable=False),
    Column("organization_id", String(64), nullable=True),
    Column("password_hash", String(200), nullable=False),
    Column("active", Boolean, nullable=False, server_default="1"),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
)

audit_log = Table(
    "audit_log", store.metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("at", DateTime(timezone=True), nullable=False, index=True),
    Column("action", String(40), nullable=False),
    Column("principal", JSON, nullable=False),
    Column("principal_id", String(100), nullable=False, index=True),
    Column("volunteer_id", String(64), nullable=True, index=True),
)

# NUL: never meaningful, and PostgreSQL cannot take it (refused naming the field).
Name = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200),
                 AfterValidator(refuse_nul)]
OrgId = Annotated[str, StringConstraints(min_length=1, max_length=64), AfterValidator(refuse_nul)]
# Roles bound to one organisation's subtree must name it; an admin, or a publisher for the
# whole programme, may not.
NEEDS_ORGANIZATION = frozenset({"organiser", "unit", "reader"})


class KeyCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: Name
    role: Role
    organization_id: OrgId | None = None
    rate_limit: int | None = Field(None, ge=1, le=1_000_000,
                                   description="write requests per minute (default: the "
                                               "service's TONGXIN_RATE_LIMIT)")


class AccountCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    username: Annotated[str, StringConstraints(min_length=3, max_length=64,
                                               pattern=r"^[A-Za-z0-9_.@-]+$")]
    password: Annotated[str, StringConstraints(min_length=8, max_length=200)]
    name: Name
    role: Role
    organization_id: OrgId | None = None


class KeyRecord(Answer):
    """A key as listed and published: never the key itself."""

    id: str = Field(description="public: names the key in lists and logs")
    name: str
    role: str
    organization_id: str | None
    rate_limit: int | None = Field(description="writes a minute; null: the service default")
    created_at: DateTimeText | None
    created_by: dict[str, Any] = Field(description="who issued it (as `GET /v1/whoami`)")
    revoked_at: DateTimeText | None
    active: bool


class IssuedKey(KeyRecord):
    key: str = Field(description="`txk_<id>_<secret>`: shown in this answer only")


class AccountRecord(Answer):
    """A person's account: never a password or its hash."""

    id: str
    username: str
    name: str
    role: str
    organization_id: str | None
    active: bool
    created_at: DateTimeText | None
    updated_at: DateTimeText | None


class AuditEntry(Answer):
    """One read (or refusal) of a volunteer's contact details."""

    at: DateTimeText | None
    action: str = Field(description="contact.read or contact.refused")
    principal: dict[str, Any] = Field(description="who asked (as `GET /v1/whoami`)")
    volunteer_id: str | None


def _now() -> datetime:
    return datetime.now(UTC)


def _iso(value: datetime | None) -> str | None:
    if value is None:
        return None
    return (value if value.tzinfo else value.replace(tzinfo=UTC)).isoformat()


async def _check_organization(conn: AsyncConnection, role: str, org: str | None) -> None:
    if org is None:
        if role in NEEDS_ORGANIZATION:
            raise Rejected([FieldError(field="organization_id", message=(
                f"a {role} acts for one organisation and the units under it: name it"))])
        return
    found = await store.get_record(conn, "organization", org)
    if found is None or not found.get("active", True):
        raise Rejected([FieldError(field="organization_id", message=(
            f"no active organisation {org!r} is known to the registry"))])


# -- keys --------------------------------------------------------------------------------
def _key_record(row: Any) -> dict:
    """A key as listed and published: never the key, only (published) its hash."""
    return {"id": row.id, "name": row.name, "role": row.role,
            "organization_id": row.organization_id, "rate_limit": row.rate_limit,
            "created_at": _iso(row.created_at), "created_by": row.created_by,
            "revoked_at": _iso(row.revoked_at), "active": row.revoked_at is None}


async def issue_key(conn: AsyncConnection, names: Names, spec: KeyCreate,
                    created_by: dict) -> tuple[dict, str]:
    """Store and publish a new key; returns its record and the key itself (shown once)."""
    await _check_organization(conn, spec.role, spec.organization_id)
    key_id, key = new_key()
    values = {**spec.model_dump(), "id": key_id, "key_hash": key_hash(key),
              "created_at": _now(), "created_by": created_by}
    await conn.execute(api_keys.insert().values(**values))
    row = (await conn.execute(select(api_keys).where(api_keys.c.id == key_id))).one()
    await _publish(conn, names, "key", "issued", row)
    return _key_record(row), key


async def revoke_key(conn: AsyncConnection, names: Names, key_id: str) -> dict | None:
    row = (await conn.execute(select(api_keys).where(api_keys.c.id == key_id))).first()
    if row is None:
        return None
    if row.revoked_at is None:
        await conn.execute(update(api_keys).where(api_keys.c.id == key_id)
                           .values(revoked_at=_now()))
        row = (await conn.execute(select(api_keys).where(api_keys.c.id == key_id))).one()
        await _publish(conn, names, "key", "revoked", row)
    return _key_record(row)


async def list_keys(conn: AsyncConnection, limit: int, offset: int) -> tuple[list[dict], int]:
    total = (await conn.execute(select(func.count()).select_from(api_keys))).scalar_one()
    rows = (await conn.execute(select(api_keys).order_by(api_keys.c.created_at, api_keys.c.id)
                               .limit(limit).offset(offset))).all()
    return [_key_record(r) for r in rows], total


# -- accounts ----------------------------------------------------------------------------
def _account_record(row: Any) -> dict:
    return {"id": row.id, "username": row.username, "name": row.name, "role": row.role,
            "organization_id": row.organization_id, "active": row.active,
            "created_at": _iso(row.created_at), "updated_at": _iso(row.updated_at)}


async def create_account(conn: AsyncConnection, names: Names, spec: AccountCreate) -> dict:
    await _check_organization(conn, spec.role, spec.organization_id)
    taken = (await conn.execute(select(accounts.c.id)
                                .where(accounts.c.username == spec.username))).first()
    if taken:
        from shared.errors import Conflict

        raise Conflict([FieldError(field="username",
                                   message=f"username {spec.username!r} is taken")])
    when = _now()
    values = {**spec.model_dump(exclude={"password"}), "id": str(uuid.uuid4()),
              "password_hash": passwords.hash(spec.password), "active": True,
              "created_at": when, "updated_at": when}
    await conn.execute(accounts.insert().values(**values))
    row = (await conn.execute(select(accounts).where(accounts.c.id == values["id"]))).one()
    await _publish(conn, names, "account", "registered", row)
    return _account_record(row)


async def set_account_active(conn: AsyncConnection, names: Names, account_id: str,
                             active: bool) -> dict | None:
    """Deactivate (or reactivate) an account, published as `account.deactivated`
    (`account.reactivated`); None if there is none. Asking again changes nothing."""
    row = (await conn.execute(select(accounts).where(accounts.c.id == account_id))).first()
    if row is None:
        return None
    if bool(row.active) != active:
        await conn.execute(update(accounts).where(accounts.c.id == account_id)
                           .values(active=active, updated_at=_now()))
        row = (await conn.execute(select(accounts).where(accounts.c.id == account_id))).one()
        await _publish(conn, names, "account", "reactivated" if active else "deactivated", row)
    return _account_record(row)


async def list_accounts(conn: AsyncConnection, limit: int,
                        offset: int) -> tuple[list[dict], int]:
    total = (await conn.execute(select(func.count()).select_from(accounts))).scalar_one()
    rows = (await conn.execute(select(accounts).order_by(accounts.c.username)
                               .limit(limit).offset(offset))).all()
    return [_account_record(r) for r in rows], total


async def login(conn: AsyncConnection, username: str, password: str) -> dict | None:
    """The account if the password is right (and it is active). The hash is checked even for
    an unknown name, so timing does not tell which names exist."""
    row = (await conn.execute(select(accounts).where(accounts.c.username == username))).first()
    stored = row.password_hash if row is not None else _DUMMY
    ok = passwords.verify(password, stored)
    if row is None or not ok or not row.active:
        return None
    return _account_record(row)


_DUMMY = passwords.hash("not a password anyone has")


# -- who is asking (the registry's own Gate) ----------------------------------------------
async def lookup(conn: AsyncConnection, kind: str, id_: str) -> dict | None:
    """A key or account as published (`shared.keyring` keeps them so)."""
    table = api_keys if kind == "key" else accounts
    row = (await conn.execute(select(table).where(table.c.id == id_))).first()
    return None if row is None else _published(kind, row)


async def every_identity(conn: AsyncConnection) -> AsyncIterator[tuple[str, dict]]:
    """(kind, record) of every key and account, as published: the registry's keyring at start
    (a few thousand at most, streamed)."""
    for kind, table in (("key", api_keys), ("account", accounts)):
        async for row in await conn.stream(select(table)):
            yield kind, _published(kind, row)


# -- the audit log -----------------------------------------------------------------------
async def audit(conn: AsyncConnection, action: str, principal: Principal,
                volunteer_id: str | None) -> None:
    await conn.execute(audit_log.insert().values(
        at=_now(), action=action, principal=principal.as_json(), principal_id=principal.label,
        volunteer_id=volunteer_id))


async def audit_entries(conn: AsyncConnection, *, volunteer_id: str | None,
                        principal_id: str | None, action: str | None, limit: int,
                        offset: int) -> tuple[list[dict], int]:
    where = []
    if volunteer_id:
        where.append(audit_log.c.volunteer_id == volunteer_id)
    if principal_id:
        where.append(audit_log.c.principal_id == principal_id)
    if action:
        where.append(audit_log.c.action == action)
    total = (await conn.execute(select(func.count()).select_from(audit_log)
                                .where(*where))).scalar_one()
    rows = (await conn.execute(select(audit_log).where(*where)
                               .order_by(audit_log.c.id.desc()).limit(limit)
                               .offset(offset))).all()
    return [{"at": _iso(r.at), "action": r.action, "principal": r.principal,
             "volunteer_id": r.volunteer_id} for r in rows], total


async def _publish(conn: AsyncConnection, names: Names, kind: str, verb: str,
                   row: Any) -> None:
    await outbox.add(conn, store.outbox, names.registry(kind, verb),
                     new_envelope(f"{kind}.{verb}", _published(kind, row), SOURCE))


def _published(kind: str, row: Any) -> dict:
    """A key (with its hash, never the key) or an account (never a password hash), as the
    other services' replicas and every keyring keep it: the newest by `updated_at`."""
    if kind == "account":
        return _account_record(row)
    return _key_record(row) | {"key_hash": row.key_hash,
                               "updated_at": _iso(row.revoked_at or row.created_at)}
