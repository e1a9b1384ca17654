"""HTTP conventions every service shares: the error body, health, paging."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Annotated

from fastapi import FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from pydantic.json_schema import models_json_schema
from sqlalchemy.exc import TimeoutError as PoolTimeout
from starlette.exceptions import HTTPException as StarletteHTTPException

from shared.errors import Conflict, Rejected, Unavailable, dotted
from shared.retry import is_transient

MAX_OFFSET = 2**31 - 1  # any database takes it; no collection here comes near it
Limit = Annotated[int, Query(ge=1, le=1000, description="page size, up to 1000")]
Offset = Annotated[int, Query(ge=0, le=MAX_OFFSET, description="records to skip")]


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(RequestValidationError)
    async def _invalid(_request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = []
        for err in exc.errors():
            loc = list(err.get("loc", ()))
            if loc and loc[0] in ("body", "query", "path"):
                loc = loc[1:]  # the field's own name is what a caller looks for
            errors.append({"field": dotted(loc), "message": err.get("msg", "invalid")})
        return JSONResponse({"errors": errors}, status_code=422)

    @app.exception_handler(StarletteHTTPException)
    async def _http(_request: Request, exc: StarletteHTTPException) -> JSONResponse:
        # FastAPI's own refusals (a body it cannot parse: 400; no such route: 404) and ours
        # raised as HTTPException, in the one shape. A 400 of FastAPI's is about the body.
        return JSONResponse({"errors": [{"field": "body" if exc.status_code == 400 else "",
                                         "message": str(exc.detail)}]},
                            status_code=exc.status_code, headers=exc.headers)

    @app.exception_handler(Unavailable)
    async def _unavailable(_request: Request, exc: Unavailable) -> JSONResponse:
        return JSONResponse({"errors": [{"field": "", "message": str(exc)}]},
                            status_code=503, headers={"Retry-After": "1"})

    @app.exception_handler(PoolTimeout)
    async def _busy(_request: Request, exc: PoolTimeout) -> JSONResponse:
        # Every database connection stayed busy past the pool's wait: overload, not a fault.
        return JSONResponse({"errors": [{"field": "", "message": "busy: no database "
                                         "connection came free in time; try again"}]},
                            status_code=503, headers={"Retry-After": "5"})

    @app.exception_handler(Rejected)
    async def _rejected(_request: Request, exc: Rejected) -> JSONResponse:
        return JSONResponse({"errors": exc.as_json()},
                            status_code=409 if isinstance(exc, Conflict) else 422)

    @app.exception_handler(Exception)
    async def _unexpected(_request: Request, exc: Exception) -> JSONResponse:
        # Still logged with its traceback by the server (without SQL parameters). The body
        # keeps the one error shape, and an outage is said to be one: 503, try again later.
        if is_transient(exc):
            return JSONResponse({"errors": [{"field": "", "message": (
                "unavailable: the database or NATS cannot be reached just now; try again")}]},
                status_code=503, headers={"Retry-After": "5"})
        return JSONResponse({"errors": [{"field": "", "message": "internal error"}]},
                            status_code=500)


def add_health(app: FastAPI, checks: Callable[[], Awaitable[dict[str, bool]]],
               details: Callable[[], Awaitable[dict]] | None = None) -> None:
    """`/health`: 200 while every check is true, else 503; `details` add what someone should
    see (parked messages) without changing the status."""
    @app.get("/health", tags=["operations"])
    async def health() -> JSONResponse:
        parts = await checks()
        ok = all(parts.values())
        extra = await details() if details else {}
        return JSONResponse({"status": "ok" if ok else "degraded", **parts, **extra},
                            status_code=200 if ok else 503)


def body_of(model: type[BaseModel]) -> dict:
    """`openapi_extra` documenting a JSON body read by hand (validated by our one path)."""
    return {"requestBody": {"required": True, "content": {"application/json": {
        "schema": {"$ref": f"#/components/schemas/{model.__name__}"}}}}}


def document_models(app: FastAPI, *models: type[BaseModel]) -> None:
    """Put `models` (and the models they use) into the OpenAPI components."""
    build = app.openapi

    def openapi() -> dict:
        if app.openapi_schema:
            return app.openapi_schema
        schema = build()
        _, defs = models_json_schema([(m, "validation") for m in models],
                                     ref_template="#/components/schemas/{model}")
        schema.setdefault("components", {}).setdefault("schemas", {}).update(
            defs.get("$defs", {}))
        app.openapi_schema = schema
        return schema

    app.openapi = openapi  # type: ignore[method-assign]  # FastAPI's documented override
