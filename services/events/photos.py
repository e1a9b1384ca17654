"""Report photos (服务旗帜接传): a unit's summary after service cites photos stored here.

Photos live in a NATS object store bucket (`Names.photos_bucket`, stream `OBJ_<bucket>`), named
by the SHA-256 of their bytes: the same photo uploaded twice is one object, an upload retried is
harmless, and a ref never changes meaning, so clients may cache it for good. The type is read
from the bytes (magic numbers), never from the file name a phone or browser made up.
"""

from __future__ import annotations

import asyncio
import hashlib
import re
import weakref
from collections.abc import Iterable
from typing import Annotated, Any

from fastapi import APIRouter, Path, Request
from fastapi.responses import JSONResponse, Response
from nats.js import JetStreamContext
from nats.js.api import ObjectMeta
from nats.js.errors import NotFoundError
from nats.js.object_store import ObjectStore
from pydantic import BaseModel
from python_multipart.exceptions import FormParserError
from python_multipart.multipart import MultipartParser, parse_options_header

from shared.auth import SENDERS, allow
from shared.errors import FieldError, Rejected
from shared.http import Errors, refusal
from shared.settings import Settings
from shared.subjects import Names

ACCEPTED = {"image/jpeg": "JPEG", "image/png": "PNG", "image/webp": "WebP"}
REF_PATTERN = "^[0-9a-f]{64}$"
_REF = re.compile(REF_PATTERN)
FIELD = "file"
# Multipart framing (boundaries, part headers) on top of the file itself; a request whose
# Content-Length exceeds limit + this cannot hold an acceptable photo.
MULTIPART_SLACK = 64 * 1024
# Bounded, so a lost chunk (nats-py's reader waits on its consumer forever) cannot hang a request.
READ_TIMEOUT = 30.0
EXISTS_CONCURRENCY = 16


def sniff(data: bytes) -> str | None:
    """The content type the bytes themselves declare (magic numbers), or None."""
    if data.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    if len(data) >= 12 and data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    return None


def _size_text(n: int) -> str:
    mib = 1024 * 1024
    return f"{n // mib} MB" if n % mib == 0 else f"{n} bytes"


class TooLarge(Rejected):
    """A photo over the size limit: HTTP 413 (a Rejected, so anything else still answers it in
    the one error shape)."""

    def __init__(self, limit: int):
        self.limit = limit
        super().__init__([FieldError(
            field=FIELD, message=f"larger than {_size_text(limit)}: a photo may be at most "
                                 f"{limit} bytes; send a smaller or more compressed one")])


def _rejected(message: str) -> Rejected:
    return Rejected([FieldError(field=FIELD, message=message)])


def _content_type(headers: dict | None) -> str | None:
    # Go clients (and the nats CLI) keep headers as {name: [values]}; accept a bare string too.
    value = (headers or {}).get("Content-Type")
    if isinstance(value, list):
        value = value[0] if value else None
    return value


class Photos:
    """The photo bucket: put (validated, content-addressed), get, and which refs exist."""

    def __init__(self, js: JetStreamContext, names: Names, settings: Settings):
        self.js = js
        self.bucket = names.photos_bucket
        self.settings = settings
        self.max_bytes = settings.photo_max_bytes
        self._store: ObjectStore | None = None
        # One upload of the same bytes at a time in this process: two racing puts would each
        # write the chunks, and one copy would be left behind unreferenced.
        self._locks: weakref.WeakValueDictionary[str, asyncio.Lock] = (
            weakref.WeakValueDictionary())

    async def ensure(self) -> None:
        """Bind to the bucket (declared by the operator's `tongxin bus streams`, with the
        streams: the service may not create it)."""
        self._store = await self.js.object_store(self.bucket)

    async def _bucket(self) -> ObjectStore:
        if self._store is None:
            await self.ensure()
        assert self._store is not None  # ensure() binds it or raises
        return self._store

    def check(self, data: bytes) -> str:
        """The photo's content type, or why it is refused."""
        if not data:
            raise _rejected("empty file: send the photo's bytes")
        if len(data) > self.max_bytes:
            raise TooLarge(self.max_bytes)
        content_type = sniff(data)
        if content_type is None:
            raise _rejected(f"not a {', '.join(ACCEPTED.values())} image: the file's bytes "
                            "were checked, not its name")
        return content_type

    async def put(self, data: bytes) -> dict:
        """Store a photo once; returns {"ref", "content_type", "size"} (the same for a repeat)."""
        content_type = self.check(data)
        ref = hashlib.sha256(data).hexdigest()
        store = await self._bucket()
        lock = self._locks.setdefault(ref, asyncio.Lock())
        async with lock:
            if await self._info(store, ref) is None:
                await store.put(ref, data, meta=ObjectMeta(
                    name=ref, headers={"Content-Type": [content_type]}))
        return {"ref": ref, "content_type": content_type, "size": len(data)}

    async def get(self, ref: str) -> tuple[bytes, str] | None:
        """The photo's bytes and content type, or None if there is no such photo."""
        if not _REF.match(ref):
            return None
        store = await self._bucket()
        try:
            result = await asyncio.wait_for(store.get(ref), READ_TIMEOUT)
        except NotFoundError:
            return None
        data = result.data or b""
        return data, _content_type(result.info.headers) or sniff(data) or "application/octet-stream"

    async def existing(self, refs: Iterable[str]) -> set[str]:
        """Which of `refs` name a stored photo (a metadata look-up each, never the bytes)."""
        wanted = {r for r in refs if isinstance(r, str) and _REF.match(r)}
        if not wanted:
            return set()
        store = await self._bucket()
        gate = asyncio.Semaphore(EXISTS_CONCURRENCY)

        async def look(ref: str) -> str | None:
            async with gate:
                return ref if await self._info(store, ref) is not None else None

        return {r for r in await asyncio.gather(*map(look, wanted)) if r}

    @staticmethod
    async def _info(store: ObjectStore, ref: str):
        try:
            return await store.get_info(ref)  # a deleted object counts as missing
        except NotFoundError:
            return None


# -- HTTP ------------------------------------------------------------------------------------

router = APIRouter(tags=["photos"])


class PhotoStored(BaseModel):
    ref: str
    content_type: str
    size: int


_UPLOAD_BODY = {"requestBody": {"required": True, "content": {"multipart/form-data": {"schema": {
    "type": "object", "required": [FIELD],
    "properties": {FIELD: {"type": "string", "contentMediaType": "application/octet-stream",
                           "description": "the photo: JPEG, PNG or WebP, at most 10 MB"}}}}}}}


async def read_file_field(request: Request, limit: int) -> bytes:
    """The multipart field `file`, read as it streams in: never more than limit + 1 bytes of it
    in memory, nothing spooled to disk, and no more of the body read once it is too large."""
    try:
        declared = int(request.headers.get("content-length", ""))
    except ValueError:
        declared = None
    if declared is not None and declared > limit + MULTIPART_SLACK:
        raise TooLarge(limit)  # refused before reading any of it
    kind, params = parse_options_header(request.headers.get("content-type"))
    if kind != b"multipart/form-data" or b"boundary" not in params:
        raise _rejected("send the photo as multipart/form-data in a field named `file`")

    found: list[bytearray] = []
    part: dict[str, Any] = {"header": b"", "value": b"", "disposition": b"", "mine": False}

    def on_part_begin() -> None:
        part.update(disposition=b"", mine=False)

    def on_header_field(data: bytes, start: int, end: int) -> None:
        part["header"] += data[start:end]

    def on_header_value(data: bytes, start: int, end: int) -> None:
        part["value"] += data[start:end]

    def on_header_end() -> None:
        if part["header"].lower() == b"content-disposition":
            part["disposition"] = part["value"]
        part.update(header=b"", value=b"")

    def on_headers_finished() -> None:
        _, options = parse_options_header(part["disposition"])
        if options.get(b"name") == FIELD.encode():
            if found:
                raise _rejected("send one photo per request")
            found.append(bytearray())
            part["mine"] = True

    def on_part_data(data: bytes, start: int, end: int) -> None:
        if part["mine"]:
            buf = found[-1]
            buf += data[start:min(end, start + limit + 1 - len(buf))]
            if len(buf) > limit:
                raise TooLarge(limit)

    parser = MultipartParser(params[b"boundary"], {
        "on_part_begin": on_part_begin, "on_header_field": on_header_field,
        "on_header_value": on_header_value, "on_header_end": on_header_end,
        "on_headers_finished": on_headers_finished, "on_part_data": on_part_data})
    total = 0
    try:
        async for chunk in request.stream():
            total += len(chunk)
            if total > limit + MULTIPART_SLACK:  # no Content-Length (chunked), or it lied
                raise TooLarge(limit)
            parser.write(chunk)
        parser.finalize()
    except FormParserError:
        raise _rejected("not valid multipart/form-data") from None
    if not found:
        raise _rejected("required: the photo, in a multipart field named `file`")
    return bytes(found[0])


def _too_large(request: Request, exc: TooLarge) -> JSONResponse:
    # Answered at once, and the connection kept: uvicorn reads the rest of the body (and
    # drops it) after the answer, as an HTTP client needs. A client that sends all before it
    # reads (httpx, requests) reads the 413 then; one that asked `Expect: 100-continue` (curl)
    # reads it before sending any. Closing now instead, with the body still coming, resets
    # the connection: the client loses the 413 and sees the connection dropped.
    return refusal(request, exc.errors, 413)


@router.post(
    "/v1/photos", status_code=201, response_model=PhotoStored, openapi_extra=_UPLOAD_BODY,
    dependencies=[allow(*SENDERS)],
    summary="Upload a report photo (JPEG, PNG or WebP, at most 10 MB)",
    description="Answers its `ref` (the SHA-256 of the bytes) for `report.submitted`'s `photos`. "
                "The type is read from the bytes, not the file name. The same bytes again are "
                "the same photo, stored once.",
    responses={201: {"description": "stored, or already there: the same ref either way"},
               413: {"model": Errors, "description": "larger than the limit (10 MB)"},
               422: {"model": Errors, "description": "no `file`, empty, or not JPEG/PNG/WebP"}})
async def post_photo(request: Request) -> JSONResponse:
    photos: Photos = request.app.state.photos
    try:
        stored = await photos.put(await read_file_field(request, photos.max_bytes))
    except TooLarge as exc:
        return _too_large(request, exc)
    return JSONResponse(stored, status_code=201,
                        headers={"Location": f"/v1/photos/{stored['ref']}"})


@router.get(
    "/v1/photos/{ref}", response_class=Response, summary="A report photo's bytes",
    responses={200: {"content": {t: {} for t in ACCEPTED},
                     "description": "the photo, with its content type"},
               404: {"model": Errors, "description": "no photo has this ref"},
               422: {"model": Errors, "description": "not a ref (64 lowercase hex characters)"}})
async def get_photo(request: Request, ref: Annotated[str, Path(
        pattern=REF_PATTERN, description="the SHA-256 of the photo's bytes, in hex")]) -> Response:
    photos: Photos = request.app.state.photos
    found = await photos.get(ref)
    if found is None:
        return JSONResponse({"errors": [{"field": "ref", "message": "no photo has this ref"}]},
                            status_code=404)
    data, content_type = found
    # A ref is the hash of the bytes, so what it names can never change: cache it for good.
    return Response(data, media_type=content_type, headers={
        "Cache-Control": "public, max-age=31536000, immutable",
        "X-Content-Type-Options": "nosniff"})
