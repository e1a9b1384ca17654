"""The supervisor's back-off on a real service that cannot start: restarted after 1 s, 2 s,
4 s …, each crash said with its exit code and log; once stopped, never started again."""

from __future__ import annotations

import time

from tongxin.natsserver import free_port
from tongxin.supervisor import Supervisor


def test_a_crash_loop_is_restarted_with_growing_back_off(tmp_path):
    # A database URL no driver takes: the registry exits at once, every time.
    sup = Supervisor(env={"TONGXIN_REGISTRY_DATABASE_URL": "nosuch://x",
                          "TONGXIN_DATA_DIR": str(tmp_path)},
                     ports={"registry": free_port()}, log_dir=tmp_path / "logs")
    sup.start("registry")
    crashes = []
    deadline = time.monotonic() + 40  # 3 crashes: ~3 starts of ~2 s, back-off 1 + 2 s
    try:
        while len(crashes) < 3 and time.monotonic() < deadline:
            crashes += sup.supervise()
            time.sleep(0.1)
    finally:
        sup.stop_all()
    assert [(c.attempt, c.delay, c.how) for c in crashes] == [
        (1, 1.0, "exit code 1"), (2, 2.0, "exit code 1"), (3, 4.0, "exit code 1")], crashes
    assert str(crashes[2]) == "registry stopped unexpectedly (exit code 1); restart 3 in 4s"
    assert "NoSuchModuleError" in crashes[2].tail()
    # Stopped on purpose, it stays stopped.
    time.sleep(0.5)
    assert sup.supervise() == []
    child = sup.children["registry"]
    assert child.proc is not None and child.proc.poll() is not None
