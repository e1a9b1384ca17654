"""The demo programme (Zibo, 2013), loaded through the public interface like any outside
system: the register by spreadsheet import, the activities by the events API."""

from __future__ import annotations

import json
import uuid
from importlib import resources

import httpx

from services.registry.imports import collection_for

DEMO_NAMESPACE = uuid.UUID("0b3f6a52-9d0e-4f6b-8a43-5c2d1e7f9a10")


def files() -> list:
    return sorted((f for f in resources.files(__package__).iterdir() if f.name.endswith(".csv")),
                  key=lambda f: f.name)


def activities() -> list[dict]:
    return json.loads(resources.files(__package__).joinpath("activities.json")
                      .read_text("utf-8"))["activities"]


def load(registry_url: str, events_url: str, token: str | None = None) -> int:
    """Import the register, log the activities; return the last seq. Safe to run twice.
    `token`: an admin's key (default: TONGXIN_TOKEN)."""
    from tongxin.keys import auth_headers

    with httpx.Client(timeout=60, headers=auth_headers(token)) as http:
        for f in files():
            r = http.post(f"{registry_url}/v1/import/{collection_for(f.name)}",
                          files={"file": (f.name, f.read_bytes())})
            if r.status_code != 200:
                raise RuntimeError(f"demo import of {f.name} failed: {r.text}")
        ids: dict[str, str] = {}
        for collection in ("organizations", "bases", "teams"):
            items = http.get(f"{registry_url}/v1/{collection}", params={"limit": 1000}).json()
            ids |= {i["code"]: i["id"] for i in items["items"] if i.get("code")}
        seq = 0
        for act in activities():
            data = {k: v for k, v in act.items()
                    if k not in ("key", "organization", "base", "team")}
            data |= {"activity_id": str(uuid.uuid5(DEMO_NAMESPACE, act["key"])),
                     "organization_id": ids[act["organization"]], "base_id": ids[act["base"]]}
            if act.get("team"):
                data["team_id"] = ids[act["team"]]
            r = http.post(f"{events_url}/v1/activities", json=data,
                          headers={"Idempotency-Key": act["key"], "X-Tongxin-Source": "demo"})
            if r.status_code != 202:
                raise RuntimeError(f"demo activity {act['key']} refused: {r.text}")
            seq = max(seq, r.json()["seq"] or 0)
    return seq
