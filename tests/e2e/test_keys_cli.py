"""`tongxin keys` as an operator runs it, on a registry database of the test's own: the list
shows every id whole, at 80 columns too, and `tongxin keys revoke` takes the id as shown."""

from __future__ import annotations

import asyncio
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from rich.cells import cell_len

from services.registry.domain import ENTITIES
from services.registry.service import Registry
from shared.db import make_engine, migrate
from shared.subjects import Names

TONGXIN = str(Path(sys.executable).parent / "tongxin")


def tongxin(env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([TONGXIN, *args], capture_output=True, text=True, timeout=120,
                          env=env)


async def an_organisation(url: str) -> str:
    await migrate("registry", url, None)
    engine = make_engine(url, None)
    try:
        org = await Registry(engine, Names("")).register(
            ENTITIES["organizations"], {"name": "淄博市委统战部", "kind": "party_organization"})
    finally:
        await engine.dispose()
    return org["id"]


@pytest.mark.asyncio(loop_scope="session")
async def test_keys_list_shows_the_whole_id_revoke_needs_at_80_columns(tmp_path):
    url = f"sqlite+aiosqlite:///{tmp_path / 'registry.db'}"
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("TONGXIN_")},
           "TONGXIN_REGISTRY_DATABASE_URL": url, "TONGXIN_DATA_DIR": str(tmp_path),
           "COLUMNS": "80"}
    org = await an_organisation(url)
    made = [tongxin(env, "keys", "create", "--role", "admin", "--name", "运维管理员"),
            tongxin(env, "keys", "create", "--role", "unit", "--organization", org, "--name",
                    "淄博市委统战部小程序 (the mini-programme of the united front department)")]
    assert all(r.returncode == 0 for r in made), [r.stdout + r.stderr for r in made]
    ids = [re.search(r"^txk_([0-9a-f]+)_", r.stdout, re.M).group(1) for r in made]

    listed = await asyncio.to_thread(tongxin, env, "keys", "list")
    assert listed.returncode == 0, listed.stdout + listed.stderr
    lines = listed.stdout.splitlines()
    assert all(cell_len(line) <= 80 for line in lines), listed.stdout  # 中文: two cells
    assert "…" not in listed.stdout, listed.stdout
    shown = [line.split()[0] for line in lines if line.split() and line.split()[0] in ids]
    assert shown == ids, listed.stdout  # each whole, at the start of its row

    revoked = await asyncio.to_thread(tongxin, env, "keys", "revoke", shown[1])
    assert revoked.returncode == 0, revoked.stdout + revoked.stderr
    after = await asyncio.to_thread(tongxin, env, "keys", "list")
    row = next(line for line in after.stdout.splitlines() if line.startswith(shown[1]))
    assert re.search(r"\d{4}-\d\d-\d\d\s+\d{4}-\d\d-\d\d\s*$", row), after.stdout  # revoked on
