"""JSON answers the services build themselves (reports, who is asking, refusals, health),
written by orjson: several times faster than the standard library's encoder, and the report
rows are most of what the services send.

FastAPI itself (0.16x) writes a route's return value straight to bytes with pydantic-core when
the route declares a return type and no response class; that path is kept for such routes (a
`default_response_class` would turn it off). `JSON` is for the bodies a route hands over whole.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import orjson
from fastapi.encoders import decimal_encoder
from pydantic_core import to_jsonable_python
from starlette.responses import JSONResponse


def _default(value: Any) -> Any:
    """What orjson does not write by itself: as FastAPI's own encoder writes it."""
    if isinstance(value, Decimal):  # PostgreSQL's sums: numbers, as jsonable_encoder gives
        return decimal_encoder(value)
    return to_jsonable_python(value)  # the rest as pydantic writes it (raises if it cannot)


def dumps(content: Any) -> bytes:
    # UTC as `Z`, as pydantic writes it.
    return orjson.dumps(content, default=_default,
                        option=orjson.OPT_NON_STR_KEYS | orjson.OPT_UTC_Z)


class JSON(JSONResponse):
    """A JSONResponse written by orjson."""

    def render(self, content: Any) -> bytes:
        return dumps(content)
