"""Provider.api: the provider's other endpoints (call history, webhooks) with the same token cache
and error tree as execute, against the sandbox over HTTP."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

import aiohttp
import pytest
from aiohttp import web

from service.errors import ProviderError, ProviderUnavailable, Unauthorized
from service.http import serve_app
from service.metrics import Metrics
from service.provider.omicall.client import Provider
from service.render import Request
from service.sandbox import Sandbox, SandboxState, serve

SEARCH = "/api/v3/call-transaction/search?page=1&size=50"
V2_SEARCH = "/api/v2/callTransaction/search?page=1&size=50"
CALL = Request(
    "/api/auto_call/execute_by_phone",
    {
        "phone_number_list": ["0901234562"],
        "template_dialplans": [{"target_type": "Text_variable"}],
        "variables": ["Xin chào"],
    },
)


@pytest.fixture
async def sandbox() -> AsyncIterator[Sandbox]:
    async with serve(SandboxState(call_seconds=0)) as running:
        yield running


@pytest.fixture
def metrics() -> Metrics:
    return Metrics()


@pytest.fixture
async def provider(sandbox: Sandbox, metrics: Metrics) -> AsyncIterator[Provider]:
    async with aiohttp.ClientSession() as session:
        yield Provider(session, sandbox.url, metrics, api_key="sandbox-key", connect_timeout=1)


def count(metrics: Metrics, endpoint: str, result: str) -> float | None:
    labels = {"endpoint": endpoint, "result": result, "account": "default"}
    return metrics.registry.get_sample_value("autocall_api_requests_total", labels)


async def test_the_call_history_answers_its_payload(provider: Provider, metrics: Metrics) -> None:
    accepted = await provider.execute(CALL)
    query = {"filter": {"phoneNumbers": ["0901234562"]}}
    payload = await provider.api("POST", SEARCH, json=query)
    assert payload["has_next"] is False
    [item] = payload["items"]
    assert (item["autocall_id"], item["ivr"]) == (accepted.autocall_id, "2")
    assert accepted.autocall_uuids == (item["autocall_uuid"],)  # the execute answer named it
    assert count(metrics, "call_history", "ok") == 1


async def test_a_version_the_provider_does_not_serve_is_not_found(
    sandbox: Sandbox, provider: Provider, metrics: Metrics
) -> None:
    with pytest.raises(ProviderError) as caught:
        await provider.api("POST", V2_SEARCH, json={})
    assert caught.value.code == "not_found" and "/api/v2/callTransaction/search" in str(
        caught.value
    )
    assert count(metrics, "call_history", "http_other") == 1
    sandbox.state.history_api = "v2"
    assert (await provider.api("POST", V2_SEARCH, json={}))["items"] == []


async def test_the_v3_history_is_asked_with_the_api_key_too(metrics: Metrics) -> None:
    seen: list[dict[str, str]] = []

    async def history(request: web.Request) -> web.Response:
        if request.path == "/api/auth":
            payload = {"access_token": "t", "expires_in": 3600}
            return web.json_response({"status_code": 9999, "payload": payload})
        seen.append(dict(request.headers))
        return web.json_response({"status_code": 9999, "payload": []})

    async with with_server(history, metrics, api_key="k-1") as provider:
        assert await provider.api("POST", SEARCH, json={"filter": {}}) == []
        await provider.api("GET", "/api/webhooks/list")
    assert [(h.get("x-api-key"), h["Authorization"]) for h in seen] == [
        ("k-1", "Bearer t"),
        (None, "Bearer t"),  # only the history is asked with it
    ]


async def test_the_webhook_api_round_trip(provider: Provider, metrics: Metrics) -> None:
    hook = {"type": "call", "url": "https://hooks.example.com/webhooks/omicall/t", "events": None}
    assert await provider.api("POST", "/api/webhooks/register", json={"webhook": hook}) == hook
    assert await provider.api("GET", "/api/webhooks/list") == [hook]
    assert await provider.api("POST", "/api/webhooks/destroy?hook_type=call") is None
    assert await provider.api("GET", "/api/webhooks/list") == []
    assert count(metrics, "webhooks", "ok") == 4


async def test_an_expired_token_is_fetched_again_once(
    sandbox: Sandbox, provider: Provider, metrics: Metrics
) -> None:
    await provider.api("GET", "/api/webhooks/list")
    sandbox.state.tokens.clear()
    assert await provider.api("GET", "/api/webhooks/list") == []
    assert sandbox.state.auth_requests == 2
    assert count(metrics, "webhooks", "unauthorized") == 1


async def test_a_refused_key_is_unauthorized(sandbox: Sandbox, provider: Provider) -> None:
    sandbox.state.api_keys = {"another-key"}
    with pytest.raises(Unauthorized):
        await provider.api("GET", "/api/webhooks/list")


async def test_the_rate_limit_is_a_provider_error_with_its_code(
    sandbox: Sandbox, provider: Provider, metrics: Metrics
) -> None:
    for envelope in ("message", "payload", "payload_message"):
        sandbox.state.search_throttle, sandbox.state.envelope = 1, envelope
        with pytest.raises(ProviderError) as caught:
            await provider.api("POST", SEARCH, json={})
        assert caught.value.code == "limit_request_30_minute"
    assert count(metrics, "call_history", "provider_error") == 3


async def test_a_refused_registration_names_its_code(provider: Provider) -> None:
    bad = {"webhook": {"type": "call", "url": "http://hooks.example.com/x", "events": None}}
    with pytest.raises(ProviderError) as caught:
        await provider.api("POST", "/api/webhooks/register", json=bad)
    assert caught.value.code == "invalid_url"


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@asynccontextmanager
async def with_server(
    handler: Handler, metrics: Metrics, api_key: str | None = None
) -> AsyncIterator[Provider]:
    """`handler` as the provider, while the block runs; the client with `api_key`, else a fixed
    token."""
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handler)
    async with serve_app(app, "127.0.0.1", 0) as port, aiohttp.ClientSession() as session:
        url = f"http://127.0.0.1:{port}"
        if api_key is not None:
            yield Provider(session, url, metrics, api_key=api_key, timeout=2)
        else:
            yield Provider(session, url, metrics, token="fixed", timeout=2)


async def unavailable(request: web.Request) -> web.Response:
    return web.Response(status=503, text="Service Unavailable")


async def hang_up(request: web.Request) -> web.Response:
    assert request.transport is not None
    request.transport.close()
    return web.Response(status=204)


@pytest.mark.parametrize("handler", [unavailable, hang_up])
async def test_a_failure_after_sending_is_unavailable_not_unknown(
    metrics: Metrics, handler: Handler
) -> None:
    async with with_server(handler, metrics) as provider:
        with pytest.raises(ProviderUnavailable):
            await provider.api("POST", SEARCH, json={})


async def test_no_connection_is_unavailable(metrics: Metrics) -> None:
    async with aiohttp.ClientSession() as session:
        provider = Provider(session, "http://127.0.0.1:1", metrics, token="fixed")
        with pytest.raises(ProviderUnavailable):
            await provider.api("GET", "/api/webhooks/list")
    assert count(metrics, "webhooks", "connection_error") == 1
