"""The provider client over real HTTP: the sandbox for what it can script, a server of the test's
own for answers the sandbox never gives, and error_code() on its own."""

from __future__ import annotations

import asyncio
import logging
import socket
import traceback
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar

import aiohttp
import orjson
import pytest
from aiohttp import web

from service.errors import (
    AutocallError,
    BalanceTooLow,
    OutcomeUnknown,
    ProviderError,
    ProviderUnavailable,
    QuotaExceeded,
    Throttled,
    Unauthorized,
)
from service.http import serve_app
from service.metrics import Metrics
from service.provider.omicall.answers import error_code
from service.provider.omicall.client import (
    TOKEN_LIFETIME,
    TOKEN_MARGIN,
    Accepted,
    Provider,
)
from service.render import EXTENSION_PATH, PHONE_PATH, Request
from service.sandbox import Sandbox
from tests.helpers import by_account

KEY = "sandbox-key"
SECRET_KEY = "KEY-s3cr3t-9f3b7c"  # never in a message or a log line
PHONE = Request(
    PHONE_PATH,
    {
        "name": "Xác nhận đơn",
        "voice": "banmai",
        "speed": 0,
        "template_dialplans": [
            {"target_type": "Text_variable"},
            {"target_type": "Recording", "target": "5ed0c6dffb7b390007e5211"},
        ],
        "variables": ["Đơn hàng của bạn"],
        "phone_number_list": ["0912345678"],
        "num_retry": 1,
    },
)
EXTENSION = Request(
    EXTENSION_PATH,
    {
        "cid": "842899959300",
        "template_dialplans": [{"target_type": "Text_variable"}],
        "variables": ["Xin chào"],
        "extensions": ["101"],
    },
)
REQUESTS = {"execute_by_phone": PHONE, "execute_by_extension": EXTENSION}
SHORT = 0.3  # seconds: the read timeout of tests whose server never answers
BOUND = 5.0  # seconds any single call may take before a test fails
E = TypeVar("E", bound=AutocallError)


# --- fixtures and helpers --------------------------------------------------------------------


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class Serve(Protocol):
    async def __call__(self, handler: Handler) -> str: ...


class MakeProvider(Protocol):
    def __call__(
        self,
        url: str,
        *,
        api_key: str | None = ...,
        token: str | None = ...,
        timeout: float = ...,
        clock: Callable[[], float] = ...,
    ) -> Provider: ...


@dataclass
class Seen:
    """What one of the test's own servers received."""

    method: str
    path: str
    query: str
    headers: dict[str, str]
    body: bytes


@dataclass
class Recorder:
    seen: list[Seen] = field(default_factory=list)

    async def record(self, request: web.Request) -> Seen:
        seen = Seen(
            request.method,
            request.path,
            request.query_string,
            dict(request.headers),
            await request.read(),
        )
        self.seen.append(seen)
        return seen

    def paths(self) -> list[str]:
        return [seen.path for seen in self.seen]


@pytest.fixture
def metrics() -> Metrics:
    return Metrics()


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as client:
        yield client


@pytest.fixture
def make_provider(session: aiohttp.ClientSession, metrics: Metrics) -> MakeProvider:
    def make(
        url: str,
        *,
        api_key: str | None = None,
        token: str | None = None,
        timeout: float = 5.0,
        clock: Callable[[], float] | None = None,
    ) -> Provider:
        if token is None and api_key is None:
            api_key = KEY
        extra: dict[str, Any] = {} if clock is None else {"clock": clock}
        return Provider(
            session,
            url,
            metrics,
            api_key=api_key,
            token=token,
            timeout=timeout,
            connect_timeout=1.0,
            **extra,
        )

    return make


@pytest.fixture
async def serve() -> AsyncIterator[Serve]:
    """Starts an aiohttp server answering every path with `handler`; its base URL."""
    async with AsyncExitStack() as stack:

        async def start(handler: Handler) -> str:
            app = web.Application()
            app.router.add_route("*", "/{tail:.*}", handler)
            serving = serve_app(
                app, "127.0.0.1", 0, handler_cancellation=True, shutdown_timeout=1.0
            )
            return f"http://127.0.0.1:{await stack.enter_async_context(serving)}"

        yield start


def closed_port_url() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}"


def json_response(data: object, status: int = 200) -> web.Response:
    return web.Response(body=orjson.dumps(data), status=status, content_type="application/json")


def token_answer(token: str = "tok-1") -> web.Response:
    return json_response({"status_code": 9999, "payload": {"access_token": token}})


def accepted_answer(autocall_id: object = "call-1") -> web.Response:
    return json_response({"status_code": 9999, "payload": {"autocall_id": autocall_id}})


async def hang(request: web.Request) -> web.Response:
    await asyncio.get_running_loop().create_future()  # cancelled when the client leaves
    raise AssertionError("unreachable")


def sample(metrics: Metrics, name: str, **labels: str) -> float:
    value = metrics.registry.get_sample_value(name, by_account(name, labels))
    assert value is not None, f"no series {name}{labels}"
    return value


def api_requests(metrics: Metrics, endpoint: str, result: str) -> float:
    return sample(metrics, "autocall_api_requests_total", endpoint=endpoint, result=result)


def results_of(metrics: Metrics, endpoint: str) -> dict[str, float]:
    """The non-zero api_requests_total results of one endpoint."""
    found: dict[str, float] = {}
    for metric in metrics.registry.collect():
        for s in metric.samples:
            mine = s.name == "autocall_api_requests_total" and s.labels["endpoint"] == endpoint
            if mine and s.value:
                found[s.labels["result"]] = s.value
    return found


def provider_errors(metrics: Metrics, code: str) -> float:
    return sample(metrics, "autocall_provider_errors_total", code=code)


def durations(metrics: Metrics, endpoint: str) -> float:
    return sample(metrics, "autocall_api_request_duration_seconds_count", endpoint=endpoint)


async def configure(session: aiohttp.ClientSession, sandbox: Sandbox, **changes: Any) -> None:
    async with session.post(f"{sandbox.url}/_sandbox/config", json=changes) as response:
        assert response.status == 200, await response.text()


async def expire_tokens(session: aiohttp.ClientSession, sandbox: Sandbox) -> None:
    async with session.post(f"{sandbox.url}/_sandbox/expire-tokens") as response:
        assert response.status == 200


async def fails_with(kind: type[E], provider: Provider, request: Request = PHONE) -> E:
    """The error `execute` raised, which must be exactly of class `kind`."""
    async with asyncio.timeout(BOUND):
        with pytest.raises(AutocallError) as caught:
            await provider.execute(request)
    assert type(caught.value) is kind, repr(caught.value)
    assert isinstance(caught.value, kind)
    return caught.value


# --- accepted calls and the token ------------------------------------------------------------


@pytest.mark.parametrize("endpoint", REQUESTS)
async def test_accepted_on_each_endpoint(
    sandbox: Sandbox, make_provider: MakeProvider, metrics: Metrics, endpoint: str
) -> None:
    accepted = await make_provider(sandbox.url).execute(REQUESTS[endpoint])

    assert isinstance(accepted, Accepted)
    assert isinstance(accepted.autocall_id, str)
    assert accepted.autocall_id == sandbox.state.calls[0].autocall_id
    assert sandbox.state.calls[0].body == REQUESTS[endpoint].json
    assert results_of(metrics, endpoint) == {"ok": 1}
    assert results_of(metrics, "auth") == {"ok": 1}


async def test_numeric_autocall_id_becomes_a_string(
    serve: Serve, make_provider: MakeProvider
) -> None:
    async def handler(request: web.Request) -> web.Response:
        return accepted_answer(autocall_id=123456)

    accepted = await make_provider(await serve(handler), token="t").execute(PHONE)

    assert accepted == Accepted("123456")


async def test_token_is_fetched_once_and_cached(
    sandbox: Sandbox, make_provider: MakeProvider, metrics: Metrics
) -> None:
    provider = make_provider(sandbox.url)
    for _ in range(5):
        await provider.execute(PHONE)
    await provider.execute(EXTENSION)

    assert sandbox.state.auth_requests == 1
    assert len(sandbox.state.calls) == 6
    assert results_of(metrics, "auth") == {"ok": 1}


async def test_concurrent_calls_share_one_token_request(
    sandbox: Sandbox, make_provider: MakeProvider
) -> None:
    provider = make_provider(sandbox.url)
    async with asyncio.timeout(BOUND):
        accepted = await asyncio.gather(*(provider.execute(PHONE) for _ in range(20)))

    assert sandbox.state.auth_requests == 1
    assert len({a.autocall_id for a in accepted}) == 20


async def test_token_is_fetched_again_before_it_expires(
    sandbox: Sandbox, make_provider: MakeProvider
) -> None:
    now = [0.0]
    provider = make_provider(sandbox.url, clock=lambda: now[0])
    await provider.execute(PHONE)

    now[0] = TOKEN_LIFETIME - TOKEN_MARGIN - 1
    await provider.execute(PHONE)
    assert sandbox.state.auth_requests == 1

    now[0] = TOKEN_LIFETIME - TOKEN_MARGIN + 1
    await provider.execute(PHONE)
    assert sandbox.state.auth_requests == 2


async def test_expired_token_gets_one_new_token_and_one_more_try(
    sandbox: Sandbox, session: aiohttp.ClientSession, make_provider: MakeProvider
) -> None:
    provider = make_provider(sandbox.url)
    await provider.execute(PHONE)
    await expire_tokens(session, sandbox)

    accepted = await provider.execute(PHONE)

    assert accepted.autocall_id == sandbox.state.calls[1].autocall_id
    assert sandbox.state.auth_requests == 2
    assert sandbox.state.requests["unauthorized"] == 1
    assert sandbox.state.requests["ok"] == 2


async def test_concurrent_calls_after_expiry_share_one_new_token(
    sandbox: Sandbox, session: aiohttp.ClientSession, make_provider: MakeProvider
) -> None:
    provider = make_provider(sandbox.url)
    await provider.execute(PHONE)
    await expire_tokens(session, sandbox)

    async with asyncio.timeout(BOUND):
        await asyncio.gather(*(provider.execute(PHONE) for _ in range(20)))

    assert sandbox.state.auth_requests == 2
    assert len(sandbox.state.calls) == 21


async def test_401_after_a_new_token_is_unauthorized(
    serve: Serve, make_provider: MakeProvider, metrics: Metrics
) -> None:
    recorder = Recorder()

    async def handler(request: web.Request) -> web.Response:
        await recorder.record(request)
        if request.path == "/api/auth":
            return token_answer(f"tok-{len(recorder.seen)}")
        return web.Response(status=401, text="Unauthorized")

    error = await fails_with(Unauthorized, make_provider(await serve(handler)))

    assert recorder.paths() == ["/api/auth", PHONE_PATH, "/api/auth", PHONE_PATH]
    assert recorder.seen[3].headers["Authorization"] == "Bearer tok-3"
    assert error.code == "unauthorized"
    assert not error.retryable
    assert api_requests(metrics, "execute_by_phone", "unauthorized") >= 1


async def test_fixed_token_never_asks_for_a_token(
    sandbox: Sandbox, make_provider: MakeProvider
) -> None:
    sandbox.state.fixed_tokens.add("fixed-token")
    provider = make_provider(sandbox.url, token="fixed-token")

    await provider.execute(PHONE)
    await provider.execute(EXTENSION)

    assert sandbox.state.auth_requests == 0
    assert len(sandbox.state.calls) == 2


async def test_fixed_token_refused_is_unauthorized_at_once(
    sandbox: Sandbox, make_provider: MakeProvider, metrics: Metrics
) -> None:
    error = await fails_with(Unauthorized, make_provider(sandbox.url, token="not-a-token"))

    assert error.code == "unauthorized"
    assert sandbox.state.auth_requests == 0
    assert sandbox.state.requests["unauthorized"] == 1  # sent once, no second try
    assert results_of(metrics, "execute_by_phone") == {"unauthorized": 1}


async def test_refused_api_key_is_unauthorized(
    sandbox: Sandbox, make_provider: MakeProvider, metrics: Metrics
) -> None:
    error = await fails_with(Unauthorized, make_provider(sandbox.url, api_key="wrong-key"))

    assert error.code == "unauthorized"
    assert not error.retryable
    assert sandbox.state.auth_requests == 1
    assert sum(sandbox.state.requests.values()) == 0  # no call was attempted
    assert results_of(metrics, "auth") == {"unauthorized": 1}


# --- the provider's failure answers ----------------------------------------------------------

SETUP_FOR_CODE: dict[str, dict[str, Any]] = {
    "limit_service": {"trial": True},
    "limit_word_session": {"session_limit": 5},
    "limit_word": {"daily_limit": 5},
    "balance_is_not_enough": {"balance": 0},
}
CLASS_OF_CODE: dict[str, type[ProviderError]] = {
    "limit_service": QuotaExceeded,
    "limit_word_session": QuotaExceeded,
    "limit_word": QuotaExceeded,
    "balance_is_not_enough": BalanceTooLow,
}
ENVELOPES = ("message", "payload", "payload_message")


@pytest.mark.parametrize("envelope", ENVELOPES)
@pytest.mark.parametrize("code", SETUP_FOR_CODE)
async def test_documented_code_in_each_envelope(
    sandbox: Sandbox,
    session: aiohttp.ClientSession,
    make_provider: MakeProvider,
    metrics: Metrics,
    code: str,
    envelope: str,
) -> None:
    await configure(session, sandbox, envelope=envelope, **SETUP_FOR_CODE[code])

    error = await fails_with(CLASS_OF_CODE[code], make_provider(sandbox.url))

    assert error.code == code
    assert not error.retryable
    assert sandbox.state.calls == []
    assert provider_errors(metrics, code) == 1
    assert provider_errors(metrics, "other") == 0
    assert results_of(metrics, "execute_by_phone") == {"provider_error": 1}


@pytest.mark.parametrize("envelope", ENVELOPES)
async def test_unknown_code_passes_through(
    sandbox: Sandbox,
    session: aiohttp.ClientSession,
    make_provider: MakeProvider,
    metrics: Metrics,
    envelope: str,
) -> None:
    await configure(session, sandbox, envelope=envelope)
    request = Request(PHONE_PATH, PHONE.json | {"bogus": 1})  # the sandbox: unknown_field

    error = await fails_with(ProviderError, make_provider(sandbox.url), request)

    assert error.code == "unknown_field"
    assert provider_errors(metrics, "other") == 1
    assert results_of(metrics, "execute_by_phone") == {"provider_error": 1}


async def test_documented_code_in_another_field_is_found(
    serve: Serve, make_provider: MakeProvider, metrics: Metrics
) -> None:
    async def handler(request: web.Request) -> web.Response:
        return json_response({"status_code": 1, "key": "limit_word"})

    error = await fails_with(QuotaExceeded, make_provider(await serve(handler), token="t"))

    assert error.code == "limit_word"
    assert provider_errors(metrics, "limit_word") == 1


async def test_free_text_is_not_a_code(
    serve: Serve, make_provider: MakeProvider, metrics: Metrics
) -> None:
    raw = '  {"status_code": 1,\n   "message": "Số điện thoại 0912345678 không hợp lệ"}\n\n'

    async def handler(request: web.Request) -> web.Response:
        return web.Response(body=raw.encode(), content_type="application/json")

    error = await fails_with(ProviderError, make_provider(await serve(handler), token="t"))

    assert error.code == "provider_error"
    assert error.message == (
        '{"status_code": 1, "message": "Số điện thoại 091****678 không hợp lệ"}'
    )
    assert provider_errors(metrics, "other") == 1
    assert results_of(metrics, "execute_by_phone") == {"provider_error": 1}


@pytest.mark.parametrize(
    ("fault", "text"),
    [("garbage", "HTTP 200: <html>oops</html>"), ("nocode", '{"status_code": 1}')],
)
async def test_answer_without_a_code_is_provider_error(
    sandbox: Sandbox,
    session: aiohttp.ClientSession,
    make_provider: MakeProvider,
    metrics: Metrics,
    fault: str,
    text: str,
) -> None:
    await configure(session, sandbox, faults=[fault])

    error = await fails_with(ProviderError, make_provider(sandbox.url))

    assert error.code == "provider_error"
    assert error.message == text
    assert not error.retryable
    assert provider_errors(metrics, "other") == 1
    assert results_of(metrics, "execute_by_phone") == {"provider_error": 1}


async def test_not_json_4xx_is_provider_error(
    serve: Serve, make_provider: MakeProvider, metrics: Metrics
) -> None:
    async def handler(request: web.Request) -> web.Response:
        return web.Response(status=404, text="<h1>Not Found</h1>", content_type="text/html")

    error = await fails_with(ProviderError, make_provider(await serve(handler), token="t"))

    assert error.code == "provider_error"
    assert "Not Found" in error.message
    assert results_of(metrics, "execute_by_phone") == {"http_other": 1}


# --- transient failures and lost answers -----------------------------------------------------


@pytest.mark.parametrize(("fault", "result"), [("503", "http_5xx"), ("500", "http_5xx")])
async def test_http_5xx_is_provider_unavailable(
    sandbox: Sandbox,
    session: aiohttp.ClientSession,
    make_provider: MakeProvider,
    metrics: Metrics,
    fault: str,
    result: str,
) -> None:
    await configure(session, sandbox, faults=[fault])

    error = await fails_with(ProviderUnavailable, make_provider(sandbox.url))

    assert error.retryable
    assert error.code == "provider_unavailable"
    assert sandbox.state.requests[fault] == 1  # the client itself never sends it again
    assert results_of(metrics, "execute_by_phone") == {result: 1}
    assert provider_errors(metrics, "other") == 0


async def test_connection_refused_is_provider_unavailable(
    make_provider: MakeProvider, metrics: Metrics
) -> None:
    error = await fails_with(ProviderUnavailable, make_provider(closed_port_url(), token="t"))

    assert error.retryable
    assert results_of(metrics, "execute_by_phone") == {"connection_error": 1}


async def test_server_that_never_answers_is_outcome_unknown(
    serve: Serve, make_provider: MakeProvider, metrics: Metrics
) -> None:
    provider = make_provider(await serve(hang), token="t", timeout=SHORT)

    error = await fails_with(OutcomeUnknown, provider)

    assert not error.retryable
    assert error.code == "outcome_unknown"
    assert results_of(metrics, "execute_by_phone") == {"timeout": 1}


@pytest.mark.parametrize(
    ("fault", "result"),
    [
        ("hang", "timeout"),
        ("accept_then_hang", "timeout"),
        ("accept_then_drop", "connection_error"),
    ],
)
async def test_request_that_left_without_an_answer_is_outcome_unknown(
    sandbox: Sandbox,
    session: aiohttp.ClientSession,
    make_provider: MakeProvider,
    metrics: Metrics,
    fault: str,
    result: str,
) -> None:
    await configure(session, sandbox, faults=[fault])

    error = await fails_with(OutcomeUnknown, make_provider(sandbox.url, timeout=SHORT))

    assert not error.retryable
    assert results_of(metrics, "execute_by_phone") == {result: 1}
    assert len(sandbox.state.calls) == (0 if fault == "hang" else 1)


TokenFailure = Callable[[web.Request], Awaitable[web.StreamResponse]]


async def auth_503(request: web.Request) -> web.Response:
    return web.Response(status=503, text="Service Unavailable")


async def auth_500(request: web.Request) -> web.Response:
    return web.Response(status=500, text="boom")


async def auth_429(request: web.Request) -> web.Response:
    return web.Response(status=429, text="slow down")


TOKEN_FAILURES: dict[str, tuple[TokenFailure, str]] = {
    "timeout": (hang, "timeout"),
    "503": (auth_503, "http_5xx"),
    "500": (auth_500, "http_5xx"),
    "429": (auth_429, "http_other"),
}


@pytest.mark.parametrize("failure", TOKEN_FAILURES)
async def test_failed_token_request_is_provider_unavailable_and_repeatable(
    serve: Serve, make_provider: MakeProvider, metrics: Metrics, failure: str
) -> None:
    failing, result = TOKEN_FAILURES[failure]
    recorder = Recorder()

    async def handler(request: web.Request) -> web.StreamResponse:
        await recorder.record(request)
        if request.path != "/api/auth":
            return accepted_answer()
        if recorder.paths().count("/api/auth") == 1:
            return await failing(request)
        return token_answer()

    provider = make_provider(await serve(handler), timeout=SHORT)
    error = await fails_with(Throttled if failure == "429" else ProviderUnavailable, provider)

    assert error.retryable
    assert recorder.paths() == ["/api/auth"]  # no call went out
    assert results_of(metrics, "auth") == {result: 1}
    assert results_of(metrics, "execute_by_phone") == {}

    assert await provider.execute(PHONE) == Accepted("call-1")  # the next try asks again
    assert recorder.paths() == ["/api/auth", "/api/auth", PHONE_PATH]


async def test_token_request_refused_connection_is_provider_unavailable(
    make_provider: MakeProvider, metrics: Metrics
) -> None:
    error = await fails_with(ProviderUnavailable, make_provider(closed_port_url()))

    assert error.retryable
    assert results_of(metrics, "auth") == {"connection_error": 1}
    assert results_of(metrics, "execute_by_phone") == {}


# --- what goes on the wire -------------------------------------------------------------------


@pytest.mark.parametrize("endpoint", REQUESTS)
async def test_requests_carry_the_bearer_token_and_json(
    serve: Serve, make_provider: MakeProvider, endpoint: str
) -> None:
    recorder = Recorder()

    async def handler(request: web.Request) -> web.Response:
        await recorder.record(request)
        return token_answer("tok-xyz") if request.path == "/api/auth" else accepted_answer()

    request = REQUESTS[endpoint]
    await make_provider(await serve(handler), api_key=SECRET_KEY).execute(request)

    auth, call = recorder.seen
    assert (auth.method, auth.path, auth.query) == ("GET", "/api/auth", f"apiKey={SECRET_KEY}")
    assert (call.method, call.path, call.query) == ("POST", request.path, "")
    assert call.headers["Authorization"] == "Bearer tok-xyz"
    assert call.headers["Content-Type"] == "application/json"
    assert orjson.loads(call.body) == request.json


async def test_fixed_token_goes_in_the_authorization_header(
    serve: Serve, make_provider: MakeProvider
) -> None:
    recorder = Recorder()

    async def handler(request: web.Request) -> web.Response:
        await recorder.record(request)
        return accepted_answer()

    await make_provider(await serve(handler), token="fixed-abc").execute(EXTENSION)

    [call] = recorder.seen
    assert (call.path, call.query) == (EXTENSION_PATH, "")
    assert call.headers["Authorization"] == "Bearer fixed-abc"


# --- metrics ---------------------------------------------------------------------------------


async def test_duration_histogram_counts_each_request(
    sandbox: Sandbox,
    session: aiohttp.ClientSession,
    make_provider: MakeProvider,
    metrics: Metrics,
) -> None:
    provider = make_provider(sandbox.url, timeout=SHORT)
    await provider.execute(PHONE)
    await provider.execute(PHONE)
    await provider.execute(EXTENSION)
    await configure(session, sandbox, faults=["503", "hang"])
    with pytest.raises(ProviderUnavailable):
        await provider.execute(PHONE)
    with pytest.raises(OutcomeUnknown):
        await provider.execute(PHONE)

    assert durations(metrics, "auth") == 1
    assert durations(metrics, "execute_by_phone") == 4
    assert durations(metrics, "execute_by_extension") == 1
    total = sample(
        metrics, "autocall_api_request_duration_seconds_sum", endpoint="execute_by_phone"
    )
    assert total >= SHORT  # the unanswered request is timed too


async def test_every_request_is_counted_with_its_result(
    sandbox: Sandbox,
    session: aiohttp.ClientSession,
    make_provider: MakeProvider,
    metrics: Metrics,
) -> None:
    provider = make_provider(sandbox.url)
    await provider.execute(PHONE)
    await expire_tokens(session, sandbox)
    await provider.execute(PHONE)

    assert durations(metrics, "execute_by_phone") == 3
    assert results_of(metrics, "execute_by_phone") == {"ok": 2, "unauthorized": 1}


# --- the API key stays secret ----------------------------------------------------------------


async def auth_garbage(request: web.Request) -> web.Response:
    return web.Response(text=f"<html>{request.query_string}</html>", content_type="text/html")


async def auth_refused(request: web.Request) -> web.Response:
    return json_response({"status_code": 401, "message": "invalid_api_key"}, status=401)


SECRET_FAILURES: dict[str, TokenFailure | None] = {
    "refused": auth_refused,
    "timeout": hang,
    "http_500": auth_500,
    "garbage": auth_garbage,
    "connection_refused": None,
}
AIOHTTP_LOGGERS = ("aiohttp", "aiohttp.client", "aiohttp.internal", "aiohttp.server", "aiohttp.web")


@pytest.mark.parametrize("failure", SECRET_FAILURES)
async def test_api_key_never_in_errors_or_logs(
    serve: Serve,
    make_provider: MakeProvider,
    caplog: pytest.LogCaptureFixture,
    failure: str,
) -> None:
    caplog.set_level(logging.DEBUG)
    for name in (*AIOHTTP_LOGGERS, "service", "asyncio"):
        caplog.set_level(logging.DEBUG, logger=name)
    answer = SECRET_FAILURES[failure]
    url = closed_port_url() if answer is None else await serve(answer)
    provider = make_provider(url, api_key=SECRET_KEY, timeout=SHORT)

    async with asyncio.timeout(BOUND):
        with pytest.raises(AutocallError) as caught:
            await provider.execute(PHONE)

    assert isinstance(caught.value, Unauthorized | ProviderUnavailable)
    shown = [
        str(caught.value),
        repr(caught.value),
        "".join(traceback.format_exception(caught.value)),
        repr(provider),
        caplog.text,
        *(record.getMessage() for record in caplog.records),
    ]
    assert not [text for text in shown if SECRET_KEY in text]


# --- error_code() ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("document", "code"),
    [
        # the three envelopes
        ({"status_code": 400, "message": "limit_word", "payload": None}, "limit_word"),
        (
            {"status_code": 400, "payload": {"error": "limit_service", "message": "Gói"}},
            "limit_service",
        ),
        (
            {"status_code": 400, "payload": {"message": "balance_is_not_enough"}},
            "balance_is_not_enough",
        ),
        # documented codes wherever they are, trimmed
        ({"status_code": 1, "key": "limit_word"}, "limit_word"),
        ({"status_code": 1, "error": "limit_word_session"}, "limit_word_session"),
        ({"status_code": 1, "payload": "limit_word"}, "limit_word"),
        ({"status_code": 1, "message": "  limit_service\n"}, "limit_service"),
        ({"payload": {"error": "other_code"}, "message": "limit_word"}, "limit_word"),
        # other codes: payload.error, then message, then payload.message
        (
            {"payload": {"error": "first_code", "message": "third"}, "message": "second"},
            "first_code",
        ),
        ({"payload": {"message": "third"}, "message": "second"}, "second"),
        ({"payload": {"error": None, "message": "third"}, "message": None}, "third"),
        ({"payload": {"error": "free text"}, "message": "second"}, "second"),
        ({"message": "invalid.token:v2-x"}, "invalid.token:v2-x"),
        ({"message": "a" * 64}, "a" * 64),
        # no code
        ({"status_code": 1}, None),
        ({"status_code": 1, "message": "Số dư tài khoản không đủ"}, None),
        ({"status_code": 1, "message": "bad request"}, None),
        ({"status_code": 1, "message": ""}, None),
        ({"status_code": 1, "message": 42}, None),
        ({"status_code": 1, "message": "9999"}, None),
        ({"status_code": 1, "message": "a" * 65}, None),
        ({"status_code": 1, "key": "not_documented"}, None),
        ({"status_code": 1, "error": "not_documented"}, None),
        ({"status_code": 1, "payload": ["limit_word"]}, None),
        (["limit_word"], None),
        ("limit_word", None),
        (None, None),
    ],
)
def test_error_code(document: Any, code: str | None) -> None:
    assert error_code(document) == code
