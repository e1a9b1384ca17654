"""The first admin of a data directory, made by `tongxin up`: an API key and an account to log
in with, kept in `<data_dir>/credentials.json` (readable by its owner only) so every start can
print them. They are a demo's convenience: in production, make keys with `tongxin keys create`
and revoke this one (`tongxin keys revoke <id>`)."""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import httpx

from shared.settings import Settings
from tongxin.keys import create_key, key_id_of_key

FILE = "credentials.json"


@dataclass
class Credentials:
    key: str
    username: str
    password: str


def ensure(data_dir: Path, settings: Settings, urls: dict[str, str]) -> Credentials:
    path = data_dir / FILE
    if path.exists():
        return Credentials(**json.loads(path.read_text()))
    key = asyncio.run(create_key(settings.database_url("registry"), settings.db_schema,
                                 role="admin", organization_id=None, name="demo admin (tongxin up)",
                                 namespace=settings.namespace))
    _wait_accepted(key, urls)
    username, password = "admin", secrets.token_urlsafe(9)
    r = httpx.post(f"{urls['registry']}/v1/accounts", timeout=30,
                   headers={"Authorization": f"Bearer {key}"},
                   json={"username": username, "password": password, "role": "admin",
                         "name": "演示管理员 demo admin"})
    if r.status_code == 409:  # an account named admin from before: a name of its own
        username = f"admin-{key_id_of_key(key)[:6]}"
        r = httpx.post(f"{urls['registry']}/v1/accounts", timeout=30,
                       headers={"Authorization": f"Bearer {key}"},
                       json={"username": username, "password": password, "role": "admin",
                             "name": "演示管理员 demo admin"})
    r.raise_for_status()
    creds = Credentials(key, username, password)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        json.dump(asdict(creds), f)
    return creds


def _wait_accepted(key: str, urls: dict[str, str], timeout: float = 60.0) -> None:
    """Until every service knows the key (the registry publishes it from its outbox)."""
    deadline = time.monotonic() + timeout
    for url in urls.values():
        while httpx.get(f"{url}/v1/whoami", headers={"Authorization": f"Bearer {key}"},
                        timeout=10).status_code != 200:
            if time.monotonic() > deadline:
                raise RuntimeError(f"{url} did not accept the new admin key in {timeout:.0f}s")
            time.sleep(0.2)
