"""What a fault case counts: the outcomes collected, and the ledger of events in, outcomes out
and calls made."""

from __future__ import annotations

import asyncio
import contextlib
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import orjson
from aio_pika.abc import AbstractIncomingMessage


@dataclass
class Outcome:
    """One outcome message as the collector got it."""

    body: dict[str, Any]
    redelivered: bool

    @property
    def event_id(self) -> str:
        return str(self.body["event"]["id"])

    @property
    def label(self) -> str:
        """accepted, failed/<code> or skipped/<reason>."""
        body = self.body
        if body["status"] == "failed":
            return f"failed/{body['error']['code']}"
        if body["status"] == "skipped":
            return f"skipped/{body['reason']}"
        return str(body["status"])


class Collector:
    """Outcome events from a durable queue bound to the outcome exchange: it survives a broker
    restart, and its robust channel consumes again once the broker is back."""

    def __init__(self) -> None:
        self.received: list[Outcome] = []
        self.collector_redeliveries = 0  # the broker gave us a message again: not the service's
        self._raw: set[bytes] = set()
        self._changed = asyncio.Condition()

    async def on_message(self, message: AbstractIncomingMessage) -> None:
        body = message.body
        if message.redelivered and body in self._raw:
            # our ack was lost with the connection: the same message, not a second outcome
            self.collector_redeliveries += 1
        else:
            self._raw.add(body)
            outcome = Outcome(orjson.loads(body), bool(message.redelivered))
            async with self._changed:
                self.received.append(outcome)
                self._changed.notify_all()
        with contextlib.suppress(Exception):
            await message.ack()

    def event_ids(self) -> set[str]:
        return {outcome.event_id for outcome in self.received}

    async def wait_events(self, count: int, timeout: float) -> None:
        """Until outcomes of `count` distinct events arrived."""
        try:
            async with asyncio.timeout(timeout), self._changed:
                await self._changed.wait_for(lambda: len(self.event_ids()) >= count)
        except TimeoutError:
            have = len(self.event_ids())
            raise TimeoutError(
                f"outcomes of {have} events after {timeout:.0f} s, expected {count}"
            ) from None

    async def quiet(self, seconds: float) -> None:
        """Wait until no outcome arrived for `seconds` (late duplicates show up here)."""
        seen = -1
        while seen != len(self.received):
            seen = len(self.received)
            await asyncio.sleep(seconds)


@dataclass
class Ledger:
    """What went in, what came out and who was called, for one case."""

    case: str
    events: int
    outcome_messages: int
    missing: list[str]  # published, no outcome
    unexpected: list[str]  # outcome for an event never published
    duplicate_outcomes: int  # outcome messages beyond the first of each event
    conflicting: list[str]  # events whose outcomes disagree on status or code
    statuses: Counter[str]  # per event, its first outcome's label
    calls: int
    double_called: dict[str, int]  # phone or key called more than once -> calls
    unreported_calls: list[str]  # calls whose key has no accepted or outcome_unknown outcome
    phantom_accepts: list[str]  # accepted outcomes whose autocall_id the provider never issued
    unknown_uncalled: int  # outcome_unknown events whose key the provider never saw called
    seconds: float
    dead_letters: int = 0  # messages on <queue>.dead: each failed event's message is kept
    notes: list[str] = field(default_factory=list)
    verdict: str = "?"

    @classmethod
    def of(
        cls,
        case: str,
        published: list[str],
        outcomes: list[Outcome],
        calls: list[dict[str, Any]],
        seconds: float,
    ) -> Ledger:
        by_event: dict[str, list[Outcome]] = {}
        for outcome in outcomes:
            by_event.setdefault(outcome.event_id, []).append(outcome)
        ids = set(published)
        statuses = Counter(found[0].label for event, found in by_event.items() if event in ids)
        phones = Counter(call["body"].get("phone_number_list", ["?"])[0] for call in calls)
        keys = Counter(str(call["body"].get("name")) for call in calls)
        doubles = {p: n for p, n in phones.items() if n > 1} | {
            k: n for k, n in keys.items() if n > 1
        }
        issued = {call["autocall_id"] for call in calls}
        reported: set[str] = set()  # keys with an accepted or outcome_unknown outcome
        uncalled: set[str] = set()
        phantoms = []
        for outcome in outcomes:
            key = str(outcome.body.get("idempotency_key"))
            if outcome.label in ("accepted", "failed/outcome_unknown"):
                reported.add(key)
            if outcome.label == "failed/outcome_unknown" and key not in keys:
                uncalled.add(outcome.event_id)
            if outcome.label == "accepted" and outcome.body.get("autocall_id") not in issued:
                phantoms.append(outcome.event_id)
        return cls(
            case=case,
            events=len(published),
            outcome_messages=len(outcomes),
            missing=sorted(ids - by_event.keys()),
            unexpected=sorted(by_event.keys() - ids),
            duplicate_outcomes=sum(len(found) - 1 for found in by_event.values()),
            conflicting=sorted(
                event for event, found in by_event.items() if len({o.label for o in found}) > 1
            ),
            statuses=statuses,
            calls=len(calls),
            double_called=doubles,
            unreported_calls=sorted(k for k in keys if k not in reported),
            phantom_accepts=sorted(set(phantoms)),
            unknown_uncalled=len(uncalled),
            seconds=seconds,
        )

    def problems(self) -> list[str]:
        """What breaks the suite's guarantees: zero events without an outcome, zero customers
        called twice, no call left unreported, no acceptance the provider never gave."""
        found = []
        if self.missing:
            found.append(f"{len(self.missing)} events without an outcome: {self.missing[:10]}")
        if self.double_called:
            found.append(f"called more than once: {dict(list(self.double_called.items())[:10])}")
        if self.unexpected:
            found.append(f"outcomes of events never published: {self.unexpected[:10]}")
        if self.conflicting:
            found.append(f"events with conflicting outcomes: {self.conflicting[:10]}")
        if self.unreported_calls:
            found.append(f"calls made but reported neither accepted nor outcome_unknown: "
                         f"{self.unreported_calls[:10]}")  # fmt: skip
        failed = sum(n for label, n in self.statuses.items() if label.startswith("failed/"))
        if self.dead_letters < failed:
            found.append(f"{failed} failed events, {self.dead_letters} on the dead-letter queue")
        if self.phantom_accepts:
            found.append(f"accepted without a call at the provider: {self.phantom_accepts[:10]}")
        return found

    def outcomes_text(self) -> str:
        counted = sorted(self.statuses.items())
        return ", ".join(f"{label} {n}" for label, n in counted) or "none"

    def line(self) -> str:
        return (
            f"{self.case}: events {self.events}, outcomes {self.outcomes_text()}, "
            f"missing {len(self.missing)}, duplicate outcomes {self.duplicate_outcomes}, "
            f"calls {self.calls}, double calls {len(self.double_called)}, "
            f"{self.seconds:.1f} s"
        )

    def row(self) -> str:
        notes = "; ".join(self.notes)
        return (
            f"| {self.case} | {self.events} | {self.outcomes_text()} | {len(self.missing)} | "
            f"{self.duplicate_outcomes} | {self.calls} | {len(self.double_called)} | "
            f"{self.seconds:.1f} | {self.verdict} | {notes} |"
        )


RESULTS: list[Ledger] = []  # every case's ledger this session, for tests/faults/last-run.md
