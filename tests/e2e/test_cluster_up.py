"""`tongxin up --nats-cluster 3 --replicas 2`: the topology of deploy/docker-compose.yml on
loopback, without Docker. Three nats-servers from the wheel as one JetStream cluster (streams
with three replicas), PostgreSQL, two instances of each service; events offered through both
events instances are counted by both reporting instances; Ctrl-C stops it all."""

from __future__ import annotations

import asyncio
import uuid

import pytest
from sqlalchemy.engine import make_url

from tests.e2e.test_cli import Up, processes_of
from tests.factories import activity
from tests.figures import say
from tests.harness import _admin
from tongxin.databases import service_urls
from tongxin.supervisor import SERVICES

pytestmark = pytest.mark.asyncio(loop_scope="session")


async def test_up_a_nats_cluster_and_two_instances_of_each_service(tmp_path, pg_server):
    name = f"tongxin_up_{uuid.uuid4().hex[:8]}"
    postgres = make_url(pg_server).set(database=name).render_as_string(hide_password=False)
    up = Up(tmp_path / "data", args=["--nats-cluster", "3", "--replicas", "2", "--no-demo",
                                     "--postgres", postgres])
    loop = asyncio.get_running_loop()
    t0 = loop.time()
    try:
        await up.start(timeout=150)
        started = loop.time() - t0
        assert "NATS JetStream cluster of 3 on nats://127.0.0.1:" in up.output
        assert "streams with 3 replicas" in up.output
        instances = {label: up.url(label) for label in ("registry-2", "events-2",
                                                        "reporting-2")}
        nodes = [p for p in processes_of(up.data_dir) if "nats-server" in p[1]]
        services = [p for p in processes_of(up.data_dir) if "-m services." in p[1]]
        assert len(nodes) == 3 and len(services) == 6, processes_of(up.data_dir)

        registry = up.url("Registry API docs").removesuffix("/docs")
        events = [up.url("Events API docs").removesuffix("/docs"), instances["events-2"]]
        reporting = [up.url("Reporting API docs").removesuffix("/docs"),
                     instances["reporting-2"]]
        async with up.client(timeout=30) as http:
            r = await http.post(f"{registry}/v1/organizations",
                                json={"name": "镇江市统战部", "kind": "party_organization"})
            assert r.status_code == 201, r.text
            org = r.json()["id"]
            r = await http.post(f"{registry}/v1/bases",
                                json={"name": "句容市天王镇", "kind": "village",
                                      "households": 300})
            assert r.status_code == 201, r.text
            base = r.json()["id"]
            served = 0
            for k in range(6):  # three through each events instance
                data = activity(org, base, served=10 + k)
                while True:  # an instance learns the new organisation from the registry
                    r = await http.post(f"{events[k % 2]}/v1/activities", json=data,
                                        headers={"Idempotency-Key": data["activity_id"]})
                    if r.status_code != 422 and r.status_code != 503:
                        break
                    assert loop.time() - t0 < 240, r.text
                    await asyncio.sleep(0.2)
                assert r.status_code == 202, r.text
                served += 10 + k
            for url in reporting:  # each reporting instance counts them all
                while True:
                    r = await http.get(f"{url}/v1/reports/summary",
                                       params={"organization_id": org})
                    assert r.status_code == 200, r.text
                    totals = r.json()["totals"]
                    if (totals["activities"], totals["served"]) == (6, served):
                        break
                    assert totals["activities"] <= 6, totals
                    assert loop.time() - t0 < 240, f"{url} never counted them all: {totals}"
                    await asyncio.sleep(0.2)
        rc = await up.interrupt(timeout=60)
        assert rc == 0, up.output
        assert processes_of(up.data_dir) == []
        say(f"\nCLUSTER UP: 3 nats-servers + 2 x {len(SERVICES)} services on PostgreSQL "
            f"running in {started:.1f}s; 6 activities through both events instances counted "
            f"by both reporting instances; all stopped by Ctrl-C; {loop.time() - t0:.1f}s")
    finally:
        await up.kill_leftovers()
        for url in service_urls(postgres).values():
            await _admin(pg_server, f'DROP DATABASE IF EXISTS "{make_url(url).database}" '
                                    "WITH (FORCE)")
