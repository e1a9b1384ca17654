"""Start the three services as child processes, wait for health, stop them cleanly; polled,
`supervise()` starts a crashed one again with back-off.

A child is named for its service ("events"), or for an instance of it ("events-2": the second
events instance of `tongxin up --replicas 2`), each on its own port."""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

import httpx

log = logging.getLogger(__name__)

SERVICES = ("registry", "events", "reporting")
FIRST_DELAY, MAX_DELAY = 1.0, 30.0  # seconds before restart 1, 2, 3 …: 1, 2, 4 … up to 30
STEADY = 60.0  # up this long, a crash is a new one: the back-off starts again from 1 s


def die_with_parent() -> None:
    """Run in the child before exec: Linux kills it if the supervisor dies, so no orphans."""
    try:
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except OSError:
        pass


def service_of(name: str) -> str:
    """The service a child runs: "events" for "events" and for "events-2"."""
    service, _, instance = name.rpartition("-")
    return service if service and instance.isdigit() else name


@dataclass
class Child:
    name: str
    port: int
    proc: subprocess.Popen | None = None
    log: IO[bytes] | None = None
    extra_env: dict[str, str] | None = None  # what it was started with, again on a restart
    stopping: bool = False     # stop() asked for it: its exit is no crash
    started_at: float = 0.0    # time.monotonic() of the last start
    attempts: int = 0          # restarts since it last stayed up STEADY seconds
    restart_at: float | None = None  # when the pending restart is due

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
        child.extra_env = extra_env
        child.stopping, child.restart_at, child.started_at = False, None, time.monotonic()
        if child.log:
            child.log.close()  # a restart opens it again
        service = service_of(name)
        env = {**os.environ, **self.env, **(extra_env or {}),
               f"TONGXIN_{service.upper()}_PORT": str(child.port)}
        out = None
        if self.log_dir:
            self.log_dir.mkdir(parents=True, exist_ok=True)
            out = child.log = open(self.log_dir / f"{name}.log", "ab")  # noqa: SIM115
        child.proc = subprocess.Popen([sys.executable, "-m", f"services.{service}"], env=env,
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

    def log_path(self, name: str) -> Path | None:
        return self.log_dir / f"{name}.log" if self.log_dir else None

    def supervise(self) -> list[Restart]:
        """Call every second or so: a child that exited unasked is started again after a
        back-off (1 s, 2 s, 4 s … 30 s), so a crash loop does not spin. Returns the crashes
        seen in this call, each to be said; they are logged too."""
        seen = []
        now = time.monotonic()
        for child in self.children.values():
            if child.stopping or child.proc is None or child.proc.poll() is None:
                continue
            if child.restart_at is None:
                if now - child.started_at >= STEADY:
                    child.attempts = 0
                child.attempts += 1
                delay = min(FIRST_DELAY * 2 ** (child.attempts - 1), MAX_DELAY)
                child.restart_at = now + delay
                crash = Restart(child.name, child.proc.returncode, child.attempts, delay,
                                self.log_path(child.name))
                log.warning("%s. Last lines of its log:\n%s", crash, crash.tail())
                seen.append(crash)
            elif now >= child.restart_at:
                self.start(child.name, child.extra_env)
        return seen

    def stop(self, name: str, timeout: float = 15.0) -> None:
        child = self.children.get(name)
        if child:
            child.stopping = True  # before the signal: its exit is asked for, not a crash
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


@dataclass(frozen=True)
class Restart:
    """A child that exited unasked, and when it will be started again."""

    name: str
    returncode: int
    attempt: int
    delay: float
    log_path: Path | None

    @property
    def how(self) -> str:
        if self.returncode < 0:
            try:
                return f"killed by {signal.Signals(-self.returncode).name}"
            except ValueError:
                return f"killed by signal {-self.returncode}"
        return f"exit code {self.returncode}"

    def __str__(self) -> str:
        return (f"{self.name} stopped unexpectedly ({self.how}); restart {self.attempt} "
                f"in {self.delay:.0f}s")

    def tail(self, lines: int = 20) -> str:
        """The last lines of its log: what it said before it died."""
        if self.log_path is None:
            return "(no log)"
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"
