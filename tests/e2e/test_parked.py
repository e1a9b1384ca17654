"""A message a read model cannot apply never stalls it (services as processes, both back-ends):
it is parked, seen in `/health` and `GET /v1/parked`, and everything after it still counts."""

from __future__ import annotations

import asyncio
import uuid

import httpx
import nats
import pytest

from services.reporting.models import READ_MODELS
from shared.bus import MSG_ID
from tests.factories import activity, envelope, raw

pytestmark = pytest.mark.asyncio(loop_scope="session")


async def forge(system, subject: str, env: dict) -> int:
    """Publish straight onto a stream only our services should write to, as a forger would."""
    nc = await nats.connect(system.nats_url)
    try:
        ack = await nc.jetstream().publish(subject, raw(env), headers={MSG_ID: env["event_id"]},
                                           timeout=5)
        return ack.seq
    finally:
        await nc.close()


async def get(system, service: str, path: str, method: str = "GET") -> httpx.Response:
    async with system.client() as http:
        return await http.request(method, f"{system.url(service)}{path}")


async def parked_counts(system, service: str) -> dict[str, int]:
    health = await get(system, service, "/health")
    assert health.status_code == 200 and health.json()["status"] == "ok", health.text
    return health.json().get("parked", {})


async def parked_when(system, service: str, want: dict[str, int],
                      timeout: float = 60) -> dict[str, int]:
    """The service's parked counts once they are `want`, or as they are when time runs out."""
    deadline = asyncio.get_running_loop().time() + timeout
    while (parked := await parked_counts(system, service)) != want:
        if asyncio.get_running_loop().time() > deadline:
            break
        await asyncio.sleep(0.2)
    return parked


async def test_what_cannot_be_applied_is_parked_and_seen_and_the_rest_counts(system):
    # Other tests in this session may have parked messages of their own.
    before = {s: await parked_counts(system, s) for s in ("reporting", "events")}
    org, base = await system.org_and_base()

    # The defect as found: an activity in year 9999, put straight onto TONGXIN_EVENTS, made
    # reporting's projection fail on it forever, so nothing after it was counted.
    forged = envelope(activity(org["id"], base["id"], served=9999,
                               started_at="9999-12-31T23:00:00+00:00",
                               ended_at="9999-12-31T23:30:00+00:00"))
    forged_seq = await forge(system, system.names.events("activity.logged"), forged)

    # A registry record no replica can store (its parent is an object, not an id): the events
    # service's replica and reporting's both park it, and take the records after it.
    s = uuid.uuid4().hex[:6]
    bad = envelope({"id": f"forged-{s}", "name": "伪造基地", "kind": "village",
                    "parent_id": {"code": "not an id"}, "updated_at": "2026-11-23T00:00:00Z"},
                   event_type="base.registered", source="registry")
    bad_seq = await forge(system, system.names.registry("base", "registered"), bad)
    later = await system.register("bases", name=f"高青县常家镇-{s}", kind="village")

    r = await system.post_activity(activity(org["id"], later["id"], served=12))
    assert r.status_code == 202, r.text  # the events replica took the base after the bad one
    summary = await system.summary(group_by="base", organization_id=org["id"],
                                   min_seq=r.json()["seq"])
    assert [(row["label"], row["served"]) for row in summary["rows"]] == [(later["name"], 12)]

    activity_subject = system.names.events("activity.logged")
    base_subject = system.names.registry("base", "registered")
    forged_item = (forged_seq, activity_subject, forged["event_id"], "activity.logged",
                   ("ValidationError", "OverflowError"))  # refused, or failing in astimezone
    bad_item = (bad_seq, base_subject, bad["event_id"], "base.registered",
                ("ProgrammingError", "DBAPIError", "DataError"))  # SQLite's word, asyncpg's
    expected = {"reporting": {**{m.name: forged_item for m in READ_MODELS
                                 if "activity.logged" in m.handlers},
                              "notifier-events": forged_item,  # the notifier reads it too
                              "reporting-registry": bad_item},
                "events": {"events-registry-replica": bad_item}}
    for service, projections in expected.items():
        # Each projection that reads the forgery parked it once; the others parked nothing new.
        # (The summary waited for the activity cube only: the other models may still be on
        # their way past the forged seq.)
        want = {**before[service], **{p: before[service].get(p, 0) + 1 for p in projections}}
        parked = await parked_when(system, service, want)
        assert parked == want, parked
        newest = (await get(system, service, "/health")).json()["parked_newest"]
        assert newest["seq"] in {seq for seq, *_ in projections.values()}

        listed = (await get(system, service, "/v1/parked?limit=1000")).json()
        assert listed["total"] == sum(parked.values()) == len(listed["items"])
        for projection, (seq, subject, event_id, event_type, reasons) in projections.items():
            [item] = [i for i in listed["items"]
                      if (i["projection"], i["seq"]) == (projection, seq)]
            assert (item["subject"], item["event_id"], item["event_type"]) == (
                subject, event_id, event_type)
            assert item["reason"].split(":")[0] in reasons, item

        # Replayed while nothing is fixed: everything stays parked.
        replay = await get(system, service, "/v1/parked/replay", method="POST")
        assert replay.status_code == 200, replay.text
        still = replay.json()["parked"]  # every projection, those with none at 0
        assert {name: n for name, n in still.items() if n} == parked
        assert set(replay.json()["replayed"].values()) == {0}

    # Only services with projections have parked messages to show.
    assert (await get(system, "registry", "/v1/parked")).status_code == 404
    assert "parked" not in (await get(system, "registry", "/health")).json()
