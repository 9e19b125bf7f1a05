"""Accounts without I/O: each one's budget and hold, its caller line, an account that does not
exist."""

from __future__ import annotations

import asyncio
import dataclasses

from service.errors import BalanceTooLow, ProviderUnavailable, Throttled
from service.pipeline.actions import PutBack
from service.pipeline.failover import NotCalled
from service.pipeline.outcomes import Outcome
from service.pipeline.retry import Retry
from tests.failover_rig import NOW, Client, call_to, rig


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
    assert r.failovers("shop-a", "shop-b", "balance_is_not_enough") == 2
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


async def test_a_stringee_account_without_a_failover_list_holds_on_its_balance_code() -> None:
    r = rig(Client("shop-a", BalanceTooLow("no money", code="stringee_8")), failover={})
    retry = Retry((0.05,), ("q.retry.1",), jitter=lambda: 1.0)
    refused = await r.call(call_to(on_exhausted="hold"))
    assert isinstance(refused, NotCalled)
    assert retry.after(refused.error, call_to(), 1, 0, NOW) != retry.after(
        refused.error, call_to(on_exhausted="hold"), 1, 0, NOW
    )
    r.caller.holds.hold("shop-a", refused.error.code)  # as the consumer does

    waiting = await r.call(call_to(code="A2", on_exhausted="hold"))

    assert isinstance(waiting, NotCalled) and waiting.waiting
    action = retry.after(waiting.error, call_to(code="A2", on_exhausted="hold"), 1, 0, NOW)
    assert isinstance(action, PutBack) and action.holds and action.reason == "stringee_8"


async def test_a_throttled_account_sends_its_next_events_straight_on() -> None:
    r = rig(Client("shop-a", Throttled("HTTP 429", retry_after=30.0)), Client("shop-b"))
    first = await r.call(call_to(code="A1"))
    assert isinstance(first, Outcome) and first.account == "shop-b"
    assert r.caller.throttle_of("shop-a").slowed
    assert not r.caller.throttle_of("shop-b").slowed

    second = await r.call(call_to(code="A2"))

    assert isinstance(second, Outcome) and second.account == "shop-b"
    assert second.failover == [{"account": "shop-a", "code": "rate_limit_exceeded"}]
    assert len(r.clients["shop-a"].requests) == 1  # not asked while it slows us down
    assert r.failovers("shop-a", "shop-b", "rate_limit_exceeded") == 2


async def test_one_account_s_throttle_does_not_slow_another_account_down() -> None:
    r = rig(
        Client("shop-a", Throttled("HTTP 429", retry_after=30.0)), Client("shop-b"), failover={}
    )
    throttled = await r.call(call_to(code="A1"))
    assert isinstance(throttled, NotCalled) and throttled.error.code == "rate_limit_exceeded"

    async with asyncio.timeout(1):  # shop-a's next request would wait 30 s
        other = await r.call(call_to(account="shop-b", code="B1"))

    assert isinstance(other, Outcome) and other.status == "accepted"
    assert r.caller.throttle_of("shop-a").slowed and not r.caller.throttle_of("shop-b").slowed


async def test_a_throttled_account_is_probed_once_its_wait_is_over() -> None:
    r = rig(Client("shop-a", Throttled("HTTP 429", retry_after=0.01)), Client("shop-b"))
    first = await r.call(call_to(code="A1"))
    assert isinstance(first, Outcome) and first.account == "shop-b"
    r.monotonic.seconds += 3600  # long after its Retry-After

    probe = await r.call(call_to(code="A2"))
    after = await r.call(call_to(code="A3"))

    assert isinstance(probe, Outcome) and (probe.account, probe.failover) == ("shop-a", [])
    assert isinstance(after, Outcome) and after.account == "shop-a"
    assert not r.caller.throttle_of("shop-a").slowed
    assert len(r.clients["shop-a"].requests) == 3 and len(r.clients["shop-b"].requests) == 1


async def test_a_throttled_account_s_probe_in_flight_sends_the_others_on() -> None:
    r = rig(Client("shop-a", Throttled("HTTP 429", retry_after=0.01)), Client("shop-b"))
    await r.call(call_to(code="A1"))
    r.monotonic.seconds += 3600
    r.clients["shop-a"].delay = 0.2  # the probe's answer takes a while
    r.clients["shop-a"].sent.clear()
    probe = asyncio.create_task(r.call(call_to(code="A2")))
    await r.clients["shop-a"].sent.wait()

    async with asyncio.timeout(0.1):  # not behind the probe: on to shop-b at once
        other = await r.call(call_to(code="A3"))

    assert isinstance(other, Outcome) and other.account == "shop-b"
    assert other.failover == [{"account": "shop-a", "code": "rate_limit_exceeded"}]
    done = await probe
    assert isinstance(done, Outcome) and done.account == "shop-a"


def test_a_held_account_s_events_wait_a_full_interval_while_its_probe_is_out() -> None:
    r = rig(Client("shop-a"))
    holds = r.caller.holds
    holds.hold("shop-a", "balance_is_not_enough")
    assert holds.delay_ms("shop-a") == 60_000
    r.monotonic.seconds += 61  # the probe is due: one event takes it
    assert holds.probe_turn("shop-a")

    assert holds.delay_ms("shop-a") == 60_000  # not back every 50 ms while the probe calls
    holds.end_probe("shop-a")
    assert holds.delay_ms("shop-a") == 50  # the probe ended without news: the next one probes


async def test_a_throttled_accounts_backlog_leaves_the_slots_to_the_other_accounts() -> None:
    r = rig(
        Client("shop-a", Throttled("HTTP 429", retry_after=30.0)), Client("shop-b"), failover={}
    )
    await r.call(call_to(code="A0"))  # shop-a's provider slows it down for 30 s
    slots = asyncio.Semaphore(2)  # the consumer's concurrency

    async def in_slot(account: str, code: str) -> Outcome | NotCalled:
        async with slots:
            return await r.call(call_to(account=account, code=code, event_id=code))

    backlog = [asyncio.create_task(in_slot("shop-a", f"A{n}")) for n in range(1, 6)]
    other = await in_slot("shop-b", "B1")

    assert isinstance(other, Outcome) and other.status == "accepted" and other.account == "shop-b"
    parked = await asyncio.gather(*backlog)
    assert all(isinstance(p, NotCalled) and p.parked_ms == 30_000 for p in parked), parked
    assert all(p.attempts == 0 and p.account == "shop-a" for p in parked)
    assert len(r.clients["shop-a"].requests) == 1  # only the request it throttled
    r.monotonic.seconds += 10
    later = await r.call(call_to(code="A1", event_id="A1"))  # back before the wait's end
    assert isinstance(later, NotCalled) and later.parked_ms == 20_000
    r.monotonic.seconds += 20  # the wait is over: each parked event is called once
    after = [await r.call(call_to(code=f"A{n}", event_id=f"A{n}")) for n in range(1, 6)]
    assert all(isinstance(a, Outcome) and a.status == "accepted" for a in after), after
    assert len(r.clients["shop-a"].requests) == 6
