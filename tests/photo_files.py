"""Small byte strings that start as real files of each type do (no image library needed)."""

from __future__ import annotations

import struct
import zlib


def _png_chunk(kind: bytes, body: bytes) -> bytes:
    return (struct.pack(">I", len(body)) + kind + body
            + struct.pack(">I", zlib.crc32(kind + body)))


# A 1x1 grey PNG: signature, IHDR, IDAT, IEND.
PNG = (b"\x89PNG\r\n\x1a\n"
       + _png_chunk(b"IHDR", struct.pack(">IIBBBBB", 1, 1, 8, 0, 0, 0, 0))
       + _png_chunk(b"IDAT", zlib.compress(b"\x00\x80"))
       + _png_chunk(b"IEND", b""))
# SOI, then a JFIF APP0 segment, then EOI.
JPEG = (b"\xff\xd8\xff\xe0\x00\x10JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00"
        + b"\xff\xd9")
# A RIFF container whose form type is WEBP, with a (tiny) VP8L chunk.
_VP8L = b"VP8L" + struct.pack("<I", 5) + b"\x2f\x00\x00\x00\x00" + b"\x00"
WEBP = b"RIFF" + struct.pack("<I", 4 + len(_VP8L)) + b"WEBP" + _VP8L
GIF = b"GIF89a\x01\x00\x01\x00\x80\x00\x00\x00\x00\x00\xff\xff\xff!\xf9\x04\x01\x00\x00\x00\x00,"
PDF = b"%PDF-1.4\n1 0 obj\n<< /Type /Catalog >>\nendobj\n%%EOF\n"
TEXT = "服务旗帜接传 — not a photo, whatever its name says\n".encode()


def jpeg_of_size(n: int) -> bytes:
    """`n` bytes that sniff as JPEG (a JPEG header, then padding)."""
    assert n >= len(JPEG)
    return JPEG[:-2] + b"\x00" * (n - len(JPEG)) + b"\xff\xd9"
