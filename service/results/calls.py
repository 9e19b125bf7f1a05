"""Accepted calls as the store keeps them, and the result events made of them (CONTRACT.md §9)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson

from ..provider.omicall.records import CallRecord, Result
from ..templates.filters import LOCAL_TZ, mask

RING_SECONDS = 120  # what one attempt may take, ringing and talking, in the span rule
NO_CHOICE = "none"
# How a call without a trace ends in JSON: cut off, so that it reads as it did before traces
# (an `outcome_unknown` call is its own JSON in a Redis set, found again by that JSON).
_NO_TRACE = b',"traceparent":""}'
OTHER_CHOICE = "other"


@dataclass(frozen=True, slots=True)
class OpenCall:
    """An accepted call (or an `outcome_unknown` one, with no autocall_id yet)."""

    autocall_id: str
    event: dict[str, Any]  # id, type, source
    template: str
    idempotency_key: str
    phone: str  # national format: the store keeps it to match records; never logged
    accepted_at: float  # epoch seconds
    num_retry: int = 0
    distance_retry: int = 0
    autocall_uuids: tuple[str, ...] = ()  # the execute answer's: history items name them
    account: str | None = None  # the account that took the call (CONTRACT.md §13)
    # last: a call without a trace is written without it (see dumps)
    traceparent: str = ""  # the context of the span that processed its event (W3C), if traced

    @property
    def attempts(self) -> int:
        return self.num_retry + 1

    @property
    def span_end(self) -> float:
        """The latest time a record of this call may start at."""
        return self.accepted_at + self.attempts * (self.distance_retry + RING_SECONDS)

    def covers(self, moment: float) -> bool:
        """Whether an attempt may have started at `moment` (a little clock skew allowed)."""
        return self.accepted_at - 5 <= moment <= self.span_end

    def attempt_at(self, moment: float) -> int:
        """The attempt a record that does not number itself most likely belongs to."""
        elapsed = max(0.0, moment - self.accepted_at)
        return min(self.attempts, 1 + int(elapsed // (self.distance_retry + RING_SECONDS)))

    def dumps(self) -> bytes:
        data = orjson.dumps(self)  # orjson writes dataclasses itself, faster than asdict
        return data[: -len(_NO_TRACE)] + b"}" if data.endswith(_NO_TRACE) else data

    @classmethod
    def loads(cls, data: bytes | str) -> OpenCall:
        fields = orjson.loads(data)
        fields["autocall_uuids"] = tuple(fields.get("autocall_uuids") or ())
        return cls(**fields)


@dataclass(frozen=True, slots=True)
class ResultEvent:
    """One result event: what one attempt of a call came to."""

    call: OpenCall
    result: Result
    final: bool
    attempt: int
    choice: str | None
    source: str  # webhook | poll
    occurred_at: float
    record: CallRecord | None = None  # None for `unknown`
    closing: bool = False  # an attempt published before, final now that the span has ended

    @property
    def mark(self) -> str:
        """What keeps this result single: its attempt, `unknown`, or the closing of an attempt."""
        if self.result == "unknown":
            return "unknown"
        return f"{self.attempt}:final" if self.closing else str(self.attempt)

    @property
    def routing_key(self) -> str:
        return f"autocall.result.{self.result}.{self.choice or NO_CHOICE}"

    def body(self) -> bytes:
        record, call = self.record, self.call
        via = {} if call.account is None else {"account": call.account}
        return orjson.dumps(
            {
                "status": "result",
                "result": self.result,
                "final": self.final,
                "choice": self.choice,
                "keys": record.keys if record else None,
                "event": call.event,
                "template": call.template,
                "idempotency_key": call.idempotency_key,
                "autocall_id": call.autocall_id or None,
                "transaction_id": (record.transaction_id or None) if record else None,
                "phone": mask(call.phone),
                "attempt": self.attempt,
                "answer_seconds": record.answer_seconds if record else None,
                "billed_seconds": record.billed_seconds if record else None,
                "ended_by": record.ended_by if record else None,
                "recording_url": record.recording_url if record else None,
                "occurred_at": _local(self.occurred_at),
                "source": self.source,
            }
            | via
        )


def result_of(
    call: OpenCall,
    record: CallRecord,
    attempt: int,
    choices: dict[str, str],
    source: str,
    *,
    closing: bool = False,
) -> ResultEvent:
    """The result event of `record`, attempt `attempt` (its transaction's rank) of `call`: final
    when answered, when the call has had all its attempts, or when `closing` it (§12)."""
    final = closing or record.result == "answered" or attempt >= call.attempts
    moment = record.started_at or call.accepted_at
    choice = choose(record.keys, choices)
    return ResultEvent(
        call, record.result, final, attempt, choice, source, moment, record, closing=closing
    )


def unknown_of(call: OpenCall, now: float) -> ResultEvent:
    """The `unknown` result of a call no record came for in time."""
    return ResultEvent(call, "unknown", True, call.attempts, None, "poll", now)


def choose(keys: str | None, choices: dict[str, str]) -> str | None:
    """The template's name for the keys pressed, `other` for keys it does not name."""
    if not keys:
        return None
    return choices.get(keys) or choices.get(keys[-1]) or OTHER_CHOICE


def _local(moment: float) -> str:
    return datetime.fromtimestamp(moment, LOCAL_TZ).isoformat(timespec="seconds")
