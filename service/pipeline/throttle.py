"""The slow-down after the provider throttles a request (HTTP 429 or `rate_limit_exceeded`),
for every event of this process: the next requests wait out the answer's Retry-After (or a
backoff that doubles, 1 s to 60 s); then one request goes alone, and the others follow once it
is not throttled. A provider that is throttling us is never sent a burst."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

from ..errors import AutocallError, Throttled, answered

log = logging.getLogger("autocall")
FIRST_BACKOFF = 1.0  # seconds, when the answer says no Retry-After
LONGEST_BACKOFF = 60.0


class Turn:
    """One request's passage through the throttle: tell it how the provider answered."""

    __slots__ = ("_generation", "_throttle", "left", "probe")

    def __init__(
        self, throttle: Throttle, generation: int, *, probe: bool, left: float = 0.0
    ) -> None:
        self._throttle = throttle
        self._generation = generation
        self.probe = probe  # the one request let through after a wait
        self.left = left  # > 0: no turn, the wait's seconds still to run (`turn(park=True)`)

    def answered(self, error: AutocallError | None) -> None:
        """How the request ended: accepted (None), throttled, refused. Only the provider's own
        answer ends the slow-down; a request that never reached it says nothing, and the turn's
        end hands the probe to the next request."""
        if isinstance(error, Throttled):
            self._throttle.throttled(error.retry_after)
        elif error is None or answered(error):
            self._throttle.passed(self._generation)


class Throttle:
    """Holds requests back while the provider throttles them; free when it does not."""

    def __init__(
        self,
        first: float = FIRST_BACKOFF,
        longest: float = LONGEST_BACKOFF,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._first = first
        self._longest = longest
        self._clock = clock
        self._backoff = 0.0  # the last wait; 0: not slowed down
        self._until = 0.0  # no request before this (clock time)
        self._generation = 0  # bumped by each throttle answer
        self._probing = False
        self._changed = asyncio.Event()

    def __repr__(self) -> str:
        return f"Throttle(slowed={self.slowed}, backoff={self._backoff:g})"

    @property
    def slowed(self) -> bool:
        """Whether requests are held back."""
        return self._backoff > 0

    @property
    def holding_back(self) -> bool:
        """Whether a request now would wait: the answer's wait is still running, or the one
        request let through after it has not been answered yet."""
        return self.slowed and (self._probing or self._until > self._clock())

    def free(self) -> Turn:
        """The turn of a request that need not wait (while not slowed down)."""
        return Turn(self, self._generation, probe=False)

    @asynccontextmanager
    async def turn(self, *, park: bool = False) -> AsyncIterator[Turn]:
        """Waits for this request's turn; the block makes (or skips) the request. `park`: rather
        than wait out the answer's wait, the turn says how long it has to run (`left`)."""
        if not self.slowed:
            yield self.free()
            return
        turn = await self._wait(park)
        try:
            yield turn
        finally:
            if turn.probe and self._probing:  # it ended with no answer: the next one probes
                self._probing = False
                self._notify()

    async def _wait(self, park: bool) -> Turn:
        while self.slowed:
            delay = self._until - self._clock()
            if delay > 0 and park:
                return Turn(self, self._generation, probe=False, left=delay)
            if delay > 0:
                await asyncio.sleep(delay)
            elif self._probing:
                await self._changed.wait()
            else:
                self._probing = True
                return Turn(self, self._generation, probe=True)
        return Turn(self, self._generation, probe=False)

    def throttled(self, retry_after: float | None) -> None:
        """A throttle answer: the next requests wait `retry_after`, or the doubled backoff."""
        backoff = min(self._longest, self._backoff * 2 or self._first)
        wait = backoff if retry_after is None else retry_after
        if not self.slowed:
            log.warning(
                "the provider is throttling: requests wait %.1f s, then go one by one", wait
            )
        self._backoff = backoff
        self._until = max(self._until, self._clock() + wait)
        self._generation += 1
        self._probing = False
        self._notify()

    def passed(self, generation: int) -> None:
        """An answer that is not a throttle, to a request sent since the last throttle answer:
        the slow-down ends (an older request's answer says nothing about it)."""
        if not self.slowed or generation != self._generation:
            return
        log.warning("the provider answers again without throttling: requests go freely")
        self._backoff = 0.0
        self._probing = False
        self._notify()

    def _notify(self) -> None:
        self._changed.set()
        self._changed = asyncio.Event()
