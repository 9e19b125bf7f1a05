"""The Store protocol and what its calls answer: claims, states and TTS reservations."""

from __future__ import annotations

from collections.abc import Awaitable
from dataclasses import dataclass
from enum import StrEnum
from typing import Protocol, Self


class State(StrEnum):
    NEW = "new"  # the key is ours now
    DONE = "done"  # an event completed it; `outcome` is that event's outcome
    BUSY = "busy"  # a live process holds it
    ORPHANED = "orphaned"  # a process died holding it: its call may have gone out
    OVER_BUDGET = "over_budget"  # free, but the call's TTS characters do not fit today: not taken
    SUPPRESSED = "suppressed"  # the number is on the suppression list: not taken
    PHONE_LIMIT = "phone_limit"  # the number had its calls for the window: not taken


@dataclass(slots=True)
class Claim:
    """What claiming a key found."""

    state: State
    event_id: str | None = None  # the event that holds or completed the key
    outcome: bytes | None = None
    used: int | None = None  # the day's TTS characters, when a reservation was asked
    via: bytes | None = None  # where the holder's call goes out, as the holder last wrote it


@dataclass(slots=True)
class Reservation:
    """TTS characters to take from a day's budget together with a key."""

    day: str
    chars: int
    limit: int


@dataclass(slots=True)
class Guard:
    """The customer protections a claim checks before it takes a key: the suppression list,
    then the number's rolling limit (a claim that takes the key takes a slot of it too)."""

    phone: str  # E.164, as the suppression list holds it
    now: float  # Unix time
    calls: int = 0  # the limit's N; 0: no limit, no slot
    window: float = 0.0  # the limit's DURATION, seconds
    keep: float = 0.0  # slots are kept this long: the longest window of any template
    # A slot counts from its claim to `window` after the latest time the provider may accept
    # the call: its score is `now + margin`.
    margin: float = 0.0


@dataclass(slots=True)
class Suppression:
    """One number on the suppression list."""

    phone: str  # E.164
    reason: str
    until: float | None  # Unix time; None: for good
    added: float  # Unix time


class Store(Protocol):
    """Where idempotency keys and the day's TTS characters live."""

    reachable: bool  # the last command reached it (for /readyz): a Redis master answered

    async def claim(
        self,
        key: str,
        event_id: str,
        reservation: Reservation | None = None,
        guard: Guard | None = None,
        via: bytes | None = None,
    ) -> Claim:
        """Take `key` for `event_id`, the reservation's characters and a slot of the number's
        limit with it, in one step; unless the number is suppressed or over its limit, something
        else holds the key (say what), or the characters do not fit. A delivery of the event
        that holds the key finds it whatever the protections say. `via` (opaque) is kept with
        the claim, for a delivery that finds it later."""

    async def trying(self, key: str, via: bytes) -> None:
        """Replace the `via` of our pending claim of `key` (an account failing over to the
        next): a delivery that finds the claim orphaned knows where its call went out."""

    def complete(self, key: str, event_id: str, outcome: bytes) -> Awaitable[None]:
        """Mark `key` done by `event_id`, keeping its outcome for redeliveries. The write is
        queued when this is called, so a write queued next shares its round trip."""

    async def release(self, key: str) -> None:
        """Give `key` (and its slot of the number's limit) back: no call was made, so a
        corrected event may use it."""

    async def protections(self, guard: Guard) -> State | None:
        """What the guard's checks would say now, taking nothing (for `render`)."""

    async def suppress(self, entry: Suppression) -> None:
        """Put a number on the suppression list (replacing its entry)."""

    async def unsuppress(self, phone: str) -> bool:
        """Take a number off the list; whether it was on it."""

    async def suppressions(self) -> list[Suppression]:
        """The list, numbers whose `until` passed left out (and dropped)."""

    async def suppressed_count(self) -> int:
        """How many numbers the list holds (those whose `until` passed dropped first)."""

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
