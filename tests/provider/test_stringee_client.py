"""StringeeClient over real HTTP against the Stringee sandbox (CONTRACT.md §13): the callout as
built, its answers and codes, the call log, the sandbox command."""

from __future__ import annotations

import re
import socket
import time
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from service.errors import (
    AccountUnable,
    BalanceTooLow,
    OutcomeUnknown,
    ProviderError,
    ProviderUnavailable,
    Throttled,
    Unauthorized,
)
from service.http import serve_app
from service.metrics import Metrics
from service.provider.stringee.calllog import CallLog
from service.provider.stringee.client import StringeeClient
from service.sandbox.state import SandboxState
from service.sandbox.stringee import StringeeSandbox, serve
from service.sandbox.stringee_calls import StringeeState
from tests.helpers import sandbox_command
from tests.stringee_helpers import EVENT_URL, TOKEN, account, rendered


@pytest.fixture
async def stringee() -> AsyncIterator[StringeeSandbox]:
    hooks = SandboxState(webhook_retries=0, cdr_posts=1)
    async with serve(StringeeState(call_seconds=0.02, hooks=hooks)) as running:
        yield running


def client_of(
    sandbox: StringeeSandbox, session: aiohttp.ClientSession, **changes: Any
) -> StringeeClient:
    timeout = changes.pop("timeout", 2.0)
    metrics = changes.pop("metrics", None) or Metrics()
    return StringeeClient(
        session,
        account(sandbox.state, changes.pop("base_url", sandbox.url), **changes),
        metrics,
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
    with pytest.raises(ProviderError) as raised:
        await client_of(stringee, session).execute(rendered().request)
    assert type(raised.value) is ProviderError
    assert raised.value.code == f"stringee_{r}"
    assert not isinstance(raised.value, AccountUnable)


@pytest.mark.parametrize(
    ("fault", "error", "code"),
    [
        ("429", Throttled, "rate_limit_exceeded"),
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
    metrics = Metrics()
    with pytest.raises(error) as raised:
        await client_of(stringee, session, metrics=metrics).execute(rendered().request)
    assert raised.value.code == code  # type: ignore[attr-defined]
    assert raised.value.retryable  # type: ignore[attr-defined]
    throttled = metrics.registry.get_sample_value("autocall_provider_throttled_total")
    assert throttled == (1 if fault == "429" else 0)  # as OMICall's throttles are counted


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
    assert (answered.phone, answered.answer_seconds) == ("0912345671", 12)


async def test_what_stringee_says_back_keeps_no_webhook_token_and_no_phone(
    session: aiohttp.ClientSession,
) -> None:
    said = f"bad input eventUrl {EVENT_URL} for 84912345671"

    async def refuse(request: web.Request) -> web.Response:
        return web.json_response({"r": 5, "message": said})

    app = web.Application()
    app.router.add_post("/v1/call2/callout", refuse)
    async with serve_app(app, "127.0.0.1", 0) as port:
        url = f"http://127.0.0.1:{port}"
        client = StringeeClient(
            session, account(StringeeState(), url), Metrics(), event_url=EVENT_URL
        )
        with pytest.raises(ProviderError) as raised:
            await client.execute(rendered().request)
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


@pytest.mark.parametrize("fault", ["garbage", "nocode"])
async def test_a_callout_answer_that_is_not_stringee_s_is_a_provider_error(
    stringee: StringeeSandbox, session: aiohttp.ClientSession, fault: str
) -> None:
    stringee.state.faults.append(fault)  # an HTML page; a JSON body without `r`
    with pytest.raises(ProviderError) as raised:
        await client_of(stringee, session).execute(rendered().request)
    assert raised.value.code == "provider_error"
    assert not raised.value.retryable
