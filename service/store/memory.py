"""MemoryStore: one process's keys and TTS counter, for a single replica and for tests."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Self

from .protocol import Claim, Guard, Reservation, State, Suppression


class MemoryStore:
    """One process's store: nothing is shared, nothing survives a restart."""

    reachable = True

    def __init__(self, ttl: float, clock: Callable[[], float] = time.monotonic) -> None:
        self._ttl = ttl
        self._clock = clock
        self._keys: dict[str, tuple[float, Claim]] = {}  # insertion order is expiry order
        self._tts: dict[str, int] = {}
        self._next_call = 0.0  # when the next call may go, at the paced rate
        self._suppressed: dict[str, Suppression] = {}
        self._slots: dict[str, dict[str, float]] = {}  # phone -> key -> until when it counts
        self._slot_of: dict[str, str] = {}  # pending claim's key -> its phone

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        return None

    async def claim(
        self,
        key: str,
        event_id: str,
        reservation: Reservation | None = None,
        guard: Guard | None = None,
        via: bytes | None = None,
    ) -> Claim:
        now = self._clock()
        self._expire(now)
        held = self._keys.get(key)
        if held is not None and held[1].event_id == event_id:
            return held[1]
        if guard is not None and (refused := await self.protections(guard)) is not None:
            return Claim(refused)
        if held is not None:
            return held[1]
        used = None
        if reservation is not None:
            reserved, used = await self.add_tts(
                reservation.day, reservation.chars, reservation.limit
            )
            if not reserved:
                return Claim(State.OVER_BUDGET, used=used)
        if guard is not None and guard.calls:
            self._slots.setdefault(guard.phone, {})[key] = guard.now + guard.margin
            self._slot_of[key] = guard.phone
        self._keys[key] = (now + self._ttl, Claim(State.BUSY, event_id, via=via))
        return Claim(State.NEW, event_id, used=used)

    async def trying(self, key: str, via: bytes) -> None:
        held = self._keys.get(key)
        if held is not None and held[1].state is State.BUSY:
            held[1].via = via

    async def complete(self, key: str, event_id: str, outcome: bytes) -> None:
        self._slot_of.pop(key, None)
        expires = self._keys.get(key, (self._clock() + self._ttl, None))[0]
        # A copy: orjson's bytes keep a 4 KiB buffer each, and these live for days.
        self._keys[key] = (expires, Claim(State.DONE, event_id, bytes(memoryview(outcome))))

    async def release(self, key: str) -> None:
        self._keys.pop(key, None)
        phone = self._slot_of.pop(key, None)
        if phone is not None:
            self._slots.get(phone, {}).pop(key, None)

    async def protections(self, guard: Guard) -> State | None:
        entry = self._suppressed.get(guard.phone)
        if entry is not None and (entry.until is None or entry.until > guard.now):
            return State.SUPPRESSED
        if not guard.calls:
            return None
        slots = self._slots.get(guard.phone, {})
        for key, score in list(slots.items()):
            if score < guard.now - guard.keep:
                del slots[key]
        taken = sum(score >= guard.now - guard.window for score in slots.values())
        return State.PHONE_LIMIT if taken >= guard.calls else None

    async def suppress(self, entry: Suppression) -> None:
        self._suppressed[entry.phone] = entry

    async def unsuppress(self, phone: str) -> bool:
        return self._suppressed.pop(phone, None) is not None

    async def suppressions(self) -> list[Suppression]:
        await self.suppressed_count()
        return [self._suppressed[phone] for phone in sorted(self._suppressed)]

    async def suppressed_count(self) -> int:
        now = time.time()
        for phone, entry in list(self._suppressed.items()):
            if entry.until is not None and entry.until <= now:
                del self._suppressed[phone]
        return len(self._suppressed)

    async def add_tts(self, day: str, chars: int, limit: int) -> tuple[bool, int]:
        used = self._tts.get(day)
        if used is None:  # a new day (or account): the old days go
            self._forget_days_before(day)
            used = 0
        if used + chars > limit:
            return False, used
        self._tts[day] = used + chars
        return True, used + chars

    def _forget_days_before(self, day: str) -> None:
        """Yesterday may still be settling; older days not. A day may carry its account
        ("shop-a:2026-11-27"): the date is its end."""
        days = sorted({key[-10:] for key in self._tts} | {day[-10:]})[:-2]
        for old in [key for key in self._tts if key[-10:] in days]:
            del self._tts[old]

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
