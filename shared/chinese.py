"""Chinese text helpers: simplified and traditional forms must find each other (济南 ~ 濟南)."""

from __future__ import annotations

import unicodedata
from functools import lru_cache

from opencc import OpenCC

_t2s = OpenCC("t2s")


@lru_cache(maxsize=65536)
def search_key(text: str) -> str:
    """Fold a name for search: NFKC (full-width → half-width), traditional → simplified, lower."""
    return _t2s.convert(unicodedata.normalize("NFKC", text)).casefold().strip()
