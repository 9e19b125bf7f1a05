"""An OMICall account failing over to a Stringee account, against both sandboxes over HTTP: the
call goes out through Stringee (its request checked field by field), and its result comes back
through Stringee's signed callbacks, labelled with the account that took the call."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import orjson
import pytest
import yaml

from service.provider.stringee.callout import custom_field
from service.sandbox.stringee import StringeeSandbox, serve
from service.sandbox.stringee_calls import StringeeState

from .conftest import Broker, MakeSettings, StartService, templates_of
from .helpers import configure, metric, wait_for
from .test_accounts_flow import closed_port

pytestmark = pytest.mark.integration
TOKEN = "stringee-demo-webhook-token-" + "0" * 12
TEMPLATES = """
version: 1
templates:
  - name: confirm
    event: order.created
    account: shop-a
    phone: "{{ data.phone }}"
    idempotency_key: "order:{{ data.code }}"
    voice: leminh
    speed: 2
    script:
      - say: "Đơn hàng {{ data.code | spell }}"
      - recording: rec-1
      - ivr_menu: menu-1
    choices: {"1": confirmed, "2": cancelled}
"""


@pytest.fixture
async def stringee() -> AsyncIterator[StringeeSandbox]:
    async with serve(StringeeState(call_seconds=0.2)) as running:
        yield running


def accounts_file(tmp_path: Path, omicall: str, stringee: StringeeSandbox) -> Path:
    state = stringee.state
    backup = {
        "provider": "stringee",
        "base_url": stringee.url,
        "key_sid": state.key_sid,
        "key_secret": state.key_secret,
        "signing_secret": state.signing_secret,
        "from_number": "842471008888",
        "voices": {"leminh": "hn_male_manhdung_news_48k-thg"},
        "recordings": {"rec-1": "https://cdn.shop.vn/voice/greeting.mp3"},
        "menus": {"menu-1": {"say": "Bấm 1 để xác nhận", "max_digits": 1, "timeout": "8s"}},
    }
    shop_a = {"provider": "omicall", "base_url": omicall, "api_key": "sandbox-key"}
    document = {
        "accounts": {"shop-a": shop_a, "shop-b": backup},
        "failover": {"shop-a": ["shop-b"]},
    }
    path = tmp_path / "accounts.yaml"
    path.write_text(yaml.safe_dump(document, allow_unicode=True))
    return path


async def test_an_empty_omicall_account_fails_over_to_stringee_and_the_result_comes_back(
    make_settings: MakeSettings,
    broker: Broker,
    start_service: StartService,
    sandbox: Any,
    stringee: StringeeSandbox,
    tmp_path: Path,
) -> None:
    await configure(sandbox, {"balance": 0})
    port = closed_port()  # free now: the listener takes it
    public = f"http://127.0.0.1:{port}"
    stringee.state.hooks.webhook_url = f"{public}/webhooks/stringee/shop-b/{TOKEN}"
    config = make_settings(
        accounts_file=accounts_file(tmp_path, sandbox.url, stringee),
        webhook_token=TOKEN,
        webhook_port=port,
        webhook_public_url=public,
    )
    outcomes = await broker.outcomes(config)
    service = await start_service(config, templates_of(TEMPLATES))
    body = orjson.dumps({"code": "S1", "phone": "0912345671"})  # …1: answered, key 1

    await broker.publish(config, body, "order.created")
    accepted, result = await outcomes.wait(2)

    assert (accepted["status"], accepted["account"], accepted["provider"]) == (
        "accepted",
        "shop-b",
        "stringee",
    )
    assert accepted["failover"] == [{"account": "shop-a", "code": "balance_is_not_enough"}]
    [call] = stringee.state.calls
    assert accepted["autocall_id"] == call.call_id
    assert (result["status"], result["result"], result["choice"]) == (
        "result",
        "answered",
        "confirmed",
    )
    assert (result["account"], result["final"], result["autocall_id"]) == (
        "shop-b",
        True,
        call.call_id,
    )
    labels = {"result": "answered", "template": "confirm", "final": "true", "account": "shop-b"}
    await wait_for(lambda: metric(service, "autocall_call_results_total", **labels) == 1)
    assert sandbox.state.calls == []  # OMICall placed nothing


async def test_the_stringee_request_field_by_field(
    make_settings: MakeSettings,
    broker: Broker,
    start_service: StartService,
    sandbox: Any,
    stringee: StringeeSandbox,
    tmp_path: Path,
) -> None:
    await configure(sandbox, {"account": "tenant_disabled"})
    port = closed_port()
    config = make_settings(
        accounts_file=accounts_file(tmp_path, sandbox.url, stringee),
        webhook_token=TOKEN,
        webhook_port=port,
        webhook_public_url="https://hooks.shop.vn",
    )
    outcomes = await broker.outcomes(config)
    await start_service(config, templates_of(TEMPLATES))
    await broker.publish(
        config, orjson.dumps({"code": "S2", "phone": "0912345675"}), "order.created"
    )

    [accepted] = await outcomes.wait(1)

    assert accepted["failover"] == [{"account": "shop-a", "code": "tenant_disabled"}]
    [call] = stringee.state.calls
    assert call.body["from"] == {
        "type": "external",
        "number": "842471008888",
        "alias": "842471008888",
    }
    assert call.body["to"] == [
        {"type": "external", "number": "84912345675", "alias": "84912345675"}
    ]
    callback = f"https://hooks.shop.vn/webhooks/stringee/shop-b/{TOKEN}"
    assert call.body["actions"] == [
        {
            "action": "talk",
            "text": "Đơn hàng S 2",
            "voice": "hn_male_manhdung_news_48k-thg",
            "speed": 1.5,
        },
        {"action": "play", "fileName": "https://cdn.shop.vn/voice/greeting.mp3"},
        {
            "action": "talk",
            "text": "Bấm 1 để xác nhận",
            "voice": "hn_male_manhdung_news_48k-thg",
            "speed": 1.5,
        },
        {
            "action": "input",
            "eventUrl": callback,
            "timeout": 8,
            "maxDigits": 1,
            "submitOnHash": True,
            "customField": custom_field("order:S2"),
        },
    ]
    assert stringee.state.requests.get("ok") == 1  # the sandbox checked the JWT and the body
