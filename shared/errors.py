"""The one error shape: `[{"field": "data.served", "message": "..."}]`, for HTTP and the DLQ."""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Sequence
from typing import Any

from pydantic import BaseModel, PrivateAttr, ValidationError


class FieldError(BaseModel):
    field: str
    message: str
    # The pydantic error it came from ({"type", "ctx"}), if any: never sent, but what a
    # translation of the message goes by (shared/errors_zh.py).
    _source: dict[str, Any] | None = PrivateAttr(None)

    @property
    def source(self) -> dict[str, Any] | None:
        return self._source


def dotted(loc: Sequence[Any], prefix: str = "") -> str:
    """('data', 'donations', 0, 'quantity') -> 'data.donations[0].quantity'."""
    out = prefix
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out or "body"


# What pydantic puts before the message of a validator of ours: noise to the person reading it.
PYDANTIC_PREFIXES = ("Value error, ", "Assertion failed, ")


def plain(message: str) -> str:
    """A validator's message without pydantic's "Value error, " before it."""
    for prefix in PYDANTIC_PREFIXES:
        if message.startswith(prefix):
            return message[len(prefix):]
    return message


def from_validation_error(exc: ValidationError, prefix: str = "") -> list[FieldError]:
    errors = []
    for err in exc.errors(include_url=False, include_input=False):
        loc = [p for p in err["loc"] if not (isinstance(p, str) and p.startswith("function-"))]
        error = FieldError(field=dotted(loc, prefix), message=plain(err["msg"]))
        error._source = {"type": err["type"], "ctx": err.get("ctx") or {}}
        errors.append(error)
    return errors


class Rejected(Exception):  # noqa: N818 (a verdict, not an error of ours)
    """Input refused, with every reason found."""

    def __init__(self, errors: Iterable[FieldError]):
        self.errors = list(errors)
        super().__init__("; ".join(f"{e.field}: {e.message}" for e in self.errors))

    def as_json(self) -> list[dict[str, str]]:
        return [e.model_dump() for e in self.errors]


class Conflict(Rejected):
    """Valid on its own, but at odds with what is already there (HTTP 409)."""


class Forbidden(Rejected):
    """Valid, but beyond what the sender's key may do (HTTP 403): the field named."""


class Unavailable(Exception):
    """Cannot be decided now; the same request later can (HTTP 503 with Retry-After)."""


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a number JSON allows")


def _finite(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"number {text[:20]}… is too large")
    return value


def parse_json(raw: bytes | str) -> Any:
    """JSON read by hand (an HTTP body, a bus message), or `Rejected` naming the body: invalid
    UTF-8 or syntax, nesting deep enough to be an attack, NaN or Infinity, a number too large
    for a float or of more than 4,300 digits (Python's own limit on converting them)."""
    try:
        return json.loads(raw, parse_constant=_no_constant, parse_float=_finite)
    except (ValueError, RecursionError) as exc:  # JSONDecodeError and UnicodeDecodeError too
        message = "nested too deeply" if isinstance(exc, RecursionError) else str(exc)
        raise Rejected([FieldError(field="body", message=f"not valid JSON: {message}")]) from None
