"""The retry policy: what follows a failure in which no call was made. Pure: no I/O, no clock."""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime

from ..amqp.headers import ATTEMPT_HEADER, RETRIES_HEADER
from ..errors import EXHAUSTION_CODES, AutocallError, Throttled
from ..render import Call
from .actions import Delay, Publish, PutBack
from .outcomes import Outcome


def jitter() -> float:
    """Spreads a burst of retries over their tier's window."""
    return random.uniform(0.8, 1.2)


@dataclass(frozen=True, slots=True)
class Retry:
    """Retry tiers: `delays[n]` seconds in `queues[n]` before the (n+1)-th retry."""

    delays: Sequence[float]
    queues: Sequence[str]
    jitter: Callable[[], float] = jitter

    def after(
        self, failure: AutocallError, call: Call, attempts: int, retries: int, now: datetime
    ) -> Delay | Publish | PutBack:
        """Hold, retry or fail `call` after `failure`, with `attempts` made so far and `retries`
        waited out."""
        if failure.code in EXHAUSTION_CODES and call.holds:
            return PutBack(failure.code, holds=True)
        if isinstance(failure, Throttled) and self.delays:
            # Never failed for a throttle: past the last tier, the last tier again.
            return self._delay(failure, call, attempts, min(retries, len(self.delays) - 1), retries)
        if not failure.retryable or retries >= len(self.delays):
            return Publish(
                Outcome.failed(call.event.identity, failure, now, call=call, attempts=attempts)
            )
        return self._delay(failure, call, attempts, retries, retries)

    def _delay(
        self, failure: AutocallError, call: Call, attempts: int, tier: int, retries: int
    ) -> Delay:
        delay_ms = max(1, int(self.delays[tier] * self.jitter() * 1000))
        headers = {RETRIES_HEADER: retries + 1, ATTEMPT_HEADER: attempts}
        return Delay(self.queues[tier], delay_ms, failure.code, call.event, headers, retry=True)
