"""MemoryStore: one process's keys and TTS counter, for a single replica and for tests."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Self

from .protocol import Claim, Reservation, State


class MemoryStore:
    """One process's store: nothing is shared, nothing survives a restart."""

    def __init__(self, ttl: float, clock: Callable[[], float] = time.monotonic) -> None:
        self._ttl = ttl
        self._clock = clock
        self._keys: dict[str, tuple[float, Claim]] = {}  # insertion order is expiry order
        self._tts: dict[str, int] = {}
        self._next_call = 0.0  # when the next call may go, at the paced rate

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        return None

    async def claim(self, key: str, event_id: str, reservation: Reservation | None = None) -> Claim:
        now = self._clock()
        self._expire(now)
        held = self._keys.get(key)
        if held is not None:
            return held[1]
        used = None
        if reservation is not None:
            reserved, used = await self.add_tts(
                reservation.day, reservation.chars, reservation.limit
            )
            if not reserved:
                return Claim(State.OVER_BUDGET, used=used)
        self._keys[key] = (now + self._ttl, Claim(State.BUSY, event_id))
        return Claim(State.NEW, event_id, used=used)

    async def complete(self, key: str, event_id: str, outcome: bytes) -> None:
        expires = self._keys.get(key, (self._clock() + self._ttl, None))[0]
        # A copy: orjson's bytes keep a 4 KiB buffer each, and these live for days.
        self._keys[key] = (expires, Claim(State.DONE, event_id, bytes(memoryview(outcome))))

    async def release(self, key: str) -> None:
        self._keys.pop(key, None)

    async def add_tts(self, day: str, chars: int, limit: int) -> tuple[bool, int]:
        used = self._tts.get(day, 0)
        if used + chars > limit:
            return False, used
        self._tts[day] = used + chars
        for old in sorted(self._tts)[:-2]:  # yesterday may still be settling; older days not
            del self._tts[old]
        return True, used + chars

    async def refund_tts(self, day: str, chars: int) -> None:
        if day in self._tts:
            self._tts[day] = max(0, self._tts[day] - chars)

    async def pace(self, rate: float) -> float:
        now = self._clock()
        at = max(self._next_call, now)
        self._next_call = at + 1 / rate
        return at - now

    async def tts_used(self, day: str) -> int:
        return self._tts.get(day, 0)

    def _expire(self, now: float) -> None:
        while self._keys:
            key, (expires, _) = next(iter(self._keys.items()))
            if expires > now:
                return
            del self._keys[key]
