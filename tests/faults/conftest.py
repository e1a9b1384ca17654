"""Parts of the fault suite's own, so it can break them: a nats-server (stopped and started
again on the same port and store) and a PostgreSQL cluster (stopped for seconds), with the
three services on them under a supervisor that restarts what crashes."""

from __future__ import annotations

import asyncio
import glob
import os
import pwd
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest
import pytest_asyncio

from tests.harness import Backend, System, create_pg_database
from tongxin.natsserver import NatsServer, free_port
from tongxin.supervisor import Restart


def pg_bin() -> Path | None:
    """The newest PostgreSQL server binaries on the machine, if any."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"),
                   key=lambda p: int(Path(p).parts[-3]))
    if found:
        return Path(found[-1]).parent
    initdb = shutil.which("initdb")
    return Path(initdb).parent if initdb else None


class PgCluster:
    """`initdb` and `pg_ctl` on a free port of 127.0.0.1, trust auth, in a temp folder; as the
    `postgres` user when we are root (initdb refuses root)."""

    def __init__(self, bin_dir: Path):
        self.bin = bin_dir
        self.port = free_port()
        self.user = "postgres" if os.geteuid() == 0 else None
        self.root = Path(tempfile.mkdtemp(prefix="tongxin-faults-pg-"))
        if self.user:
            pw = pwd.getpwnam(self.user)
            os.chown(self.root, pw.pw_uid, pw.pw_gid)
        self.data = self.root / "data"

    @property
    def admin_url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def _run(self, tool: str, *args: str) -> None:
        cmd = [str(self.bin / tool), *args]
        if self.user:
            cmd = ["runuser", "-u", self.user, "--", *cmd]
        subprocess.run(cmd, check=True, capture_output=True, timeout=120)

    def init(self) -> PgCluster:
        self._run("initdb", "-D", str(self.data), "-U", "postgres", "--auth=trust",
                  "-E", "UTF8", "--no-sync")
        return self.start()

    def start(self) -> PgCluster:
        # fsync off: a clean stop loses nothing, and CI's disk is spared; -k: its own socket.
        self._run("pg_ctl", "-D", str(self.data), "-l", str(self.root / "log"), "-w",
                  "-o", f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 "
                        "-c fsync=off -c max_connections=200", "start")
        return self

    def stop(self) -> None:
        self._run("pg_ctl", "-D", str(self.data), "-m", "fast", "-w", "stop")

    def remove(self) -> None:
        try:
            self.stop()
        except subprocess.CalledProcessError:
            pass  # not running
        shutil.rmtree(self.root, ignore_errors=True)


@pytest.fixture(scope="module")
def pg_cluster():
    """None without PostgreSQL binaries: the services run on SQLite and only the test that
    stops the database skips."""
    bin_dir = pg_bin()
    if bin_dir is None:
        yield None
        return
    cluster = PgCluster(bin_dir).init()
    yield cluster
    cluster.remove()


@pytest.fixture(scope="module")
def own_nats(tmp_path_factory):
    """Never the machine's shared server: this one is stopped under load."""
    tmp = tmp_path_factory.mktemp("faults-nats")
    server = NatsServer(tmp / "store", log_file=tmp / "nats.log").start()
    yield server
    server.stop()


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def faulty(pg_cluster, own_nats, tmp_path_factory):
    """The three services on the suite's own NATS and PostgreSQL, restarted when they crash
    (as `tongxin up` does); yields the system and the crashes the supervisor reported."""
    root = tmp_path_factory.mktemp("faults-db")
    backend = Backend("postgres", root, await create_pg_database(pg_cluster.admin_url)) \
        if pg_cluster else Backend("sqlite", root)
    # The load gives each activity a month of its own, from 2027 on (a row per event in
    # `group_by=month`): dated ahead of the clock by design, so the grace is made wide here.
    system = System(own_nats.url, backend, tmp_path_factory.mktemp("faults-system"),
                    traces=False, settings={"TONGXIN_FUTURE_GRACE_HOURS": "1000000"})
    crashes: list[Restart] = []
    try:
        system.start()
    except Exception:
        system.stop()
        raise
    assert system.sup is not None  # started

    async def supervise() -> None:
        while True:
            for crash in system.sup.supervise():
                print(f"supervisor: {crash}")
                crashes.append(crash)
            await asyncio.sleep(0.2)

    task = asyncio.create_task(supervise())
    yield system, crashes
    task.cancel()
    system.stop()

