"""Run one service's ASGI app under uvicorn (each service is its own process)."""

from __future__ import annotations

import uvicorn

from shared.settings import get_settings


def serve(service: str) -> None:
    settings = get_settings()
    port = getattr(settings, f"{service}_port")
    uvicorn.run(f"services.{service}.app:create_app", factory=True, host=settings.host,
                port=port, log_config=None, access_log=False, lifespan="on")
