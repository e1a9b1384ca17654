"""The events service's acceptor alone, on PostgreSQL: N offers of the bench mix judged, stored
and published in batches of 500 (no HTTP, no ingest consumer, no reporting), with the time each
kind of SQL statement took and what PostgreSQL counted for `accepted_events` (inserts, updates).

    python -m bench.acceptor [--events 5000] [--postgres URL]

Uses TONGXIN_NATS_URL (default nats://127.0.0.1:4222).
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import json
import os
import time
import uuid

import nats
from sqlalchemy import event, text

from bench.mix import Mix
from services.events import store
from services.events.domain import parse_offer
from services.events.service import Acceptor
from shared.db import make_engine, migrate
from shared.envelope import new_envelope
from shared.outbox import Relay
from shared.projection import Projection
from shared.replica import apply_registry_events
from shared.streams import declare
from shared.subjects import Names
from tests.harness import create_pg_database, drop_pg_database

BATCH = 500


async def run(events: int, admin_url: str, nats_url: str) -> None:
    db = await create_pg_database(admin_url)
    names = Names(f"acceptor{uuid.uuid4().hex[:6]}")
    nc = await nats.connect(nats_url)
    js = nc.jetstream()
    await declare(js, names)
    try:
        await migrate("events", db, None)
        engine = make_engine(db, None)
        spent: dict[str, list] = collections.defaultdict(lambda: [0, 0.0])

        @event.listens_for(engine.sync_engine, "before_cursor_execute")
        def started(conn, cursor, statement, params, context, executemany) -> None:
            conn.info["t0"] = time.perf_counter()

        @event.listens_for(engine.sync_engine, "after_cursor_execute")
        def finished(conn, cursor, statement, params, context, executemany) -> None:
            kind = spent[" ".join(statement.split())[:80]]
            kind[0] += 1
            kind[1] += time.perf_counter() - conn.info["t0"]

        replica = Projection(
            name="events-registry-replica", js=js, stream=names.registry_stream,
            subject=names.registry(">"), engine=engine, positions=store.positions,
            parked=store.parked,
            apply=lambda conn, msgs: apply_registry_events(conn, store.registry_entities, msgs))
        task = asyncio.create_task(replica.run())

        async def register(entity: str, **record) -> dict:
            record.setdefault("id", str(uuid.uuid4()))
            env = new_envelope(f"{entity}.registered", {**record, "active": True}, "registry")
            await js.publish(names.registry(entity, "registered"), env.model_dump_json().encode())
            return record

        org = await register("organization", name="淄博市工商联", kind="enterprise")
        base = await register("base", name="博山区源泉镇", kind="village")
        await register("pairing", organization_id=org["id"], base_id=base["id"],
                       starts_on="2013-01-01")
        volunteers = [(await register("volunteer", name=f"志愿者{i}",
                                      organization_id=org["id"]))["id"] for i in range(500)]
        assert await replica.caught_up(30)
        acceptor = Acceptor(engine, js, names, replica, Relay(engine, js, store.accepted_events))
        raws = [json.dumps(e).encode()
                for e in Mix(org["id"], base["id"], volunteers).envelopes(events)]
        spent.clear()
        t0 = time.perf_counter()
        accepted = 0
        for i in range(0, events, BATCH):
            offers = [parse_offer(r) for r in raws[i:i + BATCH]]
            accepted += sum(o.accepted for o in await acceptor.offer(offers, via="bus"))
        took = time.perf_counter() - t0
        await asyncio.sleep(1)  # PostgreSQL's statistics are sent after the commit
        async with engine.connect() as conn:
            ins, upd, hot = (await conn.execute(text(
                "SELECT n_tup_ins, n_tup_upd, n_tup_hot_upd FROM pg_stat_user_tables "
                "WHERE relname = 'accepted_events'"))).one()
        print(f"{events:,} offers, {accepted:,} accepted in {took:.1f}s = "
              f"{events / took:,.0f}/s; accepted_events: {ins:,} inserted, {upd:,} updated "
              f"({hot:,} HOT)")
        for what, (n, seconds) in sorted(spent.items(), key=lambda kv: -kv[1][1])[:12]:
            print(f"{seconds:7.2f}s {n:6,}  {what}")
        replica.stop()
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await engine.dispose()
    finally:
        for stream in (names.events_stream, names.registry_stream, names.ingest_stream,
                       names.dlq_stream):
            try:
                await js.delete_stream(stream)
            except Exception:  # never created, or gone already
                pass
        await nc.close()
        await drop_pg_database(admin_url, db)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--events", type=int, default=5000)
    p.add_argument("--postgres", default=os.environ.get(
        "TONGXIN_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres"))
    args = p.parse_args()
    asyncio.run(run(args.events, args.postgres,
                    os.environ.get("TONGXIN_NATS_URL", "nats://127.0.0.1:4222")))


if __name__ == "__main__":
    main()
