"""What the Stringee tests share: a template with every kind of step, an account that maps them,
and the rendered call."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import yaml
from pydantic import SecretStr

from service.events import Event
from service.provider.stringee.account import Menu, StringeeAccount
from service.render import Call, decide
from service.sandbox.stringee_calls import StringeeState
from service.templates import Templates, parse
from service.templates.filters import LOCAL_TZ

NOW = datetime(2026, 11, 27, 10, 0, tzinfo=LOCAL_TZ)
TOKEN = "hook-" + "s" * 40
# nobody listens there: the sandbox's key presses find a refused connection, at once
EVENT_URL = f"http://127.0.0.1:9/webhooks/stringee/shop-b/{TOKEN}"
TEMPLATE = {
    "name": "cod",
    "event": "order.created",
    "phone": "{{ data.phone }}",
    "idempotency_key": "cod:{{ data.code }}",
    "voice": "leminh",
    "speed": 2,
    "script": [
        {"say": "Đơn hàng {{ data.code | spell }}"},
        {"recording": "rec-1"},
        {"ivr_menu": "menu-1"},
    ],
    "choices": {"1": "confirmed", "2": "cancelled"},
    "thanks": "Cảm ơn quý khách",
}


def templates(**changes: Any) -> Templates:
    doc = {"version": 1, "templates": [TEMPLATE | changes]}
    return parse(yaml.safe_dump(doc, allow_unicode=True, sort_keys=False), "test")


def account(
    state: StringeeState, base_url: str = "http://unused", **changes: Any
) -> StringeeAccount:
    """The account the sandbox `state` stands for."""
    fields: dict[str, Any] = {
        "name": "shop-b",
        "key_sid": state.key_sid,
        "key_secret": SecretStr(state.key_secret),
        "signing_secret": SecretStr(state.signing_secret) if state.signing_secret else None,
        "base_url": base_url,
        "from_number": "842471008888",
        "voices": {"leminh": "hn_male_manhdung_news_48k-thg", "default": "hn_female_ngochuyen"},
        "recordings": {"rec-1": "https://cdn.shop.vn/voice/greeting.mp3"},
        "menus": {"menu-1": Menu(say="Bấm 1 để xác nhận, bấm 2 để huỷ", timeout=8.0)},
    }
    return StringeeAccount(**(fields | changes))


def rendered(phone: str = "0912345671", code: str = "DH-1", ts: Templates | None = None) -> Call:
    data = {"phone": phone, "code": code}
    event = Event(f"e-{code}-{phone}", "order.created", None, None, data, {})
    decision = decide(ts or templates(), event, NOW)
    assert isinstance(decision, Call), decision
    return decision
