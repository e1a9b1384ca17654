"""The shared error shape for overload: a database pool with no free connection is a 503 with
Retry-After (try again), never a 500."""

from __future__ import annotations

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy.exc import TimeoutError as PoolTimeout

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
