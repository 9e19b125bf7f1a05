"""Failover (CONTRACT.md §13): which of an event's accounts to try, in order, and whether a
failure proves that no call was made, so that the next account may call under the same key."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field

import orjson

from ..accounts.registry import Live
from ..errors import (
    ACCOUNT_CODES,
    DAILY_BUDGET_CODE,
    THROTTLED_CODE,
    UNAVAILABLE_CODE,
    AutocallError,
    BalanceTooLow,
    OutcomeUnknown,
    ProviderError,
    ProviderUnavailable,
    QuotaExceeded,
    Throttled,
)
from ..metrics import Metrics
from ..store import Claim, Reservation
from .holds import AccountHolds

log = logging.getLogger("autocall")


@dataclass(frozen=True, slots=True)
class Hop:
    """An account left for the next one, and why."""

    account: str
    code: str

    def as_json(self) -> dict[str, str]:
        return {"account": self.account, "code": self.code}


@dataclass(slots=True)
class Route:
    """The accounts to try, in order; those skipped (held) on the way; probes taken."""

    accounts: list[Live]
    hops: list[Hop]
    probes: list[str]
    waiting: Live | None = None  # the event's account is held: nothing to try, the event waits
    counted: int = 0  # hops counted in autocall_failovers_total: those before an account tried


@dataclass(slots=True)
class NotCalled:
    """No call was made (or none that counts): retry, hold or fail, by the retry policy."""

    error: AutocallError
    attempts: int  # provider attempts made, this one included
    account: str | None = None  # the account that refused last, or that the event waits for
    hops: list[Hop] = field(default_factory=list)
    waiting: bool = False  # the account is held: nothing was tried, the event waits
    parked_ms: int = 0  # its provider slowed the account down: nothing tried, the event waits


def waiting(planned: Route, holds: AccountHolds, attempts: int) -> NotCalled:
    """Nothing to try: the route's account is held, and the event waits for it."""
    assert planned.waiting is not None
    name = planned.waiting.name
    held = held_error(holds.reason(name) or "", name)
    return NotCalled(held, attempts, name, planned.hops, waiting=True)


def parked(planned: Route, attempts: int, left: float) -> NotCalled:
    """Nothing tried: the route's account is slowed down by its provider for `left` seconds
    more, and the event waits them out on the hold queue (several accounts only)."""
    name = planned.accounts[0].name
    slowed = Throttled(f"account {name} is slowed down by its provider; the event waits")
    wait = max(1, int(left * 1000))
    return NotCalled(slowed, attempts, name, planned.hops, parked_ms=wait)


def route(
    chain: list[Live],
    holds: AccountHolds,
    holding: bool,
    slowed: Callable[[str], bool] = lambda _: False,
    *,
    into: Route | None = None,
) -> Route:
    """The accounts of `chain` to try now: a held account is passed over for the next one, or,
    the last one, waited for (for an event whose template holds: `holding`), unless it is its
    turn to be probed; an account whose provider slowed it down is passed over too while its
    requests would wait (`slowed`: its Retry-After runs, or its probe is out), but for the last.
    `into`: the route so far (a failover on the way), whose hops and probes this one extends."""
    hops: list[Hop] = [] if into is None else into.hops
    probes: list[str] = [] if into is None else into.probes
    for index, live in enumerate(chain):
        reason = holds.reason(live.name)
        if reason is None and index < len(chain) - 1 and slowed(live.name):
            hops.append(Hop(live.name, THROTTLED_CODE))
            continue
        if reason is None:
            return Route(chain[index:], hops, probes)
        if holds.probe_turn(live.name):
            probes.append(live.name)
            return Route(chain[index:], hops, probes)
        if index < len(chain) - 1:
            hops.append(Hop(live.name, reason))
        elif holding:
            return Route([], hops, probes, waiting=live)
        else:  # a template that fails on exhaustion tries, and fails with the real answer
            return Route([live], hops, probes)
    return Route([], hops, probes)


class Hops:
    """Accounts left for the next one: each refusal counted and, on an account code, the account
    held; `autocall_failovers_total` counted once the account after them is tried."""

    def __init__(self, holds: AccountHolds, metrics: Metrics) -> None:
        self._holds = holds
        self._metrics = metrics

    def leave(self, planned: Route, at: int, error: AutocallError, code: str | None = None) -> None:
        """Leave the route's account at `at` because of `error` (failing over for `code`)."""
        left, code = planned.accounts[at].name, code or error.code
        planned.hops.append(Hop(left, code))
        self._metrics.failure(error, left)
        if holds_account(error):
            self._holds.hold(left, error.code)
        log.warning("failing over from %s (%s)", left, code)

    def tried(self, planned: Route) -> None:
        """The route's first account is called now: the hops that led to it count (never those
        of an event that waits, a duplicate or a skip)."""
        hops, to = planned.hops, planned.accounts[0].name
        for at in range(planned.counted, len(hops)):
            then = hops[at + 1].account if at + 1 < len(hops) else to
            self._metrics.failover(hops[at].account, then, hops[at].code)
        planned.counted = len(hops)


def via_note(live: Live, hops: list[Hop]) -> bytes:
    """Where a call goes out and the way there, kept with its claim (`Outcome.via`'s fields)."""
    failover = [hop.as_json() for hop in hops]
    return orjson.dumps({"account": live.name, "provider": live.provider, "failover": failover})


def held_error(reason: str, account: str) -> AutocallError:
    """The failure an event of a held account waits out (a balance code of any provider's)."""
    message = f"account {account} is held ({reason}); the event waits"
    error = ProviderError.of(reason, message)
    if type(error) is ProviderError:  # a code of another provider's: Stringee's stringee_8
        return BalanceTooLow(message, code=reason)
    return error


def failover_code(error: AutocallError) -> str | None:
    """The code to fail over for, when `error` proves no call was made; else None: a time-out
    after sending, a refused number or a request error would be the same on any account."""
    if isinstance(error, OutcomeUnknown):
        return None
    if holds_account(error) or error.code == THROTTLED_CODE:
        return error.code
    if isinstance(error, ProviderUnavailable):  # refused, reset or no connection before sending
        return UNAVAILABLE_CODE
    return None


def holds_account(error: AutocallError) -> bool:
    """Whether `error` says the account itself cannot call (held while it lasts): §12's account
    codes, and any provider's balance code (Stringee's `stringee_8`)."""
    return error.code in ACCOUNT_CODES or isinstance(error, BalanceTooLow)


def over_budget(live: Live, reservation: Reservation | None, claim: Claim) -> QuotaExceeded:
    """The day's budget of `live` has no room for the reservation."""
    chars = reservation.chars if reservation else 0
    return QuotaExceeded(
        f"account {live.name}: today's TTS budget has {claim.used} characters used, "
        f"this call needs {chars}",
        code=DAILY_BUDGET_CODE,
    )
