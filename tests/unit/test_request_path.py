"""Nothing on a request's path runs in the thread pool: every dependency (the app's, the
routes', theirs) and every endpoint of each service is `async def`. FastAPI runs a plain `def`
in a worker thread, a hop that costs more than most of them do."""

from __future__ import annotations

import importlib
import inspect

import pytest

from shared.http import _api_routes
from shared.settings import Settings


def sync_parts(dependant, path: str) -> list[tuple[str, str]]:
    call = dependant.call
    found = []
    if call is not None and not (inspect.iscoroutinefunction(call)
                                 or inspect.isasyncgenfunction(call)):
        found.append((path, getattr(call, "__qualname__", repr(call))))
    for sub in dependant.dependencies:
        found += sync_parts(sub, path)
    return found


@pytest.mark.parametrize("service", ["registry", "events", "reporting"])
def test_every_dependency_and_endpoint_is_async(service, tmp_path):
    app = importlib.import_module(f"services.{service}.app").create_app(
        Settings(data_dir=tmp_path, secret_key="a secret of the test"))
    routes = _api_routes(app)
    names = {getattr(d.call, "__qualname__", "") for r in routes
             for d in r.dependant.dependencies}
    assert {"authenticate", "refuse_nul", "allow.<locals>.roles_marker"} <= names
    assert [p for r in routes for p in sync_parts(r.dependant, r.path)] == []
