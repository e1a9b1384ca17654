"""NATS users with subject permissions (`tongxin.natsauth`), on a nats-server of each test's own
started with the generated configuration for the test's namespace: an outside publisher offers
events and gets its acks, and nothing else; a forged publish on a subject another user owns is
refused by the server (its "Permissions Violation" reaches the client) and lands nowhere; the three
services run on it, each with its own user, and the server refuses them nothing."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import nats
import nats.errors
import pytest
from nats.aio.client import Client

from shared.bus import MSG_ID, inbox_prefix
from shared.streams import declare, missing, stream_configs, stream_names
from shared.subjects import Names
from tests.e2e.test_shared_state import refused_everywhere
from tests.e2e.test_trust import logged_in, new_account, session_whoami, with_session
from tests.factories import activity, envelope, raw
from tests.figures import say
from tests.harness import System, running
from tests.integration.conftest import new_tag
from tests.photo_files import jpeg_of_size
from tongxin import natsauth
from tongxin.natsserver import NatsServer, binary

pytestmark = pytest.mark.asyncio(loop_scope="session")


@dataclass
class Secured:
    """A nats-server with the users and permissions of `names`'s namespace."""

    server: NatsServer
    names: Names
    passwords: dict[str, str]
    log: Path

    def url(self, user: str) -> str:
        return natsauth.url_for(self.server.url, user, self.passwords)

    def violations(self) -> list[str]:
        """What the server refused, as it logged it ("... Publish Violation - Subject ...")."""
        return [line for line in self.log.read_text(errors="replace").splitlines()
                if "Violation" in line]


@contextmanager
def secured_nats(tmp: Path, namespace: str) -> Iterator[Secured]:
    names = Names(namespace)
    passwords = natsauth.passwords(tmp / "nats-users.json")
    config = natsauth.write_config(tmp / "nats-auth.conf", passwords, names)
    log = tmp / "nats.log"
    server = NatsServer(tmp / "store", log_file=log, config=config).start()
    try:
        yield Secured(server, names, passwords, log)
    finally:
        server.stop()


@pytest.fixture
def secured(tmp_path) -> Iterator[Secured]:
    with secured_nats(tmp_path, new_tag()) as s:
        yield s


@dataclass
class User:
    """A connection as one user, with what the server told it went wrong."""

    nc: Client
    errors: list[str] = field(default_factory=list)

    def refused(self, subject: str, what: str = "publish") -> bool:
        # (nats-py hands the server's error on in lower case)
        return any(f'permissions violation for {what} to "{subject.lower()}"' in e.lower()
                   for e in self.errors)

    async def told(self, subject: str, what: str = "publish", timeout: float = 2.0) -> bool:
        """Whether the server says it refused `what` on `subject` (its -ERR may come after
        the answer to the next PING)."""
        deadline = asyncio.get_running_loop().time() + timeout
        while not self.refused(subject, what):
            if asyncio.get_running_loop().time() > deadline:
                return False
            await asyncio.sleep(0.02)
        return True


@asynccontextmanager
async def connected(secured: Secured, user: str) -> AsyncIterator[User]:
    errors: list[str] = []

    async def on_error(exc: Exception) -> None:
        errors.append(str(exc))

    url = secured.url(user)
    nc = await nats.connect(url, name=f"test-{user}", error_cb=on_error,
                            inbox_prefix=inbox_prefix(url))
    try:
        yield User(nc, errors)
    finally:
        await nc.close()


async def forge(user: User, subject: str) -> bool:
    """Publish on `subject` with JetStream, as a forger would: True when the server refused it
    (a permissions violation naming the subject, and no PubAck)."""
    try:
        await user.nc.jetstream().publish(subject, raw(envelope({})), timeout=1,
                                          headers={MSG_ID: str(uuid.uuid4())})
    except nats.errors.TimeoutError:  # a refused publish is dropped: no stream answers
        acked = False
    else:
        acked = True
    return await user.told(subject) and not acked


async def stream_counts(secured: Secured) -> dict[str, int]:
    async with connected(secured, natsauth.OPERATOR) as op:
        js = op.nc.jetstream()
        return {c.name: (await js.stream_info(c.name)).state.messages
                for c in stream_configs(secured.names) if c.name}


async def declare_streams(secured: Secured) -> None:
    async with connected(secured, natsauth.OPERATOR) as op:
        await declare(op.nc.jetstream(), secured.names)


async def test_passwords_are_made_once_and_kept_from_others(tmp_path):
    path = tmp_path / "nats-users.json"
    made = natsauth.passwords(path)
    assert set(made) == set(natsauth.USERS) and len(set(made.values())) == len(made)
    assert path.stat().st_mode & 0o777 == 0o600
    assert natsauth.passwords(path) == made  # the next start: the same
    config = natsauth.write_config(tmp_path / "auth.conf", made, Names())
    assert config.stat().st_mode & 0o777 == 0o600
    # The server's configuration holds bcrypt hashes, never a password itself.
    text = config.read_text()
    assert [u for u, pw in made.items() if pw in text] == []
    assert text.count('"password": "$2a$11$') == len(natsauth.USERS)
    # nats-server itself accepts it (-t: test the configuration and exit)
    checked = await asyncio.to_thread(subprocess.run, [binary(), "-c", str(config), "-t"],
                                      capture_output=True, text=True, timeout=30)
    assert checked.returncode == 0, checked.stdout + checked.stderr


async def test_no_service_declares_changes_or_deletes_a_stream(secured):
    """Streams are the operator's (`tongxin bus streams`): a service's user may look one up,
    and is refused creating, updating or deleting one, whether it exists or not."""
    names = secured.names
    await declare_streams(secured)
    before = {c.name: c for c in stream_configs(names)}
    for user in natsauth.SERVICES:
        async with connected(secured, user) as service:
            js = service.nc.jetstream(timeout=1)
            info = await js.stream_info(names.events_stream)  # looking is allowed
            assert info.config.name == names.events_stream
            with pytest.raises(nats.errors.TimeoutError):
                await js.add_stream(name=f"{names.events_stream}_MINE",
                                    subjects=[f"{names.namespace}.mine.>"])
            changed = before[names.events_stream]
            with pytest.raises(nats.errors.TimeoutError):
                await js.update_stream(changed.evolve(max_age=60.0))
            with pytest.raises(nats.errors.TimeoutError):
                await js.delete_stream(names.registry_stream)
            with pytest.raises(nats.errors.TimeoutError):  # a bucket is a stream too
                await js.delete_key_value(names.sessions_bucket)
            for api in (f"CREATE.{names.events_stream}_MINE", f"UPDATE.{names.events_stream}",
                        f"DELETE.{names.registry_stream}", f"DELETE.KV_{names.sessions_bucket}"):
                assert await service.told(f"$JS.API.STREAM.{api}"), (user, service.errors)
    async with connected(secured, natsauth.OPERATOR) as op:
        js = op.nc.jetstream()
        after = await js.stream_info(names.events_stream)
        assert after.config.max_age == before[names.events_stream].max_age
        await js.stream_info(names.registry_stream)
        await js.key_value(names.sessions_bucket)
        with pytest.raises(nats.js.errors.NotFoundError):
            await js.stream_info(f"{names.events_stream}_MINE")


async def test_the_operator_step_declares_the_streams(secured):
    """`tongxin bus streams` as the operator makes every stream and bucket; as a service's user
    it is refused, and leaves nothing behind."""
    names = secured.names

    def bus_streams(user: str) -> subprocess.CompletedProcess:
        env = {**os.environ, "TONGXIN_NATS_URL": secured.url(user),
               "TONGXIN_NAMESPACE": names.namespace, "COLUMNS": "200"}
        return subprocess.run([sys.executable, "-m", "tongxin.cli", "bus", "streams"], env=env,
                              capture_output=True, text=True, timeout=120)

    refused = await asyncio.to_thread(bus_streams, "events")
    assert refused.returncode != 0, refused.stdout
    async with connected(secured, natsauth.OPERATOR) as op:
        assert await missing(op.nc.jetstream(), names) == stream_names(names)
    done = await asyncio.to_thread(bus_streams, natsauth.OPERATOR)
    assert done.returncode == 0, done.stdout + done.stderr
    async with connected(secured, natsauth.OPERATOR) as op:
        assert await missing(op.nc.jetstream(), names) == []
    assert secured.passwords[natsauth.OPERATOR] not in done.stdout + done.stderr


async def test_each_user_reads_only_its_own_inbox(secured):
    """Replies come to `_INBOX_<user>.>`: a user may not subscribe to another's inbox, nor
    (a service) to the default `_INBOX.>`, which only the outside publisher keeps."""
    for user in (*natsauth.SERVICES, natsauth.PUBLISHER):
        others = [u for u in (*natsauth.SERVICES, natsauth.PUBLISHER) if u != user]
        shared = [] if user == natsauth.PUBLISHER else [natsauth.SHARED_INBOX]
        async with connected(secured, user) as snoop:
            for subject in [*shared, *(natsauth.inbox(o) for o in others)]:
                await snoop.nc.subscribe(subject)
                assert await snoop.told(subject, "subscription"), (user, subject, snoop.errors)
            # its own, it may (a request's reply comes there)
            await snoop.nc.subscribe(natsauth.inbox(user))
            await snoop.nc.flush()
            assert not snoop.refused(natsauth.inbox(user), "subscription")


async def test_a_v1_publisher_with_the_default_inbox_gets_its_acks(secured):
    """An outside system written for v1 (no inbox prefix) still publishes and is acked; what
    the services ask and answer never comes to that inbox."""
    await declare_streams(secured)
    errors: list[str] = []

    async def on_error(exc: Exception) -> None:
        errors.append(str(exc))

    old = await nats.connect(secured.url(natsauth.PUBLISHER), error_cb=on_error)
    try:
        ack = await old.jetstream().publish(secured.names.ingest("activity.logged"),
                                            raw(envelope(activity("org-1", "base-1"))),
                                            timeout=10)
        assert ack.seq >= 1 and errors == []
    finally:
        await old.close()


async def test_nobody_connects_without_a_password(secured):
    with pytest.raises(nats.errors.Error, match="Authorization Violation"):
        await nats.connect(secured.server.url, allow_reconnect=False, max_reconnect_attempts=0)
    wrong = dict(secured.passwords, publisher="not-the-password")
    with pytest.raises(nats.errors.Error, match="Authorization Violation"):
        await nats.connect(natsauth.url_for(secured.server.url, "publisher", wrong),
                           allow_reconnect=False, max_reconnect_attempts=0)


async def test_an_outside_publisher_offers_events_and_gets_its_acks(secured):
    names = secured.names
    await declare_streams(secured)
    offer = raw(envelope(activity("org-1", "base-1")))
    event_id = str(uuid.uuid4())
    async with connected(secured, natsauth.PUBLISHER) as publisher:
        js = publisher.nc.jetstream()
        ack = await js.publish(names.ingest("activity.logged"), offer, timeout=5,
                               headers={MSG_ID: event_id})
        assert (ack.stream, ack.seq, ack.duplicate) == (names.ingest_stream, 1, None)
        again = await js.publish(names.ingest("activity.logged"), offer, timeout=5,
                                 headers={MSG_ID: event_id})
        assert (again.seq, again.duplicate) == (1, True)  # a retry is stored once

        # Only in its own namespace, and it cannot read what others publish either.
        for elsewhere in ("tongxin.ingest.activity.logged",
                          Names(new_tag()).ingest("activity.logged")):
            assert await forge(publisher, elsewhere), publisher.errors
        await publisher.nc.subscribe(names.events())
        assert await publisher.told(names.events(), "subscription"), publisher.errors
        assert publisher.nc.is_connected  # a refusal does not cost it its connection
    counts = await stream_counts(secured)
    assert counts[names.ingest_stream] == 1
    assert sum(counts.values()) == 1


async def test_forged_publishes_are_refused_by_the_server(secured):
    names = secured.names
    await declare_streams(secured)
    events = names.events("activity.logged")
    registry = names.registry("organization", "registered")
    notify = names.notify("x", "milestone")
    dlq = names.dlq("x")
    ingest = names.ingest("activity.logged")
    photo_chunk = f"$O.{names.photos_bucket}.C.forged"
    forgeries = {
        natsauth.PUBLISHER: [events, registry, notify, dlq, photo_chunk,
                             # nor reconfigure a stream to take its subjects in
                             f"$JS.API.STREAM.UPDATE.{names.events_stream}"],
        "reporting": [events, registry, dlq, ingest, photo_chunk],
        "registry": [events, notify, dlq, ingest, photo_chunk],
        "events": [registry, notify, ingest],
    }
    tried, refused = 0, 0
    for user, subjects in forgeries.items():
        async with connected(secured, user) as forger:
            outcomes = {subject: await forge(forger, subject) for subject in subjects}
        say(f"{user}: forged publishes refused: {sum(outcomes.values())} of {len(outcomes)}; "
              f"not refused: {[s for s, no in outcomes.items() if not no]}")
        tried, refused = tried + len(outcomes), refused + sum(outcomes.values())
    counts = await stream_counts(secured)
    assert set(counts.values()) == {0}, counts  # nothing landed anywhere
    say(f"forged publishes refused: {refused} of {tried}")
    assert refused == tried

    # The refusals are specific: each service publishes on what it owns, and is acked.
    owned = {"registry": registry, "events": events, "reporting": notify}
    for user, subject in owned.items():
        async with connected(secured, user) as owner:
            ack = await owner.nc.jetstream().publish(subject, b"{}", timeout=5)
            assert ack.seq == 1 and owner.errors == [], (user, owner.errors)
    # No service deletes or purges a stream: the record stays whatever a service does.
    async with connected(secured, "reporting") as reporting:
        js = reporting.nc.jetstream(timeout=1)
        with pytest.raises(nats.errors.TimeoutError):
            await js.delete_stream(names.events_stream)
        with pytest.raises(nats.errors.TimeoutError):
            await js.purge_stream(names.events_stream)
        for api in ("DELETE", "PURGE"):
            assert await reporting.told(f"$JS.API.STREAM.{api}.{names.events_stream}")
    assert (await stream_counts(secured))[names.events_stream] == 1


async def test_the_services_run_with_their_own_users(backend, tmp_path):
    """The three services as processes, each connected as its own user: registry records, an
    offer from the publisher (accepted, and a milestone notified), a refused offer (the DLQ), a
    large photo stored and read back (its chunks, and flow control of the consumer reading
    them), writes counted in the shared rate-limit bucket, a logout ended everywhere through
    the sessions bucket, and a rebuild of the read models with the reporting user's
    credentials: all of it without one refusal from the server, and no password in any log."""
    tag = new_tag()
    with secured_nats(tmp_path / "nats", tag) as secured, running(System(
            secured.url(natsauth.OPERATOR), backend, tmp_path / "system", tag=tag,
            traces=False, service_nats_urls={s: secured.url(s) for s in natsauth.SERVICES},
    )) as system:
        names = system.names
        org, base = await system.org_and_base()
        async with system.client(base_url=system.url("events"), timeout=30) as http:
            big = jpeg_of_size(9 * 1024 * 1024)
            r = await http.post("/v1/photos", files={"file": ("合影.jpg", big, "image/jpeg")})
            assert r.status_code == 201, r.text
            back = await http.get(f"/v1/photos/{r.json()['ref']}")
            assert back.status_code == 200 and back.content == big

        offer = envelope(activity(org["id"], base["id"], served=1000))
        bad = envelope(activity(org["id"], base["id"], served=-1))
        async with connected(secured, natsauth.PUBLISHER) as publisher:
            js = publisher.nc.jetstream()
            for env in (offer, bad):
                await js.publish(names.ingest("activity.logged"), raw(env), timeout=5,
                                 headers={MSG_ID: env["event_id"]})
        await system.wait_for_seq(1)
        assert await system.events_published({offer["event_id"]}) == {offer["event_id"]: 1}
        seq = await system.events_last_seq()
        totals = (await system.summary(organization_id=org["id"], min_seq=seq))["totals"]
        assert (totals["activities"], totals["served"]) == (1, 1000)
        await until(lambda: stream_messages(secured, names.dlq_stream), 1)
        await until(lambda: stream_messages(secured, names.notify_stream), 1)  # the milestone

        # A logout on the registry (its user writes the ended session in the shared bucket) is
        # refused by the other services (theirs follow it).
        account = await new_account(system, "reader", org["id"], "pw-对的密码-kept")
        session = await logged_in(system, account["username"], "pw-对的密码-kept")
        assert (await session_whoami(system, "reporting", session))["id"] == account["id"]
        async with with_session(session) as browser:
            assert (await browser.post(f"{system.url('registry')}/logout")).status_code == 303
        await refused_everywhere(system, session, "after its logout")

        env = {**os.environ, **system.env("reporting"), "COLUMNS": "200"}
        check = await asyncio.to_thread(
            subprocess.run, [sys.executable, "-m", "tongxin.cli", "reporting", "rebuild",
                             "--check"], env=env, capture_output=True, text=True, timeout=300)
        assert check.returncode == 0, check.stdout + check.stderr

        assert secured.violations() == []
        logs = "".join(system.sup.log_path(s).read_text(errors="replace")
                       for s in natsauth.SERVICES) + check.stdout + check.stderr
        assert not [u for u, pw in secured.passwords.items() if pw in logs]  # never logged
        # Writes were counted in the shared bucket, with the services' own users.
        assert "rate limits counted in this process only" not in logs


async def stream_messages(secured: Secured, stream: str) -> int:
    async with connected(secured, natsauth.OPERATOR) as op:
        return (await op.nc.jetstream().stream_info(stream)).state.messages


async def until(count, wanted: int, timeout: float = 20) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while (got := await count()) < wanted:
        assert asyncio.get_running_loop().time() < deadline, f"{got} messages, not {wanted}"
        await asyncio.sleep(0.2)
