"""Posts call events to the webhook URLs like a provider that retries: a post answered 503, or one
that cannot connect, is tried again a few times; nothing a receiver does can crash the sandbox."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import aiohttp
import orjson

from .state import SandboxState

RETRYABLE_STATUS = 503
MAX_BACKOFF = 2.0
POST_TIMEOUT = aiohttp.ClientTimeout(total=10)
HEADERS = {"Content-Type": "application/json", "User-Agent": "autocall-sandbox-webhook"}


class Poster:
    """Delivers one event body to every webhook target, with the state's drop/duplicate knobs."""

    def __init__(
        self, state: SandboxState, sign: Callable[[bytes], dict[str, str]] | None = None
    ) -> None:
        self.state = state
        self._sign = sign  # the headers that sign a body (Stringee's), if the provider signs
        self._session: aiohttp.ClientSession | None = None

    async def live(self, body: dict[str, Any]) -> None:
        """Post a live event (ringing, answered, hangup)."""
        await self._to_all(body)

    async def cdr(self, body: dict[str, Any]) -> None:
        """Post an end-of-call record `cdr_posts` times (once more while `webhook_duplicate`
        lasts), unless the test asked for it to be dropped."""
        state = self.state
        if not state.webhook_targets():
            return
        if state.webhook_drop > 0:
            state.webhook_drop -= 1
            state.webhook_posts["dropped"] += 1
            return
        copies = max(1, state.cdr_posts)
        if state.webhook_duplicate > 0:
            state.webhook_duplicate -= 1
            copies += 1
        counted = state.send_num_retry == "deliveries" and "send_num_retry" in body
        for post in range(1, copies + 1):
            await self._to_all(body | {"send_num_retry": post} if counted else body)

    async def to(self, url: str, body: Any) -> None:
        """Post `body` to `url` alone (an input's own callback URL), with retries."""
        self.state.webhook_posts[await self._post(url, orjson.dumps(body))] += 1

    async def close(self) -> None:
        """Close the HTTP client."""
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def _to_all(self, body: dict[str, Any]) -> None:
        data = orjson.dumps(body)
        for url in self.state.webhook_targets():
            self.state.webhook_posts[await self._post(url, data)] += 1

    async def _post(self, url: str, data: bytes) -> str:
        """The post's result label: "ok", "http_<status>" or "connection_error"."""
        retries = self.state.webhook_retries
        result = "connection_error"
        for attempt in range(retries + 1):
            if attempt:
                self.state.webhook_posts["retry"] += 1
                delay = self.state.webhook_backoff * 2 ** (attempt - 1)
                await asyncio.sleep(min(MAX_BACKOFF, delay))
            try:
                status = await self._send(url, data)
            except (aiohttp.ClientError, TimeoutError, ValueError):
                result = "connection_error"
                continue
            result = "ok" if 200 <= status < 300 else f"http_{status}"
            if status != RETRYABLE_STATUS:
                break
        return result

    async def _send(self, url: str, data: bytes) -> int:
        if self._session is None:
            self._session = aiohttp.ClientSession(timeout=POST_TIMEOUT)
        headers = HEADERS | self._sign(data) if self._sign is not None else HEADERS
        async with self._session.post(url, data=data, headers=headers) as response:
            await response.read()
            return response.status
