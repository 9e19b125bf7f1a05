"""Accounts against the real broker and two OMICall sandboxes over HTTP: events routed by their
template's `account:`, one account held while the other calls, failover between them, and an
event whose account does not exist."""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import orjson
import pytest
import yaml

from service.sandbox import Sandbox, serve
from service.settings import Settings

from .conftest import Broker, MakeSettings, StartService, templates_of
from .helpers import configure, metric, wait_for

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


async def test_events_go_out_through_their_template_s_account(
    make_settings: MakeSettings,
    broker: Broker,
    start_service: StartService,
    sandbox: Sandbox,
    other: Sandbox,
    tmp_path: Path,
) -> None:
    config = accounts_settings(
        make_settings, tmp_path, {"shop-a": sandbox.url, "shop-b": other.url}
    )
    outcomes = await broker.outcomes(config)
    service = await start_service(config, templates_of(TEMPLATES))
    for shop, code in [("shop-a", "A1"), ("shop-b", "B1"), ("shop-a", "A2")]:
        await broker.publish(config, order(shop, code), "order.created")

    bodies = await outcomes.wait(3)

    taken = {body["idempotency_key"]: (body["status"], body["account"]) for body in bodies}
    assert taken == {
        "order:A1": ("accepted", "shop-a"),
        "order:B1": ("accepted", "shop-b"),
        "order:A2": ("accepted", "shop-a"),
    }
    assert all(body["provider"] == "omicall" and body["failover"] == [] for body in bodies)
    assert len(sandbox.state.calls) == 2 and len(other.state.calls) == 1
    accepted = {"status": "accepted", "template": "confirm"}
    assert metric(service, "autocall_outcomes_total", **accepted, account="shop-a") == 2
    assert metric(service, "autocall_outcomes_total", **accepted, account="shop-b") == 1
    ok = {"endpoint": "execute_by_phone", "result": "ok"}
    assert metric(service, "autocall_api_requests_total", **ok, account="shop-b") == 1


async def test_a_held_account_holds_only_its_own_events(
    make_settings: MakeSettings,
    broker: Broker,
    start_service: StartService,
    sandbox: Sandbox,
    other: Sandbox,
    tmp_path: Path,
) -> None:
    await configure(sandbox, {"balance": 0})
    urls = {"shop-a": sandbox.url, "shop-b": other.url}
    config = accounts_settings(make_settings, tmp_path, urls)
    outcomes = await broker.outcomes(config)
    service = await start_service(config, templates_of(TEMPLATES))
    for n in range(3):
        await broker.publish(config, order("shop-a", f"A{n}"), "order.created")
    held = {"account": "shop-a", "reason": "balance_is_not_enough"}
    await wait_for(lambda: metric(service, "autocall_account_held", **held) == 1)

    for n in range(3):  # shop-b keeps calling while shop-a is held
        await broker.publish(config, order("shop-b", f"B{n}"), "order.created")
    first = await outcomes.wait(3)
    assert [(body["account"], body["status"]) for body in first] == [("shop-b", "accepted")] * 3
    assert metric(service, "autocall_consumer_paused", reason="balance_is_not_enough") == 0

    await configure(sandbox, {"balance": 1_000_000})  # topped up: a probe gets through
    bodies = await outcomes.wait(6)

    assert sorted(body["idempotency_key"] for body in bodies[3:]) == [
        "order:A0",
        "order:A1",
        "order:A2",
    ]
    assert {body["account"] for body in bodies[3:]} == {"shop-a"}
    await wait_for(lambda: metric(service, "autocall_account_held", **held) == 0)
    assert len(sandbox.state.calls) == 3 and len(other.state.calls) == 3
    assert metric(service, "autocall_balance_failures_total", account="shop-a") >= 1
    assert metric(service, "autocall_balance_failures_total", account="shop-b") == 0


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
    make_settings: MakeSettings,
    broker: Broker,
    start_service: StartService,
    sandbox: Sandbox,
    other: Sandbox,
    tmp_path: Path,
    change: dict[str, Any],
    code: str,
) -> None:
    await configure(sandbox, change)
    urls = {"shop-a": sandbox.url, "shop-b": other.url}
    config = accounts_settings(make_settings, tmp_path, urls, {"shop-a": ["shop-b"]})
    outcomes = await broker.outcomes(config)
    service = await start_service(config, templates_of(TEMPLATES))
    await broker.publish(config, order("shop-a", "F1"), "order.created")

    [body] = await outcomes.wait(1)

    assert body["status"] == "accepted"
    assert (body["account"], body["provider"]) == ("shop-b", "omicall")
    assert body["failover"] == [{"account": "shop-a", "code": code}]
    assert sandbox.state.calls == [] and len(other.state.calls) == 1
    assert body["autocall_id"] == other.state.calls[0].autocall_id
    failover = {"from": "shop-a", "to": "shop-b", "code": code}
    assert metric(service, "autocall_failovers_total", **failover) == 1


async def test_fails_over_when_the_first_provider_refuses_the_connection(
    make_settings: MakeSettings,
    broker: Broker,
    start_service: StartService,
    other: Sandbox,
    tmp_path: Path,
) -> None:
    urls = {"shop-a": f"http://127.0.0.1:{closed_port()}", "shop-b": other.url}
    config = accounts_settings(make_settings, tmp_path, urls, {"shop-a": ["shop-b"]})
    outcomes = await broker.outcomes(config)
    await start_service(config, templates_of(TEMPLATES))
    await broker.publish(config, order("shop-a", "C1"), "order.created")

    [body] = await outcomes.wait(1)

    assert (body["status"], body["account"]) == ("accepted", "shop-b")
    assert body["failover"] == [{"account": "shop-a", "code": "provider_unavailable"}]


async def test_never_fails_over_after_a_time_out_once_the_request_was_sent(
    make_settings: MakeSettings,
    broker: Broker,
    start_service: StartService,
    sandbox: Sandbox,
    other: Sandbox,
    tmp_path: Path,
) -> None:
    await configure(sandbox, {"faults": ["accept_then_hang"]})
    urls = {"shop-a": sandbox.url, "shop-b": other.url}
    config = accounts_settings(
        make_settings, tmp_path, urls, {"shop-a": ["shop-b"]}, api_timeout="300ms"
    )
    outcomes = await broker.outcomes(config)
    await start_service(config, templates_of(TEMPLATES))
    await broker.publish(config, order("shop-a", "T1"), "order.created")

    [body] = await outcomes.wait(1)

    assert body["status"] == "failed" and body["error"]["code"] == "outcome_unknown"
    assert (body["account"], body["failover"]) == ("shop-a", [])
    assert len(sandbox.state.calls) == 1  # the call went out once, and only there
    assert other.state.calls == []


async def test_never_fails_over_when_the_provider_refuses_the_request(
    make_settings: MakeSettings,
    broker: Broker,
    start_service: StartService,
    sandbox: Sandbox,
    other: Sandbox,
    tmp_path: Path,
) -> None:
    await configure(sandbox, {"session_limit": 5})  # the provider refuses this request
    urls = {"shop-a": sandbox.url, "shop-b": other.url}
    config = accounts_settings(make_settings, tmp_path, urls, {"shop-a": ["shop-b"]})
    outcomes = await broker.outcomes(config)
    await start_service(config, templates_of(TEMPLATES))
    await broker.publish(config, order("shop-a", "R1"), "order.created")

    [body] = await outcomes.wait(1)

    assert body["status"] == "failed" and body["error"]["code"] == "limit_word_session"
    assert (body["account"], body["failover"]) == ("shop-a", [])
    assert other.state.calls == []


async def test_an_event_whose_account_does_not_exist_fails(
    make_settings: MakeSettings,
    broker: Broker,
    start_service: StartService,
    sandbox: Sandbox,
    tmp_path: Path,
) -> None:
    config = accounts_settings(make_settings, tmp_path, {"shop-a": sandbox.url})
    outcomes = await broker.outcomes(config)
    await start_service(config, templates_of(TEMPLATES))
    await broker.publish(config, order("shop-zz", "U1"), "order.created")

    [body] = await outcomes.wait(1)

    assert body["status"] == "failed"
    assert body["error"] == {
        "code": "unknown_account",
        "message": "no account 'shop-zz' in the accounts file",
        "retryable": False,
    }
    assert sandbox.state.calls == []
    [dead] = await broker.drain(f"{config.queue}.dead")
    assert dead.headers["x-autocall-reason"] == "unknown_account"
