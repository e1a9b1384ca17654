"""NATS users and who may publish where (CONTRACT.md "Subjects and streams"), written as a
nats-server `authorization` block, and URLs that carry a user's password.

Users: the three services, each publishing only on the subjects it owns; `publisher`, an outside
system, which may only offer events (`tongxin.ingest.>`) and read its JetStream acks; and
`operator`, with every right, for the CLI tools and tests (and the only one that declares
streams: `tongxin bus streams`). Each user reads replies on its own inbox prefix only
(`_INBOX_<user>.>`, `shared.bus.inbox_prefix`): no user sees another's acks or deliveries. The
publisher also keeps the clients' default `_INBOX.>`, which no other user may read, so outside
systems written for v1 get their acks unchanged.
Passwords are random, made once and kept in a file only its owner reads (the clients need them);
the server's configuration holds only their bcrypt hashes, and is written again on every start,
so a change of permissions here takes effect without new passwords.

Permissions are for one namespace (`shared.subjects.Names`): subjects and stream names carry it,
so a system under namespace `t1` grants `t1.tongxin.events.>` and nothing outside `t1`.
"""

from __future__ import annotations

import json
import os
import secrets
from pathlib import Path
from urllib.parse import quote, urlsplit, urlunsplit

import bcrypt

from shared.bus import inbox_of
from shared.streams import bucket_configs, stream_configs
from shared.subjects import Names
from tongxin.supervisor import SERVICES

PUBLISHER = "publisher"
OPERATOR = "operator"
USERS = (*SERVICES, PUBLISHER, OPERATOR)

# Services read through consumers they make, and look streams up (STREAM.INFO, direct gets of
# the key-value buckets), so each keeps the JetStream API, less what none of them may do:
# streams are the operator's (`tongxin bus streams`).
JS_API = "$JS.API.>"
OPERATORS_ONLY = ["$JS.API.STREAM.CREATE.>", "$JS.API.STREAM.UPDATE.>",
                  "$JS.API.STREAM.DELETE.>", "$JS.API.STREAM.MSG.DELETE.>",
                  "$JS.API.STREAM.RESTORE.>", "$JS.API.STREAM.PEER.REMOVE.>",
                  "$JS.API.STREAM.LEADER.STEPDOWN.>", "$JS.API.META.>", "$JS.API.SERVER.>"]
SHARED_INBOX = "_INBOX.>"  # every NATS client's default reply prefix
# bcrypt's cost, as nats-server's own `mkpasswd` makes them: each connect checks it once.
BCRYPT_COST = 11


def inbox(user: str) -> str:
    """The subjects `user`'s replies come to (`shared.bus.inbox_prefix` of its URL)."""
    return f"{inbox_of(user)}.>"


def permissions(names: Names) -> dict[str, dict]:
    """Each user's `permissions` map for nats-server (allow lists; a deny overrides an allow)."""
    photos = f"OBJ_{names.photos_bucket}"
    streams = [*(c.name for c in stream_configs(names)), photos]

    ratelimit, sessions = (f"$KV.{c.bucket}.>" for c in bucket_configs(names))
    streams += [f"KV_{c.bucket}" for c in bucket_configs(names)]

    def service(user: str, owns: list[str], purges: str | None = None) -> dict:
        # No service creates, changes or deletes a stream, deletes a message, or purges one:
        # that is the operator's. Each counts its writes per key in the shared bucket.
        deny = [*OPERATORS_ONLY, *(f"$JS.API.STREAM.PURGE.{s}" for s in streams if s != purges)]
        # $JS.FC: flow control of ordered consumers (the sessions bucket's watch; a photo
        # read back).
        return {"publish": {"allow": [*owns, ratelimit, "$JS.FC.>", JS_API], "deny": deny},
                "subscribe": {"allow": [inbox(user)]}}

    return {
        # The registry ends sessions (a logout, a deactivated account) for every service.
        "registry": service("registry", [names.registry(">"), sessions]),
        "events": service("events", [
            names.events(), names.dlq(),
            f"$O.{names.photos_bucket}.>",  # the photo bucket's chunks and metadata
            "$JS.ACK.>",  # acks and naks of offers (its ingest consumer is the only one acked)
        ], purges=photos),  # the object store purges an object's old chunks when replacing it
        "reporting": service("reporting", [names.notify()]),
        # An outside system written for v1 connects with the client's default inbox, `_INBOX.>`:
        # it keeps it. No other user has it (each service has its own), so all that comes there
        # is the publishers' own acks; `_INBOX_publisher` is theirs too, and the one we document.
        PUBLISHER: {"publish": {"allow": [names.ingest()]},
                    "subscribe": {"allow": [inbox(PUBLISHER), SHARED_INBOX]}},
        OPERATOR: {"publish": {"allow": [">"]}, "subscribe": {"allow": [">"]}},
    }


def hashed(password: str) -> str:
    """`password` as nats-server checks it: bcrypt, in the `$2a$` form it recognises."""
    made = bcrypt.hashpw(password.encode(), bcrypt.gensalt(BCRYPT_COST)).decode()
    return "$2a$" + made[4:]  # `$2b$` is the same hash; nats-server looks for `$2a$`


def authorization(passwords: dict[str, str], names: Names) -> str:
    """The `authorization { users = [...] }` block for `names`'s namespace (bcrypt hashes
    of the passwords, never the passwords)."""
    granted = permissions(names)
    users = ",\n".join(
        json.dumps({"user": user, "password": hashed(passwords[user]),
                    "permissions": granted[user]}, indent=2)
        for user in USERS).replace("\n", "\n    ")
    where = f" (namespace {names.namespace})" if names.namespace else ""
    return (f"# Tongxin's NATS users and what each may publish{where}: written by tongxin "
            "(tongxin/natsauth.py); edits here are overwritten.\n"
            f"authorization {{\n  users = [\n    {users}\n  ]\n}}\n")


def passwords(path: Path) -> dict[str, str]:
    """Each user's password, kept in `path` (JSON, mode 0600): made the first time, the same
    after; a user added to `USERS` since gets one of its own."""
    kept: dict[str, str] = json.loads(path.read_text()) if path.exists() else {}
    missing = [u for u in USERS if not kept.get(u)]
    if missing:
        kept.update({u: secrets.token_urlsafe(24) for u in missing})
        write_private(path, json.dumps(kept, indent=2) + "\n")
    return kept


def write_config(path: Path, passwords: dict[str, str], names: Names) -> Path:
    """The authorization block as a config file of its own (`nats-server -c`, or `include`)."""
    write_private(path, authorization(passwords, names))
    return path


def write_private(path: Path, text: str) -> None:
    """Write `text` readable by its owner only (it holds passwords), created so from the start."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.unlink(missing_ok=True)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(text)
    os.replace(tmp, path)


def url_for(server_url: str, user: str, passwords: dict[str, str]) -> str:
    """`server_url` (one server, or a cluster: "nats://a:4222,nats://b:4222") with `user`'s
    credentials on each server."""
    secret = f"{quote(user, safe='')}:{quote(passwords[user], safe='')}"
    parts = []
    for one in (u.strip() for u in server_url.split(",") if u.strip()):
        split = urlsplit(one)
        host = split.netloc.rpartition("@")[2]  # credentials already there are replaced
        parts.append(urlunsplit(split._replace(netloc=f"{secret}@{host}")))
    return ",".join(parts)
