"""The registry's routes for identities: keys and accounts (admins), the audit log (admins),
and the login page that gives a person a session cookie every service accepts."""

from __future__ import annotations

import html
import logging
from typing import Annotated
from urllib.parse import urlsplit

from fastapi import APIRouter, Form, HTTPException, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from services.registry import identities
from services.registry.identities import (
    AccountCreate,
    AccountRecord,
    AuditEntry,
    IssuedKey,
    KeyCreate,
    KeyRecord,
)
from services.registry.service import Registry
from shared.auth import SESSION_COOKIE, allow, principal
from shared.db import write_transaction
from shared.errors import Unavailable
from shared.http import CONFLICT, Limit, Offset
from shared.responses import Page

log = logging.getLogger(__name__)
router = APIRouter()


def _registry(request: Request) -> Registry:
    return request.app.state.registry


@router.post("/v1/keys", status_code=201, tags=["identity"], dependencies=[allow("admin")],
             summary="Issue an API key for a system (the key is in this answer only)",
             response_model=IssuedKey)
async def create_key(request: Request, spec: KeyCreate) -> dict:
    reg = _registry(request)
    async with reg._write, write_transaction(reg.engine) as conn:
        record, key = await identities.issue_key(conn, reg.names, spec,
                                                 principal(request).as_json())
    await reg._published(2.0)
    return {**record, "key": key}


@router.get("/v1/keys", tags=["identity"], dependencies=[allow("admin")],
            summary="Every key issued, revoked ones too (never the keys themselves)",
            response_model=Page[KeyRecord])
async def list_keys(request: Request, limit: Limit = 100, offset: Offset = 0) -> dict:
    async with _registry(request).engine.connect() as conn:
        items, total = await identities.list_keys(conn, limit, offset)
    return {"items": items, "total": total, "limit": limit, "offset": offset}


@router.delete("/v1/keys/{id}", tags=["identity"], dependencies=[allow("admin")],
               summary="Revoke a key: every service refuses it from then on",
               response_model=KeyRecord)
async def revoke_key(request: Request, id: str) -> dict:
    reg = _registry(request)
    async with reg._write, write_transaction(reg.engine) as conn:
        record = await identities.revoke_key(conn, reg.names, id)
    if record is None:
        raise HTTPException(404, f"no key with id {id!r}")
    await reg._published(2.0)
    return record


@router.post("/v1/accounts", status_code=201, tags=["identity"], responses=CONFLICT,
             dependencies=[allow("admin")],
             summary="Create a person's account (they log in at /login)",
             response_model=AccountRecord)
async def create_account(request: Request, spec: AccountCreate) -> dict:
    reg = _registry(request)
    async with reg._write, write_transaction(reg.engine) as conn:
        record = await identities.create_account(conn, reg.names, spec)
    await reg._published(2.0)
    return record


@router.get("/v1/accounts", tags=["identity"], dependencies=[allow("admin")],
            summary="Every account (never a password or its hash)",
            response_model=Page[AccountRecord])
async def list_accounts(request: Request, limit: Limit = 100, offset: Offset = 0) -> dict:
    async with _registry(request).engine.connect() as conn:
        items, total = await identities.list_accounts(conn, limit, offset)
    return {"items": items, "total": total, "limit": limit, "offset": offset}


@router.post("/v1/accounts/{id}/deactivate", tags=["identity"], dependencies=[allow("admin")],
             summary="Deactivate an account: it cannot log in, and its sessions end everywhere",
             response_model=AccountRecord)
async def deactivate_account(request: Request, id: str) -> dict:
    """Every service refuses the account's sessions within moments, also after a later
    reactivation (the person logs in again)."""
    reg = _registry(request)
    async with reg._write, write_transaction(reg.engine) as conn:
        record = await identities.set_account_active(conn, reg.names, id, False)
    if record is None:
        raise HTTPException(404, f"no account with id {id!r}")
    try:
        await request.app.state.ended_sessions.end_account(id)
    except Exception as exc:  # the replicas refuse it anyway once the outbox has published it
        log.warning("deactivation of %s: sessions not ended through the bucket: %r", id, exc)
    await reg._published(2.0)
    return record


@router.post("/v1/accounts/{id}/reactivate", tags=["identity"], dependencies=[allow("admin")],
             summary="Reactivate an account: it may log in again (old sessions stay ended)",
             response_model=AccountRecord)
async def reactivate_account(request: Request, id: str) -> dict:
    reg = _registry(request)
    async with reg._write, write_transaction(reg.engine) as conn:
        record = await identities.set_account_active(conn, reg.names, id, True)
    if record is None:
        raise HTTPException(404, f"no account with id {id!r}")
    await reg._published(2.0)
    return record


@router.get("/v1/audit", tags=["identity"], dependencies=[allow("admin")],
            summary="Who read (or was refused) whose contact details, and when; newest first",
            response_model=Page[AuditEntry])
async def audit(request: Request, limit: Limit = 100, offset: Offset = 0,
                volunteer_id: Annotated[str | None, Query(max_length=64)] = None,
                principal_id: Annotated[str | None, Query(
                    max_length=100, description="`key:<id>` or `account:<id>`")] = None,
                action: Annotated[str | None, Query(max_length=40, description=(
                    "contact.read or contact.refused"))] = None) -> dict:
    async with _registry(request).engine.connect() as conn:
        items, total = await identities.audit_entries(
            conn, volunteer_id=volunteer_id, principal_id=principal_id, action=action,
            limit=limit, offset=offset)
    return {"items": items, "total": total, "limit": limit, "offset": offset}


# -- the browser ---------------------------------------------------------------------------
PAGE = """<!doctype html>
<html lang="zh-CN"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>登录 · Tongxin 同心</title>
<link rel="icon" href="/static/favicon.svg" type="image/svg+xml">
<style>
 body {{ font-family: system-ui, "PingFang SC", "Microsoft YaHei", sans-serif; background: #f6f4f0;
        display: grid; place-items: center; min-height: 100vh; margin: 0; }}
 form {{ background: #fff; padding: 2rem 2.5rem; border-radius: 8px; min-width: 18rem;
        box-shadow: 0 1px 4px rgba(0,0,0,.12); }}
 h1 {{ margin: 0 0 1.2rem; font-size: 1.4rem; color: #b22222; }}
 label {{ display: block; margin: .8rem 0 .3rem; }}
 input {{ width: 100%; box-sizing: border-box; padding: .5rem; font-size: 1rem; }}
 button {{ margin-top: 1.2rem; width: 100%; padding: .6rem; font-size: 1rem; background: #b22222;
          color: #fff; border: 0; border-radius: 4px; cursor: pointer; }}
 .error {{ color: #b22222; margin: 0 0 .5rem; }}
</style></head>
<body><form method="post" action="/login">
<h1>同心 Tongxin</h1>
{error}
<label for="username">用户名 Username</label>
<input id="username" name="username" autocomplete="username" required value="{username}">
<label for="password">密码 Password</label>
<input id="password" name="password" type="password" autocomplete="current-password" required>
<input type="hidden" name="next" value="{next}">
<button type="submit">登录 Log in</button>
</form></body></html>
"""


def _safe_next(next_: str | None, host: str | None) -> str:
    """A path here, or a page of another service on this same host (the session cookie is
    the host's, whatever the port): a login must not send anyone elsewhere."""
    if not next_ or "\\" in next_:
        return "/"
    if next_.startswith("/") and not next_.startswith("//"):
        return next_
    url = urlsplit(next_)
    if url.scheme in ("http", "https") and url.hostname and url.hostname == host:
        return next_
    return "/"


def _page(request: Request, *, error: str = "", username: str = "", next_: str = "/",
          status: int = 200) -> HTMLResponse:
    shown = f'<p class="error" role="alert">{html.escape(error)}</p>' if error else ""
    safe = _safe_next(next_, request.url.hostname)
    return HTMLResponse(PAGE.format(error=shown, username=html.escape(username),
                                    next=html.escape(safe)), status_code=status)


@router.get("/login", include_in_schema=False)
async def login_page(request: Request,
                     next: Annotated[str | None, Query(max_length=2000)] = None) -> HTMLResponse:
    return _page(request, next_=next or "/")


@router.post("/login", include_in_schema=False)
async def login(request: Request, username: Annotated[str, Form(max_length=64)],
                password: Annotated[str, Form(max_length=200)],
                next: Annotated[str | None, Form(max_length=2000)] = None) -> Response:
    account = None
    if "\x00" not in username:  # no account has one; PostgreSQL cannot even look it up
        async with _registry(request).engine.connect() as conn:
            account = await identities.login(conn, username, password)
    if account is None:
        return _page(request, error="用户名或密码不对 · Wrong username or password",
                     username=username, next_=next or "/", status=401)
    gate = request.app.state.gate
    response = RedirectResponse(_safe_next(next, request.url.hostname), status_code=303)
    response.set_cookie(SESSION_COOKIE, gate.new_session(account["id"]),
                        max_age=gate.max_age, httponly=True, samesite="lax", path="/")
    return response


@router.post("/logout", include_in_schema=False)
async def logout(request: Request) -> Response:
    """The session ends everywhere (every instance of every service refuses its cookie from
    now on, not only this browser, which forgets it)."""
    gate = request.app.state.gate
    cookie = request.cookies.get(SESSION_COOKIE)
    session = gate.session_of(cookie) if cookie else None
    if session is not None:
        try:
            if session["sid"]:
                await request.app.state.ended_sessions.end_session(session["sid"])
            else:  # a cookie from before sessions had ids: the account's sessions until now
                await request.app.state.ended_sessions.end_account(session["account"])
        except Exception as exc:
            log.warning("logout: could not end the session everywhere: %r", exc)
            raise Unavailable("the session could not be ended everywhere: try again") from exc
    response = RedirectResponse("/login", status_code=303)
    response.delete_cookie(SESSION_COOKIE, path="/")
    return response
