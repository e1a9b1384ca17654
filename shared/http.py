"""HTTP conventions every service shares: the error body, health, paging."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Mapping
from typing import Annotated, cast
from urllib.parse import quote

import fastapi.routing
from fastapi import FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from fastapi.routing import APIRoute
from pydantic import BaseModel
from pydantic.json_schema import models_json_schema
from sqlalchemy.exc import TimeoutError as PoolTimeout
from starlette.exceptions import HTTPException as StarletteHTTPException

from shared.auth import OPEN_PATHS, OPEN_PREFIXES, SESSION_COOKIE
from shared.docs_pages import swagger_page
from shared.errors import Conflict, FieldError, Forbidden, Rejected, Unavailable, dotted, plain
from shared.errors_zh import localise, wants_chinese
from shared.json_response import JSON
from shared.responses import Health
from shared.retry import is_transient
from shared.webassets import WebAssets

MAX_OFFSET = 2**31 - 1  # any database takes it; no collection here comes near it
Limit = Annotated[int, Query(ge=1, le=1000, description="page size, up to 1000")]
Offset = Annotated[int, Query(ge=0, le=MAX_OFFSET, description="records to skip")]


class Errors(BaseModel):
    """The one error body: every problem found, each naming its field (`data.served`; empty
    when the request as a whole is refused)."""

    errors: list[FieldError]


ERRORS_REF = "#/components/schemas/Errors"
RETRY_AFTER = {"Retry-After": {"description": "seconds to wait before trying again",
                               "schema": {"type": "integer"}}}
# A write refused because of what is already there (a `code` taken): declared by the routes
# that can answer it, e.g. `responses=CONFLICT`.
CONFLICT: dict[int | str, dict] = {409: {"model": Errors, "description": (
    "valid on its own, but at odds with what is already there; the reason")}}


def refusal(request: Request, errors: list, status_code: int,
            headers: Mapping[str, str] | None = None) -> JSONResponse:
    """The one error body, its messages in Chinese when the request asks for Chinese
    (`Accept-Language: zh-CN`, as the forms send); English otherwise."""
    chinese = wants_chinese(request.headers.get("accept-language"))
    out = dict(headers or {})
    out["Vary"] = "Accept-Language"
    if chinese:
        out["Content-Language"] = "zh-CN"
    return JSON({"errors": localise(errors, chinese)}, status_code=status_code, headers=out)


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = []
        for err in exc.errors():
            loc = list(err.get("loc", ()))
            if loc and loc[0] in ("body", "query", "path"):
                loc = loc[1:]  # the field's own name is what a caller looks for
            errors.append({"field": dotted(loc), "message": plain(err.get("msg", "invalid")),
                           "source": {"type": err.get("type"), "ctx": err.get("ctx") or {}}})
        return refusal(request, errors, 422)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> Response:
        if exc.status_code == 401 and _wants_page(request):
            return login_redirect(request)
        # FastAPI's own refusals (a body it cannot parse: 400; no such route: 404) and ours
        # raised as HTTPException, in the one shape. A 400 of FastAPI's is about the body.
        # A detail that is already a list of errors (a 403 naming its field) is sent as is.
        if isinstance(exc.detail, list):
            errors = exc.detail
        else:
            errors = [{"field": "body" if exc.status_code == 400 else "",
                       "message": str(exc.detail)}]
        return refusal(request, errors, exc.status_code, exc.headers)

    @app.exception_handler(Unavailable)
    async def _unavailable(request: Request, exc: Unavailable) -> JSONResponse:
        return refusal(request, [{"field": "", "message": str(exc)}], 503,
                       {"Retry-After": "1"})

    @app.exception_handler(PoolTimeout)
    async def _busy(request: Request, exc: PoolTimeout) -> JSONResponse:
        # Every database connection stayed busy past the pool's wait: overload, not a fault.
        return refusal(request, [{"field": "", "message": "busy: no database connection came "
                                  "free in time; try again"}], 503, {"Retry-After": "5"})

    @app.exception_handler(Rejected)
    async def _rejected(request: Request, exc: Rejected) -> JSONResponse:
        status = 409 if isinstance(exc, Conflict) else 403 if isinstance(exc, Forbidden) else 422
        return refusal(request, exc.errors, status)

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        # Still logged with its traceback by the server (without SQL parameters). The body
        # keeps the one error shape, and an outage is said to be one: 503, try again later.
        if is_transient(exc):
            return refusal(request, [{"field": "", "message": (
                "unavailable: the database or NATS cannot be reached just now; try again")}],
                503, {"Retry-After": "5"})
        return refusal(request, [{"field": "", "message": "internal error"}], 500)


def _wants_page(request: Request) -> bool:
    return request.method == "GET" and "text/html" in request.headers.get("accept", "")


def login_redirect(request: Request) -> RedirectResponse:
    """A person's browser without a session goes to the registry's login page, and back."""
    settings = getattr(request.app.state, "settings", None)
    login = getattr(settings, "login_url", None) or (
        f"{request.url.scheme}://{request.url.hostname}:"
        f"{getattr(settings, 'registry_port', 8001)}/login")
    return RedirectResponse(f"{login}?next={quote(str(request.url), safe='')}", status_code=303)


async def refuse_nul(request: Request) -> None:
    """An app dependency: a NUL character in a path or query parameter is refused as invalid
    (422 naming it), as `shared.text.refuse_nul` refuses it in a body. It
    is never meaningful; SQLite's LIKE reads a pattern only up to it (a search for it would
    match everything) and PostgreSQL cannot take it at all."""
    bad = [("path", name) for name, value in request.path_params.items()
           if isinstance(value, str) and "\x00" in value]
    # Every query parameter, also those a route reads by hand (the registry's filters).
    bad += [("query", name) for name, value in request.query_params.multi_items()
            if "\x00" in value]
    if bad:
        raise RequestValidationError([
            {"loc": loc, "msg": "must not contain NUL (\\u0000) characters",
             "type": "value_error"} for loc in dict.fromkeys(bad)])


def add_health(app: FastAPI, checks: Callable[[], Awaitable[dict[str, bool]]],
               details: Callable[[], Awaitable[dict]] | None = None) -> None:
    """`/health`: 200 while every check is true, else 503; `details` add what someone should
    see (parked messages) without changing the status."""
    @app.get("/health", tags=["operations"], response_model=Health,
             responses={503: {"model": Health, "description": "degraded: a check is false"}})
    async def health() -> JSONResponse:
        parts = await checks()
        ok = all(parts.values())
        extra = await details() if details else {}
        return JSON({"status": "ok" if ok else "degraded", **parts, **extra},
                    status_code=200 if ok else 503)


def add_docs(app: FastAPI, assets: WebAssets) -> None:
    """`/openapi.json` and `/docs`, as routes of the app: behind the same key or login as
    the API they describe. Swagger UI's own files are served by the app (`/static/`, open)."""
    app.include_router(assets.router())

    @app.get("/openapi.json", include_in_schema=False)
    async def openapi_json() -> JSONResponse:
        return JSON(app.openapi())

    @app.get("/docs", include_in_schema=False)
    async def docs(request: Request) -> HTMLResponse:
        return swagger_page(assets, f"{app.title} API", "/openapi.json",
                            request.scope.get("root_path", ""))


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


SECURITY_SCHEMES = {
    "key": {"type": "http", "scheme": "bearer",
            "description": "an API key (`tongxin keys create`, or POST /v1/keys as an admin)"},
    "session": {"type": "apiKey", "in": "cookie", "name": SESSION_COOKIE,
                "description": "a person's session, from the registry's /login page"},
}


def _error(description: str, headers: dict | None = None) -> dict:
    return {"description": description, **({"headers": headers} if headers else {}),
            "content": {"application/json": {"schema": {"$ref": ERRORS_REF}}}}


def common_errors(route: APIRoute, operation: dict) -> dict[str, dict]:
    """The refusals any operation of this kind may answer (by the handlers above), whatever
    the route: 400 a body FastAPI cannot parse, 404 an id in the path that names nothing, 422
    bad input, 503 an outage or a report not caught up (with Retry-After)."""
    params = operation.get("parameters", [])
    out: dict[str, dict] = {}
    if route.path not in OPEN_PATHS and not route.path.startswith(OPEN_PREFIXES):
        out["401"] = _error("no key or login, or one that is not valid",
                            {"WWW-Authenticate": {"schema": {"type": "string"}}})
        out["403"] = _error("the key's role or organisation may not do this (the field "
                            "that is out of its reach is named)")
        if (route.methods or set()) - {"GET", "HEAD"}:
            out["429"] = _error("this key has made its writes for the minute", RETRY_AFTER)
    if route.body_field is not None:  # read by FastAPI (JSON or multipart), not by hand
        out["400"] = _error("the body cannot be read: not JSON, or not the multipart declared")
    if any(p.get("in") == "path" and "enum" not in p.get("schema", {}) for p in params):
        out["404"] = _error("nothing has the id in the path")
    if params or "requestBody" in operation:
        out["422"] = _error("invalid input: every bad field named")
    out["503"] = _error("cannot be answered just now (the database or NATS is away, or a "
                        "report has not caught up with `min_seq`): try again after Retry-After",
                        RETRY_AFTER)
    return out


def _api_routes(app: FastAPI) -> list[APIRoute]:
    """Every API route of the app, also those of included routers (FastAPI 0.16x includes a
    router lazily: `app.routes` holds the router, `iter_route_contexts` its routes, with their
    effective path)."""
    iter_contexts = getattr(fastapi.routing, "iter_route_contexts", None)
    if iter_contexts is None:  # an older FastAPI: included routes are copied into app.routes
        return [r for r in app.routes if isinstance(r, APIRoute)]
    return [cast(APIRoute, c) for c in iter_contexts(app.routes)
            if isinstance(c.original_route, APIRoute)]


def document_errors(app: FastAPI) -> None:
    """Declare in the OpenAPI, once for every route of the app (also those added later), the
    error responses `common_errors` names, with the `Errors` body; what a route declares
    itself stays. FastAPI's own 422 body (`HTTPValidationError`) is never sent: replaced."""
    build = app.openapi
    documented: list[dict] = []

    def openapi() -> dict:
        schema = build()
        if documented and documented[0] is schema:
            return schema
        components = schema.setdefault("components", {}).setdefault("schemas", {})
        schema["components"]["securitySchemes"] = SECURITY_SCHEMES
        schema["security"] = [{"key": []}, {"session": []}]
        _, defs = models_json_schema([(Errors, "validation")],
                                     ref_template="#/components/schemas/{model}")
        for name, definition in defs.get("$defs", {}).items():
            components.setdefault(name, definition)
        for route in _api_routes(app):
            if not route.include_in_schema:
                continue
            for method in route.methods or ():
                operation = schema.get("paths", {}).get(route.path_format, {}).get(
                    method.lower())
                if operation is None:
                    continue
                responses = operation.setdefault("responses", {})
                for status, response in common_errors(route, operation).items():
                    declared = responses.get(status)
                    if declared is None:
                        responses[status] = response
                    elif "HTTPValidationError" in str(declared.get("content", "")):
                        responses[status] = {**declared, **response}
        for unused in ("HTTPValidationError", "ValidationError"):  # in this order
            others = {k: v for k, v in components.items() if k != unused}
            if f'"#/components/schemas/{unused}"' not in json.dumps(
                    [schema.get("paths"), others]):
                components.pop(unused, None)
        documented[:] = [schema]
        return schema

    app.openapi = openapi  # type: ignore[method-assign]  # FastAPI's documented override
