"""Single-event HTTP requests that arrive together, offered to the acceptor as one batch.

A form or another system posts one event a request (`POST /v1/events`, `/v1/activities`).
Offered one by one, N requests at once cost N reference checks, N transactions and N turns at
the writer, taken one after another. Here a request that arrives while batches are being
accepted waits with the others, and they go together as the next batch: one transaction, one
turn, one round of publishes. A request that arrives when nothing is being accepted goes at
once (no added latency); when one batch is in hand and a second may start, the next gathers
for `window` seconds first; `max_size` requests waiting go at once.

Each request keeps its own answer: 202 with its seq (or as a duplicate), or its own refusal
(422, 409, 403 naming the field). Arrival order is kept, so two requests of one event_id in a
group are accepted once: the second is the first's duplicate. A batch that fails as a whole
(not an outage, which every request is told of as is) is offered again one request at a
time, as the bus takes a failing batch apart: one poisonous request fails alone. The batch's
span continues the first request's trace and links every other request's; each event carries
its own request's trace onwards.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass, field

from services.events.domain import Offer
from services.events.service import Acceptor, Outcome
from shared.auth import Principal
from shared.errors import Unavailable
from shared.retry import is_transient
from shared.telemetry import batch_span, inject

log = logging.getLogger(__name__)

# Batches in hand at once: one judged while the one before it is published (the acceptor
# keeps their order); more would only wait for the same writer.
IN_FLIGHT = 2
GROUP_SIZES = (1, 2, 3, 5, 10, 20, 50, 100, 200, 500, 1000)  # the /metrics histogram's buckets


@dataclass
class _Request:
    offer: Offer
    principal: Principal | None
    trace: dict[str, str]
    answer: asyncio.Future[Outcome] = field(repr=False)


class Grouper:
    def __init__(self, acceptor: Acceptor, window: float = 0.002, max_size: int = 100,
                 observe: Callable[[int], None] | None = None):
        self.acceptor = acceptor
        self.window = window
        self.max_size = max_size
        self.observe = observe  # told each batch's size (the /metrics histogram)
        self._waiting: list[_Request] = []
        self._busy = 0
        self._timer: asyncio.TimerHandle | None = None
        self._tasks: set[asyncio.Task] = set()

    async def offer(self, offer: Offer, principal: Principal | None) -> Outcome:
        """One request's offer, accepted with whatever arrived with it: its own outcome."""
        answer: asyncio.Future[Outcome] = asyncio.get_running_loop().create_future()
        self._waiting.append(_Request(offer, principal, inject(), answer))
        self._next()
        return await answer

    def _next(self) -> None:
        """Start the next batch if its time has come."""
        if not self._waiting or self._busy >= IN_FLIGHT:
            return  # the batch in hand takes the waiting ones along when it is done
        if self._busy == 0 or len(self._waiting) >= self.max_size or self.window <= 0:
            self._start()
        elif self._timer is None:
            self._timer = asyncio.get_running_loop().call_later(self.window, self._timed_out)

    def _timed_out(self) -> None:
        self._timer = None
        if self._waiting and self._busy < IN_FLIGHT:
            self._start()

    def _start(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        batch, self._waiting = self._waiting[:self.max_size], self._waiting[self.max_size:]
        self._busy += 1
        task = asyncio.create_task(self._run(batch))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _run(self, batch: list[_Request]) -> None:
        try:
            if self.observe is not None:
                self.observe(len(batch))
            with batch_span("events http group", [r.trace for r in batch]):
                await self._accept(batch)
        finally:
            for r in batch:  # cancelled (shutting down): no request waits for ever
                if not r.answer.done():
                    r.answer.set_exception(Unavailable("the events service is stopping"))
            self._busy -= 1
            self._next()

    async def _accept(self, batch: list[_Request]) -> None:
        try:
            outcomes = await self.acceptor.offer(
                [r.offer for r in batch], via="http", trace_headers=[r.trace for r in batch],
                principals=[r.principal for r in batch])
        except Exception as exc:
            if len(batch) == 1 or isinstance(exc, Unavailable) or is_transient(exc):
                for r in batch:  # an outage: every request hears of it (503) as it would alone
                    _settle(r, exc)
                return
            log.exception("a group of %d HTTP offers failed; offering them one by one",
                          len(batch))
            for r in batch:
                await self._accept([r])
            return
        for r, outcome in zip(batch, outcomes, strict=True):
            _settle(r, outcome)


def _settle(request: _Request, result: Outcome | BaseException) -> None:
    if request.answer.done():  # its client went away
        return
    if isinstance(result, BaseException):
        request.answer.set_exception(result)
    else:
        request.answer.set_result(result)
