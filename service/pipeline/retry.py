"""The retry policy: what follows a failure in which no call was made. Pure: no I/O, no clock."""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from ..amqp.headers import ATTEMPT_HEADER, RETRIES_HEADER
from ..errors import EXHAUSTION_CODES, AutocallError, BalanceTooLow, Throttled
from ..events import Event
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
        if call.holds and (failure.code in EXHAUSTION_CODES or isinstance(failure, BalanceTooLow)):
            return PutBack(failure.code, holds=True)  # any provider's balance code too (stringee_8)
        later = None
        if isinstance(failure, Throttled) and self.delays:
            # Never failed for a throttle: past the last tier, the last tier again.
            retries = min(retries, len(self.delays) - 1)
        if failure.retryable:
            later = self.later(failure.code, call.event, retries, {ATTEMPT_HEADER: attempts})
        if later is None:
            return Publish(
                Outcome.failed(call.event.identity, failure, now, call=call, attempts=attempts)
            )
        return later

    def later(
        self, code: str, event: Event, retries: int, headers: dict[str, Any] | None = None
    ) -> Delay | None:
        """A copy of `event` delayed in the next retry tier (`retries` waited out so far), with
        `headers`; None once every tier has been waited out."""
        if retries >= len(self.delays):
            return None
        delay_ms = max(1, int(self.delays[retries] * self.jitter() * 1000))
        counted = {RETRIES_HEADER: retries + 1, **(headers or {})}
        return Delay(self.queues[retries], delay_ms, code, event, counted, retry=True)
