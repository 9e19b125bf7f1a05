"""The Store protocol and what its calls answer: claims, states and TTS reservations."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Protocol, Self


class State(StrEnum):
    NEW = "new"  # the key is ours now
    DONE = "done"  # an event completed it; `outcome` is that event's outcome
    BUSY = "busy"  # a live process holds it
    ORPHANED = "orphaned"  # a process died holding it: its call may have gone out
    OVER_BUDGET = "over_budget"  # free, but the call's TTS characters do not fit today: not taken


@dataclass(slots=True)
class Claim:
    """What claiming a key found."""

    state: State
    event_id: str | None = None  # the event that holds or completed the key
    outcome: bytes | None = None
    used: int | None = None  # the day's TTS characters, when a reservation was asked


@dataclass(slots=True)
class Reservation:
    """TTS characters to take from a day's budget together with a key."""

    day: str
    chars: int
    limit: int


class Store(Protocol):
    """Where idempotency keys and the day's TTS characters live."""

    async def claim(self, key: str, event_id: str, reservation: Reservation | None = None) -> Claim:
        """Take `key` for `event_id`, and the reservation's characters with it, in one step;
        unless something holds the key (say what) or the characters do not fit."""

    async def complete(self, key: str, event_id: str, outcome: bytes) -> None:
        """Mark `key` done by `event_id`, keeping its outcome for redeliveries."""

    async def release(self, key: str) -> None:
        """Give `key` back: no call was made, so a corrected event may use it."""

    async def add_tts(self, day: str, chars: int, limit: int) -> tuple[bool, int]:
        """Reserve `chars` of `day`'s budget if they fit under `limit`: (reserved, used)."""

    async def refund_tts(self, day: str, chars: int) -> None:
        """Give back characters of a call the provider refused."""

    async def tts_used(self, day: str) -> int:
        """Characters used on `day` so far."""

    async def pace(self, rate: float) -> float:
        """Take the next of `rate` provider calls a second, shared by every replica: the seconds
        to wait before making it (0: now)."""

    async def __aenter__(self) -> Self: ...

    async def __aexit__(self, *exc_info: object) -> None: ...
