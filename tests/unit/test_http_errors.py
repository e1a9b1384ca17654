"""The shared error shape: overload (no free database connection) and outages are a 503 with
Retry-After (try again), a bug a 500 in the same JSON shape, never plain text; JSON that cannot
be taken is refused naming the body."""

from __future__ import annotations

import sqlite3

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy.exc import OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout

from shared.errors import Rejected, parse_json
from shared.http import install_error_handlers


@pytest.mark.asyncio
async def test_a_pool_with_no_free_connection_answers_503_with_retry_after():
    app = FastAPI()
    install_error_handlers(app)

    @app.get("/busy")
    async def busy() -> dict:
        raise PoolTimeout("QueuePool limit of size 10 overflow 10 reached")

    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://x") as http:
        r = await http.get("/busy")
    assert (r.status_code, r.headers["retry-after"]) == (503, "5")
    assert r.json()["errors"][0]["message"].startswith("busy")


def _app_raising(exc: Exception) -> httpx.AsyncClient:
    app = FastAPI()
    install_error_handlers(app)

    @app.get("/x")
    async def x() -> dict:
        raise exc

    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    return httpx.AsyncClient(transport=transport, base_url="http://x")


@pytest.mark.asyncio
@pytest.mark.parametrize("exc", [
    OperationalError("SELECT 1", {}, sqlite3.OperationalError("unable to open database file")),
    ConnectionRefusedError(111, "Connect call failed ('127.0.0.1', 5432)"),
], ids=["sqlite-gone", "postgres-refused"])
async def test_an_outage_answers_503_in_the_error_shape(exc):
    async with _app_raising(exc) as http:
        r = await http.get("/x")
    assert (r.status_code, r.headers["retry-after"]) == (503, "5")
    assert r.json()["errors"][0]["message"].startswith("unavailable")


@pytest.mark.asyncio
async def test_a_bug_answers_500_in_the_error_shape_not_plain_text():
    async with _app_raising(KeyError("oops")) as http:
        r = await http.get("/x")
    assert r.status_code == 500
    assert r.json() == {"errors": [{"field": "", "message": "internal error"}]}


@pytest.mark.parametrize("raw, says", [
    (b'{"a": NaN}', "NaN"), (b'{"a": -Infinity}', "Infinity"), (b'{"a": 1e999}', "too large"),
    (b'{"a": ' + b"9" * 5000 + b"}", "4300"), (b'{"a": "\xff"}', "utf-8"),
    (b'[' * 100_000 + b']' * 100_000, "nested too deeply"), (b"", "Expecting value"),
])
def test_json_that_cannot_be_taken_is_refused_naming_the_body(raw, says):
    with pytest.raises(Rejected) as caught:
        parse_json(raw)
    [error] = caught.value.errors
    assert error.field == "body" and says in error.message, error.message


def test_ordinary_json_is_read_as_usual():
    assert parse_json('{"a": 1.5, "b": [1, 2], "c": "同心"}') == {
        "a": 1.5, "b": [1, 2], "c": "同心"}
