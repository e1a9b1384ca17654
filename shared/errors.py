"""The one error shape: `[{"field": "data.served", "message": "..."}]`, for HTTP and the DLQ."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from pydantic import BaseModel, ValidationError


class FieldError(BaseModel):
    field: str
    message: str


def dotted(loc: Sequence[Any], prefix: str = "") -> str:
    """('data', 'donations', 0, 'quantity') -> 'data.donations[0].quantity'."""
    out = prefix
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out or "body"


def from_validation_error(exc: ValidationError, prefix: str = "") -> list[FieldError]:
    errors = []
    for err in exc.errors(include_url=False, include_input=False):
        loc = [p for p in err["loc"] if not (isinstance(p, str) and p.startswith("function-"))]
        errors.append(FieldError(field=dotted(loc, prefix), message=err["msg"]))
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


class Unavailable(Exception):
    """Cannot be decided now; the same request later can (HTTP 503 with Retry-After)."""
