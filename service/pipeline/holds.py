"""Holds by account, when there are several: a held account's events wait on the hold queue (or
go on at once to the accounts it fails over to) while every other account's calls go on. One of
its events is let through each probe interval; the hold ends once such a call is accepted."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from ..errors import DAILY_BUDGET_CODE
from ..metrics import Metrics
from .budget import next_midnight

log = logging.getLogger("autocall")


def hold_seconds(reason: str, interval: float, now: datetime) -> float:
    """Until the next probe: the interval; for the day's budget, no earlier than midnight."""
    if reason != DAILY_BUDGET_CODE:
        return interval
    return max(interval, (next_midnight(now) - now).total_seconds())


@dataclass(slots=True)
class _Held:
    reason: str
    next_probe: float  # time.monotonic()
    probing: bool = False


class AccountHolds:
    """Which accounts are held, and whose turn it is to probe."""

    def __init__(
        self,
        interval: float,
        metrics: Metrics,
        clock: Callable[[], datetime],
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.interval = interval
        self._metrics = metrics
        self._clock = clock
        self._monotonic = monotonic
        self._held: dict[str, _Held] = {}

    def __repr__(self) -> str:
        return f"AccountHolds({ {name: h.reason for name, h in self._held.items()} })"

    def reason(self, account: str) -> str | None:
        """Why `account` is held; None when it is not."""
        held = self._held.get(account)
        return held.reason if held else None

    def probe_turn(self, account: str) -> bool:
        """Whether the caller may probe `account` now (it takes the turn: one probe at a time)."""
        held = self._held.get(account)
        if held is None or held.probing or self._monotonic() < held.next_probe:
            return False
        held.probing = True
        return True

    def end_probe(self, account: str) -> None:
        """The probe ended without news: the next event may probe."""
        held = self._held.get(account)
        if held is not None:
            held.probing = False

    def hold(self, account: str, reason: str) -> None:
        """Hold `account` for `reason` (again: the next probe waits a full interval)."""
        wait = hold_seconds(reason, self.interval, self._clock())
        if account not in self._held:
            log.warning("account %s held: %s; probing every %g s", account, reason, wait)
        self._held[account] = _Held(reason, self._monotonic() + wait)
        self._metrics.held(account, reason)

    def release(self, account: str) -> None:
        """A call of `account` was accepted."""
        if self._held.pop(account, None) is not None:
            log.warning("account %s: hold released, a probe call was accepted", account)
            self._metrics.held(account, None)

    def delay_ms(self, account: str) -> int:
        """How long an event of a held account waits before it comes back: until the next
        probe; a full interval while a probe is out (else every waiting event would come back
        every 50 ms for as long as the probe's call takes)."""
        held = self._held.get(account)
        if held is not None and held.probing:
            return max(1, int(self.interval * 1000))
        left = held.next_probe - self._monotonic() if held else 0.0
        return max(1, int(min(max(left, 0.05), self.interval) * 1000))
