"""Bulk history loads: NDJSON, one envelope a line, streamed in batches.

Years of another system's records go through the same validation and rules as any offer, a
batch at a time, so memory stays flat whatever the file's size. Idempotent on `event_id`: a
file sent again is all duplicates. Bad lines are reported by number; the good ones are kept.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

from services.events.domain import Offer, parse_offer
from services.events.service import Acceptor, ReplicaBehind
from shared.auth import Principal
from shared.errors import Rejected

log = logging.getLogger(__name__)

MAX_LINE = 1024 * 1024       # bytes; a longer line is refused, the rest of the file goes on
MAX_LISTED_ERRORS = 1000     # every error is counted; the first ones are listed
REPLICA_TRIES = 10


@dataclass
class BulkResult:
    lines: int = 0
    accepted: int = 0
    duplicates: int = 0
    refused: int = 0
    errors: list[dict] = field(default_factory=list)
    truncated: bool = False

    def refuse(self, line: int, field_: str, message: str) -> None:
        if len(self.errors) < MAX_LISTED_ERRORS:
            self.errors.append({"line": line, "field": field_, "message": message})
        else:
            self.truncated = True

    def as_json(self) -> dict:
        return {"accepted": self.accepted, "duplicates": self.duplicates,
                "refused": self.refused, "lines": self.lines, "errors": self.errors,
                "errors_truncated": self.truncated}


async def load(chunks: AsyncIterator[bytes], acceptor: Acceptor,
               principal: Principal | None = None, batch_size: int = 1000) -> BulkResult:
    result = BulkResult()
    batch: list[tuple[int, Offer]] = []
    buffer = b""
    too_long = False  # inside a line already refused for its length: skip to its end

    def take(raw: bytes, number: int) -> None:
        if not raw.strip():
            return
        try:
            batch.append((number, parse_offer(raw)))
        except Rejected as exc:
            result.refused += 1
            for e in exc.errors:
                result.refuse(number, e.field, e.message)

    async for chunk in chunks:
        buffer += chunk
        *lines, buffer = buffer.split(b"\n")
        for raw in lines:
            result.lines += 1
            if too_long:
                too_long = False
                continue
            take(raw, result.lines)
        if len(buffer) > MAX_LINE and not too_long:
            result.refused += 1
            result.refuse(result.lines + 1, "body", f"line longer than {MAX_LINE} bytes")
            too_long, buffer = True, b""
        elif too_long:
            buffer = b""
        if len(batch) >= batch_size:
            await _accept(batch, acceptor, result, principal)
            batch = []
    if buffer.strip() and not too_long:
        result.lines += 1
        take(buffer, result.lines)
    if batch:
        await _accept(batch, acceptor, result, principal)
    return result


async def _accept(batch: list[tuple[int, Offer]], acceptor: Acceptor,
                  result: BulkResult, principal: Principal | None) -> None:
    for attempt in range(REPLICA_TRIES):
        try:
            outcomes = await acceptor.offer([o for _, o in batch], via="bulk",
                                            principal=principal)
            break
        except ReplicaBehind:  # the registry is still publishing what the file refers to
            if attempt == REPLICA_TRIES - 1:
                raise
            await asyncio.sleep(1.0)
    for (line, _), outcome in zip(batch, outcomes, strict=True):
        if outcome.accepted:
            if outcome.duplicate:
                result.duplicates += 1
            else:
                result.accepted += 1
            continue
        result.refused += 1
        for e in outcome.errors:
            result.refuse(line, e.field, e.message)
