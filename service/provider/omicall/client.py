"""The provider's client: token cache, one request per call, library errors mapped at this edge."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import aiohttp
import orjson
from yarl import URL

from ... import tracing
from ...errors import (
    AutocallError,
    OutcomeUnknown,
    ProviderError,
    ProviderUnavailable,
    Throttled,
    Unauthorized,
)
from ...metrics import Metrics
from ...render import Request
from ...settings import Settings
from .answers import Answer, Failure, failure_of, token_failure_of

TOKEN_LIFETIME = 24 * 3600.0
TOKEN_MARGIN = 300.0  # fetch a new token this long before the old one expires
CALL_ENDPOINTS = frozenset({"execute_by_phone", "execute_by_extension"})
# the metrics' `endpoint` label of the other requests: a bounded set, whatever the path
API_ENDPOINTS = {"/api/v2/callTransaction/search": "call_history", "/api/webhooks/": "webhooks"}
API_ENDPOINTS["/api/v3/call-transaction/search"] = "call_history"  # sent with x-api-key too


@dataclass(slots=True)
class Accepted:
    """The provider took the call."""

    autocall_id: str
    autocall_uuids: tuple[str, ...] = ()  # when the answer names them: history items carry one


@dataclass(slots=True)
class _Token:
    value: str
    expires: float


class Provider:
    """OMICall's auto-call API over one shared aiohttp session."""

    def __init__(
        self,
        session: aiohttp.ClientSession,
        base_url: str,
        metrics: Metrics,
        *,
        api_key: str | None = None,
        token: str | None = None,
        timeout: float = 15.0,
        connect_timeout: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if (api_key is None) == (token is None):
            raise ValueError("give exactly one of api_key and token")
        self._session = session
        self._base_url = base_url.rstrip("/")
        self._metrics = metrics
        self._api_key = api_key
        self._fixed_token = token
        self._token: _Token | None = None
        self._token_lock = asyncio.Lock()
        self._clock = clock
        # `connect`: a connection from the pool, before anything is sent (retryable);
        # `total`: the answer, once sent. No sock_read timer, re-armed on every chunk read.
        self._timeout = aiohttp.ClientTimeout(
            total=connect_timeout + timeout, connect=connect_timeout
        )
        self._call_time = connect_timeout + 2 * timeout
        self._urls: dict[str, URL] = {}

    @property
    def fixed_token(self) -> bool:
        """Whether a fixed token is used (no token request)."""
        return self._fixed_token is not None

    @classmethod
    def configured(
        cls, session: aiohttp.ClientSession, settings: Settings, metrics: Metrics
    ) -> Provider:
        """The provider the settings name, with their key or fixed token and time-outs."""
        key, token = settings.api_key, settings.api_token
        return cls(
            session,
            settings.api_base_url,
            metrics,
            api_key=None if key is None else key.get_secret_value(),
            token=None if token is None else token.get_secret_value(),
            timeout=settings.api_timeout,
            connect_timeout=settings.api_connect_timeout,
        )

    def __repr__(self) -> str:
        auth = "api_key" if self._api_key else "token"
        return f"Provider({self._base_url!r}, auth={auth})"

    @property
    def call_time(self) -> float:
        """How long one `execute` may take: a connection, then two answers (a 401 gets a retry)."""
        return self._call_time

    async def execute(self, request: Request) -> Accepted:
        """Place the call once; a 401 gets a new token and one more try."""
        body = orjson.dumps(request.json)
        answer = await self._authorized("POST", request.endpoint, request.path, body)
        document = self._success(request.endpoint, answer)
        payload = document.get("payload")
        autocall_id = payload.get("autocall_id") if isinstance(payload, dict) else None
        uuids = payload.get("autocall_uuids") if isinstance(payload, dict) else None
        uuids = [u for u in uuids if isinstance(u, str)] if isinstance(uuids, list) else []
        return Accepted("" if autocall_id is None else str(autocall_id), tuple(uuids[:100]))

    async def api(self, method: str, path: str, *, json: Any = None) -> Any:
        """Any other endpoint (`path` may carry a query): its `payload`; a 404 is `not_found`."""
        endpoint = _endpoint_of(path)
        body = None if json is None else orjson.dumps(json)
        answer = await self._authorized(method, endpoint, path, body)
        if answer.status == 404:
            self._metrics.api_request(endpoint, "http_other")
            raise ProviderError(f"HTTP 404: {path.partition('?')[0]}", code="not_found")
        return self._success(endpoint, answer).get("payload")

    async def _authorized(
        self, method: str, endpoint: str, path: str, body: bytes | None
    ) -> Answer:
        """The answer to a request with the bearer token. A lapsed token (HTTP 401, a body's
        `status_code` 401, `token_expired`) gets a new token and the request once more."""
        token = await self._bearer()
        answer = await self._with_token(method, endpoint, path, token, body)
        if answer.token_lapsed and self._api_key is not None:
            self._metrics.api_request(endpoint, "unauthorized")
            self._forget(token)
            answer = await self._with_token(method, endpoint, path, await self._bearer(), body)
        if answer.token_lapsed:
            self._metrics.api_request(endpoint, "unauthorized")
            raise Unauthorized(f"the provider refused the token ({answer.lapse()})")
        return answer

    async def _with_token(
        self, method: str, endpoint: str, path: str, token: str, body: bytes | None
    ) -> Answer:
        headers = {"Authorization": f"Bearer {token}"}
        if endpoint == "call_history" and self._api_key:  # as the provider's integrators do
            headers["x-api-key"] = self._api_key
        if body is not None:
            headers["Content-Type"] = "application/json"
        sending = self._send(method, endpoint, path, headers, body=body)
        return await tracing.requested(sending, method, self._url(path))

    async def _send(
        self,
        method: str,
        endpoint: str,
        path: str,
        headers: dict[str, str],
        *,
        body: bytes | None = None,
        params: dict[str, str] | None = None,
    ) -> Answer:
        started = time.perf_counter()
        try:
            async with self._session.request(
                method,
                self._url(path),
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

    def _url(self, path: str) -> URL:
        """Parsed once per path (aiohttp parses a string URL on every request)."""
        url = self._urls.get(path)
        if url is None:
            url = self._urls[path] = URL(self._base_url + path)
        return url

    def _failure(self, endpoint: str, exc: Exception) -> AutocallError | None:
        """Before the request left: retryable. After: the call may exist, so it is never resent."""
        kind = _classify(exc)
        if kind is None:
            return None
        result, unsent, message = kind
        self._metrics.api_request(endpoint, result)
        if unsent or endpoint not in CALL_ENDPOINTS:  # the others have no effect worth fearing
            return ProviderUnavailable(message)
        return OutcomeUnknown(f"the request was sent, then {message}")

    def _success(self, endpoint: str, answer: Answer) -> dict[str, Any]:
        """The answer's document when it is a success (status_code 9999); else the error."""
        if answer.succeeded:
            self._metrics.api_request(endpoint, "ok")
            document: dict[str, Any] = answer.document
            return document
        raise self._counted(endpoint, failure_of(answer))

    def _counted(self, endpoint: str, failure: Failure) -> AutocallError:
        """The failure's error, once its metrics are counted."""
        self._metrics.api_request(endpoint, failure.result)
        if failure.code is not None:
            self._metrics.provider_answer(failure.code)
        if isinstance(failure.error, Throttled):
            self._metrics.throttled.inc()
        return failure.error

    async def _bearer(self) -> str:
        if self._fixed_token is not None:
            return self._fixed_token
        token = self._token
        if token is not None and token.expires > self._clock():
            return token.value
        async with self._token_lock:  # one token request, however many calls are waiting
            token = self._token
            if token is None or token.expires <= self._clock():
                token = self._token = await self._fetch_token()
            return token.value

    def _forget(self, value: str) -> None:
        if self._token is not None and self._token.value == value:
            self._token = None

    async def _fetch_token(self) -> _Token:
        assert self._api_key is not None
        answer = await self._send("GET", "auth", "/api/auth", {}, params={"apiKey": self._api_key})
        document = answer.document
        payload = document.get("payload") if isinstance(document, dict) else None
        value = payload.get("access_token") if isinstance(payload, dict) else None
        if answer.status >= 400 or not isinstance(value, str) or not value:
            raise self._counted("auth", token_failure_of(answer))
        self._metrics.api_request("auth", "ok")
        lifetime = payload.get("expires_in") if isinstance(payload, dict) else None
        seconds = float(lifetime) if isinstance(lifetime, int | float) else TOKEN_LIFETIME
        return _Token(value, self._clock() + max(seconds - TOKEN_MARGIN, seconds / 2))

    async def authenticate(self) -> None:
        """Ask for a token now, unless one is cached (`doctor`); nothing to ask with a fixed one."""
        await self._bearer()


def _endpoint_of(path: str) -> str:
    """The metrics' label of an api() request."""
    return next((name for prefix, name in API_ENDPOINTS.items() if path.startswith(prefix)), "api")


def _classify(exc: Exception) -> tuple[str, bool, str] | None:
    """(the metric's result, whether the request surely never left, what happened)"""
    if isinstance(exc, aiohttp.ConnectionTimeoutError):
        return "timeout", True, "timed out connecting to the provider"
    if isinstance(exc, aiohttp.ClientConnectorError):
        return "connection_error", True, f"cannot connect to the provider: {_reason(exc)}"
    if isinstance(exc, asyncio.TimeoutError):
        return "timeout", False, "no answer came in time"
    if isinstance(exc, aiohttp.ClientError | OSError):
        return "connection_error", False, f"the connection failed: {_reason(exc)}"
    return None


def _reason(exc: BaseException) -> str:
    # aiohttp's messages name the host, never the query string; keep only the OS reason
    return getattr(exc, "strerror", None) or type(exc).__name__
