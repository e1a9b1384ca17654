"""Report photos through the events service as a process: upload, download, refusals."""

from __future__ import annotations

import asyncio
import hashlib
from urllib.parse import urlsplit

import httpx
import pytest

from tests.photo_files import PNG, TEXT, jpeg_of_size

pytestmark = pytest.mark.asyncio(loop_scope="session")

MIB = 1024 * 1024


def fields(r: httpx.Response) -> list[str]:
    return [e["field"] for e in r.json()["errors"]]


async def test_upload_a_png_and_get_it_back(system):
    async with system.client(base_url=system.url("events"), timeout=60) as http:
        r = await http.post("/v1/photos", files={"file": ("合影.png", PNG, "image/png")})
        assert r.status_code == 201, r.text
        ref = r.json()["ref"]
        assert r.json() == {"ref": hashlib.sha256(PNG).hexdigest(), "content_type": "image/png",
                            "size": len(PNG)}
        again = await http.post("/v1/photos", files={"file": ("again.png", PNG)})
        assert again.status_code == 201 and again.json()["ref"] == ref
        r = await http.get(f"/v1/photos/{ref}")
        assert r.status_code == 200
        assert r.content == PNG and r.headers["content-type"] == "image/png"
        assert "max-age" in r.headers["cache-control"]


async def test_refusals_name_the_field(system):
    async with system.client(base_url=system.url("events"), timeout=60) as http:
        r = await http.post("/v1/photos", files={"file": ("photo.jpg", TEXT, "image/jpeg")})
        assert r.status_code == 422 and fields(r) == ["file"], r.text
        assert "JPEG, PNG, WebP" in r.json()["errors"][0]["message"]
        r = await http.post("/v1/photos", files={"file": ("big.jpg", jpeg_of_size(10 * MIB + 1))})
        assert r.status_code == 413 and fields(r) == ["file"], r.text
        assert r.json()["errors"][0]["message"].startswith("larger than 10 MB")
        r = await http.post("/v1/photos", data={"note": "no photo attached"})
        assert r.status_code == 422 and fields(r) == ["file"], r.text
        r = await http.get(f"/v1/photos/{hashlib.sha256(b'never uploaded').hexdigest()}")
        assert r.status_code == 404 and fields(r) == ["ref"], r.text
        r = await http.get("/v1/photos/not-a-ref")
        assert r.status_code == 422 and fields(r) == ["ref"], r.text


async def test_a_body_declared_far_too_large_is_answered_before_it_is_sent(system):
    url = urlsplit(system.url("events"))
    reader, writer = await asyncio.open_connection(url.hostname, url.port)
    try:
        writer.write(b"POST /v1/photos HTTP/1.1\r\nHost: events\r\n"
                     + f"Authorization: Bearer {system.token}\r\n".encode() +
                     b"Content-Type: multipart/form-data; boundary=b\r\n"
                     b"Content-Length: 209715200\r\n\r\n--b\r\n")  # 200 MB promised, none sent
        await writer.drain()
        status = await asyncio.wait_for(reader.readline(), 10)
        assert status.split(b" ")[1] == b"413", status
    finally:
        writer.close()


async def test_an_11_mb_photo_gets_its_413_whatever_the_client(system, tmp_path):
    """Whether the client sends the whole body before it reads (httpx, requests), streams it
    chunked, or waits for `100 Continue` (curl): it reads the 413 naming `file`, never a
    dropped connection, and the connection serves the next request."""
    big = jpeg_of_size(11 * 1000 * 1000)  # a phone's 11 MB photo; the limit is 10 MiB

    def too_large(r: httpx.Response) -> None:
        assert r.status_code == 413 and fields(r) == ["file"], r.text
        assert r.json()["errors"][0]["message"].startswith("larger than 10 MB")

    async def chunked():
        yield b'--b\r\nContent-Disposition: form-data; name="file"; filename="big.jpg"\r\n\r\n'
        for i in range(0, len(big), 256 * 1024):
            yield big[i:i + 256 * 1024]
        yield b"\r\n--b--\r\n"

    async with system.client(base_url=system.url("events"), timeout=120) as http:
        too_large(await http.post("/v1/photos", files={"file": ("big.jpg", big)}))
        too_large(await http.post("/v1/photos", content=chunked(), headers={
            "Content-Type": "multipart/form-data; boundary=b"}))
        r = await http.post("/v1/photos", files={"file": ("small.png", PNG)})
        assert r.status_code == 201, r.text
        r = await http.post("/v1/photos", files={"file": ("big.jpg", big)})  # again, kept
        too_large(r)

    photo = tmp_path / "big.jpg"
    photo.write_bytes(big)
    curl = await asyncio.create_subprocess_exec(
        "curl", "-sS", "-F", f"file=@{photo}", "-H", f"Authorization: Bearer {system.token}",
        "-w", "\n%{http_code}", f"{system.url('events')}/v1/photos",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(curl.communicate(), 120)
    assert curl.returncode == 0, err.decode()
    body, code = out.decode().rsplit("\n", 1)
    too_large(httpx.Response(int(code), content=body.encode()))


async def test_the_routes_are_documented(system):
    async with system.client(base_url=system.url("events"), timeout=30) as http:
        spec = (await http.get("/openapi.json")).json()
    post, get = spec["paths"]["/v1/photos"]["post"], spec["paths"]["/v1/photos/{ref}"]["get"]
    assert {"201", "413", "422"} <= set(post["responses"])
    assert "multipart/form-data" in post["requestBody"]["content"]
    assert {"200", "404", "422"} <= set(get["responses"])
