"""What every provider's records become, whoever sent them: the `CallRecord` of one attempt,
`LiveEvent` and `Contact` (never results), and the tolerant readers of their values (the
providers document little: numbers may come as strings, fields may be missing). The result side
reads these types only; each provider's records.py makes them."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Literal

Result = Literal["answered", "busy", "no_answer", "failed", "unknown"]
RESULTS: tuple[Result, ...] = ("answered", "busy", "no_answer", "failed", "unknown")
MAX_TEXT = 500  # characters kept of a text value


class InvalidRecord(ValueError):
    """The body is no record at all: not a JSON object, or an object that is neither an
    end-of-call record, a live event nor a contact webhook."""


@dataclass(frozen=True, slots=True)
class LiveEvent:
    """A live call event (`create`, `early`, `ringing`, `answered`, `hangup`, …): never a result."""

    state: str
    transaction_id: str | None = None  # its `call_uuid`: the CDR's `transaction_id`
    phone: str | None = None


@dataclass(frozen=True, slots=True)
class Contact:
    """A contact webhook posted to the same URL: nothing to do with calls."""

    action: str | None = None


@dataclass(frozen=True, slots=True)
class CallRecord:
    """One attempt's end-of-call record, however it arrived. It does not say which attempt it
    is: attempts are the call's distinct transactions in the order they started (§12)."""

    transaction_id: str
    phone: str | None  # national format, when the record has a valid number
    started_at: float | None  # epoch seconds
    result: Result
    keys: str | None
    keys_field: str | None  # the field the keys were read from
    answer_seconds: int
    billed_seconds: int
    ended_by: str | None
    recording_url: str | None
    autocall_id: str | None  # call-history items only
    auto_call: bool  # `is_auto_call`, true when the record does not say
    autocall_uuid: str | None = None  # call-history items: one of the execute answer's uuids
    ended_at: float | None = None  # epoch seconds: orders attempts that started in one second


Parsed = CallRecord | LiveEvent | Contact


def text_of(value: Any) -> str | None:
    """A value as trimmed text (numbers written out); None when empty or of another kind."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        return str(value)
    if isinstance(value, str) and value.strip():
        return value.strip()[:MAX_TEXT]
    return None


def number_of(value: Any) -> float | None:
    """A number, or a string that holds one; None otherwise (a bool is not a number)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value.strip())
        except ValueError:
            return None
    return None


def int_of(value: Any) -> int | None:
    """A whole number of plausible size (a count, seconds); None otherwise."""
    number = number_of(value)
    if number is None or not math.isfinite(number) or abs(number) > 1e12:
        return None
    return int(number)


def moment_of(value: Any) -> float | None:
    """Epoch seconds from seconds, ms, µs or ns (told by their size); None for what is no
    plausible moment (NaN, infinite, before 2001 or after 3200), which no clock could show."""
    number = number_of(value)
    if number is None or not math.isfinite(number):
        return None
    while number > 1e11:
        number /= 1000
    return number if 1e9 <= number <= 4e10 else None
