"""Report answers kept in memory, by everything that decides them: the report (its path), the
query as the route reads it (every declared parameter, a default where it was left out; not
`min_seq`, which only says how long to wait), the caller's scope and role, what else the route
says the answer varies with (the day an idle count ends, a rules version), and the read models'
positions, parked messages counted (`at`). An event applied, a parked message replayed or a
registry change moves `at`, so a kept answer is never served after it: nothing is cleared by
hand. Before serving, one small query reads `at` as it is now.

Concurrent identical questions share one computation (single-flight); its answer is kept under
the positions its own snapshot read. Memory is bounded: least recently used answers go first
once the kept bodies pass `TONGXIN_REPORT_CACHE_MB`; one larger than an eighth of it is served
but not kept. A principal never gets an answer computed for another scope: the caller's scope
is part of the key.

Served, shared and computed answers are counted on `/metrics` (`tongxin_report_answers`).
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Hashable
from typing import Any

from fastapi import Request
from prometheus_client.metrics_core import CounterMetricFamily, GaugeMetricFamily, Metric
from pydantic_core import PydanticUndefined
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from services.reporting.store import parked, positions
from shared.auth import principal

At = tuple[tuple[str, int, int], ...]  # (read model, position, parked messages), by name
Question = tuple[Hashable, ...]
# Begins its own snapshot on the connection; the body and the positions that snapshot read.
Compute = Callable[[AsyncConnection], Awaitable[tuple[bytes, At]]]
OUTCOMES = ("computed", "shared", "cached")


async def read_at(conn: AsyncConnection) -> At:
    """Every read model's position and parked count: what a kept answer must still match."""
    waiting = (select(func.count()).where(parked.c.name == positions.c.name)
               .scalar_subquery())
    rows = await conn.execute(select(positions.c.name, positions.c.position, waiting)
                              .order_by(positions.c.name))
    return tuple((name, int(position), int(count)) for name, position, count in rows)


def question(request: Request, varies: tuple[Hashable, ...] = ()) -> Question:
    """What decides a report's answer besides the read models: the path, the query as the
    route declares it, the caller's scope and role and what the route adds (`varies`)."""
    asked = request.query_params
    declared = _declared(request.scope.get("route"))
    query = tuple((name, _given(asked.getlist(name)) if name in asked else default)
                  for name, default in declared)
    who = principal(request)  # its scope, and its role: what it may be shown
    return (request.url.path, query, who.scope, who.role, varies)


def _given(values: list[str]) -> str | tuple[str, ...]:
    return values[0] if len(values) == 1 else tuple(values)


# id(route) -> (the route, held so its id is never another's; its parameters)
_DECLARED: dict[int, tuple[Any, tuple[tuple[str, Any], ...]]] = {}


def _declared(route: Any) -> tuple[tuple[str, Any], ...]:
    """A route's query parameters (its dependencies' too: the scope), each with its default
    (as text: a given value is text), `min_seq` left out; found once per route."""
    held = _DECLARED.get(id(route))
    if held is not None:
        return held[1]
    fields: dict[str, Any] = {}
    pending = [getattr(route, "dependant", None)]
    while pending:
        dependant = pending.pop()
        if dependant is None:
            continue
        for field in dependant.query_params:
            default = field.field_info.default
            fields[field.alias] = (None if default is None or default is PydanticUndefined
                                   else str(default))
        pending.extend(dependant.dependencies)
    fields.pop("min_seq", None)
    found = tuple(sorted(fields.items()))
    _DECLARED[id(route)] = (route, found)
    return found


def of(request: Request) -> Answers:
    """The process's answers (made with the app; made here for an app a test puts together)."""
    state = request.app.state
    if getattr(state, "answers", None) is None:
        state.answers = Answers(int(state.settings.report_cache_mb * 2**20))
    return state.answers


class Answers:
    def __init__(self, max_bytes: int):
        self.max_bytes = max_bytes
        self._kept: OrderedDict[tuple[Question, At], bytes] = OrderedDict()
        self._bytes = 0
        self._running: dict[tuple[Question, At], asyncio.Future[bytes]] = {}
        self.counts = dict.fromkeys(OUTCOMES, 0)

    async def answer(self, engine: AsyncEngine, asked: Question, compute: Compute) -> bytes:
        """The answer to `asked` as the read models stand now: kept, being computed for
        another caller, or computed here."""
        async with engine.connect() as conn:
            now = await read_at(conn)
        key = (asked, now)
        body = self._kept.get(key)
        if body is not None:
            self._kept.move_to_end(key)
            self.counts["cached"] += 1
            return body
        running = self._running.get(key)
        if running is None:
            running = self._running[key] = asyncio.ensure_future(
                self._computed(engine, asked, compute))
            running.add_done_callback(lambda done: self._finished(key, done))
            self.counts["computed"] += 1
        else:
            self.counts["shared"] += 1
        # Shielded: a caller that goes away does not cancel the others' answer.
        return await asyncio.shield(running)

    async def fresh(self, engine: AsyncEngine, compute: Compute) -> bytes:
        """An answer that depends on the clock itself: computed, counted, not kept."""
        self.counts["computed"] += 1
        async with engine.connect() as conn:
            body, _ = await compute(conn)
        return body

    async def _computed(self, engine: AsyncEngine, asked: Question, compute: Compute) -> bytes:
        async with engine.connect() as conn:
            body, at = await compute(conn)
        self.keep((asked, at), body)
        return body

    def _finished(self, key: tuple[Question, At], done: asyncio.Future[bytes]) -> None:
        self._running.pop(key, None)
        if not done.cancelled():
            done.exception()  # retrieved: every caller may have gone away

    def keep(self, key: tuple[Question, At], body: bytes) -> None:
        if self.max_bytes <= 0 or len(body) > self.max_bytes // 8 or key in self._kept:
            return
        self._kept[key] = body
        self._bytes += len(body)
        while self._bytes > self.max_bytes:
            _, old = self._kept.popitem(last=False)
            self._bytes -= len(old)

    async def probe(self) -> list[Metric]:
        """For `/metrics`: answers by how they were found, and what is kept."""
        answers = CounterMetricFamily(
            "tongxin_report_answers", "report answers (JSON) this process gave, by how: "
            "computed (those judged at the clock always), shared (a computation under way "
            "for the same question), cached (kept from before, the read models unchanged "
            "since)", labels=["outcome"])
        for outcome in OUTCOMES:
            answers.add_metric([outcome], self.counts[outcome])
        kept = GaugeMetricFamily("tongxin_report_answers_kept", "report answers kept in memory")
        kept.add_metric([], len(self._kept))
        size = GaugeMetricFamily("tongxin_report_answers_kept_bytes",
                                 "bytes of the report answers kept in memory")
        size.add_metric([], self._bytes)
        return [answers, kept, size]
