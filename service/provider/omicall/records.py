"""The one place that reads the provider's call records: webhook live events, end-of-call records
(CDRs, current and older), call-history items, and the contact webhooks that share their URL
(CONTRACT.md §9, §12). Tolerant by design (the provider documents little): unknown fields are
ignored, optional ones may be missing, numbers may come as strings. Everything else in `results`
reads `CallRecord`, `LiveEvent` and `Contact`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

from ...errors import InvalidPhone
from ...templates.filters import normalise_phone

Result = Literal["answered", "busy", "no_answer", "failed", "unknown"]
RESULTS: tuple[Result, ...] = ("answered", "busy", "no_answer", "failed", "unknown")
# the end-of-call record's state: any other (create, early, ringing, answered, hangup, or one
# not seen yet) is a live event
END_STATE = "cdr"
# where the keys pressed may be, in order (AUTOCALL_RESULT_KEY_FIELDS): no field is documented
DEFAULT_KEY_FIELDS = ("press_key", "digits", "ivr")
# hangup causes (FreeSWITCH / Q.850 names, as OMICall's history shows them) and the older
# `disposition` / `dial_status` words, lower-cased
_BUSY = frozenset({"user_busy", "busy", "normal_circuit_congestion"})
_NO_ANSWER = frozenset(
    {
        "no_answer",
        "no answer",
        "noanswer",
        "no_user_response",
        "originator_cancel",
        "allotted_timeout",
        "ringing",
        "cancel",
        "cancelled",
        "canceled",
    }
)
_ANSWERED = frozenset({"answered", "answer"})
_NO_KEYS = frozenset({"", "none", "null", "-"})
_PHONE_FIELDS = ("destination_number", "phone_number", "to_number")
_TIME_FIELDS = ("time_start_call", "time_ringing_start", "time_answer_start", "time_end_call")
_WORD_FIELDS = ("disposition", "dial_status", "hangup_cause")


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


def parse(document: Any, key_fields: Sequence[str] = DEFAULT_KEY_FIELDS) -> Parsed:
    """The record in a webhook body or a call-history item; InvalidRecord if it is none."""
    if not isinstance(document, dict):
        raise InvalidRecord("a call record is a JSON object")
    if _is_contact(document):  # whatever `state` it carries: a contact is never a call
        return Contact(_text(document.get("action")))
    state = _text(document.get("state"))
    state = state.lower() if state else None
    transaction = _text(document.get("transaction_id")) or _text(document.get("call_uuid"))
    if state is not None and state != END_STATE:
        return LiveEvent(state, transaction, _phone(document))
    if state is None and transaction is None:
        raise InvalidRecord("neither a call record, a live event nor a contact")
    return _record(document, transaction or "", key_fields)


def _record(document: dict[str, Any], transaction: str, key_fields: Sequence[str]) -> CallRecord:
    answer = _int(document.get("answer_sec")) or 0
    keys, keys_field = keys_of(document, key_fields)
    recording = _text(document.get("recording_file_url")) or _text(document.get("recording_file"))
    return CallRecord(
        transaction_id=transaction,
        phone=_phone(document),
        started_at=_started(document),
        result=classify(document, answer),
        keys=keys,
        keys_field=keys_field,
        answer_seconds=answer,
        billed_seconds=_int(document.get("bill_sec")) or 0,
        ended_by=_text(document.get("endby_name")),
        recording_url=recording,
        autocall_id=_text(document.get("autocall_id")),
        auto_call=_bool(document.get("is_auto_call"), default=True),
        autocall_uuid=_text(document.get("autocall_uuid")),
        ended_at=_seconds(document.get("time_end_call")),
    )


def classify(document: dict[str, Any], answer_seconds: int) -> Result:
    """answered, busy, no_answer or failed, from whichever fields the record has."""
    words = [(_text(document.get(name)) or "").lower() for name in _WORD_FIELDS]
    if answer_seconds > 0:
        return "answered"
    answered_at = document.get("time_answer_start", ...)
    if answered_at is not ...:  # present: 0 or null means never answered, whatever else says
        if (_number(answered_at) or 0) > 0:
            return "answered"
    elif any(word in _ANSWERED for word in words):
        return "answered"
    if any(word in _BUSY for word in words):
        return "busy"
    if any(word in _NO_ANSWER for word in words):
        return "no_answer"
    return "failed"


def keys_of(
    document: dict[str, Any], fields: Sequence[str] = DEFAULT_KEY_FIELDS
) -> tuple[str | None, str | None]:
    """The digits pressed and the field they were read from: the first of `fields` that holds
    digits (`none`, empty and the like hold none)."""
    for name in fields:
        value = document.get(name)
        if isinstance(value, int) and not isinstance(value, bool):
            value = str(value)
        if isinstance(value, str) and value.strip().lower() not in _NO_KEYS:
            keys = "".join(char for char in value if char.isdigit() or char in "*#")
            if keys:
                return keys[:32], name
    return None, None


def _is_contact(document: dict[str, Any]) -> bool:
    kind = document.get("type")
    if isinstance(kind, str) and kind.strip().lower() == "contact":
        return True
    return "action" in document and isinstance(document.get("data"), list)


def _phone(document: dict[str, Any]) -> str | None:
    for name in _PHONE_FIELDS:
        value = document.get(name)
        if isinstance(value, str | int) and not isinstance(value, bool):
            try:
                return normalise_phone(value)
            except InvalidPhone:
                continue
    return None


def _started(document: dict[str, Any]) -> float | None:
    return next(
        (at for name in _TIME_FIELDS if (at := _seconds(document.get(name))) is not None), None
    )


def _seconds(value: Any) -> float | None:
    """Epoch seconds from seconds, ms, µs or ns (told by their size); None for what is no
    plausible moment (NaN, infinite, before 2001 or after 3200), which no clock could show."""
    number = _number(value)
    if number is None or not math.isfinite(number):
        return None
    while number > 1e11:
        number /= 1000
    return number if 1e9 <= number <= 4e10 else None


def _text(value: Any) -> str | None:
    if isinstance(value, int | float) and not isinstance(value, bool):
        return str(value)
    if isinstance(value, str) and value.strip():
        return value.strip()[:500]
    return None


def _number(value: Any) -> float | None:
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


def _int(value: Any) -> int | None:
    number = _number(value)
    if number is None or not math.isfinite(number) or abs(number) > 1e12:
        return None
    return int(number)


def _bool(value: Any, *, default: bool) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, int | float):
        return value != 0
    if isinstance(value, str) and value.strip():
        return value.strip().lower() not in ("false", "0", "no")
    return default
