"""Stringee's side of a call (CONTRACT.md §13): the JWT, the callout built from the templates,
its answers and codes over real HTTP against the Stringee sandbox, the call log."""

from __future__ import annotations

import asyncio
import hashlib
import re
import socket
import time
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import jwt
import pytest
from aiohttp import web

from service.errors import (
    AccountUnable,
    BalanceTooLow,
    OutcomeUnknown,
    ProviderError,
    ProviderUnavailable,
    RateLimited,
    RequestRefused,
    TemplateError,
    Unauthorized,
)
from service.metrics import Metrics
from service.provider.stringee import callout
from service.provider.stringee.auth import MARGIN, Tokens
from service.provider.stringee.calllog import CallLog, Limiter
from service.provider.stringee.client import StringeeClient
from service.sandbox.state import SandboxState
from service.sandbox.stringee import StringeeSandbox, body_problem, serve, token_problem
from service.sandbox.stringee_calls import StringeeState

from .helpers import sandbox_command
from .stringee_helpers import TOKEN, account, rendered, templates

# nobody listens there: the sandbox's key presses find a refused connection, at once
EVENT_URL = f"http://127.0.0.1:9/webhooks/stringee/shop-b/{TOKEN}"
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


# --- over HTTP, against the sandbox -----------------------------------------------------------


@pytest.fixture
async def stringee() -> AsyncIterator[StringeeSandbox]:
    hooks = SandboxState(webhook_retries=0)
    async with serve(StringeeState(call_seconds=0.02, hooks=hooks)) as running:
        yield running


def client_of(
    sandbox: StringeeSandbox, session: aiohttp.ClientSession, **changes: Any
) -> StringeeClient:
    timeout = changes.pop("timeout", 2.0)
    return StringeeClient(
        session,
        account(sandbox.state, changes.pop("base_url", sandbox.url), **changes),
        Metrics(),
        event_url=EVENT_URL,
        timeout=timeout,
        connect_timeout=1.0,
    )


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as opened:
        yield opened


async def test_r_0_is_accepted_with_its_call_id_and_the_body_as_built(
    stringee: StringeeSandbox, session: aiohttp.ClientSession
) -> None:
    client = client_of(stringee, session)
    call = rendered("0912345671")
    accepted = await client.execute(call.request)
    [placed] = stringee.state.calls
    assert accepted.autocall_id == placed.call_id
    assert placed.body == client.callout_body(call.request)
    assert [a["action"] for a in placed.body["actions"]] == ["talk", "play", "talk", "input"]
    assert stringee.state.requests["ok"] == 1


async def test_r_8_is_the_balance_an_account_code(
    stringee: StringeeSandbox, session: aiohttp.ClientSession
) -> None:
    stringee.state.balance = 0
    with pytest.raises(BalanceTooLow) as raised:
        await client_of(stringee, session).execute(rendered().request)
    assert raised.value.code == "stringee_8"
    assert isinstance(raised.value, AccountUnable)
    assert stringee.state.calls == []


@pytest.mark.parametrize("r", [1, 2, 13])
async def test_any_other_r_is_the_request_refused(
    stringee: StringeeSandbox, session: aiohttp.ClientSession, r: int
) -> None:
    stringee.state.faults.append(f"r:{r}")
    with pytest.raises(RequestRefused) as raised:
        await client_of(stringee, session).execute(rendered().request)
    assert raised.value.code == f"stringee_{r}"
    assert not isinstance(raised.value, AccountUnable)


@pytest.mark.parametrize(
    ("fault", "error", "code"),
    [
        ("429", RateLimited, "rate_limit_exceeded"),
        ("503", ProviderUnavailable, "provider_unavailable"),
        ("500", ProviderUnavailable, "provider_unavailable"),
    ],
)
async def test_throttling_and_5xx_are_transient(
    stringee: StringeeSandbox,
    session: aiohttp.ClientSession,
    fault: str,
    error: type[Exception],
    code: str,
) -> None:
    stringee.state.faults.append(fault)
    with pytest.raises(error) as raised:
        await client_of(stringee, session).execute(rendered().request)
    assert raised.value.code == code  # type: ignore[attr-defined]
    assert raised.value.retryable  # type: ignore[attr-defined]


async def test_no_connection_is_unavailable_and_no_answer_after_sending_is_unknown(
    stringee: StringeeSandbox, session: aiohttp.ClientSession
) -> None:
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        closed = f"http://127.0.0.1:{probe.getsockname()[1]}"
    with pytest.raises(ProviderUnavailable):
        await client_of(stringee, session, base_url=closed).execute(rendered().request)
    stringee.state.faults.append("hang")
    with pytest.raises(OutcomeUnknown):
        await client_of(stringee, session, timeout=0.3).execute(rendered().request)


async def test_a_refused_token_is_made_anew_once_then_unauthorized(
    stringee: StringeeSandbox, session: aiohttp.ClientSession
) -> None:
    with pytest.raises(Unauthorized):
        await client_of(stringee, session, key_sid="SK.wrong").execute(rendered().request)
    assert stringee.state.requests["unauthorized"] == 2
    assert stringee.state.calls == []


async def test_the_call_log_gives_ended_calls_as_records(
    stringee: StringeeSandbox, session: aiohttp.ClientSession
) -> None:
    client = client_of(stringee, session)
    since = time.time() - 1
    ids = [
        (await client.execute(rendered(f"091234567{d}", f"DH-{d}").request)).autocall_id
        for d in "14"
    ]
    await stringee.player.idle()
    records = await CallLog(client).search(since, time.time())
    assert {r.autocall_id: r.result for r in records} == {ids[0]: "answered", ids[1]: "busy"}
    answered = next(r for r in records if r.result == "answered")
    assert (answered.phone, answered.answer_seconds, answered.attempt) == ("0912345671", 12, 1)


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


async def test_what_stringee_says_back_keeps_no_webhook_token_and_no_phone(
    session: aiohttp.ClientSession,
) -> None:
    said = f"bad input eventUrl {EVENT_URL} for 84912345671"

    async def refuse(request: web.Request) -> web.Response:
        return web.json_response({"r": 5, "message": said})

    app = web.Application()
    app.router.add_post("/v1/call2/callout", refuse)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    try:
        url = f"http://127.0.0.1:{runner.addresses[0][1]}"
        client = StringeeClient(
            session, account(StringeeState(), url), Metrics(), event_url=EVENT_URL
        )
        with pytest.raises(RequestRefused) as raised:
            await client.execute(rendered().request)
    finally:
        await runner.cleanup()
    assert raised.value.code == "stringee_5"
    assert TOKEN not in raised.value.message
    assert "84912345671" not in raised.value.message
    assert "/webhooks/stringee/shop-b/***" in raised.value.message


async def test_the_command_plays_stringee_with_the_keys_it_is_given(
    session: aiohttp.ClientSession,
) -> None:
    secret = "cli-secret-" + "z" * 30
    keys = ("--key-sid", "SK.cli", "--key-secret", secret, "--signing-secret", "sig" * 12)
    hook = ("--event-url", f"http://127.0.0.1:1/webhooks/stringee/shop-b/{TOKEN}")
    async with sandbox_command("--provider", "stringee", *keys, *hook) as (first, second):
        url = re.fullmatch(r"stringee sandbox listening on (\S+) \(key sid: SK.cli\)\n", first)
        assert url, first
        assert TOKEN not in second
        assert second.endswith("/webhooks/stringee/shop-b/***\n")
        state = StringeeState(key_sid="SK.cli", key_secret=secret, signing_secret=None)
        client = StringeeClient(
            session, account(state, url[1]), Metrics(), event_url=EVENT_URL, timeout=2.0
        )
        assert (await client.execute(rendered().request)).autocall_id.startswith("call-")
        async with session.post(f"{url[1]}/_sandbox/config", json={"balance": 0}) as answer:
            assert (await answer.json())["balance"] == 0
        with pytest.raises(BalanceTooLow):
            await client.execute(rendered().request)


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


@pytest.mark.parametrize("fault", ["garbage", "nocode"])
async def test_a_callout_answer_that_is_not_stringee_s_is_a_provider_error(
    stringee: StringeeSandbox, session: aiohttp.ClientSession, fault: str
) -> None:
    stringee.state.faults.append(fault)  # an HTML page; a JSON body without `r`
    with pytest.raises(ProviderError) as raised:
        await client_of(stringee, session).execute(rendered().request)
    assert raised.value.code == "provider_error"
    assert not raised.value.retryable
