"""services.events.photos on a real NATS object store: content-addressed, validated puts, and
the HTTP routes in process (the same router the events service mounts)."""

from __future__ import annotations

import asyncio
import hashlib

import httpx
import pytest
from nats.js.api import StorageType

from services.events.photos import Photos, TooLarge
from services.events.photos import router as photos_router
from shared.errors import Rejected
from shared.http import install_error_handlers
from shared.settings import Settings
from tests.integration.readmodels import admin_app
from tests.photo_files import GIF, JPEG, PNG, TEXT, WEBP, jpeg_of_size

pytestmark = pytest.mark.asyncio(loop_scope="session")

MIB = 1024 * 1024


async def photos_on(nc, names, **settings) -> Photos:
    photos = Photos(nc.jetstream(), names, Settings(**settings))
    await photos.ensure()
    return photos


def fields(exc: Rejected) -> list[str]:
    return [e.field for e in exc.errors]


async def test_round_trip_of_each_type(nc, names):
    photos = await photos_on(nc, names)
    for data, content_type in [(JPEG, "image/jpeg"), (PNG, "image/png"), (WEBP, "image/webp")]:
        stored = await photos.put(data)
        assert stored == {"ref": hashlib.sha256(data).hexdigest(),
                          "content_type": content_type, "size": len(data)}
        assert await photos.get(stored["ref"]) == (data, content_type)


async def test_a_photo_bigger_than_one_chunk_comes_back_whole(nc, names):
    photos = await photos_on(nc, names)
    data = jpeg_of_size(300 * 1024 + 7)  # nats-py writes 128 KiB chunks
    stored = await photos.put(data)
    assert await photos.get(stored["ref"]) == (data, "image/jpeg")


async def test_the_bucket_is_file_backed_with_the_configured_replicas(nc, names):
    await photos_on(nc, names)
    await photos_on(nc, names)  # ensuring twice is harmless
    info = await nc.jetstream().stream_info(f"OBJ_{names.photos_bucket}")
    assert info.config.storage == StorageType.FILE
    assert info.config.num_replicas == 1


async def test_the_same_bytes_are_one_object_written_once(nc, names):
    photos = await photos_on(nc, names)
    first = await photos.put(PNG)
    stream = f"OBJ_{names.photos_bucket}"
    written = (await nc.jetstream().stream_info(stream)).state.last_seq
    again = await asyncio.gather(*(photos.put(PNG) for _ in range(5)))
    assert all(a == first for a in again)
    assert (await nc.jetstream().stream_info(stream)).state.last_seq == written
    store = await nc.jetstream().object_store(names.photos_bucket)
    objects = await store.list()
    assert [o.name for o in objects] == [first["ref"]]
    assert objects[0].headers == {"Content-Type": ["image/png"]}


async def test_existing_finds_only_stored_refs(nc, names):
    photos = await photos_on(nc, names)
    jpeg, png = (await photos.put(JPEG))["ref"], (await photos.put(PNG))["ref"]
    unknown = hashlib.sha256(b"never uploaded").hexdigest()
    assert await photos.existing([jpeg, png, unknown, "not-a-ref", jpeg.upper()]) == {jpeg, png}
    assert await photos.existing([]) == set()
    assert await photos.get(unknown) is None
    assert await photos.get("../../etc/passwd") is None


async def test_wrong_types_are_refused_by_their_bytes(nc, names):
    photos = await photos_on(nc, names)
    for data in (GIF, TEXT):  # e.g. a text file someone named photo.jpg
        with pytest.raises(Rejected) as exc:
            await photos.put(data)
        assert not isinstance(exc.value, TooLarge)
        assert fields(exc.value) == ["file"]
        assert "JPEG, PNG, WebP" in exc.value.errors[0].message
        assert "bytes" in exc.value.errors[0].message
    with pytest.raises(Rejected) as exc:
        await photos.put(b"")
    assert fields(exc.value) == ["file"] and "empty" in exc.value.errors[0].message
    assert (await nc.jetstream().stream_info(
        f"OBJ_{names.photos_bucket}")).state.messages == 0


async def test_exactly_the_limit_is_accepted_and_one_byte_more_refused(nc, names):
    photos = await photos_on(nc, names, photo_max_bytes=4096)
    assert (await photos.put(jpeg_of_size(4096)))["size"] == 4096
    with pytest.raises(TooLarge) as exc:
        await photos.put(jpeg_of_size(4097))
    assert fields(exc.value) == ["file"]
    assert exc.value.errors[0].message.startswith("larger than 4096 bytes")


# -- the routes, in process -------------------------------------------------------------------

def app_with(photos: Photos) -> httpx.AsyncClient:
    app = admin_app()
    install_error_handlers(app)
    app.include_router(photos_router)
    app.state.photos = photos
    return httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url="http://events",
                             timeout=60)


async def test_upload_and_download_over_http(nc, names):
    async with app_with(await photos_on(nc, names)) as http:
        r = await http.post("/v1/photos", files={"file": ("IMG_0001.dat", WEBP, "text/plain")})
        assert r.status_code == 201, r.text
        ref = r.json()["ref"]
        assert r.json() == {"ref": ref, "content_type": "image/webp", "size": len(WEBP)}
        assert r.headers["location"] == f"/v1/photos/{ref}"
        r = await http.get(f"/v1/photos/{ref}")
        assert r.status_code == 200
        assert r.content == WEBP and r.headers["content-type"] == "image/webp"
        assert "immutable" in r.headers["cache-control"]


async def test_ten_mib_and_one_byte_is_413_and_ten_mib_fits(nc, names):
    async with app_with(await photos_on(nc, names)) as http:
        r = await http.post("/v1/photos", files={"file": ("big.jpg", jpeg_of_size(10 * MIB + 1))})
        assert r.status_code == 413, r.text
        assert [e["field"] for e in r.json()["errors"]] == ["file"]
        assert r.json()["errors"][0]["message"].startswith("larger than 10 MB")
        r = await http.post("/v1/photos", files={"file": ("big.jpg", jpeg_of_size(10 * MIB))})
        assert r.status_code == 201, r.text
        assert r.json()["size"] == 10 * MIB


async def test_a_body_declared_far_too_large_is_refused_unread(nc, names):
    photos = await photos_on(nc, names, photo_max_bytes=1000)
    read = 0

    async def body():
        nonlocal read
        for _ in range(100):
            read += 1
            yield b"x" * 1024

    async with app_with(photos) as http:
        r = await http.post("/v1/photos", content=body(), headers={
            "content-type": "multipart/form-data; boundary=b", "content-length": "10000000"})
    assert r.status_code == 413 and [e["field"] for e in r.json()["errors"]] == ["file"]
    # Answered from the headers alone, without closing: the server reads the rest of the body
    # after the answer, so a client still sending hears its 413 (tests/e2e/test_photos.py).
    assert "close" not in r.headers.get("connection", "")
    assert read == 0


async def test_chunked_uploads_stop_being_read_at_the_limit(nc, names):
    photos = await photos_on(nc, names, photo_max_bytes=1000)
    sent = 0

    async def body():
        nonlocal sent
        yield (b'--b\r\nContent-Disposition: form-data; name="file"; filename="a.jpg"\r\n'
               b"Content-Type: image/jpeg\r\n\r\n" + JPEG[:-2])
        for _ in range(10_000):
            sent += 1
            yield b"\x00" * 1024

    async with app_with(photos) as http:
        r = await http.post("/v1/photos", content=body(),
                            headers={"content-type": "multipart/form-data; boundary=b"})
    assert r.status_code == 413, r.text
    assert sent < 10  # stopped reading soon after the file passed 1000 bytes


async def test_http_refusals_name_the_field(nc, names):
    async with app_with(await photos_on(nc, names)) as http:
        r = await http.post("/v1/photos", files={"file": ("photo.jpg", TEXT, "image/jpeg")})
        assert r.status_code == 422 and [e["field"] for e in r.json()["errors"]] == ["file"]
        r = await http.post("/v1/photos", files={"file": ("empty.jpg", b"")})
        assert r.status_code == 422 and [e["field"] for e in r.json()["errors"]] == ["file"]
        r = await http.post("/v1/photos", files={"photo": ("a.png", PNG)})
        assert r.status_code == 422 and [e["field"] for e in r.json()["errors"]] == ["file"]
        r = await http.post("/v1/photos", files=[("file", ("a.png", PNG)), ("file", ("b", JPEG))])
        assert r.status_code == 422 and [e["field"] for e in r.json()["errors"]] == ["file"]
        r = await http.post("/v1/photos", json={"file": "a.png"})
        assert r.status_code == 422 and [e["field"] for e in r.json()["errors"]] == ["file"]
        r = await http.get(f"/v1/photos/{hashlib.sha256(b'nothing').hexdigest()}")
        assert r.status_code == 404 and [e["field"] for e in r.json()["errors"]] == ["ref"]
        r = await http.get(f"/v1/photos/{'A' * 64}")
        assert r.status_code == 422 and [e["field"] for e in r.json()["errors"]] == ["ref"]
