"""The dashboard's own writes (数据审定: its "Approve this month" button). The dashboard is the
reporting service's page, on the same host at the reporting port: another origin, so the
browser asks before it posts `POST /v1/events` with the login's session cookie (CORS). This
service lets exactly that origin (the host name this request was made to, the reporting port)
post events with credentials; every other origin, and every other path, gets no CORS headers,
so a browser keeps its requests to itself as before. The offer is judged as any other: the
login's role and subtree decide (403 naming the field)."""

from __future__ import annotations

from urllib.parse import urlsplit

from fastapi import FastAPI, Request, Response

PATHS = frozenset({"/v1/events"})
ALLOWED_HEADERS = "Content-Type, Accept, Accept-Language"


def dashboard(request: Request, reporting_port: int) -> str | None:
    """The request's Origin if it is the dashboard's (this host, the reporting port)."""
    origin = request.headers.get("origin")
    if not origin or request.url.path not in PATHS:
        return None
    parts = urlsplit(origin)
    try:
        port = parts.port
    except ValueError:
        return None
    if (parts.scheme in ("http", "https") and port == reporting_port
            and parts.hostname == request.url.hostname):
        return origin
    return None


def install(app: FastAPI, reporting_port: int) -> None:
    @app.middleware("http")
    async def dashboard_writes(request: Request, call_next):
        origin = dashboard(request, reporting_port)
        if origin is None:
            return await call_next(request)
        allowed = {"Access-Control-Allow-Origin": origin,
                   "Access-Control-Allow-Credentials": "true", "Vary": "Origin"}
        if request.method == "OPTIONS" and "access-control-request-method" in request.headers:
            return Response(status_code=204, headers={
                **allowed, "Access-Control-Allow-Methods": "POST",
                "Access-Control-Allow-Headers": ALLOWED_HEADERS,
                "Access-Control-Max-Age": "600"})
        response = await call_next(request)
        response.headers.update(allowed)
        return response
