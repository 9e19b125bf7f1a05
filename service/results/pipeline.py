"""A call record's way to a result event: match it to its call, keep it single, publish it."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Literal, Protocol

from .. import tracing
from ..provider.omicall.history import History
from ..provider.omicall.records import DEFAULT_KEY_FIELDS
from ..provider.records import CallRecord
from ..settings import DEFAULT_ACCOUNT
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

    def __init__(
        self,
        store: ResultStore,
        history: History | None,
        by_account: Mapping[str, History] | None = None,
    ) -> None:
        self._store = store
        self._history = history
        self._by_account = dict(by_account or {})  # each OMICall account's own history

    async def match(self, record: CallRecord, *, ask_history: bool = True) -> OpenCall | None:
        """By autocall_id (or autocall_uuid) when the record has one; by phone and time when
        exactly one open call fits; else by what the call history says of its transaction
        (unless the record comes from the history: it has said what it knows)."""
        if not record.auto_call:
            return None
        autocall_id = record.autocall_id
        if not autocall_id and record.transaction_id:  # a record seen before: sent again
            autocall_id = await self._store.transaction(record.transaction_id)
        if autocall_id:
            return await self._store.call(autocall_id)
        calls = await self._store.open_by_phone(record.phone) if record.phone else []
        if record.autocall_uuid:  # §12: execute answers "may" name their uuids; some did not
            if (found := _by_uuid(calls, record.autocall_uuid)) is not None:
                return found
            calls = [call for call in calls if not call.autocall_uuids]
        started = record.started_at
        fitting = [call for call in calls if started is not None and call.covers(started)]
        if len(fitting) == 1 or not ask_history:
            return fitting[0] if len(fitting) == 1 else None
        return await self._by_history(record, calls)

    async def _by_history(self, record: CallRecord, calls: list[OpenCall]) -> OpenCall | None:
        """The call the history names for the record's transaction: by its autocall_id, or by
        its autocall_uuid among `calls` (the open calls to the record's number)."""
        if not record.transaction_id:
            return None
        for history in self._histories(calls):  # the accounts that called this number
            owner = await history.owner_of(record.transaction_id)
            if owner.autocall_id:
                return await self._store.call(owner.autocall_id)
            if owner.autocall_uuid:
                return _by_uuid(calls, owner.autocall_uuid)
        return None

    def _histories(self, calls: list[OpenCall]) -> list[History]:
        """The histories of the accounts of `calls`, in order; the default one without any."""
        found = [self._by_account.get(call.account or "", self._history) for call in calls]
        found = found or [self._history]
        return [history for history in dict.fromkeys(found) if history is not None]


def _by_uuid(calls: list[OpenCall], autocall_uuid: str) -> OpenCall | None:
    """The call whose execute answer named `autocall_uuid`."""
    return next((call for call in calls if autocall_uuid in call.autocall_uuids), None)


@dataclass(frozen=True, slots=True)
class Reading:
    """What became of a record: taken or not, the call it matched, its attempt (of how many)."""

    taken: Taken
    call: OpenCall | None = None
    attempt: int | None = None
    transactions: int = 0  # the call's distinct transactions so far


class Results:
    """Turns call records into result events, each published once, with confirms."""

    def __init__(
        self,
        store: ResultStore,
        matcher: Matcher,
        publisher: Publishes,
        metrics: ResultMetrics,
        choices: dict[str, dict[str, str]],
        *,
        key_fields: Sequence[str] = DEFAULT_KEY_FIELDS,
    ) -> None:
        self.store = store
        self.matcher = matcher
        self._publisher = publisher
        self.metrics = metrics
        self._choices = choices
        self.key_fields = tuple(key_fields)

    async def take(self, record: CallRecord, source: str) -> Taken:
        """Publish `record`'s result unless it matches no call or was published before."""
        return (await self.receive(record, source)).taken

    async def receive(
        self, record: CallRecord, source: str, *, latest_at: float | None = None
    ) -> Reading:
        """As `take`, and what was read: the call matched and the attempt. `latest_at`: the
        record is the latest transaction of its call the history has at that time; past the
        call's span, no further one can come, so its result is final (§12). When it was
        published before as not final, it is published again as that attempt's closing."""
        call = await self.matcher.match(record, ask_history=source != "poll")
        if call is None:
            return Reading("unmatched")
        attempt, count = await self._attempt(call, record)
        event = result_of(call, record, attempt, self._choices.get(call.template, {}), source)
        closes = latest_at is not None and latest_at > call.span_end and attempt >= count
        taken = await self.publish(replace(event, final=True) if closes else event)
        if closes and taken == "duplicate":
            taken = await self.publish(replace(event, final=True, closing=True))
        return Reading(taken, call, attempt, count)

    async def final(self, record: CallRecord, source: str) -> Taken:
        """Publish `record` as its call's one, final result: a provider that never redials
        (Stringee) names the call (`autocall_id`) in every record."""
        call = await self.store.call(record.autocall_id) if record.autocall_id else None
        if call is None:
            return "unmatched"
        event = result_of(call, record, 1, self._choices.get(call.template, {}), source)
        return await self.publish(replace(event, final=True))

    @tracing.result_span
    async def publish(self, event: ResultEvent) -> Taken:
        """Publish `event` unless its attempt (or its call's final result) already was."""
        call, mark = event.call, event.mark
        if not await self.store.claim(call, mark, event.final):
            return "duplicate"
        try:
            result_id = f"{call.autocall_id or call.idempotency_key}:{mark}"
            published = self._publisher.result(
                event.body(), event.routing_key, str(call.event["id"]), result_id
            )
            async with asyncio.timeout(PUBLISH_TIMEOUT):  # wait_for can lose a cancel (3.11)
                await published
        except BaseException:
            await asyncio.shield(self.store.release(call, mark, event.final))
            raise
        try:
            transaction = event.record.transaction_id if event.record else ""
            await self.store.done(call, mark, event.final, transaction)
        except Exception as exc:  # published: the pending mark still keeps it single a while
            log.warning("cannot mark a result done: %s", exc)
        self._count(event)
        return "accepted"

    async def _attempt(self, call: OpenCall, record: CallRecord) -> tuple[int, int]:
        """The record's attempt: its transaction's rank among the call's (never the record's
        `send_num_retry`, whose meaning the provider does not document)."""
        if not record.transaction_id:  # nothing to rank by: the span's slot it started in
            return (call.attempt_at(record.started_at) if record.started_at else 1), 0
        started = record.started_at or call.accepted_at
        return await self.store.rank(call, record.transaction_id, started)

    def _count(self, event: ResultEvent) -> None:
        account = event.call.account or DEFAULT_ACCOUNT
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
