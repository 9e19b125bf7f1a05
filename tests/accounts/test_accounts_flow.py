"""Accounts against the real broker and two OMICall sandboxes over HTTP: events routed by their
template's `account:`, one account held while the other calls, failover between them, and an
event whose account does not exist."""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
import pytest
import yaml

from service.app import Service
from service.sandbox import Sandbox, serve
from service.sandbox.answers import ACCOUNT_CODES
from service.settings import Settings
from tests.conftest import Broker, MakeSettings, Outcomes, StartService, templates_of
from tests.helpers import configure, metric, wait_for

pytestmark = pytest.mark.integration

TEMPLATES = """
version: 1
templates:
  - name: confirm
    event: order.created
    account: "{{ data.shop }}"
    on_exhausted: hold
    phone: "{{ data.phone }}"
    idempotency_key: "order:{{ data.code }}"
    script:
      - say: "Đơn hàng {{ data.code | spell }}"
"""


def order(shop: str, code: str, phone: str = "0912345671") -> bytes:
    return orjson.dumps({"shop": shop, "code": code, "phone": phone})


@pytest.fixture
async def other() -> AsyncIterator[Sandbox]:
    """A second sandbox: the second account's provider."""
    async with serve() as running:
        yield running


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Two:
    """Two OMICall accounts, each on its own sandbox: shop-a on `a`, shop-b on `b`."""

    make_settings: MakeSettings
    broker: Broker
    start_service: StartService
    a: Sandbox
    b: Sandbox
    tmp_path: Path

    async def start(
        self,
        failover: dict[str, list[str]] | None = None,
        urls: dict[str, str] | None = None,
        **overrides: Any,
    ) -> tuple[Settings, Outcomes, Service]:
        urls = urls or {"shop-a": self.a.url, "shop-b": self.b.url}
        config = accounts_settings(self.make_settings, self.tmp_path, urls, failover, **overrides)
        outcomes = await self.broker.outcomes(config)
        service = await self.start_service(config, templates_of(TEMPLATES))
        return config, outcomes, service

    async def one(
        self, shop: str, code: str, failover: dict[str, list[str]] | None = None, **kw: Any
    ) -> tuple[dict[str, Any], Service]:
        """The outcome of one order of `shop`."""
        config, outcomes, service = await self.start(failover, **kw)
        await self.broker.publish(config, order(shop, code), "order.created")
        [body] = await outcomes.wait(1)
        return body, service


@pytest.fixture
def two(
    make_settings: MakeSettings,
    broker: Broker,
    start_service: StartService,
    sandbox: Sandbox,
    other: Sandbox,
    tmp_path: Path,
) -> Two:
    return Two(make_settings, broker, start_service, sandbox, other, tmp_path)


BACKUP = {"shop-a": ["shop-b"]}


def accounts_settings(
    make_settings: MakeSettings,
    tmp_path: Path,
    urls: dict[str, str],
    failover: dict[str, list[str]] | None = None,
    **overrides: Any,
) -> Settings:
    accounts = {
        name: {"provider": "omicall", "base_url": url, "api_key": "sandbox-key"}
        for name, url in urls.items()
    }
    path = tmp_path / "accounts.yaml"
    path.write_text(yaml.safe_dump({"accounts": accounts, "failover": failover or {}}))
    return make_settings(accounts_file=path, **overrides)


async def test_events_go_out_through_their_template_s_account(two: Two) -> None:
    config, outcomes, service = await two.start()
    for shop, code in [("shop-a", "A1"), ("shop-b", "B1"), ("shop-a", "A2")]:
        await two.broker.publish(config, order(shop, code), "order.created")

    bodies = await outcomes.wait(3)

    taken = {body["idempotency_key"]: (body["status"], body["account"]) for body in bodies}
    assert taken == {
        "order:A1": ("accepted", "shop-a"),
        "order:B1": ("accepted", "shop-b"),
        "order:A2": ("accepted", "shop-a"),
    }
    assert all(body["provider"] == "omicall" and body["failover"] == [] for body in bodies)
    assert len(two.a.state.calls) == 2 and len(two.b.state.calls) == 1
    accepted = {"status": "accepted", "template": "confirm"}
    assert metric(service, "autocall_outcomes_total", **accepted, account="shop-a") == 2
    assert metric(service, "autocall_outcomes_total", **accepted, account="shop-b") == 1
    ok = {"endpoint": "execute_by_phone", "result": "ok"}
    assert metric(service, "autocall_api_requests_total", **ok, account="shop-b") == 1


async def test_a_held_account_holds_only_its_own_events(two: Two) -> None:
    await configure(two.a, {"balance": 0})
    config, outcomes, service = await two.start()
    for n in range(3):
        await two.broker.publish(config, order("shop-a", f"A{n}"), "order.created")
    held = {"account": "shop-a", "reason": "balance_is_not_enough"}
    await wait_for(lambda: metric(service, "autocall_account_held", **held) == 1)

    for n in range(3):  # shop-b keeps calling while shop-a is held
        await two.broker.publish(config, order("shop-b", f"B{n}"), "order.created")
    first = await outcomes.wait(3)
    assert [(body["account"], body["status"]) for body in first] == [("shop-b", "accepted")] * 3
    assert metric(service, "autocall_consumer_paused", reason="balance_is_not_enough") == 0

    await configure(two.a, {"balance": 1_000_000})  # topped up: a probe gets through
    bodies = await outcomes.wait(6)

    keys = sorted(body["idempotency_key"] for body in bodies[3:])
    assert keys == ["order:A0", "order:A1", "order:A2"]
    assert {body["account"] for body in bodies[3:]} == {"shop-a"}
    await wait_for(lambda: metric(service, "autocall_account_held", **held) == 0)
    assert len(two.a.state.calls) == 3 and len(two.b.state.calls) == 3
    assert metric(service, "autocall_balance_failures_total", account="shop-a") >= 1
    assert metric(service, "autocall_balance_failures_total", account="shop-b") == 0


async def test_a_throttled_accounts_backlog_leaves_the_consumer_to_the_others(two: Two) -> None:
    await configure(two.a, {"throttle": 1, "throttle_style": "429", "retry_after": 3})
    config, outcomes, service = await two.start(concurrency=2)
    await two.broker.publish(config, order("shop-a", "A0"), "order.created")
    assert service.consumer is not None
    throttle = service.consumer.caller.throttle_of("shop-a")
    await wait_for(lambda: throttle.slowed)  # shop-a's provider slows it down for 3 s

    for n in range(1, 6):  # more of shop-a's events than there are slots, queued first
        await two.broker.publish(config, order("shop-a", f"A{n}"), "order.created")
    await two.broker.publish(config, order("shop-b", "B1"), "order.created")
    [first] = await outcomes.wait(1)

    assert (first["idempotency_key"], first["status"]) == ("order:B1", "accepted")
    bodies = await outcomes.wait(7)  # then shop-a's, once its wait is over: each called once
    assert sorted(body["idempotency_key"] for body in bodies[1:]) == [
        f"order:A{n}" for n in range(6)
    ]
    assert {body["status"] for body in bodies} == {"accepted"}
    assert len(two.a.state.calls) == 6 and len(two.b.state.calls) == 1
    assert len(outcomes.received) == 7


@pytest.mark.parametrize(
    ("change", "code"),
    [
        ({"balance": 0}, "balance_is_not_enough"),
        ({"faults": ["503"]}, "provider_unavailable"),
        ({"faults": ["429"]}, "rate_limit_exceeded"),
        ({"api_keys": ["another-key"]}, "unauthorized"),
    ],
)
async def test_fails_over_to_the_next_account_when_no_call_was_placed(
    two: Two, change: dict[str, Any], code: str
) -> None:
    await configure(two.a, change)

    body, service = await two.one("shop-a", "F1", BACKUP)

    assert body["status"] == "accepted"
    assert (body["account"], body["provider"]) == ("shop-b", "omicall")
    assert body["failover"] == [{"account": "shop-a", "code": code}]
    assert two.a.state.calls == [] and len(two.b.state.calls) == 1
    assert body["autocall_id"] == two.b.state.calls[0].autocall_id
    failover = {"from": "shop-a", "to": "shop-b", "code": code}
    assert metric(service, "autocall_failovers_total", **failover) == 1


@pytest.mark.parametrize("code", sorted(ACCOUNT_CODES))
async def test_fails_over_on_every_account_code(two: Two, code: str) -> None:
    await configure(two.a, {"account": code})  # every call request answered with it

    body, _ = await two.one("shop-a", "K1", BACKUP)

    assert (body["status"], body["account"]) == ("accepted", "shop-b")
    assert body["failover"] == [{"account": "shop-a", "code": code}]
    assert two.a.state.calls == []


@pytest.mark.parametrize(
    ("phone", "status", "code"),
    [
        ("0912344002", "failed", "invalid_phone_number"),
        ("0912344003", "failed", "number_call_out_invalid"),
        ("0912344004", "failed", "data_is_required"),
        ("0912344001", "skipped", "do_not_call"),
    ],
)
async def test_never_fails_over_on_a_refused_number(
    two: Two, phone: str, status: str, code: str
) -> None:
    config, outcomes, _ = await two.start(BACKUP)
    await two.broker.publish(config, order("shop-a", "N1", phone), "order.created")

    [body] = await outcomes.wait(1)

    assert body["status"] == status
    assert (body["error"] or {}).get("code", body["reason"]) == code
    assert two.a.state.calls == [] and two.b.state.calls == []


async def test_fails_over_when_the_first_provider_refuses_the_connection(two: Two) -> None:
    urls = {"shop-a": f"http://127.0.0.1:{closed_port()}", "shop-b": two.b.url}

    body, _ = await two.one("shop-a", "C1", BACKUP, urls=urls)

    assert (body["status"], body["account"]) == ("accepted", "shop-b")
    assert body["failover"] == [{"account": "shop-a", "code": "provider_unavailable"}]


async def test_never_fails_over_after_a_time_out_once_the_request_was_sent(two: Two) -> None:
    await configure(two.a, {"faults": ["accept_then_hang"]})

    body, _ = await two.one("shop-a", "T1", BACKUP, api_timeout="300ms")

    assert body["status"] == "failed" and body["error"]["code"] == "outcome_unknown"
    assert (body["account"], body["failover"]) == ("shop-a", [])
    assert len(two.a.state.calls) == 1  # the call went out once, and only there
    assert two.b.state.calls == []


async def test_never_fails_over_when_the_provider_refuses_the_request(two: Two) -> None:
    await configure(two.a, {"session_limit": 5})  # the provider refuses this request

    body, _ = await two.one("shop-a", "R1", BACKUP)

    assert body["status"] == "failed" and body["error"]["code"] == "limit_word_session"
    assert (body["account"], body["failover"]) == ("shop-a", [])
    assert two.b.state.calls == []


async def test_an_event_whose_account_does_not_exist_fails(two: Two) -> None:
    body, service = await two.one("shop-zz", "U1")

    # counted under no account's name ("none"), not under `default`, which this file lacks
    labels = {"status": "failed", "template": "confirm", "account": "none"}
    counted = service.metrics.registry.get_sample_value("autocall_outcomes_total", labels)
    named = [s for s in samples(service) if s.name == "autocall_outcomes_total"]
    outcomes = {s.labels["account"] for s in named}
    assert counted == 1 and "default" not in outcomes

    assert body["status"] == "failed"
    assert body["error"] == {
        "code": "unknown_account",
        "message": "no account 'shop-zz' in the accounts file",
        "retryable": False,
    }
    assert two.a.state.calls == [] and two.b.state.calls == []
    dead = await two.broker.drain(f"{two.make_settings().queue}.dead")
    assert [message.headers["x-autocall-reason"] for message in dead] == ["unknown_account"]


def samples(service: Service) -> list[Any]:
    """Every sample the service's metrics export."""
    return [s for family in service.metrics.registry.collect() for s in family.samples]
