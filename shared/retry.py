"""Retrying, the same way in every loop: a delay that doubles up to a cap, and what counts as
an outage (worth waiting out) rather than a fault of the work itself.

    backoff = Backoff(first=0.2, cap=10)
    while True:
        try:
            await work()
            backoff.reset()
        except Exception as exc:
            if not is_transient(exc):
                raise
            log.warning("... (%s); retrying in %.1fs", exc, backoff.delay)
            if await backoff.sleep(stopping):  # an asyncio.Event: a stop cuts the wait short
                return
"""

from __future__ import annotations

import asyncio
import random

import nats.errors
from sqlalchemy import exc as sa_exc


class Backoff:
    """Delays for one retrying loop: `first`, then `factor` times longer each time, at most `cap`;
    `reset()` after a success starts again from `first`. Each sleep is spread ±25% (jitter), so
    loops that failed together (writers to one file, consumers of one server) do not all come
    back at the same instant."""

    def __init__(self, first: float = 0.2, cap: float = 10.0, factor: float = 2.0):
        self.first = first
        self.cap = cap
        self.factor = factor
        self.delay = first  # what the next sleep will wait (for "retrying in %.1fs")

    def next(self) -> float:
        """The delay to wait now; the one after it grows."""
        delay = self.delay
        self.delay = min(delay * self.factor, self.cap)
        return delay

    def reset(self) -> None:
        self.delay = self.first

    async def sleep(self, stop: asyncio.Event | None = None) -> bool:
        """Wait the next delay, or less if `stop` is set meanwhile; True if it was."""
        delay = self.next() * random.uniform(0.75, 1.25)
        if stop is None:
            await asyncio.sleep(delay)
            return False
        try:
            await asyncio.wait_for(stop.wait(), delay)
        except TimeoutError:
            pass
        return stop.is_set()


# PostgreSQL SQLSTATE classes that say nothing about the data: connection (08), a transaction
# to run again (40: deadlock, serialization), resources (53), operator (57: shutdown), system
# (58); and 42 (no such table or column, no privilege): a deploy that is not finished yet.
_TRANSIENT_SQLSTATE_CLASSES = ("08", "40", "42", "53", "57", "58")


def is_transient(exc: BaseException) -> bool:
    """True if `exc` says the database or NATS is away or busy (the same work later can
    succeed, so wait it out), False if the work itself is at fault (a bad message)."""
    if isinstance(exc, nats.errors.Error | OSError | TimeoutError):
        return True  # ConnectionError is an OSError; nats' TimeoutError an asyncio one
    if isinstance(exc, sa_exc.DBAPIError):
        if exc.connection_invalidated or isinstance(exc, sa_exc.OperationalError
                                                    | sa_exc.InterfaceError):
            return True
        sqlstate = getattr(exc.orig, "sqlstate", None)
        return isinstance(sqlstate, str) and sqlstate[:2] in _TRANSIENT_SQLSTATE_CLASSES
    # asyncpg's errors while connecting reach us unwrapped (SQLAlchemy wraps a statement's
    # only): "the database system is shutting down" / "is starting up" (57P03).
    sqlstate = getattr(exc, "sqlstate", None)
    if isinstance(sqlstate, str) and sqlstate[:2] in _TRANSIENT_SQLSTATE_CLASSES:
        return True
    # The pool had no connection to give, or one was dropped.
    return isinstance(exc, sa_exc.TimeoutError | sa_exc.DisconnectionError)
