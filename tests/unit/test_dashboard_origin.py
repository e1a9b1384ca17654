"""The events service lets the dashboard's origin (this host name, the reporting port), and no
other, post events with the session cookie (CORS): the preflight and the answer's headers."""

from __future__ import annotations

from fastapi import FastAPI
from fastapi.testclient import TestClient

from services.events import dashboard_origin

PREFLIGHT = {"Access-Control-Request-Method": "POST",
             "Access-Control-Request-Headers": "content-type"}


def client() -> TestClient:
    app = FastAPI()

    @app.post("/v1/events")
    async def events() -> dict:
        return {"seq": 1}

    @app.post("/v1/photos")
    async def photos() -> dict:
        return {"ref": "x"}

    dashboard_origin.install(app, reporting_port=8003)
    return TestClient(app, base_url="http://10.1.2.3:8002")


def test_the_dashboards_origin_may_post_events_with_its_cookie():
    http = client()
    origin = {"Origin": "http://10.1.2.3:8003"}
    asked = http.options("/v1/events", headers={**origin, **PREFLIGHT})
    assert asked.status_code == 204
    assert asked.headers["access-control-allow-origin"] == "http://10.1.2.3:8003"
    assert asked.headers["access-control-allow-credentials"] == "true"
    assert "Content-Type" in asked.headers["access-control-allow-headers"]
    posted = http.post("/v1/events", headers=origin, json={})
    assert posted.status_code == 200
    assert posted.headers["access-control-allow-origin"] == "http://10.1.2.3:8003"


def test_any_other_origin_or_path_gets_no_cors_headers():
    http = client()
    for origin in ("http://10.1.2.3:9999", "http://evil.example:8003", "http://10.1.2.3",
                   "null", "http://10.1.2.3:notaport"):
        answer = http.post("/v1/events", headers={"Origin": origin}, json={})
        assert "access-control-allow-origin" not in answer.headers, origin
        asked = http.options("/v1/events", headers={"Origin": origin, **PREFLIGHT})
        assert "access-control-allow-origin" not in asked.headers, origin
    other = http.post("/v1/photos", headers={"Origin": "http://10.1.2.3:8003"})
    assert "access-control-allow-origin" not in other.headers
    assert "access-control-allow-origin" not in http.post("/v1/events", json={}).headers
