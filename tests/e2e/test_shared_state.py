"""State every instance of every service shares, on the running system (real NATS, both
database back-ends):

- a key's rate limit holds across two instances of the events service: between them they take
  exactly its limit of writes, and both refuse the rest with `429`;
- `/logout` ends that session on every service (each refuses the cookie within moments, and a
  service restarted afterwards too), while another session of the same account goes on;
- deactivating an account ends its sessions on every service, and reactivating it does not bring
  them back (a new login does work).
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import IO

import httpx
import pytest

from tests.e2e.test_trust import (
    eventually,
    logged_in,
    login,
    new_account,
    new_key,
    post,
    session_whoami,
    uid,
    with_session,
)
from tests.factories import activity
from tests.harness import System
from tongxin.natsserver import free_port
from tongxin.supervisor import SERVICES, die_with_parent

pytestmark = pytest.mark.asyncio(loop_scope="session")


def start_instance(system: System, service: str) -> tuple[subprocess.Popen, IO[bytes], str]:
    assert system.sup is not None
    port = free_port()
    env = {**os.environ, **system.sup.env, **system.env(service),
           f"TONGXIN_{service.upper()}_PORT": str(port)}
    log = open(system.workdir / "logs" / f"{service}-2.log", "ab")  # noqa: SIM115
    proc = subprocess.Popen([sys.executable, "-m", f"services.{service}"], env=env, stdout=log,
                            stderr=subprocess.STDOUT, start_new_session=True,
                            preexec_fn=die_with_parent)
    return proc, log, f"http://127.0.0.1:{port}"


@asynccontextmanager
async def another_instance(system: System, service: str) -> AsyncIterator[str]:
    """A second instance of `service`, started as the first was (same database, same NATS,
    another port); its URL. Stopped afterwards."""
    proc, log, url = start_instance(system, service)
    try:
        async def healthy() -> bool:
            assert proc.poll() is None, f"{service}-2 exited with {proc.returncode}"
            try:
                async with httpx.AsyncClient(timeout=1) as http:
                    return (await http.get(f"{url}/health")).status_code == 200
            except httpx.HTTPError:
                return False
        await eventually(healthy, 90, f"a second {service} instance healthy")
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


async def test_two_instances_share_a_keys_rate_limit(system):
    org, base = await system.org_and_base()
    limited = (await new_key(system, "unit", org["id"], rate_limit=5))["key"]
    async with another_instance(system, "events") as second:
        async def knows_key() -> bool:
            async with system.client(limited) as http:
                return (await http.get(f"{second}/v1/whoami")).status_code == 200
        await eventually(knows_key, 20, "the second instance knowing the key")

        urls = [system.url("events"), second]
        answers = []
        for i in range(12):  # one after the other, taking turns between the instances
            async with system.client(limited) as http:
                answers.append((i % 2, await http.post(f"{urls[i % 2]}/v1/activities",
                                                       json=activity(org["id"], base["id"]))))
    codes = [r.status_code for _, r in answers]
    assert codes.count(202) == 5, [r.text for _, r in answers]
    assert codes.count(429) == 7, codes
    assert codes[:5] == [202] * 5  # the limit is reached, then held, by both
    refused_by = {instance for instance, r in answers if r.status_code == 429}
    assert refused_by == {0, 1}
    assert all(int(r.headers["retry-after"]) >= 1 for _, r in answers if r.status_code == 429)


async def refused_everywhere(system: System, session: str, what: str) -> None:
    """Until every service answers the cookie with 401."""
    for service in SERVICES:
        async def refused(service=service) -> bool:
            async with with_session(session) as http:
                return (await http.get(f"{system.url(service)}/v1/whoami")).status_code == 401
        await eventually(refused, 10, f"{service} refusing the session {what}")


async def test_a_logout_ends_the_session_on_every_service(system):
    org, _ = await system.org_and_base()
    password = f"pw-{uid()}"
    account = await new_account(system, "reader", org["id"], password)
    session = await logged_in(system, account["username"], password)
    other = await logged_in(system, account["username"], password)  # another browser
    for service in SERVICES:
        assert (await session_whoami(system, service, session))["id"] == account["id"]

    async with with_session(session) as http:
        r = await http.post(f"{system.url('registry')}/logout")
    assert r.status_code == 303, r.text
    await refused_everywhere(system, session, "after its logout")
    for service in SERVICES:  # the same account's other session goes on
        assert (await session_whoami(system, service, other))["id"] == account["id"]
    # A restarted instance reads what ended before it started (the bucket, not its memory).
    await asyncio.to_thread(system.restart, "reporting")
    async with with_session(session) as http:
        r = await http.get(f"{system.url('reporting')}/v1/whoami")
    assert r.status_code == 401, r.text
    assert (await session_whoami(system, "reporting", other))["id"] == account["id"]


async def test_deactivating_an_account_ends_its_sessions_everywhere(system):
    org, _ = await system.org_and_base()
    password = f"pw-{uid()}"
    account = await new_account(system, "reader", org["id"], password)
    session = await logged_in(system, account["username"], password)
    for service in SERVICES:
        assert (await session_whoami(system, service, session))["id"] == account["id"]

    r = await post(system, "registry", f"/v1/accounts/{account['id']}/deactivate")
    assert r.status_code == 200 and r.json()["active"] is False, r.text
    await refused_everywhere(system, session, "of a deactivated account")
    assert (await login(system, account["username"], password)).status_code == 401

    r = await post(system, "registry", f"/v1/accounts/{account['id']}/reactivate")
    assert r.status_code == 200 and r.json()["active"] is True, r.text
    fresh = await logged_in(system, account["username"], password)
    for service in SERVICES:  # every service knows it is active again...
        assert (await session_whoami(system, service, fresh))["id"] == account["id"]
    # ...and the session from before its deactivation stays ended.
    for service in SERVICES:
        async with with_session(session) as http:
            assert (await http.get(f"{system.url(service)}/v1/whoami")).status_code == 401
    r = await post(system, "registry", "/v1/accounts/no-such-account/deactivate")
    assert r.status_code == 404, r.text
