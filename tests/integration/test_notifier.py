"""The notification streams against a real NATS server and a real database (each back-end):
every kind raised once, published once on `tongxin.notify.<unit>.<kind>` with its id as
`Nats-Msg-Id`; a replay from position 0 and a restart send nothing again; the SSE stream
delivers and resumes; and the notifier and the read models never stop each other."""

from __future__ import annotations

import asyncio
import json
import re
import socket
import uuid
from collections import Counter
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import httpx
import pytest
import uvicorn
from sqlalchemy import select

from services.reporting import notify, store
from services.reporting.models import activities, labels
from services.reporting.notify import routes
from services.reporting.notify.project import milestone
from services.reporting.notify.tables import notifications
from services.reporting.readmodel import ReadModel
from services.reporting.scope import Scope
from shared.settings import Settings
from tests.factories import activity, need
from tests.integration.readmodels import Reporting, admin_app

pytestmark = pytest.mark.asyncio(loop_scope="session")

TZ = ZoneInfo("Asia/Shanghai")


@asynccontextmanager
async def running(nc, names, engine, **kwargs):
    """A notifier (as one reporting instance runs it), until the block ends: a restart."""
    n = notify.Notifier(nc.jetstream(), engine, Settings(namespace=names.namespace), **kwargs)
    tasks = [asyncio.create_task(w()) for w in (n.events.run, n.registry.run, n.relay.run)]
    try:
        yield n
    finally:
        n.stop()
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


async def settled(n: notify.Notifier, rep: Reporting) -> None:
    """Both projections have applied what was published, and the relay has published."""
    assert await n.events.wait_for(rep.last_seq["events"], 30)
    assert await n.registry.wait_for(rep.last_seq["registry"], 30)
    assert await n.relay.wait_published(10)


async def on_bus(nc, names) -> list[tuple[str, str | None, dict]]:
    """(subject, Nats-Msg-Id, payload) of every message on this test's TONGXIN_NOTIFY."""
    js = nc.jetstream()
    info = await js.stream_info(names.notify_stream)
    out = []
    for seq in range(info.state.first_seq, info.state.last_seq + 1) if info.state.messages else ():
        msg = await js.get_msg(names.notify_stream, seq)
        out.append((msg.subject, (msg.headers or {}).get("Nats-Msg-Id"), json.loads(msg.data)))
    return out


async def rows(engine) -> list[dict]:
    async with engine.connect() as conn:
        return [json.loads(p) for p in (await conn.execute(
            select(notifications.c.payload).order_by(notifications.c.id))).scalars()]


def kinds_of(payloads) -> Counter:
    return Counter((p["kind"], p["organization_id"], p["subject"]["id"]) for p in payloads)


def ended(**delta) -> dict:
    """started_at/ended_at of an activity that ended `delta` ago."""
    end = datetime.now(UTC) - timedelta(**delta)
    return {"started_at": (end - timedelta(hours=3)).isoformat(), "ended_at": end.isoformat()}


async def world(rep: Reporting) -> dict:
    """Two Shangyu units paired with one community."""
    a = await rep.registry("organization", name="上虞区委统战部", kind="party_organization")
    b = await rep.registry("organization", name="上虞区民建支部", kind="democratic_party")
    x = await rep.registry("base", name="百官街道龙山社区", kind="community")
    p = await rep.registry("pairing", "registered", organization_id=a["id"], base_id=x["id"],
                           starts_on="2013-01-01")
    q = await rep.registry("pairing", "registered", organization_id=b["id"], base_id=x["id"],
                           starts_on="2013-01-01")
    return {"a": a["id"], "b": b["id"], "x": x["id"], "p": p["id"], "q": q["id"]}


async def test_each_kind_once_and_a_replay_or_restart_sends_nothing_again(nc, names, engine):
    today = datetime.now(TZ).date()
    async with Reporting(nc, names, engine, models=[activities.MODEL]) as rep:
        w = await world(rep)
        a, b, x = w["a"], w["b"], w["x"]
        # Needs: under A's pairing; at the base (both paired units hear); followed up.
        n1, n2, n3, n4, n5 = (need(x, pairing_id=w["p"]), need(x), need(x, pairing_id=w["p"]),
                              need(x, pairing_id=w["q"]), need(x, pairing_id=w["p"]))
        for n in (n1, n2, n3, n4, n5):
            await rep.event("need.submitted", n)
        await rep.event("need.claimed", {"need_id": n4["need_id"], "organization_id": b})
        await rep.event("need.claimed", {"need_id": n5["need_id"], "organization_id": a})
        for n in (n3, n4, n5):
            await rep.event("need.followup_assigned", {"need_id": n["need_id"],
                                                       "assignee_id": "v-7", "due_on":
                                                       today.isoformat()})
        await rep.event("need.resolved", {"need_id": n5["need_id"], "organization_id": a})

        # Activities: one due tomorrow-ish (a reminder), one reported (none), one from history
        # (its deadline passed before it was first seen: none) that falls overdue.
        soon = activity(a, x, served=600, title="龙山社区义诊", **ended(days=6, hours=12))
        reported = activity(a, x, served=0, **ended(days=6, hours=12))
        old = activity(a, x, served=0, title="周六轮值服务", **ended(days=30))
        # A fair: B's stall crosses 1,000 for B; A's 300 leaves A under it.
        fair = activity(a, x, served=1500, service_types=["haircut", "repair"], stalls=[
            {"service_type": "haircut", "served": 300},
            {"service_type": "repair", "served": 1200, "organization_id": b}], **ended(days=30))
        for act in (soon, reported, old, fair):
            await rep.event("activity.logged", act)
        await rep.event("report.submitted", {"activity_id": reported["activity_id"],
                                             "organization_id": a, "summary": "服务旗帜已传递"})
        due_at = datetime.fromisoformat(old["ended_at"]) + timedelta(days=7)
        await rep.event("report.overdue", {"activity_id": old["activity_id"],
                                           "organization_id": a,
                                           "due_at": due_at.isoformat()})
        # A correction takes A to 800 + 300 = 1,100: its milestone. A retraction takes both
        # back under 1,000, and climbing again past it announces nothing again.
        await rep.event("activity.corrected", {**soon, "served": 800, "reason": "补录"})
        await rep.event("activity.retracted", {"activity_id": fair["activity_id"],
                                               "reason": "重复登记"})
        await rep.event("activity.logged", activity(b, x, served=900, **ended(days=40)))
        await rep.event("activity.logged", activity(a, x, served=400, **ended(days=40)))

        expected = Counter({
            ("need_submitted", a, n1["need_id"]): 1, ("need_submitted", a, n2["need_id"]): 1,
            ("need_submitted", b, n2["need_id"]): 1, ("need_submitted", a, n3["need_id"]): 1,
            ("need_submitted", b, n4["need_id"]): 1, ("need_submitted", a, n5["need_id"]): 1,
            ("milestone", b, b): 1, ("milestone", a, a): 1,
            ("report_overdue", a, old["activity_id"]): 1,
            ("report_due_soon", a, soon["activity_id"]): 1,
            # n3 unclaimed: its pairing's unit; n4 claimed: the claimer; n5 resolved: none.
            ("followup_overdue", a, n3["need_id"]): 1, ("followup_overdue", b, n4["need_id"]): 1,
        })

        async def sweeps(n: notify.Notifier) -> None:
            await n.sweep()                                           # the reminder
            await n.sweep(datetime.now(UTC) + timedelta(days=2))      # follow-ups past due
            assert await n.relay.wait_published(10)

        async with running(nc, names, engine) as n:
            await settled(n, rep)
            await sweeps(n)
            published = await on_bus(nc, names)
            assert kinds_of(await rows(engine)) == expected
            assert kinds_of(p for _, _, p in published) == expected

        for subject, msg_id, payload in published:
            assert msg_id == payload["notification_id"]
            assert subject == names.notify(payload["organization_id"], payload["kind"])
            assert set(payload) == {"notification_id", "kind", "organization_id", "occurred_at",
                                    "subject", "message_zh", "message_en"}
        by = {(p["kind"], p["organization_id"]): p for _, _, p in published}
        assert "上虞区委统战部累计服务群众突破 1,000 人次" in by[("milestone", a)]["message_zh"]
        assert "“周六轮值服务”" in by[("report_overdue", a)]["message_zh"]
        assert "百官街道龙山社区" in by[("report_overdue", a)]["message_zh"]
        assert "served over 1,000" in by[("milestone", b)]["message_en"]
        # Deadlines as people write them: 2026年12月7日 18:30, 7 Dec 2026 18:30; no ISO dates.
        local = due_at.astimezone(TZ)
        overdue = by[("report_overdue", a)]
        assert f"截止 {local.year}年{local.month}月{local.day}日 {local:%H:%M}）" in overdue[
            "message_zh"], overdue
        assert f"due by {local.day} {local:%b} {local.year} {local:%H:%M}" in overdue[
            "message_en"], overdue
        assert not re.search(r"\d{4}-\d{2}-\d{2}", json.dumps(
            [p["message_zh"] + p["message_en"] for _, _, p in published], ensure_ascii=False))
        assert by[("milestone", b)]["subject"] == {"type": "organization", "id": b}
        assert "v-7" not in json.dumps([p for _, _, p in published], ensure_ascii=False)

        # A restart, and then a replay from 0 into emptied state: nothing new anywhere.
        async with running(nc, names, engine) as n:
            await settled(n, rep)
            await sweeps(n)
        await notify.Notifier(nc.jetstream(), engine,
                              Settings(namespace=names.namespace)).reset()
        async with running(nc, names, engine) as n:
            await settled(n, rep)
            await sweeps(n)
            async with engine.connect() as conn:
                state = (await conn.execute(select(store.positions.c.position).where(
                    store.positions.c.name == "notifier-events"))).scalar()
            assert state == rep.last_seq["events"]
        assert kinds_of(await rows(engine)) == expected
        assert len(await on_bus(nc, names)) == len(published)


async def test_a_need_waits_for_its_pairing_to_be_known(nc, names, engine):
    """The registry stream may lag the events stream: the need is announced once its pairing
    (or, for a need at a base, a pairing at that base) arrives."""
    async with Reporting(nc, names, engine, models=[activities.MODEL]) as rep:
        a = await rep.registry("organization", name="镇江市京口区统战部",
                               kind="party_organization")
        x = await rep.registry("base", name="京口区正东路社区", kind="community")
        pairing_id = str(uuid.uuid4())
        under, at_base = need(x["id"], pairing_id=pairing_id), need(x["id"])
        await rep.event("need.submitted", under)
        await rep.event("need.submitted", at_base)
        async with running(nc, names, engine) as n:
            await settled(n, rep)
            assert await rows(engine) == []
            await rep.registry("pairing", id=pairing_id, organization_id=a["id"],
                               base_id=x["id"], starts_on="2014-01-01")
            await settled(n, rep)
        assert kinds_of(await rows(engine)) == Counter({
            ("need_submitted", a["id"], under["need_id"]): 1,
            ("need_submitted", a["id"], at_base["need_id"]): 1})
        assert "京口区正东路社区" in (await rows(engine))[0]["message_zh"]


async def test_shangyu_rota_overdue_units_are_told_once(nc, names, engine):
    """Seed 004: units on the Saturday rota return the service flag with a report; those that
    do not are named overdue, each told once (the overdue event replayed changes nothing)."""
    async with Reporting(nc, names, engine, models=[activities.MODEL]) as rep:
        base = await rep.registry("base", name="上虞区曹娥街道", kind="community")
        units = [await rep.registry("organization", name=f"上虞区第{i}轮值单位",
                                    kind="government_department") for i in range(6)]
        saturday = datetime(2013, 10, 19, 9, tzinfo=TZ)
        overdue_ids = set()
        for i, unit in enumerate(units):
            act = activity(unit["id"], base["id"], title="周六服务日",
                           started_at=saturday.isoformat(),
                           ended_at=(saturday + timedelta(hours=4)).isoformat())
            await rep.event("activity.logged", act)
            if i % 3 == 0:  # two of six never return the flag
                overdue_ids.add(unit["id"])
                due = {"activity_id": act["activity_id"], "organization_id": unit["id"],
                       "due_at": (saturday + timedelta(days=7, hours=4)).isoformat()}
                await rep.event("report.overdue", due)
                await rep.event("report.overdue", due)  # (delivered again, another event id)
            else:
                await rep.event("report.submitted", {"activity_id": act["activity_id"],
                                                     "organization_id": unit["id"],
                                                     "summary": "服务旗帜接传"})
        async with running(nc, names, engine) as n:
            await settled(n, rep)
            assert await n.sweep() == 0  # history: no reminders for deadlines long past
            assert await n.relay.wait_published(10)
        published = await on_bus(nc, names)
        assert sorted(s for s, _, _ in published) == sorted(
            names.notify(u, "report_overdue") for u in overdue_ids)
        assert all("上虞区曹娥街道" in p["message_zh"] and "周六服务日" in p["message_zh"]
                   for _, _, p in published)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@asynccontextmanager
async def http_server(engine):
    app = admin_app()
    app.include_router(notify.router)
    app.state.engine = engine
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=free_port(),
                                           log_level="warning", lifespan="off"))
    task = asyncio.create_task(server.serve())
    while not server.started:  # noqa: ASYNC110  (uvicorn offers no event for it)
        await asyncio.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{server.config.port}"
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, 10)


async def sse(lines: AsyncIterator[str], count: int) -> list[dict]:
    """The next `count` events of an SSE response's lines, as {id, event, data}."""
    out: list[dict] = []
    event: dict = {}
    async for line in lines:
        if not line:
            if "data" in event:
                out.append(event)
                if len(out) == count:
                    return out
            event = {}
        elif not line.startswith(":"):
            field, _, value = line.partition(": ")
            event[field] = json.loads(value) if field == "data" else value
    return out


async def keep_alive(lines: AsyncIterator[str]) -> bool:
    async for line in lines:
        if line.startswith(":"):
            return True
    return False


async def test_sse_delivers_and_resumes_with_last_event_id(nc, names, engine, monkeypatch):
    monkeypatch.setattr(routes, "POLL_SECONDS", 0.2)
    monkeypatch.setattr(routes, "KEEPALIVE_SECONDS", 0.5)
    async with (Reporting(nc, names, engine, models=[activities.MODEL]) as rep,
                running(nc, names, engine) as n, http_server(engine) as url,
                httpx.AsyncClient(timeout=20) as http):
        w = await world(rep)
        await rep.event("need.submitted", need(w["x"], pairing_id=w["p"]))
        await settled(n, rep)  # before the stream opens: not sent (it starts from now)

        async with http.stream("GET", f"{url}/v1/notifications/stream",
                               params={"organization_id": w["a"]}) as r:
            assert r.headers["content-type"].startswith("text/event-stream")
            first = need(w["x"], pairing_id=w["p"])
            await rep.event("need.submitted", first)
            [got] = await asyncio.wait_for(sse(r.aiter_lines(), 1), 15)
        assert (got["event"], got["data"]["subject"]["id"]) == ("need_submitted",
                                                                first["need_id"])

        # While nobody listens, two more for A (and one for B, not A's): resumed after `got`.
        later = [need(w["x"], pairing_id=w["p"]), need(w["x"], pairing_id=w["p"])]
        await rep.event("need.submitted", later[0])
        await rep.event("need.submitted", need(w["x"], pairing_id=w["q"]))
        await rep.event("need.submitted", later[1])
        await settled(n, rep)
        async with http.stream("GET", f"{url}/v1/notifications/stream",
                               params={"organization_id": w["a"]},
                               headers={"Last-Event-ID": got["id"]}) as r:
            lines = r.aiter_lines()
            resumed = await asyncio.wait_for(sse(lines, 2), 15)
            # Quiet now: a comment keeps the connection open.
            assert await asyncio.wait_for(keep_alive(lines), 5)
        assert [e["data"]["subject"]["id"] for e in resumed] == [m["need_id"] for m in later]
        assert int(resumed[0]["id"]) > int(got["id"])

        history = (await http.get(f"{url}/v1/notifications",
                                  params={"organization_id": w["a"], "limit": 2})).json()
        assert history["total"] == 4 and history["limit"] == 2
        assert [i["subject"]["id"] for i in history["items"]] == [
            later[1]["need_id"], later[0]["need_id"]]
        kinds = (await http.get(f"{url}/v1/notifications",
                                params={"kind": "milestone"})).json()
        assert kinds["total"] == 0


class Boom(Exception):
    pass


async def test_a_failing_read_model_does_not_stop_notifications(nc, names, engine):
    async def broken(batch) -> None:
        raise Boom("this read model is broken")

    model = ReadModel(name="reporting-broken", tables=(),
                      handlers={"activity.logged": broken, "need.submitted": broken})
    async with Reporting(nc, names, engine, models=[model]) as rep:
        w = await world(rep)
        n1 = need(w["x"], pairing_id=w["p"])
        await rep.event("need.submitted", n1)
        await rep.event("activity.logged", activity(w["a"], w["x"], served=1000,
                                                    **ended(days=20)))
        await rep.caught_up()  # by parking both
        async with running(nc, names, engine) as n:
            await settled(n, rep)
        assert kinds_of(await rows(engine)) == Counter({
            ("need_submitted", w["a"], n1["need_id"]): 1, ("milestone", w["a"], w["a"]): 1})
        assert (await rep.projections["reporting-broken"].parked_summary())[0] == 2


async def test_a_failing_notifier_does_not_stop_the_read_models(nc, names, engine):
    async with Reporting(nc, names, engine, models=[labels.MODEL, activities.MODEL]) as rep:
        w = await world(rep)
        await rep.event("activity.logged", activity(w["a"], w["x"], served=1200))
        await rep.event("activity.logged", activity(w["b"], w["x"], served=30))
        async with running(nc, names, engine) as n:
            async def broken(conn, msgs) -> None:
                raise Boom("the notifier is broken")

            n.events.apply = broken
            await rep.caught_up()
            assert await n.events.wait_for(rep.last_seq["events"], 30)  # parked, moved on
            assert (await n.events.parked_summary())[0] == 2
        async with engine.connect() as conn:
            found, totals = await activities.summary(conn, "organization", Scope())
        assert {r["label"]: r["served"] for r in found} == {"上虞区委统战部": 1200,
                                                            "上虞区民建支部": 30}
        assert totals["served"] == 1230
        assert await rows(engine) == []


async def test_milestones_are_1000_10000_100000_and_so_on():
    assert [milestone(v) for v in (0, 999, 1000, 9999, 10_000, 250_000, 3_000_000)] == [
        0, 0, 1000, 1000, 10_000, 100_000, 1_000_000]
