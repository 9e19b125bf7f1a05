"""Each row of CONTRACT.md §12's table of answers to a call request, through the whole service:
the real broker, the sandbox over HTTP answering scripted numbers (sandbox/answers.py)."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import orjson
import pytest

from service.app import Service
from service.sandbox import Sandbox
from service.sandbox.answers import ACCOUNT_CODES
from service.settings import Settings
from tests.conftest import Broker, MakeSettings, Outcomes, StartService, templates_of
from tests.helpers import TEMPLATES, configure, metric, order, wait_for

pytestmark = pytest.mark.integration
NUMBER = "091234"  # + the last four digits the sandbox scripts an answer by
QUOTA = {"limit_word", "limit_service"}


def scripted(suffix: str) -> str:
    return f"{NUMBER}{suffix}"


def shipment(code: str, phone: str = "0912345678") -> bytes:
    return orjson.dumps({"code": code, "phone": phone})


@dataclass
class World:
    """The service, the broker and the sandbox of one test."""

    make_settings: MakeSettings
    broker: Broker
    start_service: StartService
    sandbox: Sandbox

    async def start(self, **settings: Any) -> tuple[Service, Outcomes, Settings]:
        config = self.make_settings(**settings)
        outcomes = await self.broker.outcomes(config)
        service = await self.start_service(config, templates_of(TEMPLATES))
        return service, outcomes, config

    async def one(self, phone: str) -> tuple[dict[str, Any], Service, Settings]:
        """The outcome of one order event to `phone`."""
        service, outcomes, config = await self.start()
        await self.broker.publish(config, order(phone=phone), "order.created", message_id="e-1")
        [outcome] = await outcomes.wait(1)
        return outcome, service, config

    async def dead(self, config: Settings) -> int:
        return await self.broker.count(f"{config.queue}.dead")


@pytest.fixture
def world(
    make_settings: MakeSettings, broker: Broker, start_service: StartService, sandbox: Sandbox
) -> World:
    return World(make_settings, broker, start_service, sandbox)


@pytest.mark.parametrize("suffix", ["4005", "4006"], ids=["token_expired", "status_code_401"])
async def test_a_lapsed_token_gets_a_new_one_and_the_request_once_more(
    world: World, suffix: str
) -> None:
    outcome, _, _ = await world.one(scripted(suffix))

    assert (outcome["status"], outcome["attempts"]) == ("accepted", 1)
    assert world.sandbox.state.auth_requests == 2
    assert len(world.sandbox.state.calls) == 1


@pytest.mark.parametrize("suffix", ["4007", "4008"], ids=["rate_limit_exceeded", "http_429"])
async def test_a_throttled_request_is_retried_never_failed(world: World, suffix: str) -> None:
    outcome, service, config = await world.one(scripted(suffix))

    assert (outcome["status"], outcome["attempts"]) == ("accepted", 2)
    assert len(world.sandbox.state.calls) == 1
    assert metric(service, "autocall_provider_throttled_total") == 1
    assert await world.dead(config) == 0


@pytest.mark.parametrize("style", ["429", "message"])
async def test_a_throttle_slows_every_event_down(world: World, style: str) -> None:
    """After a throttle the next requests wait (Retry-After, else the first backoff of 1 s):
    the provider is not sent a burst while it is throttling."""
    await configure(world.sandbox, {"throttle": 1, "throttle_style": style, "retry_after": 1})
    service, outcomes, config = await world.start()
    await world.broker.publish(config, order(code="T0"), "order.created")
    await wait_for(lambda: metric(service, "autocall_provider_throttled_total") == 1)
    throttled_at = time.time()
    for n in range(1, 6):
        await world.broker.publish(
            config, order(code=f"T{n}", phone=f"09123456{n:02d}"), "order.created"
        )

    bodies = await outcomes.wait(6)

    assert [body["status"] for body in bodies] == ["accepted"] * 6
    first_call = min(call.at.timestamp() for call in world.sandbox.state.calls)
    assert first_call >= throttled_at + 0.8  # Retry-After: 1 (minus the time to see the metric)
    assert sum(world.sandbox.state.requests.values()) == 7  # six calls and the one throttled answer
    assert metric(service, "autocall_provider_throttled_total") == 1


@pytest.mark.parametrize("code", ACCOUNT_CODES)
async def test_account_codes_hold_and_resume(world: World, code: str) -> None:
    """`on_exhausted: hold`: consuming stops with the code as the reason, probes, resumes once
    the account can call again; nothing failed. Key codes refuse the token request too."""
    await configure(world.sandbox, {"account": code})
    service, outcomes, config = await world.start(concurrency=1, prefetch=1)
    for n in range(3):
        await world.broker.publish(config, shipment(f"S{n}"), "shipment.created")
    await wait_for(lambda: metric(service, "autocall_consumer_paused", reason=code) == 1)

    assert outcomes.received == []
    if code == "limit_word":  # the day's characters: the next probe waits for local midnight
        assert service.consumer is not None
        assert service.consumer.hold.wait_seconds() > config.hold_probe_interval
        return
    await configure(world.sandbox, {"account": ""})
    bodies = await outcomes.wait(3)

    assert [body["status"] for body in bodies] == ["accepted"] * 3
    assert len(world.sandbox.state.calls) == 3
    await wait_for(lambda: metric(service, "autocall_consumer_paused", reason=code) == 0)
    assert await world.dead(config) == 0


@pytest.mark.parametrize("code", ACCOUNT_CODES)
async def test_account_codes_fail_the_event_with_on_exhausted_fail(world: World, code: str) -> None:
    suffix = str(4011 + ACCOUNT_CODES.index(code))
    outcome, service, config = await world.one(scripted(suffix))

    assert (outcome["status"], outcome["error"]["code"]) == ("failed", code)
    assert world.sandbox.state.calls == []
    assert await world.dead(config) == 1
    assert metric(service, "autocall_provider_errors_total", code=code) == 1
    if code in QUOTA:
        assert metric(service, "autocall_quota_failures_total", code=code) == 1
    balance = metric(service, "autocall_balance_failures_total")
    assert balance == (1 if code == "balance_is_not_enough" else 0)


async def test_do_not_call_is_skipped_and_the_number_suppressed(world: World) -> None:
    phone = scripted("4001")
    service, outcomes, config = await world.start()
    await world.broker.publish(config, order(code="N1", phone=phone), "order.created")
    [first] = await outcomes.wait(1)
    await world.broker.publish(config, order(code="N2", phone=phone), "order.created")

    _, second = await outcomes.wait(2)

    assert (first["status"], first["reason"], first["attempts"]) == ("skipped", "do_not_call", 1)
    assert (second["status"], second["reason"]) == ("skipped", "suppressed")
    assert world.sandbox.state.requests["do_not_call"] == 1  # the second event made no request
    assert sum(world.sandbox.state.requests.values()) == 1
    assert service.consumer is not None
    [entry] = await service.consumer.caller.store.suppressions()
    assert (entry.phone, entry.reason, entry.until) == (
        "+84912344001",
        "provider_do_not_call",
        None,
    )
    assert await world.dead(config) == 0


@pytest.mark.parametrize("code", ["invalid_phone_number", "number_call_out_invalid"])
async def test_a_refused_number_fails_without_a_retry_and_releases_its_key(
    world: World, code: str
) -> None:
    suffix = "4002" if code == "invalid_phone_number" else "4003"
    service, outcomes, config = await world.start()
    await world.broker.publish(config, order(code="R1", phone=scripted(suffix)), "order.created")
    [refused] = await outcomes.wait(1)
    await world.broker.publish(config, order(code="R1"), "order.created")  # corrected: same key

    _, corrected = await outcomes.wait(2)

    assert (refused["status"], refused["error"]["code"]) == ("failed", code)
    assert (refused["attempts"], refused["error"]["retryable"]) == (1, False)
    assert world.sandbox.state.requests[code] == 1
    assert corrected["status"] == "accepted"
    assert metric(service, "autocall_retries_total") == 0


async def test_any_other_code_fails_with_that_code(world: World) -> None:
    outcome, service, _ = await world.one(scripted("4004"))

    assert (outcome["status"], outcome["error"]["code"]) == ("failed", "data_is_required")
    assert world.sandbox.state.requests["data_is_required"] == 1
    assert metric(service, "autocall_provider_errors_total", code="other") == 1


async def test_an_html_5xx_from_a_proxy_is_transient(world: World) -> None:
    outcome, _, _ = await world.one(scripted("4009"))

    assert (outcome["status"], outcome["attempts"]) == ("accepted", 2)
    assert world.sandbox.state.requests["html_502"] == 1


async def test_an_html_4xx_is_provider_error_with_its_status(world: World) -> None:
    outcome, _, _ = await world.one(scripted("4010"))

    assert (outcome["status"], outcome["error"]["code"]) == ("failed", "provider_error")
    assert outcome["error"]["message"].startswith("HTTP 404: <html>")
    assert world.sandbox.state.requests["html_404"] == 1
