"""Single-event HTTP requests sent at once are accepted together (services/events/grouping.py),
each answered on its own: accepted with its seq, a duplicate, or its own refusal naming the
field; and everything is counted once."""

from __future__ import annotations

import asyncio
import uuid

import httpx
import pytest

from tests.factories import activity, envelope

pytestmark = pytest.mark.asyncio(loop_scope="session")

GROUP = "tongxin_events_http_group_size"


async def _groups(system) -> tuple[float, float]:
    """(batches, requests) the events service has grouped so far."""
    m = await system.metrics("events")
    return m[f"{GROUP}_count"][()], m[f"{GROUP}_sum"][()]


async def test_fifty_requests_at_once_each_get_their_own_answer(system):
    org, base = await system.org_and_base()
    other_org, _ = await system.org_and_base()
    outsider = await system.issue_key("unit", organization_id=other_org["id"])

    # 40 activities, 20 by envelope and 20 by Idempotency-Key; 4 of them sent again (retries).
    envelopes = [envelope(activity(org["id"], base["id"], served=10 + k)) for k in range(20)]
    # (envelopes[2] goes three times: twice at the end of the list below, and once in order.)
    keyed = [(f"grouping-{uuid.uuid4()}", activity(org["id"], base["id"], served=100 + k))
             for k in range(20)]
    clash = envelope(activity(org["id"], base["id"], served=7))  # its event_id, other data
    clash_again = {**clash, "data": activity(org["id"], base["id"], served=8)}
    unknown_base = activity(org["id"], str(uuid.uuid4()))                 # 422 data.base_id
    bad_field = activity(org["id"], base["id"], served=-1)               # 422 data.served
    not_theirs = activity(org["id"], base["id"])                         # 403: other unit's key

    # In order: 20 envelopes, 2 of them again; 20 keyed, 1 of them again; the clashing pair;
    # the three refused; and a third copy of one envelope (three in the one group).
    requests: list[tuple[str, dict, dict | None]] = (
        [("env", e, None) for e in envelopes] + [("env", e, None) for e in envelopes[:2]]
        + [("key", d, {"Idempotency-Key": k}) for k, d in keyed]
        + [("key", d, {"Idempotency-Key": k}) for k, d in keyed[:1]]
        + [("env", clash, None), ("env", clash_again, None),
           ("key", unknown_base, None), ("key", bad_field, None),
           ("key", not_theirs, {"Authorization": f"Bearer {outsider}"}),
           ("env", envelopes[2], None), ("env", envelopes[2], None)])
    assert len(requests) == 50

    groups_before, grouped_before = await _groups(system)
    async with system.client(limits=httpx.Limits(max_connections=60)) as http:
        async def send(kind: str, body: dict, headers: dict | None) -> httpx.Response:
            path = "/v1/events" if kind == "env" else "/v1/activities"
            return await http.post(f"{system.url('events')}{path}", json=body,
                                   headers=headers or {})

        answers = await asyncio.gather(*(send(*r) for r in requests))

    by_event: dict[str, list[dict]] = {}
    for r in answers[:43] + answers[48:]:
        assert r.status_code == 202, r.text
        by_event.setdefault(r.json()["event_id"], []).append(r.json())
    assert len(by_event) == 40
    for event_id, seen in by_event.items():
        # One acceptance each; a repeat is a duplicate with the same seq.
        assert [s["duplicate"] for s in seen].count(False) == 1, (event_id, seen)
        assert {s["seq"] for s in seen} == {seen[0]["seq"]} and seen[0]["seq"], seen
    assert len(by_event[envelopes[2]["event_id"]]) == 3

    clashing = sorted(answers[43:45], key=lambda r: r.status_code)
    assert [r.status_code for r in clashing] == [202, 409], [r.text for r in clashing]
    assert [e["field"] for e in clashing[1].json()["errors"]] == ["event_id"]
    assert answers[45].status_code == 422, answers[45].text
    assert [e["field"] for e in answers[45].json()["errors"]] == ["data.base_id"]
    assert answers[46].status_code == 422, answers[46].text
    assert [e["field"] for e in answers[46].json()["errors"]] == ["data.served"]
    assert answers[47].status_code == 403, answers[47].text
    assert [e["field"] for e in answers[47].json()["errors"]] == ["data.organization_id"]

    # Grouped: every request that parsed went through the grouper (the invalid one never
    # reached it), in fewer batches than requests.
    groups_after, grouped_after = await _groups(system)
    assert grouped_after - grouped_before == 49
    assert groups_after - groups_before < 49

    # Counted once: 40 activities and the one of the clashing pair that was accepted.
    last = max(r.json()["seq"] for r in answers if r.status_code == 202)
    summary = await system.summary(organization_id=org["id"], min_seq=last)
    accepted_clash = clashing[0].json()["event_id"]
    assert accepted_clash == clash["event_id"]
    assert summary["totals"]["activities"] == 41
    served_clash = 7 if answers[43].status_code == 202 else 8
    assert summary["totals"]["served"] == (sum(10 + k for k in range(20))
                                           + sum(100 + k for k in range(20)) + served_clash)
