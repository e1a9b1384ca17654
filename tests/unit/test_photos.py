"""Photo types come from the bytes' magic numbers, never from a file name."""

from __future__ import annotations

import pytest

from services.events.photos import sniff
from tests.photo_files import GIF, JPEG, PDF, PNG, WEBP


@pytest.mark.parametrize(("data", "content_type"), [
    (JPEG, "image/jpeg"), (PNG, "image/png"), (WEBP, "image/webp")])
def test_the_three_accepted_types(data, content_type):
    assert sniff(data) == content_type


@pytest.mark.parametrize("data", [
    b"", b"just some text, saved as photo.jpg\n", PDF, GIF,
    b"\xff\xd8",                    # a JPEG's first two bytes only
    b"\x89PNG\r\n",                 # a truncated PNG signature
    b"RIFF\x24\x00\x00\x00WAVEfmt ",  # RIFF, but audio
    b"RIFF\x24\x00",                # too short to say
    b"<svg xmlns='http://www.w3.org/2000/svg'/>",
])
def test_anything_else_is_none(data):
    assert sniff(data) is None
