"""Run one service's ASGI app under uvicorn (each service is its own process)."""

from __future__ import annotations

import faulthandler
import signal

import anyio._backends._asyncio  # noqa: F401  (see serve)
import uvicorn

from shared.request_line import Utf8RequestLine
from shared.settings import get_settings


def serve(service: str) -> None:
    # anyio loads its asyncio backend lazily, on the first request that runs a sync
    # dependency in a thread; imported then, while other threads import too, the event loop
    # once hung for good on an import lock. Imported here, before any thread exists.
    # `kill -USR1 <pid>` writes every thread's stack to the log: what a stuck service is
    # doing, without stopping it (the test harness asks for it when a request times out).
    faulthandler.register(signal.SIGUSR1, all_threads=True)
    # SIGUSR2 (asyncio tasks) is handled once the loop runs (Runtime.start); until then a
    # stray one must not kill the service, as its default action would.
    signal.signal(signal.SIGUSR2, signal.SIG_IGN)
    settings = get_settings()
    port = getattr(settings, f"{service}_port")
    uvicorn.run(f"services.{service}.app:create_app", factory=True, host=settings.host,
                port=port, log_config=None, access_log=False, lifespan="on",
                http=Utf8RequestLine)
