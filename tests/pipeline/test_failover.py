"""Failover without I/O: which failures send an event on to the next account, under one claim
of its key; which never do."""

from __future__ import annotations

import asyncio

import orjson
import pytest

from service.errors import (
    ACCOUNT_CODES,
    AccountRefused,
    AutocallError,
    BalanceTooLow,
    DoNotCall,
    NumberRefused,
    OutcomeUnknown,
    ProviderError,
    ProviderUnavailable,
    QuotaExceeded,
    Throttled,
    Unauthorized,
)
from service.pipeline.failover import NotCalled
from service.pipeline.outcomes import Outcome
from tests.failover_rig import Client, call_to, rig

REASONS: list[tuple[AutocallError, str]] = [
    (BalanceTooLow("balance"), "balance_is_not_enough"),
    (QuotaExceeded("words", code="limit_word"), "limit_word"),
    (QuotaExceeded("service", code="limit_service"), "limit_service"),
    (Unauthorized("the key is refused"), "unauthorized"),
    (
        ProviderUnavailable("cannot connect to the provider: Connection refused"),
        "provider_unavailable",
    ),
    (
        ProviderUnavailable("the connection was reset before the request was sent"),
        "provider_unavailable",
    ),
    (ProviderUnavailable("HTTP 503: Service Unavailable"), "provider_unavailable"),
    (Throttled("HTTP 429: Too Many Requests", retry_after=2.0), "rate_limit_exceeded"),
    (Throttled("rate_limit_exceeded"), "rate_limit_exceeded"),
    (AccountRefused("disabled", code="tenant_disabled"), "tenant_disabled"),
    *[
        (ProviderError(code, code=code), code)
        for code in sorted(
            ACCOUNT_CODES - {"balance_is_not_enough", "limit_word", "limit_service", "unauthorized"}
        )
    ],
]


@pytest.mark.parametrize(("error", "code"), REASONS, ids=[code for _, code in REASONS])
async def test_fails_over_at_once_when_no_call_was_placed(error: AutocallError, code: str) -> None:
    r = rig(Client("shop-a", error), Client("shop-b"))

    outcome = await r.call(call_to())

    assert isinstance(outcome, Outcome) and outcome.status == "accepted", outcome
    assert (outcome.account, outcome.provider) == ("shop-b", "omicall")
    assert outcome.failover == [{"account": "shop-a", "code": code}]
    assert outcome.autocall_id == "shop-b-1" and outcome.attempts == 2
    assert len(r.clients["shop-a"].requests) == len(r.clients["shop-b"].requests) == 1
    assert r.failovers("shop-a", "shop-b", code) == 1
    body = orjson.loads(outcome.body())
    assert body["account"] == "shop-b" and body["failover"] == [{"account": "shop-a", "code": code}]


NEVER: list[AutocallError] = [
    NumberRefused("refused", code="invalid_phone_number"),
    NumberRefused("refused", code="number_call_out_invalid"),
    ProviderError("bad request", code="data_is_required"),
    QuotaExceeded("too long", code="limit_word_session"),
    ProviderError("no code", code="provider_error"),
]


@pytest.mark.parametrize("error", NEVER, ids=[e.code for e in NEVER])
async def test_never_fails_over_when_the_next_account_would_refuse_it_too(
    error: AutocallError,
) -> None:
    r = rig(Client("shop-a", error), Client("shop-b"))

    outcome = await r.call(call_to())

    assert isinstance(outcome, NotCalled) and outcome.error is error
    assert outcome.account == "shop-a" and outcome.hops == []
    assert r.clients["shop-b"].requests == []
    # no call was made: the key is free again for a corrected event
    assert isinstance(await r.call(call_to(event_id="e-2")), Outcome)


async def test_never_fails_over_after_a_time_out_once_sent() -> None:
    r = rig(
        Client("shop-a", OutcomeUnknown("the request was sent, then no answer came in time")),
        Client("shop-b"),
    )

    outcome = await r.call(call_to())

    assert isinstance(outcome, Outcome) and outcome.code == "outcome_unknown"
    assert outcome.account == "shop-a" and outcome.failover == []
    assert r.clients["shop-b"].requests == []
    # the key stays taken: a redelivery does not call either account
    again = await r.call(call_to())
    assert isinstance(again, Outcome) and again.code == "outcome_unknown"
    assert r.clients["shop-b"].requests == [] and len(r.clients["shop-a"].requests) == 1


async def test_one_key_one_call_across_accounts() -> None:
    r = rig(Client("shop-a", BalanceTooLow("b")), Client("shop-b"))
    first = await r.call(call_to(event_id="e-1"))

    duplicate = await r.call(call_to(event_id="e-2"))  # another event, the same key
    replay = await r.call(call_to(event_id="e-1"))  # a redelivery of the first

    assert isinstance(first, Outcome) and first.account == "shop-b"
    assert isinstance(duplicate, Outcome) and duplicate.reason == "duplicate"
    assert isinstance(replay, Outcome) and replay.autocall_id == first.autocall_id
    assert (replay.account, replay.failover) == ("shop-b", first.failover)
    assert len(r.clients["shop-a"].requests) == len(r.clients["shop-b"].requests) == 1


async def test_the_last_account_failing_too_is_the_event_s_failure() -> None:
    r = rig(Client("shop-a", BalanceTooLow("b")), Client("shop-b", ProviderUnavailable("HTTP 503")))

    outcome = await r.call(call_to())

    assert isinstance(outcome, NotCalled) and outcome.error.code == "provider_unavailable"
    assert outcome.account == "shop-b" and outcome.attempts == 2
    assert [(h.account, h.code) for h in outcome.hops] == [("shop-a", "balance_is_not_enough")]
    assert isinstance(await r.call(call_to(event_id="e-2")), Outcome)  # the key was released


async def test_another_provider_s_balance_code_fails_over_and_holds() -> None:
    r = rig(
        Client("shop-a", BalanceTooLow("not enough money", code="stringee_8")), Client("shop-b")
    )

    outcome = await r.call(call_to())

    assert isinstance(outcome, Outcome) and outcome.account == "shop-b"
    assert outcome.failover == [{"account": "shop-a", "code": "stringee_8"}]
    assert r.caller.holds.reason("shop-a") == "stringee_8"


async def test_the_provider_s_do_not_call_list_is_a_skip_on_any_account() -> None:
    r = rig(Client("shop-a", DoNotCall("on its list", code="do_not_call")), Client("shop-b"))

    outcome = await r.call(call_to())

    assert isinstance(outcome, Outcome) and (outcome.status, outcome.reason) == (
        "skipped",
        "do_not_call",
    )
    assert r.clients["shop-b"].requests == []


async def test_a_redelivery_waits_for_the_whole_failover_chain() -> None:
    # each account answers within its call time (1 s), the chain takes longer than one
    r = rig(
        Client("shop-a", ProviderUnavailable("HTTP 503"), delay=0.8),
        Client("shop-b", delay=0.8),
    )
    first = asyncio.create_task(r.call(call_to()))
    await r.clients["shop-a"].sent.wait()  # then a second delivery, after a broker reconnect

    second = await r.call(call_to())

    assert isinstance(second, Outcome) and second.status == "accepted", second
    done = await first
    assert isinstance(done, Outcome) and done.autocall_id == second.autocall_id == "shop-b-1"


async def test_a_failover_cut_short_names_the_account_that_was_calling() -> None:
    r = rig(Client("shop-a", ProviderUnavailable("HTTP 503")), Client("shop-b", delay=30))
    for client in r.clients.values():
        client.call_time = 0.1  # how long the redelivery waits for the first delivery
    first = asyncio.create_task(r.call(call_to()))
    await r.clients["shop-b"].sent.wait()
    first.cancel()  # the process stops while shop-b's request is out

    again = await r.call(call_to())

    assert isinstance(again, Outcome) and again.code == "outcome_unknown", again
    assert (again.account, again.provider) == ("shop-b", "omicall")
    assert again.failover == [{"account": "shop-a", "code": "provider_unavailable"}]
    assert len(r.clients["shop-b"].requests) == 1


async def test_a_failover_passes_over_a_held_next_account() -> None:
    r = rig(Client("shop-a", ProviderUnavailable("HTTP 503")), Client("shop-b"), Client("shop-c"))
    r.caller.holds.hold("shop-b", "balance_is_not_enough")  # its probe is not due

    outcome = await r.call(call_to())

    assert isinstance(outcome, Outcome) and outcome.account == "shop-c", outcome
    assert outcome.failover == [
        {"account": "shop-a", "code": "provider_unavailable"},
        {"account": "shop-b", "code": "balance_is_not_enough"},
    ]
    assert r.clients["shop-b"].requests == []
    assert r.failovers("shop-a", "shop-b", "provider_unavailable") == 1
    assert r.failovers("shop-b", "shop-c", "balance_is_not_enough") == 1


async def test_a_failover_passes_over_a_throttled_next_account() -> None:
    r = rig(
        Client("shop-a", BalanceTooLow("b")),
        Client("shop-b", Throttled("HTTP 429", retry_after=30.0)),
        Client("shop-c"),
        failover={"shop-a": ("shop-b", "shop-c"), "shop-b": ("shop-c",)},
    )
    await r.call(call_to(account="shop-b", code="B1"))  # shop-b's provider slows it down

    outcome = await r.call(call_to(code="A1"))

    assert isinstance(outcome, Outcome) and outcome.account == "shop-c", outcome
    assert outcome.failover == [
        {"account": "shop-a", "code": "balance_is_not_enough"},
        {"account": "shop-b", "code": "rate_limit_exceeded"},
    ]
    assert len(r.clients["shop-b"].requests) == 1  # only the request it throttled


async def test_a_failover_to_a_held_last_account_waits_with_the_key_free() -> None:
    r = rig(Client("shop-a", ProviderUnavailable("HTTP 503")), Client("shop-b"))
    r.caller.holds.hold("shop-b", "balance_is_not_enough")

    outcome = await r.call(call_to(on_exhausted="hold"))

    assert isinstance(outcome, NotCalled) and outcome.waiting and outcome.account == "shop-b"
    assert r.clients["shop-b"].requests == []
    assert r.failovers("shop-a", "shop-b", "provider_unavailable") == 0  # nothing tried there
    assert isinstance(await r.call(call_to(event_id="e-2")), Outcome)  # the key was released


async def test_failovers_are_counted_only_when_the_next_account_is_tried() -> None:
    r = rig(Client("shop-a"), Client("shop-b"))
    r.caller.holds.hold("shop-a", "balance_is_not_enough")
    r.caller.holds.hold("shop-b", "balance_is_not_enough")
    for code in ("A1", "A2", "A3"):  # every account held: the events wait
        waiting = await r.call(call_to(code=code, on_exhausted="hold"))
        assert isinstance(waiting, NotCalled) and waiting.waiting
    r.caller.holds.release("shop-b")
    await r.call(call_to(code="A4"))
    duplicate = await r.call(call_to(code="A4", event_id="e-2"))  # another event, the same key

    assert isinstance(duplicate, Outcome) and duplicate.reason == "duplicate"
    assert r.failovers("shop-a", "shop-b", "balance_is_not_enough") == 1
