"""OMICall's client: the token cache, one request per call, the other API requests; sent through
the provider's HTTP edge (edge.py), its answers read by answers.py."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import aiohttp
import orjson

from ...errors import NOT_FOUND_CODE, ProviderError, Unauthorized
from ...metrics import Metrics
from ...render import Request
from ...settings import Settings
from ..edge import Accepted, Answer, Edge
from .answers import failure_of, lapse, succeeded, token_failure_of, token_lapsed

__all__ = ["API_ENDPOINTS", "CALL_ENDPOINTS", "Accepted", "Provider"]  # Accepted: its old home

TOKEN_LIFETIME = 24 * 3600.0
TOKEN_MARGIN = 300.0  # fetch a new token this long before the old one expires
CALL_ENDPOINTS = frozenset({"execute_by_phone", "execute_by_extension"})
# the metrics' `endpoint` label of the other requests: a bounded set, whatever the path
API_ENDPOINTS = {"/api/v2/callTransaction/search": "call_history", "/api/webhooks/": "webhooks"}
API_ENDPOINTS["/api/v3/call-transaction/search"] = "call_history"  # sent with x-api-key too


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
        self._edge = Edge(
            session,
            base_url,
            metrics,
            calls=CALL_ENDPOINTS,
            timeout=timeout,
            connect_timeout=connect_timeout,
        )
        self._metrics = metrics
        self._api_key = api_key
        self._fixed_token = token
        self._token: _Token | None = None
        self._token_lock = asyncio.Lock()
        self._clock = clock

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
        return f"Provider({self._edge.base_url!r}, auth={auth})"

    @property
    def call_time(self) -> float:
        """How long one `execute` may take: a connection, then two answers (a 401 gets a retry)."""
        return self._edge.call_time

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
            raise ProviderError(f"HTTP 404: {path.partition('?')[0]}", code=NOT_FOUND_CODE)
        return self._success(endpoint, answer).get("payload")

    async def _authorized(
        self, method: str, endpoint: str, path: str, body: bytes | None
    ) -> Answer:
        """The answer to a request with the bearer token. A lapsed token (HTTP 401, a body's
        `status_code` 401, `token_expired`) gets a new token and the request once more."""
        token = await self._bearer()
        answer = await self._with_token(method, endpoint, path, token, body)
        if token_lapsed(answer) and self._api_key is not None:
            self._metrics.api_request(endpoint, "unauthorized")
            self._forget(token)
            answer = await self._with_token(method, endpoint, path, await self._bearer(), body)
        if token_lapsed(answer):
            self._metrics.api_request(endpoint, "unauthorized")
            raise Unauthorized(f"the provider refused the token ({lapse(answer)})")
        return answer

    async def _with_token(
        self, method: str, endpoint: str, path: str, token: str, body: bytes | None
    ) -> Answer:
        headers = {"Authorization": f"Bearer {token}"}
        if endpoint == "call_history" and self._api_key:  # as the provider's integrators do
            headers["x-api-key"] = self._api_key
        return await self._edge.send(method, endpoint, path, headers, body=body)

    def _success(self, endpoint: str, answer: Answer) -> dict[str, Any]:
        """The answer's document when it is a success (status_code 9999); else the error."""
        if succeeded(answer):
            self._metrics.api_request(endpoint, "ok")
            document: dict[str, Any] = answer.document
            return document
        raise self._edge.counted(endpoint, failure_of(answer))

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
        params = {"apiKey": self._api_key}
        answer = await self._edge.send("GET", "auth", "/api/auth", {}, params=params, traced=False)
        document = answer.document
        payload = document.get("payload") if isinstance(document, dict) else None
        value = payload.get("access_token") if isinstance(payload, dict) else None
        if answer.status >= 400 or not isinstance(value, str) or not value:
            raise self._edge.counted("auth", token_failure_of(answer))
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
