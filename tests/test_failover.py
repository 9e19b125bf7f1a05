"""Failover without I/O: which failures send an event on to the next account, under one claim
of its key; which never do; a held account's events go straight on; the budget by account."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime

import orjson
import pytest

from service.accounts import Accounts, AccountSpec
from service.accounts.registry import Live, Registry
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
from service.events import Message, decode
from service.metrics import Metrics
from service.pipeline.budget import Budget
from service.pipeline.caller import Caller, NotCalled
from service.pipeline.holds import AccountHolds
from service.pipeline.outcomes import Outcome
from service.provider.omicall.client import Accepted
from service.render import Call, Request, decide
from service.store import MemoryStore
from service.templates import parse

NOW = datetime(2026, 11, 27, 7, 30, tzinfo=UTC)


class Client:
    """A provider's client that answers from a script: an error to raise, or accept."""

    call_time = 1.0

    def __init__(self, name: str, *answers: AutocallError | None) -> None:
        self.name = name
        self.answers = list(answers)
        self.requests: list[Request] = []

    async def execute(self, request: Request) -> Accepted:
        self.requests.append(request)
        answer = self.answers.pop(0) if self.answers else None
        if answer is not None:
            raise answer
        return Accepted(f"{self.name}-{len(self.requests)}")


class Clock:
    def __init__(self) -> None:
        self.seconds = 1000.0

    def __call__(self) -> float:
        return self.seconds


@dataclasses.dataclass
class Rig:
    caller: Caller
    clients: dict[str, Client]
    metrics: Metrics
    store: MemoryStore
    monotonic: Clock

    async def call(self, call: Call) -> Outcome | NotCalled:
        return await self.caller.call(call, 0)

    def failovers(self, left: str, to: str, code: str) -> float:
        labels = {"from": left, "to": to, "code": code}
        return self.metrics.registry.get_sample_value("autocall_failovers_total", labels) or 0.0


def rig(
    *clients: Client, failover: dict[str, tuple[str, ...]] | None = None, limit: int = 3000
) -> Rig:
    store, metrics, monotonic = MemoryStore(60), Metrics(), Clock()
    specs = {c.name: AccountSpec(c.name, "omicall", "http://x", limit) for c in clients}
    chain = {clients[0].name: tuple(c.name for c in clients[1:])} if failover is None else failover
    accounts = Accounts(specs, chain, "test")
    live = {
        c.name: Live(specs[c.name], c, Budget(store, limit, metrics, lambda: NOW, account=c.name))
        for c in clients
    }
    holds = AccountHolds(60.0, metrics, lambda: NOW, monotonic)
    registry = Registry(accounts, live)
    caller = Caller(store, None, None, lambda: NOW, registry=registry, holds=holds, metrics=metrics)
    return Rig(caller, {c.name: c for c in clients}, metrics, store, monotonic)


def call_to(
    account: str = "shop-a", code: str = "A1", on_exhausted: str = "fail", event_id: str = "e-1"
) -> Call:
    templates = parse(
        "version: 1\ntemplates:\n"
        "  - name: t\n    event: order.created\n"
        f"    on_exhausted: {on_exhausted}\n"
        '    account: "{{ data.shop }}"\n'
        '    phone: "0912345678"\n    idempotency_key: "order:{{ data.code }}"\n'
        '    script:\n      - say: "Xin chào {{ data.code }}"\n',
        "test",
    )
    body = orjson.dumps({"shop": account, "code": code})
    decision = decide(
        templates, decode(Message(body, type="order.created", message_id=event_id)), NOW
    )
    assert isinstance(decision, Call), decision
    return decision


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


async def test_a_held_account_sends_its_events_straight_on_and_is_probed() -> None:
    r = rig(Client("shop-a", BalanceTooLow("b")), Client("shop-b"))
    await r.call(call_to(code="A1"))
    assert (
        r.metrics.registry.get_sample_value(
            "autocall_account_held", {"account": "shop-a", "reason": "balance_is_not_enough"}
        )
        == 1
    )

    passed = await r.call(call_to(code="A2"))

    assert isinstance(passed, Outcome) and passed.account == "shop-b"
    assert passed.failover == [{"account": "shop-a", "code": "balance_is_not_enough"}]
    assert len(r.clients["shop-a"].requests) == 1  # not asked again while held
    r.monotonic.seconds += 61  # the probe interval: the next event tries shop-a first
    probe = await r.call(call_to(code="A3"))
    assert isinstance(probe, Outcome) and probe.account == "shop-a" and probe.failover == []
    assert r.caller.holds.reason("shop-a") is None
    assert (
        r.metrics.registry.get_sample_value(
            "autocall_account_held", {"account": "shop-a", "reason": "balance_is_not_enough"}
        )
        == 0
    )


async def test_an_account_whose_day_budget_is_spent_fails_over_without_a_request() -> None:
    r = rig(Client("shop-a"), Client("shop-b"), limit=12)
    first = await r.call(call_to(code="A1"))  # 11 characters: "Xin chào A1"

    second = await r.call(call_to(code="A2"))

    assert isinstance(first, Outcome) and first.account == "shop-a"
    assert isinstance(second, Outcome) and second.account == "shop-b"
    assert second.failover == [{"account": "shop-a", "code": "limit_word"}]
    assert len(r.clients["shop-a"].requests) == 1
    assert await r.store.tts_used("shop-a:2026-11-27") == 11
    assert await r.store.tts_used("shop-b:2026-11-27") == 11


async def test_the_budget_taken_on_an_account_that_refused_is_given_back() -> None:
    r = rig(Client("shop-a", ProviderUnavailable("HTTP 503")), Client("shop-b"))

    await r.call(call_to())

    assert await r.store.tts_used("shop-a:2026-11-27") == 0
    assert await r.store.tts_used("shop-b:2026-11-27") == 11


async def test_the_last_account_failing_too_is_the_event_s_failure() -> None:
    r = rig(Client("shop-a", BalanceTooLow("b")), Client("shop-b", ProviderUnavailable("HTTP 503")))

    outcome = await r.call(call_to())

    assert isinstance(outcome, NotCalled) and outcome.error.code == "provider_unavailable"
    assert outcome.account == "shop-b" and outcome.attempts == 2
    assert [(h.account, h.code) for h in outcome.hops] == [("shop-a", "balance_is_not_enough")]
    assert isinstance(await r.call(call_to(event_id="e-2")), Outcome)  # the key was released


async def test_without_a_failover_list_a_held_account_makes_its_holding_events_wait() -> None:
    r = rig(Client("shop-a", BalanceTooLow("b")), Client("shop-b"), failover={})
    refused = await r.call(call_to(on_exhausted="hold"))
    assert isinstance(refused, NotCalled) and not refused.waiting
    r.caller.holds.hold("shop-a", refused.error.code)  # as the consumer does

    waiting = await r.call(call_to(code="A2", on_exhausted="hold"))
    other = await r.call(call_to(account="shop-b", code="B1", on_exhausted="hold"))

    assert isinstance(waiting, NotCalled) and waiting.waiting and waiting.account == "shop-a"
    assert len(r.clients["shop-a"].requests) == 1
    assert isinstance(other, Outcome) and other.status == "accepted"


async def test_an_account_that_does_not_exist_fails_the_event() -> None:
    r = rig(Client("shop-a"))

    outcome = await r.call(call_to(account="shop-x"))

    assert isinstance(outcome, Outcome) and outcome.status == "failed"
    assert outcome.error == {
        "code": "unknown_account",
        "message": "no account 'shop-x' in the accounts file",
        "retryable": False,
    }


async def test_an_account_s_caller_line_is_used_when_the_template_sets_none() -> None:
    client = Client("shop-a")
    r = rig(client)
    live = r.caller.registry.get("shop-a")
    assert live is not None
    live.spec = dataclasses.replace(live.spec, cid="842899959300")

    await r.call(call_to())

    assert client.requests[0].json["cid"] == "842899959300"


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
