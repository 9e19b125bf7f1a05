"""Reconciliation: finds in the call history the results no webhook brought, ends calls no record
came for as `unknown`, and finds the calls of `outcome_unknown` events that did happen. One
replica polls at a time (a lease in the store); the provider's errors back it off."""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import time
import uuid
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import replace
from typing import Any

from ..errors import AutocallError, StoreUnavailable
from ..provider.omicall.history import History
from ..provider.omicall.records import CallRecord, InvalidRecord, parse
from ..provider.stringee.calllog import CallLog
from .calls import OpenCall, unknown_of
from .pipeline import Results

log = logging.getLogger("autocall.results")
PHONES_PER_SEARCH = 50
SKEW = 60.0  # seconds searched before the oldest call, for clocks that differ
MAX_BACKOFF = 3600.0


class Poller:
    """Every `interval` seconds, one reconciliation pass (see the module's docstring)."""

    def __init__(
        self,
        results: Results,
        history: History | None,
        *,
        interval: float,
        timeout: float,
        clock: Callable[[], float] = time.time,
        by_account: Mapping[str, History | CallLog] | None = None,
    ) -> None:
        self._results = results
        self._store = results.store
        self._history = history
        # each account's own history for its calls (several OMICall accounts); `history` for
        # the calls of an account without one here (and those kept before accounts existed)
        self._by_account = dict(by_account or {})
        self.interval = interval
        self._timeout = timeout
        self._clock = clock
        self.owner = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"

    def __repr__(self) -> str:
        return f"Poller(interval={self.interval}, timeout={self._timeout})"

    async def run(self) -> None:
        """Poll until cancelled; a failed pass is logged and the next one comes as usual."""
        while True:
            await asyncio.sleep(self.interval)
            try:
                await self.tick()
            except StoreUnavailable as exc:
                log.warning("reconciliation skipped: %s", exc.message)
            except Exception as exc:  # the broker, most likely: the next pass tries again
                log.warning("reconciliation failed: %s", type(exc).__name__)

    async def tick(self) -> bool:
        """One pass, if this replica holds the lease; whether it ran."""
        if not await self._store.lease("poller", self.owner, max(self.interval * 1.5, 30.0)):
            return False
        try:
            left, level = await self._store.backoff()
            if left <= 0 and (self._history is not None or self._by_account):
                await self._reconcile(level)
        finally:  # whatever a pass met, calls past their time still end as `unknown`
            await self.expire()
        return True

    async def _reconcile(self, level: int) -> None:
        """One search of the history; its errors back the next ones off."""
        try:
            await self.reconcile()
        except AutocallError as exc:
            seconds = min(MAX_BACKOFF, self.interval * 2**level)
            await self._store.set_backoff(seconds, level + 1)
            log.warning(
                "call history: %s; backing off %.0f s", exc.code, seconds, extra={"code": exc.code}
            )
        else:
            if level:
                await self._store.set_backoff(0, 0)

    async def reconcile(self) -> None:
        """Search the history for the open calls and the `outcome_unknown` ones; close the calls
        whose span has ended with no further transaction (their last attempt becomes final)."""
        calls = await self._store.open_calls()
        unknown = await self._store.unknown_calls()
        if not calls and not unknown:
            return
        by_source: dict[History | CallLog, list[OpenCall]] = {}
        for call in [*calls, *unknown]:
            source = self._by_account.get(call.account or "", self._history)
            if source is not None:  # None: a call of no OMICall account's, and no default
                by_source.setdefault(source, []).append(call)
        for source, theirs in by_source.items():
            if isinstance(source, CallLog):
                await self._search_log(source, theirs)
            else:
                await self._search(source, theirs, unknown)

    async def _search_log(self, log: CallLog, calls: list[OpenCall]) -> None:
        """A Stringee account's calls: its call log since the oldest of them; every record is
        its call's one, final result (Stringee never redials)."""
        start = min(call.accepted_at for call in calls) - SKEW
        for record in await log.search(start, self._clock()):
            await _skipping_errors(self._results.final(record, "poll"))

    async def _search(
        self, history: History, calls: list[OpenCall], unknown: list[OpenCall]
    ) -> None:
        """Search one account's history for `calls`, by phone, since the oldest of them."""
        now = self._clock()
        start = min(call.accepted_at for call in calls) - SKEW
        phones = sorted({call.phone for call in calls})
        for first in range(0, len(phones), PHONES_PER_SEARCH):
            query = {
                "fromDate": int(start * 1000),
                "toDate": int(now * 1000),
                "phoneNumbers": phones[first : first + PHONES_PER_SEARCH],
            }
            records = [
                record
                async for item in history.search(query)
                if (record := _record(item, self._results.key_fields)) is not None
            ]
            await self._take_all(records, unknown, now)

    async def _take_all(
        self, records: list[CallRecord], unknown: list[OpenCall], now: float
    ) -> None:
        """Take a search's records in the order they started, so that attempts rank as they
        happened; each call's latest one may close it (`Results.receive`). Matched first, so
        that two calls to one number each have their own latest."""
        records.sort(key=lambda record: (record.started_at or 0.0, record.ended_at or 0.0))
        owners = [await self._call_of(record, unknown) for record in records]
        matched = [(record, call) for record, call in zip(records, owners, strict=True) if call]
        latest = {_key(call): record.transaction_id for record, call in matched}
        for record, call in matched:
            is_latest = latest[_key(call)] == record.transaction_id
            await _skipping_errors(
                self._results.receive(record, "poll", latest_at=now if is_latest else None)
            )

    async def _call_of(self, record: CallRecord, unknown: list[OpenCall]) -> OpenCall | None:
        """The call `record` belongs to. An `outcome_unknown` call it shows did happen becomes
        an open call, under the name the item gives it (v3 items may give either)."""
        call = await self._results.matcher.match(record, ask_history=False)
        name = record.autocall_id or record.autocall_uuid
        if call is not None or not name or (found := _happened(record, unknown)) is None:
            return call
        uuids = (record.autocall_uuid,) if record.autocall_uuid else ()
        call = replace(found, autocall_id=name, autocall_uuids=uuids)
        await self._store.record(call)
        await self._store.forget_unknown(found)
        unknown.remove(found)
        return call

    async def expire(self) -> None:
        """`unknown` for calls with no final result long after their span; forget the
        `outcome_unknown` calls no record was found for in that time."""
        now = self._clock()
        for call in await self._store.open_calls():
            if now > call.span_end + self._timeout:
                await self._results.publish(unknown_of(call, now))
        for call in await self._store.unknown_calls():
            if now > call.span_end + self._timeout:
                await self._store.forget_unknown(call)
        self._results.metrics.open_calls.set(await self._store.open_count())


def _record(item: dict[str, Any], key_fields: tuple[str, ...]) -> CallRecord | None:
    try:
        record = parse(item, key_fields)
    except InvalidRecord:
        return None
    return record if isinstance(record, CallRecord) else None


async def _skipping_errors(taking: Awaitable[object]) -> None:
    """One record's result. A record this code cannot take skips itself (it is found again on
    the next pass), never the others; the store's errors stop the pass."""
    try:
        await taking
    except AutocallError:
        raise
    except Exception as exc:
        log.warning("call history item skipped: %s", type(exc).__name__)


def _key(call: OpenCall) -> str:
    return call.autocall_id or call.idempotency_key


def _happened(record: CallRecord, unknown: list[OpenCall]) -> OpenCall | None:
    """The one `outcome_unknown` call to the record's phone whose span covers its time."""
    if not record.auto_call or record.phone is None or record.started_at is None:
        return None
    started = record.started_at
    fitting = [c for c in unknown if c.phone == record.phone and c.covers(started)]
    return fitting[0] if len(fitting) == 1 else None
