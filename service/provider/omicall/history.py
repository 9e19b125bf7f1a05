"""The provider's call history (CONTRACT.md §9, §12): searches on v3 (or v2, as
AUTOCALL_HISTORY_API says), and transaction lookups batched into few requests (the provider
rate-limits this API). v3 answers come in two paging styles and sometimes as a bare list."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any, Literal, Protocol

from ...errors import NOT_FOUND_CODE, ProviderError
from ...stopping import cancel

Version = Literal["v2", "v3"]
SEARCH_PATHS: dict[str, str] = {
    "v2": "/api/v2/callTransaction/search",
    "v3": "/api/v3/call-transaction/search",
}
SORT = {"field": "created_date", "isAsc": False}
PAGE_SIZE = 50
MAX_PAGES = 20  # a search that runs longer than this resumes on the next poll
BATCH_WAIT = 0.05  # seconds a lookup waits for others to share its request
log = logging.getLogger("autocall.results")


class Lookups(Protocol):
    """Where the lookups are counted (results.metrics.ResultMetrics)."""

    def lookup(self, result: str, count: int = 1) -> None: ...


class Api(Protocol):
    """An authenticated provider request (Provider.api): the answer's `payload`, or the error
    tree's ProviderError / Unauthorized / ProviderUnavailable."""

    async def api(self, method: str, path: str, *, json: Any = None) -> Any: ...


@dataclass(frozen=True, slots=True)
class Owner:
    """What the history says of a transaction's call: either may be missing."""

    autocall_id: str | None = None
    autocall_uuid: str | None = None


class History:
    """Call-history searches over the provider's API."""

    def __init__(
        self,
        api: Api,
        metrics: Lookups,
        batch_wait: float = BATCH_WAIT,
        version: Version = "v3",
    ) -> None:
        self._api = api
        self._metrics = metrics
        self._batch_wait = batch_wait
        self.version = version
        self._waiting: dict[str, list[asyncio.Future[Owner]]] = {}
        self._flush: asyncio.Task[None] | None = None
        self._running: set[asyncio.Task[None]] = set()
        self._told_not_found = False

    def __repr__(self) -> str:
        return f"History(version={self.version!r})"

    async def search(
        self, query: dict[str, Any], max_pages: int = MAX_PAGES
    ) -> AsyncIterator[dict[str, Any]]:
        """Every item the search `query` finds (fromDate, toDate, phoneNumbers, transactionIds);
        a version the provider does not serve (HTTP 404) is counted as a lookup error."""
        try:
            async for item in self._search(query, max_pages):
                yield item
        except ProviderError as exc:
            if exc.code == NOT_FOUND_CODE:
                self._metrics.lookup("error")
            raise

    async def owner_of(self, transaction_id: str) -> Owner:
        """The call `transaction_id` belongs to, as far as the history knows it."""
        future: asyncio.Future[Owner] = asyncio.get_running_loop().create_future()
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

    async def _search(self, query: dict[str, Any], max_pages: int) -> AsyncIterator[dict[str, Any]]:
        path = SEARCH_PATHS[self.version]
        body = query if self.version == "v2" else {"filter": query, "sort": SORT}
        for page in range(1, max_pages + 1):
            try:
                payload = await self._api.api(
                    "POST", f"{path}?page={page}&size={PAGE_SIZE}", json=body
                )
            except ProviderError as exc:
                if exc.code == NOT_FOUND_CODE:
                    self._tell_not_found()
                raise
            items, more = page_of(payload)
            for item in items:
                yield item
            if not items or more is False or (more is None and len(items) < PAGE_SIZE):
                return

    def _tell_not_found(self) -> None:
        if not self._told_not_found:
            self._told_not_found = True
            other = "v2" if self.version == "v3" else "v3"
            log.error(
                "the provider has no %s call history (HTTP 404): results found by polling and "
                "lookups fail; set AUTOCALL_HISTORY_API=%s if the account serves that one",
                self.version,
                other,
            )

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

    async def _lookup(self, batch: dict[str, list[asyncio.Future[Owner]]]) -> None:
        if not batch:
            return
        found: dict[str, Owner] = {}
        try:
            async for item in self._search({"transactionIds": sorted(batch)}, MAX_PAGES):
                transaction, owner = _text(item.get("transaction_id")), _owner(item)
                if transaction in batch and (owner.autocall_id or owner.autocall_uuid):
                    found[transaction] = owner
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
                    future.set_result(found.get(transaction, Owner()))


def page_of(payload: Any) -> tuple[list[dict[str, Any]], bool | None]:
    """A page's items and whether another follows (None: the page does not say)."""
    if isinstance(payload, list):
        return [item for item in payload if isinstance(item, dict)], None
    if not isinstance(payload, dict):
        return [], False
    items = payload.get("items")
    found = [item for item in items if isinstance(item, dict)] if isinstance(items, list) else []
    for key in ("has_next", "hasNext"):
        if isinstance(payload.get(key), bool):
            return found, payload[key]
    number = payload.get("page_number", payload.get("pageNumber"))
    total = payload.get("total_pages", payload.get("totalPages"))
    if isinstance(number, int) and isinstance(total, int):
        return found, number < total
    return found, None


def _owner(item: dict[str, Any]) -> Owner:
    return Owner(_text(item.get("autocall_id")), _text(item.get("autocall_uuid")))


def _text(value: Any) -> str | None:
    return str(value) if isinstance(value, str | int) and value not in ("", None) else None


def _fail(batch: dict[str, list[asyncio.Future[Owner]]], exc: BaseException) -> None:
    """Every lookup of the batch fails with `exc` (or is cancelled with it)."""
    for future in (future for futures in batch.values() for future in futures):
        if future.done():
            continue
        if isinstance(exc, Exception):
            future.set_exception(exc)
        else:
            future.cancel()
