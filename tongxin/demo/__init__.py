"""The demo: the five seed programmes, loaded through the public interface like any outside
system. Each programme is a package beside this file: its registers as spreadsheets (imported
by `POST /v1/import/<collection>`, idempotent on `code`), its pairings' three lists (PATCHed
onto the pairings), and its history as event envelopes naming records by code (sent by
`POST /v1/events/bulk`, idempotent on `event_id`). What must happen "live" (activities whose
reports never come, so the deadline sweep names their units in notices) is posted one event at
a time after the history. Loading twice adds nothing.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator
from importlib import resources
from importlib.abc import Traversable
from types import ModuleType
from typing import Any

import httpx

from services.registry.imports import collection_for
from shared.event_types import EVENT_TYPES
from tongxin.demo import chizhou, jinan, shangyu, zhenjiang, zibo

PROGRAMMES: tuple[ModuleType, ...] = (zibo, zhenjiang, chizhou, jinan, shangyu)

# Registry kinds an event refers to, and where their codes resolve.
COLLECTIONS = {"organization": "organizations", "base": "bases", "team": "teams",
               "volunteer": "volunteers", "pairing": "pairings", "campaign": "campaigns"}

# Service types the programmes use beyond those Tongxin ships (Jinan's 家政服务).
TAXONOMY = [{"kind": "service_type", "code": "housekeeping", "label_zh": "家政服务",
             "label_en": "Housekeeping"}]


def files(programme: ModuleType) -> list[Traversable]:
    """A programme's registers, in the order they refer to each other (01_区域 … 07_敲门行动)."""
    return sorted((f for f in resources.files(programme).iterdir() if f.name.endswith(".csv")),
                  key=lambda f: f.name)


def events() -> list[dict]:
    """Every envelope of every programme, as loaded (by code, not yet by id)."""
    return [e for p in PROGRAMMES for e in p.history() + p.live()]


def activities() -> list[dict]:
    """The `data` of every activity the demo logs."""
    return [e["data"] for e in events() if e["type"] == "activity.logged"]


def totals() -> tuple[int, int]:
    """(activities, served) over the whole demo: what the summary's totals must say."""
    logged = activities()
    return len(logged), sum(d["served"] if "served" in d else sum(s["served"] for s in d["stalls"])
                            for d in logged)


def by_id(envelope: dict, ids: dict[str, dict[str, str]]) -> dict:
    """The envelope with every registry reference's code replaced by the record's id."""
    out = copy.deepcopy(envelope)
    for path, kind in EVENT_TYPES[out["type"]].references.items():
        if kind in COLLECTIONS:
            _replace(out["data"], path.split("."), ids[COLLECTIONS[kind]])
    return out


def _replace(value: Any, parts: list[str], ids: dict[str, str]) -> None:
    head, rest = parts[0], parts[1:]
    name = head.removesuffix("[]")
    if not isinstance(value, dict) or value.get(name) is None:
        return
    items = value[name] if head.endswith("[]") else [value[name]]
    if not rest:
        codes = [str(v) for v in items]
        missing = [c for c in codes if c not in ids]
        if missing:
            raise RuntimeError(f"demo event refers to unknown code(s) {missing} in {name}")
        value[name] = [ids[c] for c in codes] if head.endswith("[]") else ids[codes[0]]
        return
    for item in items:
        _replace(item, rest, ids)


def _pages(http: httpx.Client, url: str) -> Iterator[dict]:
    offset = 0
    while True:
        page = _ok(http.get(url, params={"limit": 1000, "offset": offset}), url).json()
        yield from page["items"]
        offset += len(page["items"])
        if not page["items"] or offset >= page["total"]:
            return


def _ok(r: httpx.Response, what: str, *codes: int) -> httpx.Response:
    if r.status_code not in (codes or (200,)):
        raise RuntimeError(f"demo: {what} answered {r.status_code}: {r.text[:2000]}")
    return r


def load(registry_url: str, events_url: str, token: str | None = None) -> int:
    """Load every programme; return the last TONGXIN_EVENTS seq of its events. Safe to run
    twice. `token`: an admin's key (default: TONGXIN_TOKEN)."""
    from tongxin.keys import auth_headers

    seq = 0
    with httpx.Client(timeout=120, headers=auth_headers(token)) as http:
        for entry in TAXONOMY:  # 409: added by an earlier load
            _ok(http.post(f"{registry_url}/v1/taxonomy", json=entry), "taxonomy", 201, 409)
        for programme in PROGRAMMES:
            for f in files(programme):
                _ok(http.post(f"{registry_url}/v1/import/{collection_for(f.name)}",
                              files={"file": (f.name, f.read_bytes())}), f"import of {f.name}")
        ids = {c: {r["code"]: r["id"] for r in _pages(http, f"{registry_url}/v1/{c}")
                   if r.get("code")} for c in COLLECTIONS.values()}
        for programme in PROGRAMMES:
            for code, lists in programme.pairing_lists().items():
                _ok(http.patch(f"{registry_url}/v1/pairings/{ids['pairings'][code]}",
                               json=lists), f"the lists of pairing {code}")
        for programme in PROGRAMMES:
            seq = max(seq, _send(http, events_url, programme, ids))
    return seq


def _send(http: httpx.Client, events_url: str, programme: ModuleType,
          ids: dict[str, dict[str, str]]) -> int:
    """The programme's history in one bulk request, then its live events one by one; the
    highest seq among them."""
    # In the order it happened: a need is resolved after the activity that met it is logged.
    history = [by_id(e, ids) for e in sorted(programme.history(),
                                             key=lambda e: e["occurred_at"])]
    body = "\n".join(json.dumps(e, ensure_ascii=False) for e in history).encode()
    result = _ok(http.post(f"{events_url}/v1/events/bulk", content=body,
                           headers={"content-type": "application/x-ndjson"}),
                 f"bulk load of {programme.__name__}").json()
    if result["errors"] or result["accepted"] + result["duplicates"] != len(history):
        raise RuntimeError(f"demo: {programme.__name__} refused: {result['errors'][:20]}")
    # Stored in order, so the last line has the highest seq of the file.
    last = _ok(http.get(f"{events_url}/v1/events/{history[-1]['event_id']}"),
               "the last event").json()
    seq = last["seq"] or 0
    for e in programme.live():
        r = _ok(http.post(f"{events_url}/v1/events", json=by_id(e, ids)),
                f"{e['type']} {e['event_id']}", 202)
        seq = max(seq, r.json()["seq"] or 0)
    return seq
