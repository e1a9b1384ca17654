"""A small real version of the cluster fault table (tests/faults/cluster.py; the whole table:
`python -m tests.faults.cluster_table`): three nats-servers from the wheel as one JetStream
cluster, streams with three replicas, two instances of each service on PostgreSQL, a steady
mixed load (activities corrected and retracted, needs submitted, claimed and resolved,
attendance, offers on the bus). The leader of TONGXIN_EVENTS is killed with -9, then an events
instance: after each, nothing lost, doubled, out of order per key or parked. The takeover
times are printed, not asserted."""

from __future__ import annotations

import pytest

from tests.faults.cluster import ClusterSystem, Fault, Row, run_fault
from tests.figures import say
from tests.harness import Backend, create_pg_database, drop_pg_database

pytestmark = pytest.mark.asyncio(loop_scope="session")


def check(row: Row) -> None:
    assert row.accepted > 0 and row.takeover is not None
    assert row.wrong == [], row.wrong[:10]
    assert (row.lost, row.doubled, row.out_of_order, row.parked) == (0, 0, 0, 0), row
    assert row.counted == row.accepted, row


async def test_leader_and_instance_killed_under_load_on_a_cluster(tmp_path, pg_server):
    db = await create_pg_database(pg_server)
    system = ClusterSystem("", Backend("postgres", tmp_path, db), tmp_path / "system",
                           traces=False)
    rows = []
    try:
        system.start()
        for fault in (Fault("kill -9 the TONGXIN_EVENTS leader", "events-leader"),
                      Fault("kill -9 an events instance", "events")):
            row = await run_fault(system, fault, warm=2, after=1, workers=3, hold=2)
            rows.append(row)
            say(f"\n{row.line()}  ({row.note})")
            check(row)
    finally:
        system.stop()
        await drop_pg_database(pg_server, db)
    say("\n" + "\n".join([Row.HEADER, *(r.line() for r in rows)]))
