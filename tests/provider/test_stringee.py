"""Stringee's side of a call (CONTRACT.md §13): the JWT, the callout built from the templates,
the call log's limiter. Pure: no I/O (test_stringee_client.py goes over HTTP)."""

from __future__ import annotations

import asyncio
import hashlib
from typing import Any

import jwt
import pytest

from service.errors import TemplateError
from service.provider.stringee import callout
from service.provider.stringee.auth import MARGIN, Tokens
from service.provider.stringee.calllog import Limiter
from service.sandbox.stringee import body_problem, token_problem
from service.sandbox.stringee_calls import StringeeState
from tests.stringee_helpers import EVENT_URL, TOKEN, account, rendered, templates

SECRET = "k" * 40


class Clock:
    def __init__(self, now: float = 1_800_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def test_the_token_is_signed_with_the_key_secret_and_says_what_stringee_requires() -> None:
    clock = Clock()
    token = Tokens("SK.1", SECRET, clock=clock).current()
    assert jwt.get_unverified_header(token) == {
        "typ": "JWT",
        "alg": "HS256",
        "cty": "stringee-api;v=1",
    }
    claims = jwt.decode(token, SECRET, algorithms=["HS256"], options={"verify_exp": False})
    assert claims["iss"] == "SK.1"
    assert claims["rest_api"] is True
    assert 0 < claims["exp"] - clock.now <= 3600
    assert claims["jti"].startswith("SK.1-")
    with pytest.raises(jwt.InvalidSignatureError):
        jwt.decode(token, "another secret" * 3, algorithms=["HS256"])


def test_the_token_is_cached_and_made_anew_before_it_expires() -> None:
    clock = Clock()
    tokens = Tokens("SK.1", SECRET, clock=clock)
    first = tokens.current()
    clock.now += 3600 - MARGIN - 1
    assert tokens.current() == first
    clock.now += 1
    second = tokens.current()
    assert second != first
    claims = [
        jwt.get_unverified_header(t) and jwt.decode(t, options={"verify_signature": False})
        for t in (first, second)
    ]
    assert claims[0]["jti"] != claims[1]["jti"]
    assert tokens.renew() != second
    with pytest.raises(ValueError, match="lives"):
        Tokens("SK.1", SECRET, lifetime=7200)


def test_the_sandbox_refuses_tokens_stringee_would_refuse() -> None:
    state = StringeeState()
    now = 1_800_000_000
    good = {"jti": "j", "iss": state.key_sid, "exp": now + 600, "rest_api": True}

    def problem(claims: dict[str, Any], headers: Any = None, key: str = state.key_secret) -> str:
        headers = {"cty": "stringee-api;v=1"} if headers is None else headers
        token = jwt.encode(claims, key, algorithm="HS256", headers=headers)
        return str(token_problem(token, state, now))

    ours = Tokens(state.key_sid, state.key_secret, clock=lambda: now).current()
    assert token_problem(ours, state, now) is None
    assert problem(good) == "None"
    assert "cty" in problem(good, {})
    assert "iss" in problem(good | {"iss": "SK.other"})
    assert "rest_api" in problem({k: v for k, v in good.items() if k != "rest_api"})
    assert "rest_api" in problem({k: v for k, v in good.items() if k != "jti"})
    assert "hour" in problem(good | {"exp": now + 7200})
    assert "expired" in problem(good | {"exp": now - 1})
    assert "Signature" in problem(good, key="x" * 40)


def test_the_callout_is_the_rendered_script_mapped_through_the_account() -> None:
    call = rendered("0912345671")
    body = callout.body(call.request.script, account(StringeeState()), EVENT_URL)  # type: ignore[arg-type]
    assert body["from"] == {"type": "external", "number": "842471008888", "alias": "842471008888"}
    assert body["to"] == [{"type": "external", "number": "84912345671", "alias": "84912345671"}]
    talk, play, menu, read = body["actions"]
    assert talk == {
        "action": "talk",
        "text": "Đơn hàng D H 1",
        "voice": "hn_male_manhdung_news_48k-thg",  # leminh, through `voices`
        "speed": 1.5,  # speed 2: 1 + 0.25 x 2
    }
    assert play == {"action": "play", "fileName": "https://cdn.shop.vn/voice/greeting.mp3"}
    assert menu["action"] == "talk"
    assert menu["text"] == "Bấm 1 để xác nhận, bấm 2 để huỷ"
    assert read == {
        "action": "input",
        "eventUrl": EVENT_URL,
        "timeout": 8,
        "maxDigits": 1,
        "submitOnHash": True,
        "customField": hashlib.sha256(b"cod:DH-1").hexdigest(),
    }
    assert body_problem(body) is None  # and the sandbox takes it


@pytest.mark.parametrize(
    ("speed", "rate"), [(-3, 0.25), (-1, 0.75), (0, 1.0), (None, 1.0), (3, 1.75)]
)
def test_speeds_map_to_stringee_rates(speed: int | None, rate: float) -> None:
    assert callout.speed_of(speed) == rate


def test_a_step_the_account_cannot_play_is_a_template_error() -> None:
    script = rendered().request.script
    assert script is not None
    with pytest.raises(TemplateError, match="rec-1"):
        callout.body(script, account(StringeeState(), recordings={}), EVENT_URL)
    with pytest.raises(TemplateError, match="menu-1"):
        callout.body(script, account(StringeeState(), menus={}), EVENT_URL)
    assert account(StringeeState(), menus={}).unmapped({"rec-1"}, {"menu-1"}) == ["ivr_menu menu-1"]


def test_an_unmapped_voice_is_left_to_stringee_s_default() -> None:
    script = rendered().request.script
    assert script is not None
    body = callout.body(script, account(StringeeState(), voices={}), EVENT_URL)
    assert "voice" not in body["actions"][0]


def test_the_callback_url_carries_the_account_and_the_token() -> None:
    url = callout.callback_url("https://hooks.shop.vn/", "shop-b", TOKEN)
    assert url == f"https://hooks.shop.vn/webhooks/stringee/shop-b/{TOKEN}"


async def test_the_limiter_keeps_to_100_requests_a_minute() -> None:
    clock = Clock(0.0)
    slept: list[float] = []

    async def sleep(seconds: float) -> None:
        slept.append(seconds)
        clock.now += seconds

    limiter = Limiter(per_minute=100, clock=clock, sleep=sleep)
    for _ in range(100):
        await limiter.wait()
    assert slept == []
    clock.now = 10.0
    await limiter.wait()
    assert slept == [50.0]  # the first of the minute's 100 leaves the window at 60 s
    await asyncio.sleep(0)


def test_the_rendered_call_carries_its_script_provider_neutral() -> None:
    ts = templates(
        script=[{"say": "{{ data.code }}"}, {"say": "{{ '' }}"}, {"ivr_menu": "menu-1"}],
        voice=None,
        speed=None,
    )
    script = rendered("+84912345671", "DH-7", ts).request.script
    assert script is not None
    assert [(s.kind, s.value) for s in script.steps] == [("say", "DH-7"), ("ivr_menu", "menu-1")]
    assert (script.phone, script.idempotency_key, script.template) == (
        "84912345671",
        "cod:DH-7",
        "cod",
    )
    assert (script.voice, script.speed) == (None, None)
    extension = templates(phone=None, extension="101", cid="842471008888")
    call = rendered(ts=extension)
    assert call.request.script is not None and call.request.script.phone is None
    with pytest.raises(TemplateError, match="extensions"):
        callout.body(call.request.script, account(StringeeState()), EVENT_URL)
