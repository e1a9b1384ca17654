"""Text rules every incoming string obeys, wherever it comes from."""

from __future__ import annotations

from typing import Any


def refuse_nul(value: Any) -> Any:
    """A NUL character is never meaningful in a name or a summary, and PostgreSQL cannot store
    it: refuse it up front (a field validator), rather than fail in the database later."""
    if isinstance(value, str) and "\x00" in value:
        raise ValueError("must not contain NUL (\\u0000) characters")
    if isinstance(value, list | tuple):
        for item in value:
            refuse_nul(item)
    return value
