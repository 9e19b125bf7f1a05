"""An OMICall account failing over to a Stringee account, against both sandboxes over HTTP: the
call goes out through Stringee (its request checked field by field), and its result comes back
through Stringee's signed callbacks, labelled with the account that took the call."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
import pytest
import yaml

from service.app import Service
from service.provider.stringee.callout import custom_field
from service.sandbox import Sandbox
from service.sandbox.stringee import StringeeSandbox, serve
from service.sandbox.stringee_calls import StringeeState
from tests.accounts.test_accounts_flow import closed_port
from tests.conftest import Broker, MakeSettings, StartService, templates_of
from tests.helpers import configure, metric, wait_for

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


@dataclass
class Both:
    """An OMICall account (shop-a, on `omicall`) failing over to a Stringee one (shop-b)."""

    make_settings: MakeSettings
    broker: Broker
    start_service: StartService
    omicall: Sandbox
    stringee: StringeeSandbox
    tmp_path: Path

    async def order(self, code: str, phone: str, public: str | None = None) -> tuple[Any, Service]:
        """The outcomes collector and the service, once an order is published."""
        port = closed_port()  # free now: the listener takes it
        public = public or f"http://127.0.0.1:{port}"
        self.stringee.state.hooks.webhook_url = f"{public}/webhooks/stringee/shop-b/{TOKEN}"
        config = self.make_settings(
            accounts_file=accounts_file(self.tmp_path, self.omicall.url, self.stringee),
            webhook_token=TOKEN,
            webhook_port=port,
            webhook_public_url=public,
        )
        outcomes = await self.broker.outcomes(config)
        service = await self.start_service(config, templates_of(TEMPLATES))
        body = orjson.dumps({"code": code, "phone": phone})
        await self.broker.publish(config, body, "order.created")
        return outcomes, service


@pytest.fixture
def both(
    make_settings: MakeSettings,
    broker: Broker,
    start_service: StartService,
    sandbox: Sandbox,
    stringee: StringeeSandbox,
    tmp_path: Path,
) -> Both:
    return Both(make_settings, broker, start_service, sandbox, stringee, tmp_path)


async def test_an_empty_omicall_account_fails_over_to_stringee_and_the_result_comes_back(
    both: Both,
) -> None:
    await configure(both.omicall, {"balance": 0})
    outcomes, service = await both.order("S1", "0912345671")  # …1: answered, key 1

    accepted, result = await outcomes.wait(2)

    assert (accepted["status"], accepted["account"], accepted["provider"]) == (
        "accepted",
        "shop-b",
        "stringee",
    )
    assert accepted["failover"] == [{"account": "shop-a", "code": "balance_is_not_enough"}]
    [call] = both.stringee.state.calls
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
    assert both.omicall.state.calls == []  # OMICall placed nothing


async def test_the_stringee_request_field_by_field(both: Both) -> None:
    await configure(both.omicall, {"account": "tenant_disabled"})
    outcomes, _ = await both.order("S2", "0912345675", public="https://hooks.shop.vn")

    [accepted] = await outcomes.wait(1)

    assert accepted["failover"] == [{"account": "shop-a", "code": "tenant_disabled"}]
    [call] = both.stringee.state.calls
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
    assert both.stringee.state.requests.get("ok") == 1  # the sandbox checked the JWT and the body
