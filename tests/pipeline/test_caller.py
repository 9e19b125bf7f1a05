"""The idempotent call on the memory store: at most one provider call per key, whatever comes."""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

from service.errors import (
    DoNotCall,
    OutcomeUnknown,
    ProviderUnavailable,
    StoreUnavailable,
    Throttled,
)
from service.metrics import Metrics
from service.pipeline.budget import Budget
from service.pipeline.caller import Caller
from service.pipeline.failover import NotCalled
from service.pipeline.outcomes import Outcome
from service.provider.edge import Accepted
from service.render import Call
from service.results.recorder import Recorder
from service.results.store import MemoryResults
from service.store import Claim, MemoryStore, State, Suppression
from tests.fakes import Provider
from tests.helpers import call_of

NOW = datetime(2026, 11, 27, 7, 30, tzinfo=UTC)


def caller_of(
    provider: Provider, store: MemoryStore | None = None, recorder: Recorder | None = None
) -> Caller:
    store = store or MemoryStore(3600)
    budget = Budget(store, 10_000, Metrics(), lambda: NOW)
    return Caller(store, budget, provider, lambda: NOW, recorder=recorder)


def of_event(call: Call, event_id: str) -> Call:
    """The same decided call, for another event (with the same idempotency key)."""
    return replace(call, event=replace(call.event, id=event_id))


async def test_an_accepted_call_is_made_once_and_replayed_on_redelivery() -> None:
    provider = Provider([Accepted("a-9")])
    caller, call = caller_of(provider), call_of()
    first = await caller.call(call, 0)
    assert isinstance(first, Outcome)
    assert (first.status, first.autocall_id, first.attempts) == ("accepted", "a-9", 1)
    again = await caller.call(call_of(), 0)  # decided again
    assert isinstance(again, Outcome) and again.status == "accepted"
    assert again.autocall_id == "a-9"
    assert len(provider.requests) == 1


async def test_another_event_with_the_same_key_is_a_duplicate() -> None:
    provider = Provider()
    caller, call = caller_of(provider), call_of()
    await caller.call(call, 0)
    outcome = await caller.call(of_event(call, "e-2"), 0)
    assert isinstance(outcome, Outcome)
    assert (outcome.status, outcome.reason) == ("skipped", "duplicate")
    assert len(provider.requests) == 1


async def test_a_provider_failure_releases_the_key_for_the_retry() -> None:
    provider = Provider([ProviderUnavailable("down")])
    caller, call = caller_of(provider), call_of()
    failed = await caller.call(call, 2)
    assert isinstance(failed, NotCalled)
    assert (failed.error.code, failed.attempts) == ("provider_unavailable", 3)
    retried = await caller.call(call, failed.attempts)
    assert isinstance(retried, Outcome) and retried.status == "accepted"
    assert retried.attempts == 4
    assert len(provider.requests) == 2


async def test_an_unknown_outcome_keeps_the_key_and_is_never_called_again() -> None:
    provider = Provider([OutcomeUnknown("timed out after sending")])
    caller, call = caller_of(provider), call_of()
    first = await caller.call(call, 0)
    assert isinstance(first, Outcome) and first.code == "outcome_unknown"
    again = await caller.call(call, 0)
    assert isinstance(again, Outcome) and again.code == "outcome_unknown"
    assert len(provider.requests) == 1


async def test_a_key_left_claimed_by_a_stopped_process_is_not_called() -> None:
    store, call = MemoryStore(3600), call_of()
    await store.claim(call.idempotency_key, call.event.id)  # claimed, never completed
    provider = Provider()
    outcome = await caller_of(provider, store).call(call, 0)
    assert isinstance(outcome, Outcome) and outcome.code == "outcome_unknown"
    assert provider.requests == []


async def test_a_store_that_does_not_answer_is_not_called() -> None:
    class Away(MemoryStore):
        async def claim(self, *args: Any, **kwargs: Any) -> Claim:
            raise StoreUnavailable("no master")

    provider = Provider()
    outcome = await caller_of(provider, Away(3600)).call(call_of(), 1)
    assert isinstance(outcome, NotCalled)
    assert (outcome.error.code, outcome.attempts) == ("store_unavailable", 1)
    assert provider.requests == []


async def test_accepted_calls_are_recorded_for_their_results() -> None:
    results = MemoryResults(10 * 365 * 86400)
    caller = caller_of(Provider(), recorder=Recorder(results))
    await caller.call(call_of(), 0)
    assert await results.open_count() == 1


async def test_a_suppressed_number_is_skipped_without_a_call() -> None:
    store, call = MemoryStore(3600), call_of()
    assert call.customer is not None
    await store.suppress(Suppression(call.customer, "asked not to", None, 0.0))
    provider = Provider()
    outcome = await caller_of(provider, store).call(call, 0)
    assert isinstance(outcome, Outcome)
    assert (outcome.status, outcome.reason) == ("skipped", State.SUPPRESSED.value)
    assert provider.requests == []


async def test_do_not_call_is_skipped_and_suppresses_the_number() -> None:
    store, call = MemoryStore(3600), call_of()
    provider = Provider([DoNotCall("on the provider's list")])
    caller = caller_of(provider, store)
    outcome = await caller.call(call, 0)
    assert isinstance(outcome, Outcome)
    assert (outcome.status, outcome.reason, outcome.attempts) == ("skipped", "do_not_call", 1)
    [entry] = await store.suppressions()
    assert (entry.phone, entry.reason, entry.until) == (call.customer, "provider_do_not_call", None)
    again = await caller.call(of_event(call, "e-2"), 0)  # the key was released: a new event
    assert isinstance(again, Outcome) and again.reason == State.SUPPRESSED.value
    assert len(provider.requests) == 1


async def test_do_not_call_is_skipped_even_when_the_list_cannot_be_written() -> None:
    class Away(MemoryStore):
        async def suppress(self, entry: Suppression) -> None:
            raise StoreUnavailable("no master")

    provider = Provider([DoNotCall("on the provider's list")])
    outcome = await caller_of(provider, Away(3600)).call(call_of(), 0)
    assert isinstance(outcome, Outcome) and outcome.reason == "do_not_call"


async def test_a_throttle_slows_the_next_call_down() -> None:
    provider = Provider([Throttled("429", retry_after=0.05)])
    caller, call = caller_of(provider), call_of()
    throttled = await caller.call(call, 0)
    assert isinstance(throttled, NotCalled) and throttled.error.code == "rate_limit_exceeded"
    assert caller.throttle.slowed
    loop = asyncio.get_running_loop()
    started = loop.time()
    accepted = await caller.call(call, throttled.attempts)
    assert loop.time() - started >= 0.05  # its Retry-After, waited before the key was claimed
    assert isinstance(accepted, Outcome) and accepted.status == "accepted"
    assert not caller.throttle.slowed


async def test_a_request_that_never_reached_a_throttling_provider_keeps_the_slow_down() -> None:
    provider = Provider([Throttled("429", retry_after=0.01), ProviderUnavailable("refused")])
    caller, call = caller_of(provider), call_of()
    await caller.call(call, 0)
    refused = await caller.call(call, 1)
    assert isinstance(refused, NotCalled) and refused.error.code == "provider_unavailable"
    assert caller.throttle.slowed  # nothing said the provider stopped throttling


async def test_a_refused_call_releases_its_key_even_if_the_refund_never_finishes() -> None:
    """The key is released before the characters are refunded: a delivery cancelled in the
    refund (a shutdown's grace ran out) leaves no claim, so its redelivery calls instead of
    reporting outcome_unknown for a call never made."""

    class Stopping(MemoryStore):
        stopping = True

        async def refund_tts(self, day: str, chars: int) -> None:
            if self.stopping:
                raise asyncio.CancelledError
            await super().refund_tts(day, chars)

    provider = Provider([ProviderUnavailable("refused")])
    store = Stopping(3600)
    caller, call = caller_of(provider, store), call_of()
    assert call.tts_chars > 0
    with contextlib.suppress(asyncio.CancelledError):
        await caller.call(call, 0)
    store.stopping = False
    redelivered = await caller.call(call, 1)
    assert isinstance(redelivered, Outcome) and redelivered.status == "accepted"
    assert len(provider.requests) == 2
