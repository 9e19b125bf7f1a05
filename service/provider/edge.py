"""The HTTP edge every provider's client sends through: one request with its time-outs, timed
for the metrics and in its CLIENT span, the library's errors mapped into the error tree (before
the request left: ProviderUnavailable; after a call was sent: OutcomeUnknown, never sent again),
URLs parsed once; what an answer is and what a call's acceptance carries; the failure answers
counted in one place."""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Awaitable
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any

import aiohttp
import orjson
from yarl import URL

from .. import tracing
from ..errors import AutocallError, OutcomeUnknown, ProviderUnavailable, Throttled
from ..metrics import Metrics
from ..templates.filters import mask_digits

MAX_RETRY_AFTER = 600.0  # seconds: a longer Retry-After is honoured this long, then asked again


@dataclass(slots=True)
class Accepted:
    """The provider took the call (what every client's `execute` returns)."""

    autocall_id: str  # the call's id at the provider (Stringee's call_id)
    autocall_uuids: tuple[str, ...] = ()  # when the answer names them: history items carry one


@dataclass(slots=True)
class Answer:
    """One HTTP answer: its status, raw body, the body's JSON (None when not JSON) and the
    seconds its Retry-After header asks for."""

    status: int
    body: bytes
    document: Any
    retry_after: float | None = None

    @classmethod
    def of(cls, status: int, body: bytes, retry_after: str | None = None) -> Answer:
        """An answer as received."""
        return cls(status, body, parsed_or_none(body), seconds_of(retry_after))


@dataclass(slots=True)
class Failure:
    """A failure answer read: the metric's `result`, the code counted by the provider-errors
    metric (None when the answer carried none), and the error to raise."""

    result: str
    code: str | None
    error: AutocallError


class Edge:
    """One account's requests to its provider over the shared aiohttp session. `calls` names
    the endpoints that place a call: only their time-outs after sending are OutcomeUnknown."""

    def __init__(
        self,
        session: aiohttp.ClientSession,
        base_url: str,
        metrics: Metrics,
        *,
        calls: frozenset[str],
        name: str = "the provider",
        timeout: float = 15.0,
        connect_timeout: float = 5.0,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self._session = session
        self._metrics = metrics
        self._calls = calls
        self._name = name
        # `connect`: a connection from the pool, before anything is sent (retryable);
        # `total`: the answer, once sent. No sock_read timer, re-armed on every chunk read.
        self._timeout = aiohttp.ClientTimeout(
            total=connect_timeout + timeout, connect=connect_timeout
        )
        # How long one call may take: a connection, then two answers (a 401 gets a retry).
        self.call_time = connect_timeout + 2 * timeout
        self._urls: dict[str, URL] = {}

    def url(self, path: str) -> URL:
        """Parsed once per path (aiohttp parses a string URL on every request)."""
        url = self._urls.get(path)
        if url is None:
            url = self._urls[path] = URL(self.base_url + path)
        return url

    def send(
        self,
        method: str,
        endpoint: str,
        path: str,
        headers: dict[str, str],
        *,
        body: bytes | None = None,
        params: dict[str, str] | None = None,
        traced: bool = True,
    ) -> Awaitable[Answer]:
        """The answer to one request, in its CLIENT span (within a kept trace) unless `traced`
        is false (a token request)."""
        sending = self._exchange(method, endpoint, path, headers, body=body, params=params)
        return tracing.requested(sending, method, self.url(path)) if traced else sending

    async def _exchange(
        self,
        method: str,
        endpoint: str,
        path: str,
        headers: dict[str, str],
        *,
        body: bytes | None,
        params: dict[str, str] | None,
    ) -> Answer:
        if body is not None:
            headers = headers | {"Content-Type": "application/json"}
        started = time.perf_counter()
        try:
            async with self._session.request(
                method,
                self.url(path),
                data=body,
                params=params,
                headers=headers,
                timeout=self._timeout,
                allow_redirects=False,
            ) as response:
                retry_after = response.headers.get("Retry-After")
                return Answer.of(response.status, await response.read(), retry_after)
        except Exception as exc:
            error = self._failure(endpoint, exc)
            if error is None:
                raise
            raise error from None
        finally:
            self._metrics.api_time(endpoint, time.perf_counter() - started)

    def counted(self, endpoint: str, failure: Failure) -> AutocallError:
        """The failure's error, once its metrics are counted (a throttle's too)."""
        self._metrics.api_request(endpoint, failure.result)
        if failure.code is not None:
            self._metrics.provider_answer(failure.code)
        if isinstance(failure.error, Throttled):
            self._metrics.throttled.inc()
        return failure.error

    def _failure(self, endpoint: str, exc: Exception) -> AutocallError | None:
        """Before the request left: retryable. After: the call may exist, so it is never resent."""
        kind = _classify(exc, self._name)
        if kind is None:
            return None
        result, unsent, message = kind
        self._metrics.api_request(endpoint, result)
        if unsent or endpoint not in self._calls:  # the others have no effect worth fearing
            return ProviderUnavailable(message)
        return OutcomeUnknown(f"the request was sent, then {message}")


def _classify(exc: Exception, name: str) -> tuple[str, bool, str] | None:
    """(the metric's result, whether the request surely never left, what happened)"""
    if isinstance(exc, aiohttp.ConnectionTimeoutError):
        return "timeout", True, f"timed out connecting to {name}"
    if isinstance(exc, aiohttp.ClientConnectorError):
        return "connection_error", True, f"cannot connect to {name}: {_reason(exc)}"
    if isinstance(exc, asyncio.TimeoutError):
        return "timeout", False, "no answer came in time"
    if isinstance(exc, aiohttp.ClientError | OSError):
        return "connection_error", False, f"the connection failed: {_reason(exc)}"
    return None


def _reason(exc: BaseException) -> str:
    # aiohttp's messages name the host, never the query string; keep only the OS reason
    return getattr(exc, "strerror", None) or type(exc).__name__


def seconds_of(retry_after: str | None) -> float | None:
    """A Retry-After header's seconds (a number, or an HTTP date), within 0..MAX_RETRY_AFTER."""
    if not retry_after:
        return None
    text = retry_after.strip()
    try:
        seconds = float(text)
    except ValueError:
        try:
            moment = parsedate_to_datetime(text)
        except (TypeError, ValueError):
            return None
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=UTC)
        seconds = (moment - datetime.now(UTC)).total_seconds()
    if math.isnan(seconds):
        return None
    return min(max(seconds, 0.0), MAX_RETRY_AFTER)


def parsed_or_none(body: bytes) -> Any:
    """The JSON document in `body`; None when it is not JSON (an HTML error page, say)."""
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError:
        return None


def trim(body: bytes, limit: int = 120) -> str:
    """The body as one line of text, digit runs masked, at most `limit` characters."""
    text = " ".join(body.decode("utf-8", "replace").split())
    return mask_digits(text)[:limit]
