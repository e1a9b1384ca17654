"""Who is asking, and what they may do: API keys for systems, sessions for people, five roles,
and the organisation subtree each principal sees and acts on.

Keys and accounts are kept by the registry (`services/registry/identities.py`); the other
services know them from the registry's stream (the replica), so each checks a key without
asking anyone; every service holds them in memory (`shared/keyring.py`). A key is
`txk_<id>_<secret>`: only a hash of the secret is stored or published. A session is a cookie
signed with the secret every service shares (`Settings.session_secret`), naming the account;
the account itself (role, organisation, still active) is looked up on each request, and
sessions ended early (a logout, a deactivated account) are known to every instance of every
service (`shared/sessions.py`), so either is refused everywhere within moments.

Every route but `/health`, `/metrics` (and the docs pages' public files under `/static/`)
passes `authenticate` (made an app dependency by `Runtime.app`). A route says who may call
it with `allow(...)`; without one, reads are for every role but publisher and writes for
admins and organisers.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
import secrets
import time
from collections.abc import Awaitable, Callable, Iterable
from contextvars import ContextVar
from dataclasses import asdict, dataclass
from typing import Any, Literal

from fastapi import APIRouter, Depends, HTTPException, Request
from itsdangerous import BadSignature, URLSafeTimedSerializer

from shared.errors import FieldError
from shared.json_response import JSON
from shared.responses import Whoami
from shared.sessions import EndedSessions

log = logging.getLogger(__name__)

Role = Literal["admin", "organiser", "unit", "reader", "publisher"]
ROLES: tuple[str, ...] = ("admin", "organiser", "unit", "reader", "publisher")
READERS = frozenset({"admin", "organiser", "unit", "reader"})
WRITERS = frozenset({"admin", "organiser"})
SENDERS = frozenset({"admin", "organiser", "unit", "publisher"})  # who may offer events
ADMIN = frozenset({"admin"})
SESSION_COOKIE = "tongxin_session"
KEY_PREFIX = "txk"
# /metrics is open too: Prometheus scrapers carry no key. It holds service-level figures only
# (route templates, projection, stream and table names, counts), never an id or a name of
# anyone (shared/metrics.py).
OPEN_PATHS = frozenset({"/health", "/metrics", "/login", "/logout"})
# The docs pages' scripts and stylesheets (shared/webassets.py): public code from npm, no data;
# a browser loads them for a page it may see, and the page itself is behind a key or login.
# A volunteer's phone page and its sign-in and sign-out (services/events/forms/sign_in.py): a
# volunteer has no account; the page's short code and their registry number are the gate.
OPEN_PREFIXES = ("/static/", "/sign/")

# The principal of the request being served: registry changes and accepted events record it.
PRINCIPAL: ContextVar[Principal | None] = ContextVar("tongxin_principal", default=None)


@dataclass(frozen=True)
class Principal:
    kind: str                   # key, account, or bus (an offer taken from NATS)
    id: str
    name: str
    role: str
    organization_id: str | None  # None: the whole programme
    rate_limit: int | None = None

    @property
    def label(self) -> str:
        """What an accepted event records as its principal: `key:<id>`, `account:<id>`."""
        return f"{self.kind}:{self.id}"

    @property
    def scope(self) -> str | None:
        """The organisation whose subtree bounds what this principal sees and does."""
        return None if self.role == "admin" else self.organization_id

    def as_json(self) -> dict[str, Any]:
        out = asdict(self)
        out.pop("rate_limit")
        return out


# -- keys --------------------------------------------------------------------------------
def new_key() -> tuple[str, str]:
    """(key id, the key as shown once). The id is public: it names the key in lists and logs."""
    key_id = secrets.token_hex(8)
    return key_id, f"{KEY_PREFIX}_{key_id}_{secrets.token_urlsafe(32)}"


def key_id_of(key: str) -> str | None:
    parts = key.split("_", 2)
    if len(parts) != 3 or parts[0] != KEY_PREFIX or not parts[1] or not parts[2]:
        return None
    return parts[1]


def key_hash(key: str) -> str:
    """SHA-256 of the whole key: the key is 256 random bits, so a slow hash adds nothing."""
    return hashlib.sha256(key.encode()).hexdigest()


def principal_of_record(kind: str, record: dict) -> Principal:
    return Principal(kind=kind, id=str(record["id"]), name=str(record.get("name") or ""),
                     role=str(record["role"]), organization_id=record.get("organization_id"),
                     rate_limit=record.get("rate_limit"))


# -- sessions ----------------------------------------------------------------------------
def sessions(secret: str) -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(secret, salt="tongxin-session")


# -- who is asking -----------------------------------------------------------------------
Lookup = Callable[[str, str], Awaitable[dict | None]]  # (key|account, id) -> its record


class Gate:
    """Finds the principal of a request from its key or session cookie.

    `lookup` reads the service's own copy of keys and accounts; `refresh`, if given, brings
    that copy up to the registry's stream (bounded), asked only when a key is unknown: one
    issued a moment ago may not have arrived yet."""

    def __init__(self, lookup: Lookup, secret: str, session_hours: float,
                 refresh: Callable[[], Awaitable[Any]] | None = None,
                 ended: EndedSessions | None = None):
        self.lookup = lookup
        self.sessions = sessions(secret)
        self.max_age = int(session_hours * 3600)
        self.refresh = refresh
        self.ended = ended  # sessions ended early, as every service knows them
        self._refreshing: asyncio.Future | None = None

    def new_session(self, account_id: str) -> str:
        """A session cookie's value for `account_id`: its own id (a logout ends that one)
        and when it began (a deactivation ends those begun before)."""
        return self.sessions.dumps({"account": account_id, "sid": secrets.token_urlsafe(18),
                                    "at": time.time()})

    def session_of(self, cookie: str) -> dict | None:
        """What a good session cookie says (`account`, `sid`, `at`); None if it is not one."""
        try:
            data, signed_at = self.sessions.loads(cookie, max_age=self.max_age,
                                                  return_timestamp=True)
            return {"account": str(data["account"]), "sid": data.get("sid"),
                    "at": float(data.get("at") or signed_at.timestamp())}
        except (BadSignature, KeyError, TypeError, ValueError, AttributeError):
            return None

    async def identify(self, request: Request) -> Principal:
        header = request.headers.get("authorization", "")
        if header:
            scheme, _, key = header.partition(" ")
            if scheme.lower() != "bearer" or not key.strip():
                raise unauthorized("send the key as `Authorization: Bearer <key>`")
            return await self._by_key(key.strip())
        if cookie := request.cookies.get(SESSION_COOKIE):
            return await self._by_session(cookie)
        raise unauthorized("a key (`Authorization: Bearer <key>`) or a login is required")

    async def _record(self, kind: str, id_: str) -> dict | None:
        record = await self.lookup(kind, id_)
        if record is None and self.refresh is not None:
            try:
                await self._refreshed()
            except Exception as exc:  # NATS away: what is known is all there is
                log.warning("could not bring keys up to date: %r", exc)
            record = await self.lookup(kind, id_)
        return record

    async def _refreshed(self) -> None:
        """One catch-up at a time, shared by every request waiting on it: a flood of made-up
        keys costs one stream-info request per catch-up, not one each."""
        assert self.refresh is not None
        if self._refreshing is None or self._refreshing.done():
            self._refreshing = asyncio.ensure_future(self.refresh())
        await asyncio.shield(self._refreshing)

    async def _by_key(self, key: str) -> Principal:
        key_id = key_id_of(key)
        record = await self._record("key", key_id) if key_id else None
        if (record is None or not record.get("active", True)
                or not hmac.compare_digest(str(record.get("key_hash", "")), key_hash(key))):
            raise unauthorized("this key is not valid (unknown, mistyped or revoked)")
        return principal_of_record("key", record)

    async def _by_session(self, cookie: str) -> Principal:
        session = self.session_of(cookie)
        if session is None or (self.ended is not None and self.ended.ended(
                session["sid"], session["account"], session["at"])):
            raise unauthorized("the session has ended: log in again")
        record = await self._record("account", session["account"])
        if record is None or not record.get("active", True):
            raise unauthorized("the session has ended: log in again")
        return principal_of_record("account", record)


def unauthorized(message: str) -> HTTPException:
    return HTTPException(401, message, headers={"WWW-Authenticate": "Bearer"})


def forbidden(message: str, field: str = "") -> HTTPException:
    return HTTPException(403, detail=[FieldError(field=field, message=message).model_dump()])


def allow(*roles: str) -> Any:
    """A route's roles (instead of the defaults): `dependencies=[allow("admin")]`."""

    async def roles_marker() -> None:  # read by `authenticate`; does nothing itself
        return None

    roles_marker.roles = frozenset(roles)  # type: ignore[attr-defined]
    return Depends(roles_marker)


def roles_for(request: Request) -> frozenset[str]:
    route = request.scope.get("route")
    for dep in getattr(route, "dependencies", ()):
        if (roles := getattr(dep.dependency, "roles", None)) is not None:
            return roles
    return READERS if request.method in ("GET", "HEAD") else WRITERS


async def authenticate(request: Request) -> Principal | None:
    """The app-wide check: who is asking, and may they call this route at all."""
    if request.url.path in OPEN_PATHS or request.url.path.startswith(OPEN_PREFIXES):
        return None
    principal = await request.app.state.gate.identify(request)
    roles = roles_for(request)
    if principal.role not in roles:
        raise forbidden(f"a {principal.role} may not {request.method} {request.url.path} "
                        f"(for: {', '.join(sorted(roles))})")
    request.state.principal = principal
    PRINCIPAL.set(principal)
    limiter = getattr(request.app.state, "rate_limiter", None)
    if limiter is not None and request.method not in ("GET", "HEAD"):
        await limiter.hit(principal)
    return principal


def identity_router() -> APIRouter:
    router = APIRouter(tags=["identity"])

    @router.get("/v1/whoami", dependencies=[allow(*ROLES)], response_model=Whoami,
                summary="The key or account this request is made with")
    async def whoami(request: Request) -> JSON:
        return JSON(principal(request).as_json())

    return router


def principal(request: Request) -> Principal:
    """The request's principal (set by `authenticate`)."""
    found = getattr(request.state, "principal", None)
    if found is None:
        raise unauthorized("a key (`Authorization: Bearer <key>`) or a login is required")
    return found


async def check_within(principal: Principal, organization_ids: Iterable[tuple[str, str]],
                       parent_of: Callable[[str], Awaitable[str | None]]) -> None:
    """403 naming the field unless each (field, organisation id) is in the principal's
    subtree. `parent_of` walks up the organisation hierarchy."""
    scope = principal.scope
    if scope is None:
        return
    for field, org in organization_ids:
        if not await in_subtree(org, scope, parent_of):
            raise forbidden(f"{principal.label} acts for organisation {scope!r} and the units "
                            f"under it, not {org!r}", field)


async def in_subtree(org: str, root: str,
                     parent_of: Callable[[str], Awaitable[str | None]]) -> bool:
    seen: set[str] = set()
    current: str | None = org
    while current is not None and current not in seen:
        if current == root:
            return True
        seen.add(current)
        current = await parent_of(current)
    return False
