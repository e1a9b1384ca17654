"""Start the three services as child processes, wait for health, stop them cleanly."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

import httpx

SERVICES = ("registry", "events", "reporting")


def die_with_parent() -> None:
    """Run in the child before exec: Linux kills it if the supervisor dies, so no orphans."""
    try:
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except OSError:
        pass


@dataclass
class Child:
    name: str
    port: int
    proc: subprocess.Popen | None = None
    log: IO[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


@dataclass
class Supervisor:
    env: dict[str, str]
    ports: dict[str, int]
    log_dir: Path | None = None
    children: dict[str, Child] = field(default_factory=dict)

    def start(self, name: str, extra_env: dict[str, str] | None = None) -> Child:
        child = self.children.get(name) or Child(name, self.ports[name])
        env = {**os.environ, **self.env, **(extra_env or {}),
               f"TONGXIN_{name.upper()}_PORT": str(child.port)}
        out = None
        if self.log_dir:
            self.log_dir.mkdir(parents=True, exist_ok=True)
            out = child.log = open(self.log_dir / f"{name}.log", "ab")  # noqa: SIM115
        child.proc = subprocess.Popen([sys.executable, "-m", f"services.{name}"], env=env,
                                      stdout=out, stderr=subprocess.STDOUT if out else None,
                                      start_new_session=True, preexec_fn=die_with_parent)
        self.children[name] = child
        return child

    def wait_healthy(self, names=SERVICES, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        pending = set(names)
        while pending:
            for name in list(pending):
                child = self.children[name]
                assert child.proc is not None  # start() sets proc before adding the child
                if child.proc.poll() is not None:
                    raise RuntimeError(f"{name} exited with code {child.proc.returncode} "
                                       f"while starting{self._log_hint(name)}")
                try:
                    if httpx.get(f"{child.url}/health", timeout=1).status_code == 200:
                        pending.discard(name)
                except httpx.HTTPError:
                    pass
            if pending and time.monotonic() > deadline:
                raise RuntimeError(f"not healthy after {timeout:.0f}s: {', '.join(pending)}")
            if pending:
                time.sleep(0.1)

    def _log_hint(self, name: str) -> str:
        return f" (see {self.log_dir / (name + '.log')})" if self.log_dir else ""

    def crashed(self) -> list[tuple[str, int]]:
        return [(c.name, c.proc.returncode) for c in self.children.values()
                if c.proc is not None and c.proc.poll() is not None]

    def stop(self, name: str, timeout: float = 15.0) -> None:
        child = self.children.get(name)
        if child and child.log:
            child.log.close()  # the child keeps its own descriptor
            child.log = None
        if not child or not child.proc or child.proc.poll() is not None:
            return
        child.proc.send_signal(signal.SIGTERM)  # uvicorn shuts the lifespan down on SIGTERM
        try:
            child.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            os.killpg(child.proc.pid, signal.SIGKILL)
            child.proc.wait()

    def kill(self, name: str) -> None:
        child = self.children[name]
        if child.proc and child.proc.poll() is None:
            os.killpg(child.proc.pid, signal.SIGKILL)
            child.proc.wait()

    def stop_all(self) -> None:
        for name in reversed(list(self.children)):
            self.stop(name)
