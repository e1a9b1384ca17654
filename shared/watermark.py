"""A position that only moves forward, and a bounded wait for it to reach a mark."""

from __future__ import annotations

import asyncio


class Watermark:
    def __init__(self, value: int = 0):
        self.value = value
        self._moved = asyncio.Condition()

    async def advance(self, value: int) -> None:
        async with self._moved:
            self.value = max(self.value, value)
            self._moved.notify_all()

    async def reached(self, mark: int, timeout: float) -> bool:
        """Wait until the watermark is at `mark` or beyond; False if `timeout` runs out first."""
        async def wait() -> None:
            async with self._moved:
                await self._moved.wait_for(lambda: self.value >= mark)

        try:
            await asyncio.wait_for(wait(), timeout)
            return True
        except TimeoutError:
            return self.value >= mark
