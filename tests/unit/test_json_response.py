"""The JSON the services write themselves (orjson): the same document FastAPI's own encoders
would give, Chinese as it is, for every kind of value a report row holds."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, date, datetime, timedelta, timezone
from decimal import Decimal

from fastapi.encoders import jsonable_encoder
from pydantic import BaseModel
from pydantic_core import to_json

from shared.json_response import JSON, dumps


class Figures(BaseModel):
    served: int
    hours: float


def test_a_report_row_reads_as_fastapi_would_write_it():
    """As FastAPI writes a route's return value (pydantic-core), but a Decimal (PostgreSQL's
    sums) is a number, as FastAPI's jsonable_encoder gives it, not a string."""
    row = {"label": "淄博市委统战部", "served": 340, "day": date(2013, 10, 13),
           "at": datetime(2013, 10, 13, 8, 30, tzinfo=timezone(timedelta(hours=8))),
           "utc": datetime(2013, 10, 13, 0, 30, tzinfo=UTC), "id": uuid.UUID(int=7),
           "figures": Figures(served=3, hours=1.5), "none": None, "list": [1, "二"],
           "took": timedelta(minutes=90), "units": {"o1"}}
    assert json.loads(dumps(row)) == json.loads(to_json(row))
    assert "淄博市委统战部".encode() in dumps(row)  # not \\u-escaped
    sums = {"hours": Decimal("12.50"), "activities": Decimal("3")}
    assert json.loads(dumps(sums)) == jsonable_encoder(sums) == {"hours": 12.5, "activities": 3}


def test_the_response_is_json():
    r = JSON({"rows": [], "as_of": 8}, status_code=202)
    assert (r.status_code, r.media_type, r.body) == (202, "application/json",
                                                     b'{"rows":[],"as_of":8}')
