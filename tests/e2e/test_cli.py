"""`tongxin up` as a user runs it: the installed command, its own embedded nats-server, SQLite
files in a data directory of this test's own, and free ports. What the user sees is what it
prints; stopping it with Ctrl-C (SIGINT) must leave nothing running."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import sys
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import nats
import nats.errors
import pytest

from tests.factories import activity, envelope
from tests.factories import raw as as_bytes
from tongxin import demo
from tongxin.natsserver import free_port

pytestmark = pytest.mark.asyncio(loop_scope="session")

TONGXIN = str(Path(sys.executable).parent / "tongxin")
READY = "Ctrl-C stops everything."


def processes_of(data_dir: Path) -> list[tuple[int, str]]:
    """(pid, cmdline) of every live process started for `data_dir`: the services and
    nats-server inherit `TONGXIN_DATA_DIR=<data_dir>`, and nats-server's store is under it."""
    marker_env = f"TONGXIN_DATA_DIR={data_dir}".encode()
    marker_cmd = str(data_dir).encode()
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes()
            environ = (entry / "environ").read_bytes()
            state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:  # gone meanwhile, or not ours
            continue
        if state == "Z":
            continue
        if marker_env in environ.split(b"\0") or marker_cmd in cmdline:
            found.append((int(entry.name), cmdline.replace(b"\0", b" ").decode(errors="replace")))
    return found


@dataclass
class Up:
    """One `tongxin up` process and everything it printed."""

    data_dir: Path
    ports: dict[str, int] = field(
        default_factory=lambda: {s: free_port() for s in ("registry", "events", "reporting")})
    args: list[str] = field(default_factory=list)  # after `tongxin up`
    lines: list[str] = field(default_factory=list)
    proc: asyncio.subprocess.Process | None = None
    _reader: asyncio.Task | None = None
    _ready: asyncio.Event = field(default_factory=asyncio.Event)

    @property
    def output(self) -> str:
        return "\n".join(self.lines)

    def env(self) -> dict[str, str]:
        # Nothing of the test run's own configuration (TONGXIN_NATS_URL in particular) leaks in:
        # `tongxin up` must start its embedded nats-server.
        env = {k: v for k, v in os.environ.items() if not k.startswith("TONGXIN_")}
        env["TONGXIN_DATA_DIR"] = str(self.data_dir)
        for service, port in self.ports.items():
            env[f"TONGXIN_{service.upper()}_PORT"] = str(port)
        return env

    async def start(self, timeout: float = 60) -> Up:
        self.proc = await asyncio.create_subprocess_exec(
            TONGXIN, "up", *self.args, env=self.env(), cwd=self.data_dir.parent,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
        self._reader = asyncio.create_task(self._read())
        done, _ = await asyncio.wait([asyncio.create_task(self._ready.wait()), self._reader],
                                     timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
        assert self._ready.is_set(), f"`tongxin up` never said it was running:\n{self.output}"
        return self

    async def _read(self) -> None:
        async for raw in self.proc.stdout:
            line = raw.decode(errors="replace").rstrip("\n")
            self.lines.append(line)
            if READY in line:
                self._ready.set()

    def url(self, label: str) -> str:
        """A URL as printed, e.g. url("Dashboard")."""
        match = re.search(rf"^\s*{re.escape(label)}\s+(http://\S+)$", self.output, re.M)
        assert match, f"no {label!r} URL in the output:\n{self.output}"
        return match.group(1)

    def printed(self, name: str) -> str:
        """A `NAME=value` line as printed, e.g. printed("TONGXIN_PUBLISHER_URL")."""
        match = re.search(rf"^{re.escape(name)}=(\S+)$", self.output, re.M)
        assert match, f"no {name}= line in the output:\n{self.output}"
        return match.group(1)

    @property
    def token(self) -> str:
        """The admin key printed as `TONGXIN_TOKEN=<key>`, on a line of its own."""
        match = re.search(r"^TONGXIN_TOKEN=(\S+)$", self.output, re.M)
        assert match, f"no TONGXIN_TOKEN line in the output:\n{self.output}"
        return match.group(1)

    @property
    def login(self) -> tuple[str, str]:
        match = re.search(r"^Log in as (\S+) with password (\S+) ", self.output, re.M)
        assert match, f"no login in the output:\n{self.output}"
        return match.group(1), match.group(2)

    def client(self, **kwargs) -> httpx.AsyncClient:
        return httpx.AsyncClient(headers={"Authorization": f"Bearer {self.token}"}, **kwargs)

    async def wait_exit(self, timeout: float) -> int:
        try:
            rc = await asyncio.wait_for(self.proc.wait(), timeout)
        except TimeoutError:
            raise AssertionError(f"`tongxin up` still running after {timeout}s:\n"
                                 f"{self.output}") from None
        await self._reader
        return rc

    async def interrupt(self, timeout: float = 20) -> int:
        """Ctrl-C, as a terminal sends it."""
        self.proc.send_signal(signal.SIGINT)
        return await self.wait_exit(timeout)

    async def kill_leftovers(self) -> None:
        """Teardown only: never leave anything running, even when the test failed."""
        if self.proc and self.proc.returncode is None:
            self.proc.kill()
            await self.proc.wait()
        for pid, _ in processes_of(self.data_dir):
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass


@pytest.fixture
async def data_dir(tmp_path):
    """A data directory of this test's own; whatever ran for it is killed afterwards."""
    path = tmp_path / "data"
    ups: list[Up] = []
    yield path, ups
    for up in ups:
        await up.kill_leftovers()


async def summary(up: Up) -> dict:
    async with up.client(timeout=30) as http:
        r = await http.get(up.url("Summary (JSON)"))
    assert r.status_code == 200, r.text
    return r.json()


def append_line(path: Path, line: str) -> None:
    with open(path, "a", encoding="utf-8") as f:
        f.write(line + "\n")


def demo_totals() -> tuple[int, int]:
    """(activities, served) the demo logs, from its data (the five seed programmes)."""
    return demo.totals()


async def test_up_serves_the_demo_and_ctrl_c_stops_everything(data_dir):
    path, ups = data_dir
    up = Up(path)
    ups.append(up)
    await up.start()

    assert "Demo programme loaded" in up.output
    assert any(line.startswith("NATS with JetStream on nats://127.0.0.1:") for line in up.lines)
    reports = up.url("Dashboard")
    assert reports == f"http://127.0.0.1:{up.ports['reporting']}/"
    async with up.client(timeout=30) as http:
        page = await http.get(reports)
        assert page.status_code == 200 and "同心 · 数据看板" in page.text
        for label in ("Registry API docs", "Events API docs", "Reporting API docs",
                      "Forms (units)", "Events AsyncAPI"):
            assert (await http.get(up.url(label))).status_code == 200, label
    # A person: the page sends a browser without a session to the login, which the printed
    # username and password pass, and back to the page.
    async with httpx.AsyncClient(timeout=30) as browser:
        r = await browser.get(reports, headers={"Accept": "text/html"})
        assert r.status_code == 303 and r.headers["location"].startswith(up.url("Log in")), r
        username, password = up.login
        r = await browser.post(up.url("Log in"), data={
            "username": username, "password": password, "next": reports})
        assert r.status_code == 303 and r.headers["location"] == reports, r.text
        page = await browser.get(reports, headers={"Accept": "text/html"})
        assert page.status_code == 200 and "同心 · 数据看板" in page.text
    result = await summary(up)
    activities, served = demo_totals()
    assert result["totals"]["activities"] == activities
    assert result["totals"]["served"] == served
    assert result["as_of"] >= activities

    running = processes_of(path)
    assert sum("services." in cmd for _, cmd in running) == 3, running
    assert sum("nats-server" in cmd for _, cmd in running) == 1, running

    await offers_with_the_printed_publisher_url(up)

    assert await up.interrupt(timeout=20) == 0, up.output
    assert "stopping" in up.lines[-1]
    assert processes_of(path) == []


async def offers_with_the_printed_publisher_url(up: Up) -> None:
    """An outside system with the credentials `up` printed: its offer is accepted and counted;
    its forged publish on `tongxin.events` is refused by the server and counted nowhere."""
    url = up.printed("TONGXIN_PUBLISHER_URL")
    assert re.fullmatch(r"nats://publisher:[\w-]+@127\.0\.0\.1:\d+", url), url
    registry = up.url("Registry API docs").removesuffix("/docs")
    async with up.client(timeout=30) as http:
        org = (await http.get(f"{registry}/v1/organizations")).json()["items"][0]
        base = (await http.get(f"{registry}/v1/bases")).json()["items"][0]
    errors: list[str] = []

    async def on_error(exc: Exception) -> None:
        errors.append(str(exc).lower())

    # Its acks come to its own inbox (the shared `_INBOX.>` is refused), as docs/interface.md
    # tells outside systems.
    nc = await nats.connect(url, error_cb=on_error, inbox_prefix="_INBOX_publisher")
    try:
        js = nc.jetstream()
        forged = envelope(activity(org["id"], base["id"], served=100_000))
        with pytest.raises(nats.errors.TimeoutError):  # no stream acks what the server drops
            await js.publish("tongxin.events.activity.logged", as_bytes(forged), timeout=1)
        await nc.flush()
        assert 'permissions violation for publish to "tongxin.events.activity.logged"' in \
            " ".join(errors), errors
        offer = envelope(activity(org["id"], base["id"], served=5))
        ack = await js.publish("tongxin.ingest.activity.logged", as_bytes(offer), timeout=5,
                               headers={"Nats-Msg-Id": offer["event_id"]})
        assert ack.stream == "TONGXIN_INGEST"
    finally:
        await nc.close()
    activities, served = demo_totals()
    deadline = asyncio.get_running_loop().time() + 30
    while (totals := (await summary(up))["totals"])["activities"] == activities:
        assert asyncio.get_running_loop().time() < deadline, "the offer was never counted"
        await asyncio.sleep(0.2)
    # Had the forgery landed, it would stand before the offer in the stream: counted too.
    assert (totals["activities"], totals["served"]) == (activities + 1, served + 5)


async def test_a_service_that_dies_is_reported_and_restarted(data_dir):
    path, ups = data_dir
    up = Up(path)
    ups.append(up)
    await up.start()
    events = [pid for pid, cmd in processes_of(path) if "-m services.events" in cmd]
    assert len(events) == 1, processes_of(path)

    # The service's last words, as a log line may well put them: shown as written.
    last_words = "ERROR tongxin-events [/v1/events] [bold]KeyError[/bold]: 'data.base_id'"
    append_line(path / "logs" / "events.log", last_words)
    os.kill(events[0], signal.SIGKILL)

    said = (f"events stopped unexpectedly (killed by SIGKILL); restart 1 in 1s. "
            f"Last lines of {path / 'logs' / 'events.log'}:")
    health = f"http://127.0.0.1:{up.ports['events']}/health"
    deadline = asyncio.get_running_loop().time() + 60
    async with httpx.AsyncClient(timeout=2) as http:
        while asyncio.get_running_loop().time() < deadline:
            again = [pid for pid, cmd in processes_of(path) if "-m services.events" in cmd]
            try:
                healthy = (await http.get(health)).status_code == 200
            except httpx.HTTPError:
                healthy = False
            if healthy and again and again != events:
                break
            await asyncio.sleep(0.2)
        else:
            raise AssertionError(f"events was not restarted:\n{up.output}")
    assert up.proc.returncode is None, up.output  # `up` kept running
    assert said in up.lines, up.output
    assert last_words in up.lines, up.output
    # The restarted service takes events again, and the others never stopped.
    registry = up.url("Registry API docs").removesuffix("/docs")
    async with up.client(timeout=30) as http:
        org = (await http.get(f"{registry}/v1/organizations")).json()["items"][0]
        base = (await http.get(f"{registry}/v1/bases")).json()["items"][0]
        r = await http.post(f"http://127.0.0.1:{up.ports['events']}/v1/activities",
                            json=activity(org["id"], base["id"]))
        assert r.status_code == 202, r.text
        result = (await http.get(up.url("Summary (JSON)"),
                                 params={"min_seq": r.json()["seq"]})).json()
    assert result["totals"]["activities"] == demo_totals()[0] + 1

    assert await up.interrupt(timeout=20) == 0, up.output
    assert up.lines[-1] == "stopping…"
    assert processes_of(path) == []


async def test_starting_again_on_the_same_data_dir_keeps_the_data_and_loads_no_demo(data_dir):
    path, ups = data_dir
    first = Up(path)
    ups.append(first)
    await first.start()
    assert "Demo programme loaded" in first.output
    before = await summary(first)
    assert await first.interrupt() == 0, first.output

    again = Up(path)  # new ports, same data
    ups.append(again)
    await again.start()
    assert "Demo programme loaded" not in again.output
    assert again.token == first.token and again.login == first.login  # printed again
    # NATS on the port it had: the publisher URL printed the first time still works.
    assert again.printed("TONGXIN_PUBLISHER_URL") == first.printed("TONGXIN_PUBLISHER_URL")
    nc = await nats.connect(first.printed("TONGXIN_PUBLISHER_URL"))
    await nc.close()
    after = await summary(again)
    activities, served = demo_totals()
    assert after["totals"] == before["totals"]
    assert (after["totals"]["activities"], after["totals"]["served"]) == (activities, served)
    assert after["rows"] == before["rows"]
    # (`as_of` may move on: the reports of Shangyu's turns posted live fall overdue, one
    # report.overdue each.)
    assert await again.interrupt() == 0, again.output
    assert processes_of(path) == []
