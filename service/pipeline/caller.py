"""The idempotent call: claim the key → call once → complete it, waiting on a busy key."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime

from .. import tracing
from ..errors import (
    DO_NOT_CALL_CODE,
    AutocallError,
    DoNotCall,
    OutcomeUnknown,
    QuotaExceeded,
    StoreUnavailable,
)
from ..provider.omicall.client import Provider
from ..render import Call
from ..results.recorder import Recorder
from ..store import Claim, Guard, Reservation, State, Store, Suppression
from .budget import Budget
from .outcomes import Outcome
from .pace import Pace
from .throttle import Throttle, Turn

log = logging.getLogger("autocall")
BUSY_WAIT = 0.2  # seconds between looks at a key another delivery of the same event holds
PROVIDER_DO_NOT_CALL = "provider_do_not_call"  # the suppression list's reason (CONTRACT.md §12)


@dataclass(slots=True)
class NotCalled:
    """No call was made (or none that counts): retry, hold or fail, by the retry policy."""

    error: AutocallError
    attempts: int  # provider attempts made, this one included


class Caller:
    """Calls the provider at most once per idempotency key, even across redeliveries."""

    def __init__(
        self,
        store: Store,
        budget: Budget,
        provider: Provider,
        clock: Callable[[], datetime],
        pace: Pace | None = None,
        *,
        recorder: Recorder | None = None,
        phone_window: float = 0.0,
        throttle: Throttle | None = None,
    ) -> None:
        self.pace = pace or Pace(store, 0)
        self.throttle = throttle or Throttle()
        self.store = store
        self.budget = budget
        self.provider = provider
        self.clock = clock
        self.recorder = recorder  # records calls for their results; None: results are off
        self.phone_window = phone_window  # the longest `phone_limit` window of any template

    def __repr__(self) -> str:
        return f"Caller({self.provider!r})"

    async def call(self, call: Call, attempts: int) -> Outcome | NotCalled:
        """The outcome of `call`, made at most once, after `attempts` earlier provider attempts."""
        try:
            # The provider's slow-down and the rate limit's wait come first: nothing is taken
            # while waiting, and a process that stops meanwhile leaves no claim behind.
            if not self.throttle.slowed:  # the usual case, without a context to enter
                return await self._claim_and_call(call, attempts, self.throttle.free())
            async with self.throttle.turn() as turn:
                return await self._claim_and_call(call, attempts, turn)
        except StoreUnavailable as exc:
            return NotCalled(exc, attempts)

    async def _claim_and_call(self, call: Call, attempts: int, turn: Turn) -> Outcome | NotCalled:
        """Claim the idempotency key with the call's TTS characters, then call once."""
        await self.pace.wait()
        reservation = self.budget.ask(call.tts_chars)
        limited = call.template.options.phone_limit is not None
        margin = self.provider.call_time if limited else 0.0
        guard = guard_of(call, self.clock().timestamp(), self.phone_window, margin)
        claiming = self.store.claim(call.idempotency_key, call.event.id, reservation, guard)
        claim = await tracing.claimed(claiming)
        if claim.state is State.BUSY and claim.event_id == call.event.id:
            claim = await self._wait_for(call, reservation, guard)
        if claim.state in (State.SUPPRESSED, State.PHONE_LIMIT):
            return Outcome.skipped(call.event.identity, claim.state.value, self.clock(), call=call)
        try:
            self.budget.check(reservation, claim)
        except QuotaExceeded as exc:
            return NotCalled(exc, attempts)
        if claim.state is not State.NEW:
            return await self._claimed(call, claim, attempts)
        return await self._execute(call, reservation, attempts, turn)

    async def _execute(
        self, call: Call, reservation: Reservation | None, attempts: int, turn: Turn
    ) -> Outcome | NotCalled:
        """The request, with the key claimed: accepted, refused (the key released) or unknown."""
        # From here the request may leave at any moment: cancelled or not, the key stays taken
        # unless the provider says no call was made.
        try:
            accepted = await self.provider.execute(call.request)
        except OutcomeUnknown as exc:
            now = self.clock()
            unknown = Outcome.failed(
                call.event.identity, exc, now, call=call, attempts=attempts + 1
            )
            return await self._complete(unknown, call)
        except AutocallError as exc:
            turn.answered(exc)
            await self.budget.refund(reservation)
            await self.store.release(call.idempotency_key)
            if isinstance(exc, DoNotCall):
                return await self._do_not_call(call, attempts + 1)
            return NotCalled(exc, attempts + 1)
        turn.answered(None)
        outcome = Outcome.accepted(call, accepted.autocall_id, attempts + 1, self.clock())
        return await self._complete(outcome, call, accepted.autocall_uuids)

    async def _do_not_call(self, call: Call, attempts: int) -> Outcome:
        """On the provider's do-not-call list: skipped, and on ours, so that the number's next
        events are skipped without a request."""
        now = self.clock()
        if call.customer is not None:
            entry = Suppression(call.customer, PROVIDER_DO_NOT_CALL, None, now.timestamp())
            try:
                await self.store.suppress(entry)
            except StoreUnavailable as exc:
                log.warning("cannot add %s to the suppression list: %s", call.phone, exc.message)
        return Outcome.skipped(
            call.event.identity, DO_NOT_CALL_CODE, now, call=call, attempts=attempts
        )

    async def _claimed(self, call: Call, claim: Claim, attempts: int) -> Outcome:
        """The key was taken before: a duplicate, a replay, or a call that may have been made."""
        now = self.clock()
        if claim.event_id != call.event.id:
            return Outcome.skipped(call.event.identity, "duplicate", now, call=call)
        if claim.state is State.DONE and claim.outcome is not None:
            return Outcome.replay(claim.outcome, call)
        unknown = OutcomeUnknown(
            "an earlier delivery of this event was calling when its process stopped; "
            "the call may have been made, so it is not made again"
        )
        failed = Outcome.failed(call.event.identity, unknown, now, call=call, attempts=attempts + 1)
        return await self._complete(failed, call)

    async def _complete(self, outcome: Outcome, call: Call, uuids: tuple[str, ...] = ()) -> Outcome:
        """Mark the key done with this outcome, so a redelivery replays it instead of calling;
        record the call for its results alongside (one store round trip for both)."""
        key = outcome.idempotency_key or ""
        done = self.store.complete(key, str(outcome.event["id"]), outcome.record())
        recorded = self._record(call, outcome, uuids)  # queued behind it: one round trip for both
        try:
            await done
        except StoreUnavailable as exc:
            # The call is made either way: report it. The claim stays, so no one calls again.
            log.warning("cannot mark %s done: %s", outcome.event["id"], exc.message)
        finally:
            if recorded is not None:
                await recorded  # never raises: a record the store missed is logged
        return outcome

    def _record(
        self, call: Call, outcome: Outcome, uuids: tuple[str, ...]
    ) -> Awaitable[None] | None:
        if self.recorder is None:
            return None
        if outcome.status == "accepted" and outcome.autocall_id:
            return self.recorder.accepted(call, outcome.autocall_id, self.clock(), uuids)
        if outcome.code == OutcomeUnknown.code:
            return self.recorder.unknown(call, self.clock())
        return None

    async def _wait_for(
        self, call: Call, reservation: Reservation | None, guard: Guard | None
    ) -> Claim:
        """The same event is being processed by another delivery (after a broker reconnect):
        wait until that one finishes rather than report it twice or call again."""
        deadline = time.monotonic() + self.provider.call_time
        claim = Claim(State.BUSY, call.event.id)
        while claim.state is State.BUSY and time.monotonic() < deadline:
            await asyncio.sleep(BUSY_WAIT)
            claim = await self.store.claim(call.idempotency_key, call.event.id, reservation, guard)
        return claim


def guard_of(call: Call, now: float, keep: float, margin: float) -> Guard | None:
    """The protections of the call's number: the suppression list, and its template's
    `phone_limit` (a slot counts until `window` after `margin`, when the provider may still
    accept the call; slots are kept `keep` seconds, the longest window of any template)."""
    if call.customer is None:
        return None
    limit = call.template.options.phone_limit
    if limit is None:
        return Guard(call.customer, now)
    return Guard(call.customer, now, limit.calls, limit.window, keep, margin)
