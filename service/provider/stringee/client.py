"""Stringee's REST API for one account: the callout, and GETs such as the call log. The token is
made locally (auth.py); library errors and Stringee's answers are mapped at this edge.

Answers: `{"r": 0, "call_id": …}` accepted; `r` 8 BalanceTooLow (code `stringee_8`, the account
cannot call: hold or fail over); any other `r` a ProviderError `stringee_<r>` (the request is
refused: never failed over). Before the request left (refused, reset, no connection), HTTP 5xx:
ProviderUnavailable; 429: Throttled (Retry-After honoured);
a time-out once it was sent: OutcomeUnknown (the call may exist: never sent again). No redials.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import aiohttp
import orjson
from yarl import URL

from ... import tracing
from ...errors import (
    AutocallError,
    BalanceTooLow,
    OutcomeUnknown,
    ProviderError,
    ProviderUnavailable,
    TemplateError,
    Throttled,
    Unauthorized,
)
from ...metrics import Metrics
from ...render import Request
from ..omicall.answers import parsed_or_none, seconds_of, trim
from ..omicall.client import Accepted, _classify
from . import callout
from .account import StringeeAccount
from .auth import Tokens

AUTH_HEADER = "X-STRINGEE-AUTH"
BALANCE_R = 8  # "not enough money"
CALLOUT = "callout"  # the metrics' endpoint labels
CALL_LOG = "call_log"


@dataclass(slots=True)
class _Answer:
    status: int
    body: bytes
    retry_after: str | None = None


class StringeeClient:
    """One Stringee account's REST API over a shared aiohttp session; `execute` has the shape of
    OMICall's `Provider.execute`, so the caller takes either."""

    def __init__(
        self,
        session: aiohttp.ClientSession,
        account: StringeeAccount,
        metrics: Metrics,
        *,
        event_url: str,
        timeout: float = 15.0,
        connect_timeout: float = 5.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.account = account
        self._session = session
        self._metrics = metrics
        self._event_url = event_url  # the input's callback URL: it carries the webhook token
        self._token_in_url = event_url.rstrip("/").rsplit("/", 1)[-1]
        self._base = account.base_url.rstrip("/")
        self._tokens = Tokens(account.key_sid, account.key_secret.get_secret_value(), clock=clock)
        self._timeout = aiohttp.ClientTimeout(
            total=connect_timeout + timeout, connect=connect_timeout
        )
        self._call_time = connect_timeout + 2 * timeout

    def __repr__(self) -> str:
        return f"StringeeClient({self.account.name!r}, {self._base!r})"

    @property
    def call_time(self) -> float:
        """How long one `execute` may take: a connection, then two answers (a 401 gets a retry)."""
        return self._call_time

    def callout_body(self, request: Request) -> dict[str, Any]:
        """The callout's body for `request`'s provider-neutral script."""
        if request.script is None:
            raise TemplateError("the request has no provider-neutral script")
        return callout.body(request.script, self.account, self._event_url)

    async def execute(self, request: Request) -> Accepted:
        """Place the call once: Accepted(call_id), or the error that says why not."""
        body = orjson.dumps(self.callout_body(request))
        answer = await self._authorized("POST", CALLOUT, callout.PATH, body=body)
        document = self._success(CALLOUT, answer, r_required=True)
        return Accepted(str(document.get("call_id") or ""))

    async def get(self, path: str, params: dict[str, str], endpoint: str = CALL_LOG) -> Any:
        """A GET's document when `r` is 0 (or absent); safe to repeat, so a time-out is
        ProviderUnavailable here."""
        answer = await self._authorized("GET", endpoint, path, params=params)
        return self._success(endpoint, answer)

    async def _authorized(
        self,
        method: str,
        endpoint: str,
        path: str,
        *,
        body: bytes | None = None,
        params: dict[str, str] | None = None,
    ) -> _Answer:
        """The answer with the current token; a 401 or 403 gets a new token, once."""
        answer = await self._send(
            method, endpoint, path, self._tokens.current(), body=body, params=params
        )
        if answer.status in (401, 403):
            self._metrics.api_request(endpoint, "unauthorized")
            token = self._tokens.renew()
            answer = await self._send(method, endpoint, path, token, body=body, params=params)
        if answer.status in (401, 403):
            self._metrics.api_request(endpoint, "unauthorized")
            raise Unauthorized(f"Stringee refused the key's token (HTTP {answer.status})")
        return answer

    def _send(
        self,
        method: str,
        endpoint: str,
        path: str,
        token: str,
        *,
        body: bytes | None,
        params: dict[str, str] | None,
    ) -> Awaitable[_Answer]:
        sending = self._request(method, endpoint, path, token, body=body, params=params)
        return tracing.requested(sending, method, self._base + path)

    async def _request(
        self,
        method: str,
        endpoint: str,
        path: str,
        token: str,
        *,
        body: bytes | None,
        params: dict[str, str] | None,
    ) -> _Answer:
        headers = {AUTH_HEADER: token}
        if body is not None:
            headers["Content-Type"] = "application/json"
        started = time.perf_counter()
        try:
            async with self._session.request(
                method,
                URL(self._base + path),
                data=body,
                params=params,
                headers=headers,
                timeout=self._timeout,
                allow_redirects=False,
            ) as response:
                retry_after = response.headers.get("Retry-After")
                return _Answer(response.status, await response.read(), retry_after)
        except Exception as exc:
            error = self._failure(endpoint, exc)
            if error is None:
                raise
            raise error from None
        finally:
            self._metrics.api_time(endpoint, time.perf_counter() - started)

    def _failure(self, endpoint: str, exc: Exception) -> AutocallError | None:
        """Before the request left: unavailable. After: the call may exist, never sent again."""
        kind = _classify(exc)
        if kind is None:
            return None
        result, unsent, message = kind
        self._metrics.api_request(endpoint, result)
        if unsent or endpoint != CALLOUT:
            return ProviderUnavailable(f"Stringee: {message}")
        return OutcomeUnknown(f"the callout was sent, then {message}")

    def _success(
        self, endpoint: str, answer: _Answer, *, r_required: bool = False
    ) -> dict[str, Any]:
        """The answer's document when `r` is 0 (or, unless `r_required`, absent from a 2xx);
        else the error it means. A callout's answer without `r` is not Stringee's."""
        if answer.status == 429:
            self._metrics.api_request(endpoint, "http_other")
            message = f"Stringee: HTTP 429: {self._text(answer.body, 120)}"
            raise Throttled(message, retry_after=seconds_of(answer.retry_after))
        if answer.status >= 500:
            self._metrics.api_request(endpoint, "http_5xx")
            text = self._text(answer.body, 120)
            raise ProviderUnavailable(f"Stringee: HTTP {answer.status}: {text}")
        document = parsed_or_none(answer.body)
        if not isinstance(document, dict):
            self._metrics.api_request(
                endpoint, "http_other" if answer.status >= 400 else "provider_error"
            )
            self._metrics.provider_answer("provider_error")
            raise ProviderError(f"HTTP {answer.status}: {self._text(answer.body, 300)}")
        r = document.get("r", 0 if answer.status < 400 and not r_required else None)
        if r == 0 and answer.status < 400:
            self._metrics.api_request(endpoint, "ok")
            return document
        self._metrics.api_request(endpoint, "provider_error")
        said = document.get("message") or document.get("msg") or f"HTTP {answer.status}"
        raise _refusal(r, self._text(str(said).encode(), 300), self._metrics)

    def _text(self, body: bytes, limit: int) -> str:
        """What Stringee said, fit for an outcome: trimmed, digits masked, and without the
        webhook token should it echo the eventUrl back."""
        if self._token_in_url:
            body = body.replace(self._token_in_url.encode(), b"***")
        return trim(body, limit)


def _refusal(r: Any, message: str, metrics: Metrics) -> ProviderError:
    """The error of an answer whose `r` is not 0."""
    if isinstance(r, bool) or not isinstance(r, int):
        metrics.provider_answer("provider_error")
        return ProviderError(f"Stringee: {message}")
    code = f"stringee_{r}"
    metrics.provider_answer(code)
    if r == BALANCE_R:
        return BalanceTooLow(f"Stringee: {message}", code=code)
    return ProviderError(f"Stringee: {message}", code=code)
