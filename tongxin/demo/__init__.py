"""The demo programme, loaded through the public HTTP interface like any outside system."""

from __future__ import annotations

import json
import uuid
from importlib import resources

import httpx

DEMO_NAMESPACE = uuid.UUID("0b3f6a52-9d0e-4f6b-8a43-5c2d1e7f9a10")


def programme() -> dict:
    return json.loads(resources.files(__package__).joinpath("zibo.json").read_text("utf-8"))


def load(registry_url: str, events_url: str) -> int:
    """Register the demo's regions, units and bases, log its activities; return the last seq."""
    demo = programme()
    ids: dict[str, str] = {}
    with httpx.Client(timeout=30) as http:
        for collection in ("regions", "organizations", "bases"):
            for record in demo[collection]:
                r = http.post(f"{registry_url}/v1/{collection}", json=record)
                if r.status_code == 409:  # already there: find it by its code
                    r = http.get(f"{registry_url}/v1/{collection}",
                                 params={"q": record["name"], "limit": 1000})
                    found = [x for x in r.json()["items"] if x.get("code") == record["code"]]
                    ids[record["code"]] = found[0]["id"]
                    continue
                r.raise_for_status()
                ids[record["code"]] = r.json()["id"]
        seq = 0
        for act in demo["activities"]:
            data = {k: v for k, v in act.items() if k not in ("key", "organization", "base")}
            data |= {"activity_id": str(uuid.uuid5(DEMO_NAMESPACE, act["key"])),
                     "organization_id": ids[act["organization"]], "base_id": ids[act["base"]]}
            r = http.post(f"{events_url}/v1/activities", json=data,
                          headers={"Idempotency-Key": act["key"], "X-Tongxin-Source": "demo"})
            r.raise_for_status()
            seq = max(seq, r.json()["seq"] or 0)
    return seq
