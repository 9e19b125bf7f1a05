"""The provider's call history: searches, and transaction-id lookups batched into few requests
(the provider rate-limits this API)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any, Protocol

from ...stopping import cancel

SEARCH_PATH = "/api/v2/callTransaction/search"
PAGE_SIZE = 50
MAX_PAGES = 20  # a search that runs longer than this resumes on the next poll
BATCH_WAIT = 0.05  # seconds a lookup waits for others to share its request


class Lookups(Protocol):
    """Where the lookups are counted (results.metrics.ResultMetrics)."""

    def lookup(self, result: str, count: int = 1) -> None: ...


class Api(Protocol):
    """An authenticated provider request (Provider.api): the answer's `payload`, or the error
    tree's ProviderError / Unauthorized / ProviderUnavailable."""

    async def api(self, method: str, path: str, *, json: Any = None) -> Any: ...


class History:
    """Call-history searches over the provider's API."""

    def __init__(self, api: Api, metrics: Lookups, batch_wait: float = BATCH_WAIT) -> None:
        self._api = api
        self._metrics = metrics
        self._batch_wait = batch_wait
        self._waiting: dict[str, list[asyncio.Future[str | None]]] = {}
        self._flush: asyncio.Task[None] | None = None
        self._running: set[asyncio.Task[None]] = set()

    async def search(self, query: dict[str, Any]) -> AsyncIterator[dict[str, Any]]:
        """Every item the search `query` finds (fromDate, toDate, phoneNumbers, transactionIds)."""
        for page in range(1, MAX_PAGES + 1):
            path = f"{SEARCH_PATH}?page={page}&size={PAGE_SIZE}"
            payload = await self._api.api("POST", path, json=query)
            items = payload.get("items") if isinstance(payload, dict) else None
            for item in items if isinstance(items, list) else []:
                if isinstance(item, dict):
                    yield item
            if not (isinstance(payload, dict) and payload.get("has_next") is True and items):
                return

    async def autocall_id_of(self, transaction_id: str) -> str | None:
        """The autocall_id of the call `transaction_id` belongs to, if the history knows it."""
        future: asyncio.Future[str | None] = asyncio.get_running_loop().create_future()
        self._waiting.setdefault(transaction_id, []).append(future)
        if len(self._waiting) >= PAGE_SIZE:
            self._start_flush(now=True)
        elif self._flush is None:
            self._start_flush(now=False)
        return await future

    async def close(self) -> None:
        """Stop a pending batch; its lookups fail as unavailable."""
        for task in list(self._running):
            await cancel(task)
        for futures in self._waiting.values():
            for future in futures:
                future.cancel()
        self._waiting = {}

    def _start_flush(self, *, now: bool) -> None:
        batch, self._waiting = (self._waiting, {}) if now else ({}, self._waiting)
        task = asyncio.get_running_loop().create_task(self._lookup(batch) if now else self._later())
        self._running.add(task)
        task.add_done_callback(self._running.discard)
        if not now:
            self._flush = task

    async def _later(self) -> None:
        await asyncio.sleep(self._batch_wait)
        batch, self._waiting, self._flush = self._waiting, {}, None
        await self._lookup(batch)

    async def _lookup(self, batch: dict[str, list[asyncio.Future[str | None]]]) -> None:
        if not batch:
            return
        found: dict[str, str] = {}
        try:
            async for item in self.search({"transactionIds": sorted(batch)}):
                transaction, autocall_id = item.get("transaction_id"), item.get("autocall_id")
                if transaction in batch and autocall_id not in (None, ""):
                    found[str(transaction)] = str(autocall_id)
        except BaseException as exc:
            self._metrics.lookup("error", len(batch))
            _fail(batch, exc)
            if not isinstance(exc, Exception):
                raise
            return
        for transaction, futures in batch.items():
            self._metrics.lookup("found" if transaction in found else "not_found")
            for future in futures:
                if not future.done():
                    future.set_result(found.get(transaction))


def _fail(batch: dict[str, list[asyncio.Future[str | None]]], exc: BaseException) -> None:
    """Every lookup of the batch fails with `exc` (or is cancelled with it)."""
    for future in (future for futures in batch.values() for future in futures):
        if future.done():
            continue
        if isinstance(exc, Exception):
            future.set_exception(exc)
        else:
            future.cancel()
