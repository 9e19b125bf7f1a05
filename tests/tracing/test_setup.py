"""Tracing's set-up from the `OTEL_*` variables, its hooks while off, and a collector that is
gone: the events go on at their pace (the real broker and sandbox)."""

from __future__ import annotations

import asyncio
import logging
import random
import socket
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass

import aiohttp
import pytest
from opentelemetry.trace import NonRecordingSpan, SpanContext, TraceFlags, use_span
from yarl import URL

from service import tracing
from service.errors import ConfigError
from service.metrics import Metrics
from service.provider.omicall.client import Provider
from service.provider.stringee import callout
from service.results.calls import OpenCall
from service.sandbox import Sandbox
from service.sandbox.state import SandboxState
from service.sandbox.stringee import serve as serve_stringee
from service.sandbox.stringee_calls import StringeeState
from service.settings import Settings
from service.store import Claim, State
from service.tracing import setup
from service.tracing.http import public
from tests.conftest import WAIT, Broker, StartService, templates_of
from tests.helpers import order
from tests.otlp import one, receiver
from tests.provider.test_stringee_client import client_of
from tests.stringee_helpers import rendered
from tests.tracing.test_tracing import TEMPLATES

SEARCH = "/api/v3/call-transaction/search"


def kept_span() -> NonRecordingSpan:
    """A span of a kept trace, to be current around requests (made by the service, it would be
    the process span)."""
    return NonRecordingSpan(
        SpanContext(random.getrandbits(128), random.getrandbits(64), False, TraceFlags(1))
    )


ENDPOINT = {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318"}


@pytest.mark.parametrize(
    ("environ", "on"),
    [
        ({}, False),
        (ENDPOINT, True),
        ({"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://c:4318/v1/traces"}, True),
        (ENDPOINT | {"OTEL_SDK_DISABLED": "true"}, False),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": " "}, False),
    ],
)
def test_on_only_with_an_endpoint(environ: dict[str, str], on: bool) -> None:
    assert setup.enabled(environ) is on
    assert (setup.pipeline(environ) is not None) is on


@pytest.mark.parametrize(
    ("protocol", "problem"),
    [
        ("http/json", "'http/json' is not one of http/protobuf, grpc"),
        ("grpc", "grpc needs opentelemetry-exporter-otlp-proto-grpc installed"),
    ],
)
def test_a_protocol_it_cannot_speak_stops_start_up(protocol: str, problem: str) -> None:
    with pytest.raises(ConfigError) as raised:
        setup.exporter(ENDPOINT | {"OTEL_EXPORTER_OTLP_PROTOCOL": protocol})
    assert raised.value.problems == [f"OTEL_EXPORTER_OTLP_PROTOCOL: {problem}"]


@pytest.mark.parametrize(
    ("environ", "name"),
    [
        ({}, "autocall-bridge"),
        ({"OTEL_SERVICE_NAME": "calls"}, "calls"),
        ({"OTEL_RESOURCE_ATTRIBUTES": "service.name=shop,deployment.environment=prod"}, "shop"),
    ],
)
def test_the_service_s_name(
    monkeypatch: pytest.MonkeyPatch, environ: dict[str, str], name: str
) -> None:
    for variable in ("OTEL_SERVICE_NAME", "OTEL_RESOURCE_ATTRIBUTES"):
        monkeypatch.delenv(variable, raising=False)
    for variable, value in environ.items():
        monkeypatch.setenv(variable, value)
    assert setup.resource().attributes["service.name"] == name


async def test_off_every_hook_passes_through() -> None:
    async def claim() -> Claim:
        return Claim(State.NEW, "e")

    claiming = claim()
    assert tracing.claimed(claiming) is claiming
    assert tracing.producing(claiming, "x", "y", object()) is claiming  # type: ignore[arg-type]
    assert await claiming == Claim(State.NEW, "e")
    assert (tracing.traceparent(), tracing.log_ids()) == ("", None)
    sending = answer()
    assert tracing.requested(sending, "POST", URL("http://x/")) is sending
    assert (await sending).status == 200


@dataclass
class Answer:
    status: int


async def answer() -> Answer:
    return Answer(200)


async def test_a_request_s_span_has_its_url_without_the_query(
    monkeypatch: pytest.MonkeyPatch, sandbox: Sandbox
) -> None:
    async with receiver() as otlp:
        monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", otlp.url)
        async with tracing.started(), aiohttp.ClientSession() as session:
            provider = Provider(session, sandbox.url, Metrics(), api_key="sandbox-key")
            with use_span(kept_span()) as poll:
                await provider.api("POST", f"{SEARCH}?page=1&size=50", json={"phoneNumbers": []})
        trace_id = f"{poll.get_span_context().trace_id:032x}"
        search = one(await otlp.named(trace_id, f"POST {SEARCH}"), f"POST {SEARCH}")
    assert (search.kind, search.attributes["url.full"]) == ("CLIENT", sandbox.url + SEARCH)
    assert search.attributes["http.response.status_code"] == 200


async def test_stringee_s_callout_has_its_client_span(monkeypatch: pytest.MonkeyPatch) -> None:
    hooks = SandboxState(webhook_retries=0, cdr_posts=1)
    async with receiver() as otlp, serve_stringee(StringeeState(hooks=hooks)) as stringee:
        monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", otlp.url)
        async with tracing.started(), aiohttp.ClientSession() as session:
            with use_span(kept_span()) as process:
                await client_of(stringee, session).execute(rendered("0912345671").request)
        trace_id = f"{process.get_span_context().trace_id:032x}"
        name = f"POST {callout.PATH}"
        callout_span = one(await otlp.named(trace_id, name), name)
    assert callout_span.attributes["url.full"] == stringee.url + callout.PATH
    assert callout_span.attributes["http.response.status_code"] == 200
    assert set(callout_span.attributes) == {  # nothing of the request's JWT or headers
        "http.request.method",
        "url.full",
        "http.response.status_code",
    }


def test_batch_sizes_the_sdk_refuses_stop_start_up(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OTEL_BSP_MAX_QUEUE_SIZE", "10")
    with pytest.raises(ConfigError) as raised:
        setup.pipeline(ENDPOINT)
    assert raised.value.problems[0].startswith("OTEL_BSP_*: max_export_batch_size must be")


def test_a_url_loses_its_query_and_credentials() -> None:
    url = URL("https://user:pw@api.example:8443/api/auth?apiKey=secret#top")
    assert str(public(url)) == "https://api.example:8443/api/auth"


def test_a_call_without_a_trace_is_kept_as_before() -> None:
    call = OpenCall("ac-1", {"id": "e"}, "cod", "k", "0912345678", 1.0)
    assert b"traceparent" not in call.dumps()  # the same JSON as a record written before traces
    assert OpenCall.loads(call.dumps()) == call
    traced = OpenCall("ac-1", {"id": "e"}, "cod", "k", "0912345678", 1.0, traceparent="00-a-b-01")
    assert OpenCall.loads(traced.dumps()) == traced


class Tried(logging.Handler):
    """Sets `event` (from the exporter's thread) once the exporter reports a failed export."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        super().__init__(logging.WARNING)
        self.loop = loop
        self.event = asyncio.Event()

    def emit(self, record: logging.LogRecord) -> None:
        self.loop.call_soon_threadsafe(self.event.set)


@asynccontextmanager
async def collector_gone(kind: str) -> AsyncIterator[int]:
    """The port of a collector that refuses connections, or takes them and never answers."""
    if kind == "refused":
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = int(sock.getsockname()[1])
        yield port  # closed again: connecting is refused
        return

    async def hang(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read()  # until the exporter gives up and closes

    server = await asyncio.start_server(hang, "127.0.0.1", 0)
    try:
        yield int(server.sockets[0].getsockname()[1])
    finally:
        server.close()


@pytest.mark.parametrize("kind", ["refused", "silent"])
async def test_a_collector_that_is_gone_never_holds_the_events_up(
    monkeypatch: pytest.MonkeyPatch,
    broker: Broker,
    make_settings: Callable[..., Settings],
    start_service: StartService,
    sandbox: Sandbox,
    kind: str,
) -> None:
    count = 300
    tried = Tried(asyncio.get_running_loop())
    exporter_log = logging.getLogger("opentelemetry.exporter")
    exporter_log.addHandler(tried)
    async with collector_gone(kind) as port:
        monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", f"http://127.0.0.1:{port}")
        monkeypatch.setenv("OTEL_EXPORTER_OTLP_TIMEOUT", "2")  # s: a silent one times out
        monkeypatch.setenv("OTEL_BSP_SCHEDULE_DELAY", "10")  # ms: the exporter tries at once
        monkeypatch.setenv("OTEL_BSP_MAX_QUEUE_SIZE", "256")  # and its queue overflows
        monkeypatch.setenv("OTEL_BSP_MAX_EXPORT_BATCH_SIZE", "64")
        monkeypatch.setattr(setup, "FLUSH_TIMEOUT", 0.5)  # the stop does not wait for it
        settings = make_settings(tts_daily_limit=10**9)
        sandbox.state.daily_limit = sandbox.state.balance = 10**12
        outcomes = await broker.outcomes(settings)
        await start_service(settings, templates_of(TEMPLATES))
        try:
            for n in range(count):
                body = order(f"D{n}", phone=f"09{n:08d}")
                await broker.publish(settings, body, "order.created", message_id=f"down-{n}")
            received = await outcomes.wait(count)  # within the tests' bound, as any run
            async with asyncio.timeout(WAIT):
                await tried.event.wait()  # the exporter was failing meanwhile
        finally:
            exporter_log.removeHandler(tried)
    assert [(o["status"], o["error"]) for o in received] == [("accepted", None)] * count
    assert len(outcomes.received) == count  # one each, none twice
