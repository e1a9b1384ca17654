"""`tongxin load`: send a history file (NDJSON, one envelope a line) to the events service's
`POST /v1/events/bulk`, streamed as a chunked upload: the file is read a chunk at a time and
never held in memory, whatever its size. No service code is imported here: the command talks
to the events service over HTTP only, as any other system would."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import BinaryIO

import httpx

from tongxin.keys import auth_headers

CHUNK = 256 * 1024  # bytes read and sent at a time
# Connecting is quick or fails; the upload goes at the pace the service takes it (it reads a
# batch, accepts it, reads on), and the answer comes when the last batch is stored.
TIMEOUT = httpx.Timeout(connect=10.0, read=600.0, write=600.0, pool=10.0)


class Unreachable(Exception):
    """Nothing answers at the events service's address."""


class Failed(Exception):
    """The service answered with an error, or the connection broke during the load. What it
    accepted before stays accepted; sending the file again is safe (idempotent)."""


def default_url() -> str:
    from shared.settings import Settings

    return Settings().local_url("events")


def chunks(stream: BinaryIO, sent: Callable[[int], None] = lambda n: None,
           finished: Callable[[], None] = lambda: None, size: int = CHUNK) -> Iterator[bytes]:
    """The stream's bytes, a chunk at a time, reporting each chunk as it goes out."""
    while chunk := stream.read(size):
        yield chunk
        sent(len(chunk))
    finished()


def send(stream: BinaryIO, url: str, sent: Callable[[int], None] = lambda n: None,
         finished: Callable[[], None] = lambda: None) -> dict:
    """Upload `stream` to `{url}/v1/events/bulk`; the service's answer
    `{"accepted", "duplicates", "refused", "lines", "errors", "errors_truncated"}`."""
    endpoint = f"{url.rstrip('/')}/v1/events/bulk"
    try:
        r = httpx.post(endpoint, content=chunks(stream, sent, finished), timeout=TIMEOUT,
                       headers={"content-type": "application/x-ndjson", **auth_headers()})
    except (httpx.ConnectError, httpx.ConnectTimeout) as exc:
        raise Unreachable(f"cannot reach the events service at {url} ({exc})") from None
    except httpx.TransportError as exc:
        raise Failed(f"the connection to {url} broke during the load ({type(exc).__name__}: "
                     f"{exc})") from None
    if r.status_code != 200:
        try:
            errors = r.json().get("errors") or []
            detail = "; ".join(f"{e.get('field') or ''} {e.get('message')}".strip()
                               for e in errors) or r.text
        except ValueError:
            detail = r.text
        raise Failed(f"the events service answered {r.status_code}: {detail[:500]}")
    return r.json()
