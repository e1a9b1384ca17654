"""Notifications on the real processes: a Shangyu-style Saturday rota (seed 004) whose units
owe a report seconds after serving; those that never return the flag get one `report_overdue`
each on `tongxin.notify.<unit>.report_overdue` and in `GET /v1/notifications`, also after the
reporting service restarts (it replays nothing onto the bus again). A need under a pairing
tells the pairing's unit."""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from datetime import UTC, datetime, timedelta

import nats
import pytest

from tests.factories import activity, envelope, need
from tests.harness import System

pytestmark = pytest.mark.asyncio(loop_scope="session")

DUE_SECONDS = 3


@pytest.fixture(scope="module")
def notifying_system(backend, nats_url, tmp_path_factory):
    """A system of its own: reports fall due seconds after an activity ends."""
    s = System(nats_url, backend, tmp_path_factory.mktemp(f"notify-{backend.name}"),
               settings={"TONGXIN_REPORT_DUE_DAYS": str(DUE_SECONDS / 86400),
                         "TONGXIN_DEADLINE_SWEEP_SECONDS": "0.5"})
    try:
        s.start()
        yield s
    finally:
        s.stop()


async def on_bus(system: System) -> list[tuple[str, str, dict]]:
    """(subject, Nats-Msg-Id, payload) of every message on the system's TONGXIN_NOTIFY."""
    nc = await nats.connect(system.nats_url)
    try:
        js = nc.jetstream()
        info = await js.stream_info(system.names.notify_stream)
        out = []
        if info.state.messages:
            for seq in range(info.state.first_seq, info.state.last_seq + 1):
                msg = await js.get_msg(system.names.notify_stream, seq)
                out.append((msg.subject or "", (msg.headers or {}).get("Nats-Msg-Id", ""),
                            json.loads(msg.data or b"{}")))
        return out
    finally:
        await nc.close()


def counts(published, kind: str) -> Counter:
    return Counter(p["organization_id"] for _, _, p in published if p["kind"] == kind)


async def history(system: System, **params) -> dict:
    async with system.client() as http:
        r = await http.get(f"{system.url('reporting')}/v1/notifications", params=params)
    assert r.status_code == 200, r.text
    return r.json()


async def until(check, timeout: float = 30):
    deadline = asyncio.get_running_loop().time() + timeout
    while not (result := await check()):
        assert asyncio.get_running_loop().time() < deadline, "condition never met"
        await asyncio.sleep(0.3)
    return result


async def test_rota_units_that_never_report_are_told_once(notifying_system):
    system = notifying_system
    base = await system.register("bases", name="上虞区曹娥街道江西社区", kind="community",
                                 households=900)
    units = [await system.register("organizations", name=f"上虞区轮值单位{i}",
                                   kind="government_department") for i in range(3)]
    end = datetime.now(UTC)
    acts = [activity(u["id"], base["id"], title="周六“同心”服务日",
                     started_at=(end - timedelta(hours=3)).isoformat(), ended_at=end.isoformat())
            for u in units]
    for data in acts:
        assert (await system.post_activity(data)).status_code == 202
    r = await system.post_event(envelope({"activity_id": acts[0]["activity_id"],
                                          "organization_id": units[0]["id"],
                                          "summary": "服务旗帜已传递，附活动总结"},
                                         "report.submitted"))
    assert r.status_code == 202, r.text
    late = {units[1]["id"], units[2]["id"]}

    async def both_told():
        found = counts(await on_bus(system), "report_overdue")
        return found if set(found) >= late else None

    found = await until(both_told)
    assert found == Counter(dict.fromkeys(late, 1))
    page = await history(system, organization_id=units[1]["id"], kind="report_overdue")
    assert page["total"] == 1
    [item] = page["items"]
    assert item["subject"] == {"type": "activity", "id": acts[1]["activity_id"]}
    assert "上虞区轮值单位1" in item["message_zh"] and "周六“同心”服务日" in item["message_zh"]
    assert "上虞区曹娥街道江西社区" in item["message_zh"]

    # A restart replays nothing onto the bus again, and the history stays as it was.
    before = await on_bus(system)
    system.restart("reporting")
    await system.settled("reporting")  # caught up, a sweep since, its outbox published
    after = await on_bus(system)
    assert [m for _, m, _ in after] == [m for _, m, _ in before]
    assert all(m == p["notification_id"] for _, m, p in after)
    assert counts(after, "report_overdue") == Counter(dict.fromkeys(late, 1))
    assert (await history(system, organization_id=units[2]["id"],
                          kind="report_overdue"))["total"] == 1
    # A reminder, if the notifier saw an activity before its deadline: never twice.
    assert all(n == 1 for n in counts(after, "report_due_soon").values())


async def test_a_need_under_a_pairing_tells_its_unit(notifying_system):
    system = notifying_system
    org = await system.register("organizations", name="济南市民盟支部", kind="democratic_party")
    base = await system.register("bases", name="历下区燕山社区", kind="community")
    pairing = await system.register("pairings", organization_id=org["id"], base_id=base["id"],
                                    starts_on="2013-01-01")
    data = need(base["id"], pairing_id=pairing["id"], category="tutoring", urgency="high")
    r = await system.post_event(envelope(data, "need.submitted"))
    assert r.status_code == 202, r.text

    async def told():
        page = await history(system, organization_id=org["id"], kind="need_submitted")
        return page if page["total"] else None

    page = await until(told)
    [item] = page["items"]
    assert item["subject"] == {"type": "need", "id": data["need_id"]}
    assert "历下区燕山社区" in item["message_zh"] and "义教" in item["message_zh"]
    subjects = [s for s, _, p in await until(lambda: _published(system, data["need_id"]))]
    assert subjects == [system.names.notify(org["id"], "need_submitted")]


async def _published(system: System, need_id: str):
    found = [m for m in await on_bus(system) if m[2]["subject"]["id"] == need_id]
    return found or None
