"""The idempotent call: claim the key → call once → complete it, waiting on a busy key."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from datetime import datetime

import orjson

from .. import tracing
from ..accounts.registry import CallClient, Live, Registry
from ..errors import (
    AutocallError,
    DoNotCall,
    OutcomeUnknown,
    QuotaExceeded,
    StoreUnavailable,
    UnknownAccount,
)
from ..metrics import Metrics
from ..render import Call
from ..results.recorder import Recorder
from ..store import Claim, Guard, Reservation, State, Store
from .budget import Budget
from .failover import (
    Hops,
    NotCalled,
    Route,
    failover_code,
    over_budget,
    parked,
    route,
    via_note,
    waiting,
)
from .guard import do_not_call, guard_of
from .holds import AccountHolds
from .outcomes import Outcome
from .pace import Pace
from .throttle import Throttle, Turn

log = logging.getLogger("autocall")
BUSY_WAIT = 0.2  # seconds between looks at a key another delivery of the same event holds


class Caller:
    """Calls the provider at most once per idempotency key, even across redeliveries and
    across accounts: one claim of the key covers every account a failover tries."""

    def __init__(
        self,
        store: Store,
        budget: Budget | None,
        provider: CallClient | None,
        clock: Callable[[], datetime],
        pace: Pace | None = None,
        *,
        registry: Registry | None = None,
        holds: AccountHolds | None = None,
        metrics: Metrics | None = None,
        recorder: Recorder | None = None,
        phone_window: float = 0.0,
        throttle: Throttle | None = None,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.pace = pace or Pace(store, 0)
        self._monotonic = monotonic  # the throttles' clock
        self.throttle = throttle or Throttle(clock=monotonic)
        self.store = store
        if registry is None:
            assert provider is not None and budget is not None
            registry = Registry.single(provider, budget)
        self.registry = registry
        self._throttles = {registry.names()[0]: self.throttle}
        self.metrics = metrics or Metrics()
        self.holds = holds or AccountHolds(60.0, self.metrics, clock)
        self.hops = Hops(self.holds, self.metrics)
        self.clock = clock
        self.recorder = recorder  # records calls for their results; None: results are off
        self.phone_window = phone_window  # the longest `phone_limit` window of any template

    def __repr__(self) -> str:
        return f"Caller({self.registry!r})"

    async def call(self, call: Call, attempts: int) -> Outcome | NotCalled:
        """The outcome of `call`, made at most once, after `attempts` earlier provider attempts."""
        chain = self.registry.chain(call.account)
        if not chain:
            unknown = UnknownAccount(f"no account {call.account[:50]!r} in the accounts file")
            return Outcome.failed(call.event.identity, unknown, self.clock(), call=call)
        try:
            return await self._route(call, chain, attempts)
        except StoreUnavailable as exc:
            return NotCalled(exc, attempts)

    def throttle_of(self, account: str) -> Throttle:
        """Each account's own slow-down (the first account's is `throttle`)."""
        throttle = self._throttles.get(account)
        if throttle is None:
            throttle = self._throttles[account] = Throttle(clock=self._monotonic)
        return throttle

    async def _route(self, call: Call, chain: list[Live], attempts: int) -> Outcome | NotCalled:
        """Route to the event's account (or past it: held, or slowed down by its provider),
        then wait for its turn, claim the key and call once."""
        planned = route(chain, self.holds, call.holds, self._slowed)
        try:
            if planned.waiting is not None:
                return waiting(planned, self.holds, attempts)
            throttle = self.throttle_of(planned.accounts[0].name)
            # The provider's slow-down and the rate limit's wait come first: nothing is taken
            # while waiting, and a process that stops meanwhile leaves no claim behind.
            if not throttle.slowed:  # the usual case, without a context to enter
                return await self._claim_on(call, planned, attempts, throttle.free())
            # With several accounts the wait is not spent in a consumer slot: the other
            # accounts' events need them. The event comes back when the wait is over.
            async with throttle.turn(park=self.registry.many) as turn:
                if turn.left > 0:
                    return parked(planned, attempts, turn.left)
                return await self._claim_on(call, planned, attempts, turn)
        finally:
            for name in planned.probes:
                self.holds.end_probe(name)

    def _slowed(self, account: str) -> bool:
        """Whether `account`'s requests wait now (once its wait ends, one event probes it)."""
        throttle = self._throttles.get(account)
        return throttle is not None and throttle.holding_back

    async def _claim_on(
        self, call: Call, planned: Route, attempts: int, turn: Turn
    ) -> Outcome | NotCalled:
        """Claim the key with the first account's TTS characters (the next account's, while
        they do not fit and there is one), then call."""
        await self.pace.wait()
        limited = call.template.options.phone_limit is not None
        margin = self.registry.chain_time(call.account) if limited else 0.0
        guard = guard_of(call, self.clock().timestamp(), self.phone_window, margin)
        accounts = planned.accounts
        for index, live in enumerate(accounts):
            reservation = live.budget.ask(call.tts_chars)
            via = via_note(live, planned.hops)  # where the call goes, if the process stops
            key, event_id = call.idempotency_key, call.event.id
            claiming = self.store.claim(key, event_id, reservation, guard, via)
            claim = await tracing.claimed(claiming)
            if claim.state is State.BUSY and claim.event_id == call.event.id:
                claim = await self._wait_for(call, reservation, guard, via)
            if claim.state is not State.OVER_BUDGET or index == len(accounts) - 1:
                break
            self.hops.leave(planned, index, over_budget(live, reservation, claim))
        if claim.state in (State.SUPPRESSED, State.PHONE_LIMIT):
            return Outcome.skipped(call.event.identity, claim.state.value, self.clock(), call=call)
        try:
            live.budget.check(reservation, claim)
        except QuotaExceeded as exc:
            return NotCalled(exc, attempts, live.name, planned.hops)
        if claim.state is not State.NEW:
            return await self._claimed(call, claim, attempts)
        if index:  # past accounts whose budget is spent: the account called answers for itself
            planned.accounts, turn = accounts[index:], self.throttle_of(live.name).free()
        return await self._call_from(call, planned, reservation, attempts, turn)

    async def _call_from(
        self,
        call: Call,
        planned: Route,
        reservation: Reservation | None,
        attempts: int,
        turn: Turn,
        *,
        take: bool = False,
    ) -> Outcome | NotCalled:
        """Call on the route's first account (taking its TTS characters first, when `take`);
        on the next one only when this one proved that it placed no call. From here the
        request may leave at any moment: cancelled or not, the key stays taken unless every
        account tried says no call was made."""
        live, sent = planned.accounts[0], False
        self.hops.tried(planned)
        try:
            if take:
                reservation = await live.budget.take(call.tts_chars)
                await self.store.trying(call.idempotency_key, via_note(live, planned.hops))
            sent = True
            accepted = await live.client.execute(live.request(call.request))
        except OutcomeUnknown as exc:
            unknown = Outcome.failed(
                call.event.identity, exc, self.clock(), call=call, attempts=attempts + 1
            )
            return await self._complete(self._via(unknown, live, planned), call)
        except AutocallError as exc:
            if sent:  # the answer slows down (or frees) the throttle of the account that gave it
                turn.answered(exc)
            return await self._refused(call, planned, (exc, reservation), attempts + sent)
        turn.answered(None)
        self.holds.release(live.name)
        outcome = Outcome.accepted(call, accepted.autocall_id, attempts + 1, self.clock())
        via = self._via(outcome, live, planned)
        return await self._complete(via, call, accepted.autocall_uuids)

    async def _refused(
        self,
        call: Call,
        planned: Route,
        refusal: tuple[AutocallError, Reservation | None],
        attempts: int,
    ) -> Outcome | NotCalled:
        """The route's first account placed no call: on to the next one the route allows (its
        hold and throttle as for a new event) when the refusal says it would not refuse too."""
        (exc, reservation), live = refusal, planned.accounts[0]
        code = failover_code(exc)
        rest = self._rest(call, planned, exc, code) if code is not None else None
        if rest is None or not rest.accounts:  # the key before the refund, which only counts
            await self.store.release(call.idempotency_key)
        await live.budget.refund(reservation)
        if rest is not None and rest.accounts:
            async with self.throttle_of(rest.accounts[0].name).turn() as turn:
                return await self._call_from(call, rest, None, attempts, turn, take=True)
        if rest is not None and rest.waiting is not None:
            return waiting(rest, self.holds, attempts)
        if isinstance(exc, DoNotCall):
            return await do_not_call(self.store, call, self.clock(), attempts)
        return NotCalled(exc, attempts, live.name, planned.hops)

    def _rest(self, call: Call, planned: Route, error: AutocallError, code: str) -> Route | None:
        """The route on past the first account, which refused; None when it was the last."""
        if len(planned.accounts) == 1:
            return None
        self.hops.leave(planned, 0, error, code)
        rest = route(planned.accounts[1:], self.holds, call.holds, self._slowed, into=planned)
        rest.counted = planned.counted
        return rest

    def _via(self, outcome: Outcome, live: Live, planned: Route) -> Outcome:
        return outcome.via(live.name, live.provider, [hop.as_json() for hop in planned.hops])

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
        if claim.via is not None:  # the account it was calling on: its results are looked for
            failed.via(**orjson.loads(claim.via))
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
            at = self.clock()
            return self.recorder.accepted(call, outcome.autocall_id, at, uuids, outcome.account)
        if outcome.code == OutcomeUnknown.code:
            return self.recorder.unknown(call, self.clock(), outcome.account)
        return None

    async def _wait_for(
        self, call: Call, reservation: Reservation | None, guard: Guard | None, via: bytes
    ) -> Claim:
        """The same event is being processed by another delivery (after a broker reconnect):
        wait until that one finishes rather than report it twice or call again."""
        deadline = time.monotonic() + self.registry.chain_time(call.account)
        claim = Claim(State.BUSY, call.event.id)
        while claim.state is State.BUSY and time.monotonic() < deadline:
            await asyncio.sleep(BUSY_WAIT)
            key, event_id = call.idempotency_key, call.event.id
            claim = await self.store.claim(key, event_id, reservation, guard, via)
        return claim
