"""The call-log search (`GET {base}/v1/call/log`) for reconciliation: the calls of a time window as
provider-neutral records, paced under Stringee's limit of 100 requests a minute.

What its documentation leaves thin, assumed here (docs/stringee.md): the query takes
`from_created_time` and `to_created_time` (epoch seconds), `page` (from 1) and `limit` (at most
100); the answer is `{"r": 0, "data": {"calls": [...], "totalPages": n}}` (or `data` a list); an
item names its call `id`, and has `to_number`, `start_time`, `stop_time`, `answer_duration` and
an end cause when Stringee gives one. Keys pressed are not in the log: they come from `keys`.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Any

from ..records import CallRecord
from .client import CALL_LOG, StringeeClient
from .keys import PressedKeys
from .records import log_item

PATH = "/v1/call/log"
PER_MINUTE = 100
PAGE_SIZE = 100


class Limiter:
    """At most `per_minute` starts in any rolling minute; a caller over it waits its turn."""

    def __init__(
        self,
        per_minute: int = PER_MINUTE,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self._per_minute = per_minute
        self._clock = clock
        self._sleep = sleep
        self._starts: deque[float] = deque()
        self._lock = asyncio.Lock()

    async def wait(self) -> None:
        """Return once one more request fits in the minute."""
        async with self._lock:
            while True:
                now = self._clock()
                while self._starts and self._starts[0] <= now - 60:
                    self._starts.popleft()
                if len(self._starts) < self._per_minute:
                    self._starts.append(now)
                    return
                await self._sleep(self._starts[0] + 60 - now)


class CallLog:
    """One account's call log, searched by time."""

    def __init__(
        self,
        client: StringeeClient,
        *,
        keys: PressedKeys | None = None,
        limiter: Limiter | None = None,
        max_pages: int = 20,
    ) -> None:
        self._client = client
        self._keys = keys
        self._limiter = limiter or Limiter()
        self._max_pages = max_pages

    def __repr__(self) -> str:
        return f"CallLog({self._client.account.name!r})"

    async def search(self, since: float, until: float) -> list[CallRecord]:
        """The ended calls created from `since` to `until` (epoch seconds), as records.
        Raises ProviderUnavailable, Unauthorized or ProviderError; safe to repeat."""
        records: list[CallRecord | None] = []
        page, pages = 1, 1
        while page <= min(pages, self._max_pages):
            await self._limiter.wait()
            params = {
                "from_created_time": str(int(since)),
                "to_created_time": str(int(until) + 1),
                "page": str(page),
                "limit": str(PAGE_SIZE),
            }
            document = await self._client.get(PATH, params, CALL_LOG)
            items, pages = _items(document)
            records += [await self._record(item) for item in items]
            page += 1
        return [record for record in records if record is not None]

    async def _record(self, item: Any) -> CallRecord | None:
        event = log_item(item)
        if event is None:
            return None
        keys = None
        if self._keys is not None and event.answer_duration > 0:
            keys = await self._keys.get(event.call_id)
        return event.record(keys)


def _items(document: Any) -> tuple[list[Any], int]:
    """The page's items and how many pages there are."""
    data = document.get("data") if isinstance(document, dict) else None
    if isinstance(data, list):
        return data, 1
    if not isinstance(data, dict):
        return [], 1
    calls = data.get("calls")
    pages = data.get("totalPages", data.get("total_pages", 1))
    pages = pages if isinstance(pages, int) and not isinstance(pages, bool) else 1
    return (calls if isinstance(calls, list) else []), max(1, pages)
