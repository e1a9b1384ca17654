"""`tongxin reporting rebuild` against real streams and a real database (each back-end): the
live projections fill the tables from a realistic mix of events, then the rebuild replays the
streams into a rebuild schema and either compares (`check`) or swaps the rows in, while a
reader keeps reading and new events keep arriving."""

from __future__ import annotations

import asyncio
import random
import uuid

import pytest
from sqlalchemy import delete, select

from services.reporting import store
from services.reporting.models import activities, labels
from services.reporting.rebuild import (
    Target,
    _Rebuilder,
    choose,
    normalise,
    rebuild,
    rebuildable,
)
from services.reporting.scope import Scope
from shared.settings import Settings
from tests.factories import activity, need
from tests.integration.conftest import create_schema, db_for, drop_schema
from tests.integration.readmodels import Reporting

pytestmark = pytest.mark.asyncio(loop_scope="session")


@pytest.fixture
async def db(backend, tag):
    db = db_for(backend, "reporting", tag)
    (backend.root / tag).mkdir(parents=True, exist_ok=True)
    await create_schema(db)
    yield db
    await drop_schema(db)


@pytest.fixture
async def engine(db):
    engine = db.engine()
    yield engine
    await engine.dispose()


@pytest.fixture
def settings(db, nats_url, names) -> Settings:
    """What the command reads from TONGXIN_* in a separate process."""
    return Settings(nats_url=nats_url, namespace=names.namespace,
                    reporting_database_url=db.url, db_schema=db.schema)


async def publish_mix(rep: Reporting, rounds: int, rng: random.Random) -> dict:
    """Registry records and a programme's events: activities (fairs with stalls among them),
    corrections, retractions, attendance, needs, reports, and one unreadable event."""
    city = await rep.registry("region", id="370300", code="370300", name="淄博市", level="city")
    district = await rep.registry("region", id="370322", code="370322", name="高青县",
                                  level="district", parent_code=city["id"])
    host = await rep.registry("organization", name="淄博市委统战部", kind="party_organization")
    units = [(await rep.registry("organization", name=f"淄博市第{i}单位", kind="democratic_party",
                                 parent_id=host["id"]))["id"] for i in range(4)]
    bases = [(await rep.registry("base", name=f"高青县第{i}村", kind="village",
                                 region_code=district["id"]))["id"] for i in range(3)]
    people = [(await rep.registry("volunteer", name=f"志愿者{i}", organization_id=units[i % 4],
                                  phone="13800000000"))["id"] for i in range(6)]
    logged: list[dict] = []
    for i in range(rounds):
        unit, base = rng.choice(units), rng.choice(bases)
        day = f"2013-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}"
        changes = {"started_at": f"{day}T09:00:00+08:00", "ended_at": f"{day}T12:00:00+08:00",
                   "volunteers": rng.randint(1, 20), "volunteer_hours": rng.randint(1, 90) / 2,
                   "outputs": [{"indicator": "households_visited",
                                "quantity": rng.randint(1, 30)}]}
        if i % 5 == 0:  # a fair (大集市): stalls of several units
            changes.update(served=None, service_types=[], stalls=[
                {"service_type": t, "served": rng.randint(5, 80), "organization_id": u,
                 "volunteers": rng.randint(1, 4)}
                for t, u in zip(["free_clinic", "legal_aid", "haircut"], units, strict=False)])
        else:
            changes["served"] = rng.randint(10, 200)
        data = activity(unit, base, **changes)
        await rep.event("activity.logged", data)
        logged.append(data)
        for person in rng.sample(people, 2):
            ref = {"activity_id": data["activity_id"], "volunteer_id": person}
            await rep.event("attendance.recorded", {**ref, "hours": 3, "method": "sign_in"})
            if rng.random() < 0.3:
                await rep.event("attendance.declined", {**ref, "organization_id": unit,
                                                        "reason": "未到场"})
            else:
                await rep.event("attendance.confirmed", {**ref, "organization_id": unit})
        if i % 4 == 1:
            await rep.event("report.submitted", {"activity_id": data["activity_id"],
                                                 "organization_id": unit, "summary": "活动总结"})
        elif i % 4 == 2:
            await rep.event("report.overdue", {"activity_id": data["activity_id"],
                                               "organization_id": unit,
                                               "due_at": f"{day}T12:00:00+08:00"})
        if i % 3 == 0:
            n = need(base)
            await rep.event("need.submitted", n)
            await rep.event("need.claimed", {"need_id": n["need_id"], "organization_id": unit})
            if i % 2 == 0:
                await rep.event("need.resolved", {"need_id": n["need_id"],
                                                  "organization_id": unit,
                                                  "activity_id": data["activity_id"]})
                await rep.event("need.closed", {"need_id": n["need_id"], "outcome": "confirmed"})
    for data in logged[1::4]:  # corrections restate figures (and may move the period)
        fixed = {**data, "volunteer_hours": data["volunteer_hours"] + 1, "reason": "更正时长",
                 "started_at": "2013-12-01T09:00:00+08:00",
                 "ended_at": "2013-12-01T11:00:00+08:00"}
        await rep.event("activity.corrected", fixed)
    for data in logged[2::7]:
        await rep.event("activity.retracted", {"activity_id": data["activity_id"],
                                               "reason": "重复录入"})
    # Unreadable for the handlers: parked by the live projection, and by the rebuild.
    await rep.event("activity.logged", {"activity_id": str(uuid.uuid4())})
    return {"units": units, "bases": bases}


async def snapshot(engine, models=None) -> dict[str, list[tuple]]:
    """Every row of every rebuilt table, normalised, ordered by primary key."""
    out = {}
    async with engine.connect() as conn:
        for model in models or rebuildable():
            for table in model.tables:
                rows = await conn.execute(select(table).order_by(*table.primary_key.columns))
                out[table.name] = [tuple(normalise(v) for v in r) for r in rows]
    return out


async def parked_rows(engine) -> list[tuple]:
    p = store.parked
    async with engine.connect() as conn:
        return (await conn.execute(select(p.c.name, p.c.seq, p.c.event_type)
                                   .order_by(p.c.name, p.c.seq))).tuples().all()


async def test_check_finds_the_rebuilt_tables_equal(nc, names, engine, settings):
    async with Reporting(nc, names, engine) as rep:
        await publish_mix(rep, 30, random.Random(1))
        await rep.caught_up()
        before = await snapshot(engine)
        assert len(before["cube_shares"]) > 30 and before["registry_entities"]

        result = await rebuild(settings, check=True)

        assert result.checked
        assert [m.name for m in result.models] == [m.name for m in rebuildable()]
        assert result.models[0].name == "reporting-registry"  # the replica first
        for model in result.models:
            assert model.checks, model.name
            for check in model.checks:
                assert check.equal, (check.table, check.only_live[:2], check.only_rebuilt[:2])
                assert check.live == check.rebuilt == len(before[check.table])
        assert result.equal
        activities_result = next(m for m in result.models if m.name == activities.NAME)
        assert activities_result.position == rep.last_seq["events"]
        assert activities_result.events == rep.last_seq["events"]
        assert activities_result.parked == 1  # the unreadable event
        assert await snapshot(engine) == before  # a check changes nothing


async def test_swap_while_readers_read_and_events_arrive(nc, names, engine, settings):
    rng = random.Random(2)
    async with Reporting(nc, names, engine) as rep:
        known = await publish_mix(rep, 25, rng)
        await rep.caught_up()
        async with engine.connect() as conn:
            _, start = await activities.summary(conn, "organization", Scope())
        parked = await parked_rows(engine)
        assert ("reporting-activities", rep.last_seq["events"], "activity.logged") in parked

        done = asyncio.Event()
        seen: list[tuple[int, int]] = []
        errors: list[BaseException] = []
        added: list[int] = []

        async def reader() -> None:
            while not done.is_set():
                try:
                    async with engine.connect() as conn:
                        _, totals = await activities.summary(conn, "organization", Scope())
                    seen.append((totals["activities"], totals["served"]))
                except Exception as exc:  # reported below: a reader must never fail
                    errors.append(exc)
                await asyncio.sleep(0.005)

        async def writer() -> None:
            while not done.is_set():
                served = rng.randint(1, 50)
                await rep.event("activity.logged", activity(rng.choice(known["units"]),
                                                            rng.choice(known["bases"]),
                                                            served=served))
                added.append(served)
                await asyncio.sleep(0.1)

        tasks = [asyncio.create_task(reader()), asyncio.create_task(writer())]
        try:
            result = await rebuild(settings)
        finally:
            done.set()
            await asyncio.gather(*tasks)

        assert not errors, errors[:3]
        assert not result.checked and added and len(seen) > 10
        # Totals only grow (events are only added meanwhile): never a half-built table.
        assert seen[0] >= (start["activities"], start["served"])
        assert all(b >= a for a, b in zip(seen, seen[1:], strict=False)), seen
        for model in result.models:
            assert model.events > 0 and model.seconds > 0 and model.events_per_second > 0

        await rep.caught_up()
        async with engine.connect() as conn:
            _, end = await activities.summary(conn, "organization", Scope())
        assert end["activities"] == start["activities"] + len(added)
        assert end["served"] == start["served"] + sum(added)
        assert await parked_rows(engine) == parked  # parked messages kept, none added

        # The live projections carry on from the swapped position; all still equal a replay.
        await rep.event("activity.logged", activity(known["units"][0], known["bases"][0],
                                                    served=7))
        await rep.caught_up()
        again = await rebuild(settings, check=True)
        assert again.equal, [(c.table, c.only_live[:2], c.only_rebuilt[:2])
                             for m in again.models for c in m.checks if not c.equal]


async def test_rebuild_restores_a_corrupted_table(nc, names, engine, settings):
    async with Reporting(nc, names, engine) as rep:
        await publish_mix(rep, 20, random.Random(3))
        await rep.caught_up()
        before = await snapshot(engine)
        shares = activities.shares
        async with engine.begin() as conn:
            doomed = (await conn.execute(select(shares.c.activity_id).limit(5))).scalars().all()
            await conn.execute(delete(shares).where(shares.c.activity_id.in_(doomed)))
        assert len((await snapshot(engine))["cube_shares"]) < len(before["cube_shares"])

        check = await rebuild(settings, [activities.NAME], check=True)
        assert not check.equal
        [model] = check.models
        broken = {c.table: c for c in model.checks if not c.equal}
        assert list(broken) == ["cube_shares"]
        assert broken["cube_shares"].rebuilt == len(before["cube_shares"])
        assert not broken["cube_shares"].only_live
        assert {r[0] for r in broken["cube_shares"].only_rebuilt} <= set(doomed)

        fixed = await rebuild(settings, [activities.NAME])
        assert [m.name for m in fixed.models] == [activities.NAME]
        assert await snapshot(engine) == before


async def test_the_locked_transaction_applies_what_came_since(nc, names, engine, settings):
    """What arrived after the rebuild stopped is applied to the rebuilt tables inside the
    locked transaction, a failing message parked there (in a savepoint): here the whole stream,
    as if the rebuild had stopped at 0."""
    async with Reporting(nc, names, engine, models=[labels.MODEL, activities.MODEL]) as rep:
        await publish_mix(rep, 10, random.Random(4))
        await rep.caught_up()
    before = await snapshot(engine, [activities.MODEL])
    parked = await parked_rows(engine)
    target = Target(settings)
    try:
        await target.create()
        await target.copy_live(labels.MODEL.tables)
        rebuilder = _Rebuilder(settings, nc.jetstream(), target, None, settle=0)
        result = await rebuilder._swap(activities.MODEL, names.events_stream,
                                       activities.MODEL.make_apply(settings), 0, check=False)
    finally:
        await target.close()
    assert result.position == result.gap == rep.last_seq["events"]
    assert result.parked == 1
    assert await snapshot(engine, [activities.MODEL]) == before
    assert await parked_rows(engine) == parked


async def test_choose_names_models():
    assert [m.name for m in choose(None)] == [m.name for m in rebuildable()]
    assert [m.name for m in choose([activities.NAME])] == [activities.NAME]
    with pytest.raises(ValueError, match="no such read model"):
        choose(["reporting-nothing"])
