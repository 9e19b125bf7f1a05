"""Stringee's REST API for one account: the callout, and GETs such as the call log. The token is
made locally (auth.py); requests go through the provider's HTTP edge (edge.py, which maps the
library's errors), and Stringee's answers are read here.

Answers: `{"r": 0, "call_id": …}` accepted; `r` 8 BalanceTooLow (code `stringee_8`, the account
cannot call: hold or fail over); any other `r` a ProviderError `stringee_<r>` (the request is
refused: never failed over). Before the request left (refused, reset, no connection), HTTP 5xx:
ProviderUnavailable; 429: Throttled (Retry-After honoured, counted as throttled as OMICall's);
a time-out once it was sent: OutcomeUnknown (the call may exist: never sent again). No redials.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp
import orjson

from ...errors import (
    STRINGEE_BALANCE_CODE,
    AutocallError,
    BalanceTooLow,
    ProviderError,
    ProviderUnavailable,
    TemplateError,
    Throttled,
    Unauthorized,
)
from ...metrics import Metrics
from ...render import Request
from ..edge import Accepted, Answer, Edge, Failure, trim
from . import callout
from .account import StringeeAccount
from .auth import Tokens

AUTH_HEADER = "X-STRINGEE-AUTH"
CALLOUT = "callout"  # the metrics' endpoint labels
CALL_LOG = "call_log"


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
        self._edge = Edge(
            session,
            account.base_url,
            metrics,
            calls=frozenset({CALLOUT}),
            name="Stringee",
            timeout=timeout,
            connect_timeout=connect_timeout,
        )
        self._metrics = metrics
        self._event_url = event_url  # the input's callback URL: it carries the webhook token
        self._token_in_url = event_url.rstrip("/").rsplit("/", 1)[-1]
        self._tokens = Tokens(account.key_sid, account.key_secret.get_secret_value(), clock=clock)

    def __repr__(self) -> str:
        return f"StringeeClient({self.account.name!r}, {self._edge.base_url!r})"

    @property
    def call_time(self) -> float:
        """How long one `execute` may take: a connection, then two answers (a 401 gets a retry)."""
        return self._edge.call_time

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
    ) -> Answer:
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
    ) -> Awaitable[Answer]:
        headers = {AUTH_HEADER: token}
        return self._edge.send(method, endpoint, path, headers, body=body, params=params)

    def _success(self, endpoint: str, answer: Answer, *, r_required: bool = False) -> Any:
        """The answer's document when `r` is 0 (or, unless `r_required`, absent from a 2xx);
        else the error it means. A callout's answer without `r` is not Stringee's."""
        document = answer.document
        if answer.status < 400 and isinstance(document, dict):
            r = document.get("r", None if r_required else 0)
            if r == 0:
                self._metrics.api_request(endpoint, "ok")
                return document
        raise self._edge.counted(endpoint, self._failure(answer))

    def _failure(self, answer: Answer) -> Failure:
        """What a failure answer means: throttled, unavailable, or refused (by its `r`)."""
        status, document = answer.status, answer.document
        if status == 429:
            wait = answer.retry_after
            said = f"Stringee: HTTP 429: {self._text(answer.body, 120)}"
            return Failure("http_other", None, Throttled(said, retry_after=wait))
        if status >= 500:
            said = f"Stringee: HTTP {status}: {self._text(answer.body, 120)}"
            return Failure("http_5xx", None, ProviderUnavailable(said, status=status))
        if not isinstance(document, dict):
            result = "http_other" if status >= 400 else "provider_error"
            said = f"HTTP {status}: {self._text(answer.body, 300)}"
            return Failure(result, "provider_error", ProviderError(said))
        r = document.get("r")
        said = document.get("message") or document.get("msg") or f"HTTP {status}"
        code, error = _refusal(r, self._text(str(said).encode(), 300))
        return Failure("provider_error", code, error)

    def _text(self, body: bytes, limit: int) -> str:
        """What Stringee said, fit for an outcome: trimmed, digits masked, and without the
        webhook token should it echo the eventUrl back."""
        if self._token_in_url:
            body = body.replace(self._token_in_url.encode(), b"***")
        return trim(body, limit)


def _refusal(r: Any, message: str) -> tuple[str, AutocallError]:
    """The code and error of an answer whose `r` is not 0."""
    if isinstance(r, bool) or not isinstance(r, int):
        return "provider_error", ProviderError(f"Stringee: {message}")
    code = f"stringee_{r}"
    if code == STRINGEE_BALANCE_CODE:
        return code, BalanceTooLow(f"Stringee: {message}", code=code)
    return code, ProviderError(f"Stringee: {message}", code=code)
