"""A call record's way to a result event: match it to its call, keep it single, publish it."""

from __future__ import annotations

import asyncio
import logging
from typing import Literal, Protocol

from ..provider.omicall.history import History
from ..provider.omicall.records import CallRecord
from .calls import OpenCall, ResultEvent, result_of
from .metrics import ResultMetrics
from .store import ResultStore

log = logging.getLogger("autocall.results")
PUBLISH_TIMEOUT = 10.0  # a broker that cannot confirm in this long is treated as unreachable
Taken = Literal["accepted", "duplicate", "unmatched"]


class Publishes(Protocol):
    """Publishes a result event with confirms (outcomes.Publisher)."""

    async def result(
        self, body: bytes, routing_key: str, event_id: str, result_id: str
    ) -> None: ...


class Matcher:
    """Finds the accepted call a record belongs to."""

    def __init__(self, store: ResultStore, history: History | None) -> None:
        self._store = store
        self._history = history

    async def match(self, record: CallRecord) -> OpenCall | None:
        """By autocall_id when the record has one; by phone and time when exactly one open call
        fits; else by the call history's autocall_id for its transaction_id."""
        if not record.auto_call:
            return None
        autocall_id = record.autocall_id
        if not autocall_id and record.transaction_id:  # a record seen before: sent again
            autocall_id = await self._store.transaction(record.transaction_id)
        if autocall_id:
            return await self._store.call(autocall_id)
        if record.phone and record.started_at is not None:
            fitting = [
                call
                for call in await self._store.open_by_phone(record.phone)
                if call.covers(record.started_at)
            ]
            if len(fitting) == 1:
                return fitting[0]
        if self._history is None or not record.transaction_id:
            return None
        autocall_id = await self._history.autocall_id_of(record.transaction_id)
        return await self._store.call(autocall_id) if autocall_id else None


class Results:
    """Turns call records into result events, each published once, with confirms."""

    def __init__(
        self,
        store: ResultStore,
        matcher: Matcher,
        publisher: Publishes,
        metrics: ResultMetrics,
        choices: dict[str, dict[str, str]],
    ) -> None:
        self.store = store
        self.matcher = matcher
        self._publisher = publisher
        self.metrics = metrics
        self._choices = choices

    async def take(self, record: CallRecord, source: str) -> Taken:
        """Publish `record`'s result unless it matches no call or was published before."""
        call = await self.matcher.match(record)
        if call is None:
            return "unmatched"
        event = result_of(call, record, self._choices.get(call.template, {}), source)
        return await self.publish(event)

    async def publish(self, event: ResultEvent) -> Taken:
        """Publish `event` unless its attempt (or its call's final result) already was."""
        call, attempt = event.call, str(event.attempt) if event.result != "unknown" else "unknown"
        if not await self.store.claim(call, attempt, event.final):
            return "duplicate"
        try:
            result_id = f"{call.autocall_id or call.idempotency_key}:{attempt}"
            published = self._publisher.result(
                event.body(), event.routing_key, str(call.event["id"]), result_id
            )
            async with asyncio.timeout(PUBLISH_TIMEOUT):  # wait_for can lose a cancel (3.11)
                await published
        except BaseException:
            await asyncio.shield(self.store.release(call, attempt, event.final))
            raise
        try:
            transaction = event.record.transaction_id if event.record else ""
            await self.store.done(call, attempt, event.final, transaction)
        except Exception as exc:  # published: the pending mark still keeps it single a while
            log.warning("cannot mark a result done: %s", exc)
        self._count(event)
        return "accepted"

    def _count(self, event: ResultEvent) -> None:
        account = event.call.account or "default"
        self.metrics.result(event.result, event.call.template, event.final, event.choice, account)
        if event.result == "answered" and event.record is not None:
            self.metrics.answer_seconds.observe(event.record.answer_seconds)
        log.info(
            "call result %s",
            event.result,
            extra={
                "event_id": event.call.event.get("id"),
                "template": event.call.template,
                "attempt": event.attempt,
                "final": event.final,
                "choice": event.choice,
                "source": event.source,
            },
        )
