"""AUTOCALL_RATE_LIMIT: provider calls a second for every replica together, paced through the
store (Redis, when replicas share one) before each call's key is claimed."""

from __future__ import annotations

import asyncio

from ..store import Store


class Pace:
    """Waits for the next call's turn at `rate` calls a second; 0 is no limit."""

    def __init__(self, store: Store, rate: float) -> None:
        self._store = store
        self.rate = rate

    def __repr__(self) -> str:
        return f"Pace(rate={self.rate:g})"

    async def wait(self) -> None:
        """Until this call's turn: StoreUnavailable when the store does not answer."""
        if self.rate <= 0:
            return
        delay = await self._store.pace(self.rate)
        if delay > 0:
            await asyncio.sleep(delay)
