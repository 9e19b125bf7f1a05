"""Control events in the data path: apply a change to the suppression list, answer an outcome;
and the list's size gauge."""

from __future__ import annotations

import asyncio
import time
from datetime import datetime

from ..errors import AutocallError, StoreUnavailable
from ..events import Event
from ..metrics import Metrics
from ..store import Store
from ..suppression.changes import change_of, masked
from .actions import Action, Publish
from .outcomes import Outcome
from .retry import Retry

SIZE_REFRESH = 30.0  # seconds: the list's size is read from the store at most this often


class Control:
    """Applies `autocall.suppression.*` events and keeps the list's size gauge."""

    def __init__(self, store: Store, retry: Retry, metrics: Metrics) -> None:
        self._store = store
        self._retry = retry
        self._size = 0
        self._read_at = float("-inf")
        self._reading: asyncio.Task[None] | None = None
        metrics.suppressed.set_function(self._gauge)

    async def apply(self, event: Event, retries: int, now: datetime) -> Action:
        """`accepted` once the change is in the store; `failed` for a bad one."""
        try:
            change = change_of(event, now)
        except AutocallError as exc:
            return Publish(Outcome.failed(event.identity, exc, now))
        try:
            if change.add:
                await self._store.suppress(change.entry)
            else:
                await self._store.unsuppress(change.entry.phone)
        except StoreUnavailable as exc:
            return self._later(event, exc, retries, now)
        self._read_at = float("-inf")  # the next scrape reads the new size
        return Publish(Outcome.applied(event.identity, masked(change.entry.phone), now))

    def _later(self, event: Event, exc: StoreUnavailable, retries: int, now: datetime) -> Action:
        """Through the retry delays, like a call the store kept from being made."""
        later = self._retry.later(exc.code, event, retries)
        return later if later is not None else Publish(Outcome.failed(event.identity, exc, now))

    def _gauge(self) -> float:
        """The size as last read; reads it again in the background when that is old (on a
        scrape, not per event)."""
        if time.monotonic() - self._read_at > SIZE_REFRESH and self._reading is None:
            try:
                loop = asyncio.get_running_loop()
            except RuntimeError:
                return float(self._size)
            self._read_at = time.monotonic()
            self._reading = loop.create_task(self._read())
        return float(self._size)

    async def _read(self) -> None:
        try:
            self._size = await self._store.suppressed_count()
        except StoreUnavailable:
            self._read_at = float("-inf")
        finally:
            self._reading = None
