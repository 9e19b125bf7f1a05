"""The HTTP edge both providers' clients send through (provider/edge.py), against a real local
server: what a request that never left, or left and got no answer, becomes; what is counted."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator

import aiohttp
import pytest
from aiohttp import web

from service.errors import OutcomeUnknown, ProviderUnavailable, Throttled
from service.http import serve_app
from service.metrics import Metrics
from service.provider.edge import Answer, Edge, Failure


@pytest.fixture
async def server() -> AsyncIterator[str]:
    """A server that answers /slow never and anything else with 429 and a Retry-After."""

    async def answer(request: web.Request) -> web.Response:
        if request.path == "/slow":
            await asyncio.Event().wait()
        return web.Response(status=429, text="slow down", headers={"Retry-After": "3"})

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", answer)
    async with serve_app(app, "127.0.0.1", 0, handler_cancellation=True) as port:
        yield f"http://127.0.0.1:{port}"


def edge_of(session: aiohttp.ClientSession, url: str, metrics: Metrics) -> Edge:
    return Edge(session, url, metrics, calls=frozenset({"call"}), timeout=0.3, connect_timeout=1)


def requests(metrics: Metrics, endpoint: str, result: str) -> float | None:
    labels = {"endpoint": endpoint, "result": result, "account": "default"}
    return metrics.registry.get_sample_value("autocall_api_requests_total", labels)


async def test_a_request_that_never_left_is_unavailable_whatever_its_endpoint() -> None:
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        closed = f"http://127.0.0.1:{probe.getsockname()[1]}"
    metrics = Metrics()
    async with aiohttp.ClientSession() as session:
        with pytest.raises(ProviderUnavailable) as raised:
            await edge_of(session, closed, metrics).send("POST", "call", "/", {}, body=b"{}")
    assert raised.value.status is None  # no answer: it says nothing of a throttle
    assert raised.value.message.startswith("cannot connect to the provider")
    assert requests(metrics, "call", "connection_error") == 1


async def test_no_answer_after_sending_is_unknown_only_for_a_call(server: str) -> None:
    metrics = Metrics()
    async with aiohttp.ClientSession() as session:
        edge = edge_of(session, server, metrics)
        with pytest.raises(OutcomeUnknown):
            await edge.send("POST", "call", "/slow", {}, body=b"{}")
        with pytest.raises(ProviderUnavailable):  # a search may be asked again
            await edge.send("GET", "call_history", "/slow", {})
    assert requests(metrics, "call", "timeout") == 1


async def test_an_answer_as_received_and_a_throttle_counted(server: str) -> None:
    metrics = Metrics()
    async with aiohttp.ClientSession() as session:
        edge = edge_of(session, server, metrics)
        answer = await edge.send("POST", "call", "/", {}, body=b"{}")
        assert answer == Answer(429, b"slow down", None, 3.0)
        error = edge.counted("call", Failure("http_other", None, Throttled("429", retry_after=3)))
    assert isinstance(error, Throttled)
    assert metrics.registry.get_sample_value("autocall_provider_throttled_total") == 1
    assert requests(metrics, "call", "http_other") == 1
