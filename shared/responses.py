"""What the services answer, for OpenAPI: the base of every response model and the pieces
they share (a page of items, a spreadsheet download, who is asking, health, parked messages).

A response model describes the dict a route returns, so a client can be generated from the
OpenAPI. A route that returns the dict (the registry's records, lists, notifications) has it
checked against the model on the way out (`response_model=`: pydantic-core validates and
writes it, faster than FastAPI's own encoder did); a route that hands over a response it built
itself (the reports, written by orjson: `shared.json_response.JSON`) is described by the model,
not checked on the way out, and schemathesis checks those answers against the running services
(tests/e2e/test_openapi_fuzz.py). So that the answer stays exactly the dict the route built:

- models allow fields they do not name (`extra="allow"`): the interface is extended freely,
  and a field added to a dict but not yet to its model still goes out;
- a field that a dict may leave out has a default, and such routes set
  `response_model_exclude_unset=True` (the default is not added to the answer);
- a number that is sometimes an int and sometimes a float is `Number` (`int | float`, which
  keeps each as it is; a bare `float` would turn 5 into 5.0), and times and dates the code
  writes as text are `DateTimeText` / `DateText` (a `datetime` would be rewritten, `+00:00` as
  `Z`).
"""

from __future__ import annotations

from datetime import date
from typing import Annotated, Generic, TypeVar

from pydantic import BaseModel, ConfigDict, Field, WithJsonSchema

Number = Annotated[int | float, WithJsonSchema({"type": "number"})]
DateTimeText = Annotated[str, WithJsonSchema({"type": "string", "format": "date-time"})]
DateText = Annotated[str, WithJsonSchema({"type": "string", "format": "date"})]
# A day the database hands back (a `date`) or the code wrote (text): JSON text either way.
Day = Annotated[date | str, WithJsonSchema({"type": "string", "format": "date"})]

CSV = "text/csv; charset=utf-8"
XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


class Answer(BaseModel):
    """The base of every response model: names what is always there, lets more through."""

    model_config = ConfigDict(extra="allow")


T = TypeVar("T")


class Page(Answer, Generic[T]):
    """A page of a list: `items`, how many there are in all, and the page asked for."""

    items: list[T]
    total: int
    limit: int
    offset: int


def spreadsheets(description: str = "the same table as a spreadsheet (`format=csv` or "
                                    "`format=xlsx`)") -> dict[int | str, dict]:
    """`responses=` entry documenting that a 200 may also be CSV or XLSX (a download)."""
    binary = {"schema": {"type": "string", "format": "binary"}}
    return {200: {"description": description,
                  "content": {"text/csv": binary, XLSX: binary}}}


class Whoami(Answer):
    """The key or account a request is made with."""

    kind: str = Field(description="key, account, or bus")
    id: str
    name: str
    role: str
    organization_id: str | None = Field(description="the organisation whose subtree bounds "
                                                    "what it sees; null: the whole programme")


class ParkedMessage(Answer):
    """A message a projection could not apply: kept aside until replayed."""

    projection: str
    seq: int
    subject: str
    event_id: str | None
    event_type: str | None
    reason: str
    parked_at: DateTimeText | None


class Health(Answer):
    """`ok` while every check is true (200), else `degraded` (503); parked messages are shown
    but do not change the status."""

    status: str = Field(description="ok or degraded")
    nats: bool
    database: bool
    workers: bool
    parked: dict[str, int] = Field(default_factory=dict,
                                   description="projections with parked messages: how many")
    parked_newest: ParkedMessage | None = None


class Replayed(Answer):
    """Per projection: messages applied on replay, and those still parked."""

    replayed: dict[str, int]
    parked: dict[str, int]
