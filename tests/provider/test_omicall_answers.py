"""What the provider's answers mean (provider/omicall/answers.py, pure), the client's re-auth on
each form of a lapsed token, and the throttle's slow-down, without a broker."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from typing import Any

import aiohttp
import orjson
import pytest

from service.errors import (
    AccountRefused,
    AutocallError,
    BalanceTooLow,
    DoNotCall,
    NumberRefused,
    ProviderError,
    ProviderUnavailable,
    QuotaExceeded,
    Throttled,
    Unauthorized,
)
from service.metrics import Metrics
from service.pipeline.throttle import Throttle
from service.provider.omicall.answers import (
    MAX_RETRY_AFTER,
    Answer,
    failure_of,
    seconds_of,
    token_failure_of,
)
from service.provider.omicall.client import Provider
from service.sandbox import Sandbox
from tests.provider.test_omicall_client import PHONE

KEY = "sandbox-key"


def answer(status: int, document: Any, retry_after: str | None = None) -> Answer:
    body = document if isinstance(document, bytes) else orjson.dumps(document)
    return Answer.of(status, body, retry_after)


def message(code: str) -> dict[str, Any]:
    return {"status_code": 400, "message": code, "payload": None}


@pytest.mark.parametrize(
    ("code", "leaf"),
    [
        ("balance_is_not_enough", BalanceTooLow),
        ("limit_word", QuotaExceeded),
        ("limit_service", QuotaExceeded),
        ("tenant_disabled", AccountRefused),
        ("individual_package_expired", AccountRefused),
        ("api_key_invalid", AccountRefused),
        ("auth_invalid", AccountRefused),
        ("unauthorized", Unauthorized),
        ("do_not_call", DoNotCall),
        ("invalid_phone_number", NumberRefused),
        ("number_call_out_invalid", NumberRefused),
        ("rate_limit_exceeded", Throttled),
        ("extension_invalid", ProviderError),
    ],
)
def test_each_code_has_its_leaf(code: str, leaf: type[AutocallError]) -> None:
    failure = failure_of(answer(200, message(code)))

    assert type(failure.error) is leaf
    assert failure.error.code == code
    assert failure.code == code


def test_a_lapsed_token_in_each_form() -> None:
    assert answer(401, b"Unauthorized").token_lapsed
    assert answer(200, {"status_code": 401, "message": "Unauthorized"}).token_lapsed
    assert answer(200, message("token_expired")).token_lapsed
    assert answer(200, {"payload": {"error": "token_expired"}}).token_lapsed
    assert not answer(200, {"status_code": 9999, "message": "token_expired"}).token_lapsed
    assert not answer(200, message("tenant_disabled")).token_lapsed
    assert not answer(200, b"<html>401</html>").token_lapsed


@pytest.mark.parametrize(
    ("status", "body", "kind", "result", "shown"),
    [
        (
            502,
            b"<html><h1>502 Bad Gateway</h1></html>",
            ProviderUnavailable,
            "http_5xx",
            "HTTP 502",
        ),
        (503, b"Service Unavailable", ProviderUnavailable, "http_5xx", "HTTP 503"),
        (404, b"<html>Not Found</html>", ProviderError, "http_other", "HTTP 404: <html>"),
        (200, b"<html>oops</html>", ProviderError, "provider_error", "HTTP 200: <html>oops"),
    ],
)
def test_an_answer_that_is_not_json(
    status: int, body: bytes, kind: type[AutocallError], result: str, shown: str
) -> None:
    failure = failure_of(answer(status, body))

    assert type(failure.error) is kind
    assert failure.result == result
    assert failure.error.message.startswith(shown)


def test_a_5xx_with_a_known_code_is_that_code_and_other_5xx_are_transient() -> None:
    assert type(failure_of(answer(500, message("tenant_disabled"))).error) is AccountRefused
    assert type(failure_of(answer(500, message("internal_error"))).error) is ProviderUnavailable


def test_a_throttle_carries_its_retry_after() -> None:
    by_status = failure_of(answer(429, b"slow down", "7"))
    by_code = failure_of(answer(200, message("rate_limit_exceeded")))
    by_body_status = failure_of(answer(200, {"status_code": 429, "message": "Too many"}))

    assert isinstance(by_status.error, Throttled) and by_status.error.retry_after == 7.0
    assert isinstance(by_code.error, Throttled) and by_code.error.retry_after is None
    assert isinstance(by_body_status.error, Throttled)
    assert by_status.error.retryable


def test_retry_after_as_seconds_or_a_date() -> None:
    later = datetime.now(UTC) + timedelta(seconds=30)

    assert seconds_of("2") == 2.0
    assert 25 <= (seconds_of(format_datetime(later, usegmt=True)) or 0) <= 30
    assert seconds_of("-5") == 0.0
    assert seconds_of("99999") == MAX_RETRY_AFTER
    assert seconds_of("soon") is None
    assert seconds_of("nan") is None
    assert seconds_of(None) is None


@pytest.mark.parametrize(
    ("status", "document", "kind"),
    [
        (200, message("auth_invalid"), AccountRefused),
        (401, {"status_code": 401, "message": "api_key_invalid"}, AccountRefused),
        (401, {"status_code": 401, "message": "invalid_api_key"}, Unauthorized),
        (403, b"Forbidden", Unauthorized),
        (429, b"slow down", Throttled),
        (503, b"down", ProviderUnavailable),
        (200, {"status_code": 9999, "payload": {}}, Unauthorized),
    ],
)
def test_the_token_request_refused(status: int, document: Any, kind: type[AutocallError]) -> None:
    assert type(token_failure_of(answer(status, document)).error) is kind


# --- the client against the sandbox: each form of a lapsed token -----------------------------


@pytest.mark.parametrize("suffix", ["4005", "4006"])
async def test_the_client_renews_a_lapsed_token_once(sandbox: Sandbox, suffix: str) -> None:
    request = PHONE.__class__(PHONE.path, PHONE.json | {"phone_number_list": [f"091234{suffix}"]})
    async with aiohttp.ClientSession() as session:
        provider = Provider(session, sandbox.url, Metrics(), api_key=KEY)
        accepted = await provider.execute(request)

    assert accepted.autocall_id == sandbox.state.calls[0].autocall_id
    assert sandbox.state.auth_requests == 2


async def test_a_fixed_token_that_lapsed_is_unauthorized(sandbox: Sandbox) -> None:
    sandbox.state.fixed_tokens.add("fixed")
    request = PHONE.__class__(PHONE.path, PHONE.json | {"phone_number_list": ["0912344005"]})
    async with aiohttp.ClientSession() as session:
        provider = Provider(session, sandbox.url, Metrics(), token="fixed")
        with pytest.raises(Unauthorized) as refused:
            await provider.execute(request)

    assert refused.value.message == "the provider refused the token (token_expired)"

    assert sandbox.state.calls == []


# --- the throttle ----------------------------------------------------------------------------


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


async def test_free_until_throttled() -> None:
    throttle = Throttle()
    async with throttle.turn() as turn:
        assert not turn.probe
    assert not throttle.slowed


async def test_after_a_throttle_one_request_goes_first_then_the_rest() -> None:
    throttle = Throttle(first=0.05)
    async with throttle.turn() as turn:
        turn.answered(Throttled("429"))
    assert throttle.slowed
    order: list[str] = []

    async def request(name: str, pause: float) -> None:
        async with throttle.turn() as turn:
            order.append(f"{name} starts")
            await asyncio.sleep(pause)
            order.append(f"{name} ends")
            turn.answered(None)

    loop = asyncio.get_running_loop()
    started = loop.time()
    async with asyncio.timeout(5):
        await asyncio.gather(request("a", 0.05), request("b", 0), request("c", 0))

    assert loop.time() - started >= 0.05  # the backoff was waited out
    first = order[0].split()[0]
    assert order[:2] == [f"{first} starts", f"{first} ends"]  # alone until its answer came
    assert not throttle.slowed


async def test_a_probe_throttled_again_doubles_the_wait_or_takes_retry_after() -> None:
    clock = Clock()
    throttle = Throttle(first=1.0, longest=4.0, clock=clock)

    throttle.throttled(None)
    assert throttle._until == 101.0
    throttle.throttled(None)
    assert throttle._until == 102.0
    throttle.throttled(None)
    throttle.throttled(None)
    assert throttle._until == 104.0  # at most `longest`
    throttle.throttled(30.0)
    assert throttle._until == 130.0  # Retry-After wins


async def test_an_older_requests_answer_does_not_end_the_slow_down() -> None:
    throttle = Throttle(first=0.01)
    async with throttle.turn() as old:
        throttle.throttled(None)  # another request's answer, while this one was out
        old.answered(None)
    assert throttle.slowed


async def test_a_probe_that_ends_without_an_answer_lets_the_next_one_probe() -> None:
    throttle = Throttle(first=0.01)
    throttle.throttled(None)
    async with asyncio.timeout(5):
        async with throttle.turn() as first:
            assert first.probe
        async with throttle.turn() as second:
            assert second.probe
            second.answered(None)
    assert not throttle.slowed
