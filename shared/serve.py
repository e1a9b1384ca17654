"""Run one service's ASGI app under uvicorn (each service is its own process)."""

from __future__ import annotations

import anyio._backends._asyncio  # noqa: F401  (see serve)
import uvicorn

from shared.settings import get_settings


def serve(service: str) -> None:
    # anyio loads its asyncio backend lazily, on the first request that runs a sync
    # dependency in a thread; imported then, while other threads import too, the event loop
    # once hung for good on an import lock. Imported here, before any thread exists.
    settings = get_settings()
    port = getattr(settings, f"{service}_port")
    uvicorn.run(f"services.{service}.app:create_app", factory=True, host=settings.host,
                port=port, log_config=None, access_log=False, lifespan="on")
