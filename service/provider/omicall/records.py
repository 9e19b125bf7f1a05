"""The one place that reads the provider's call records: webhook live events, CDRs, call-history
items. Tolerant by design (the provider documents little): unknown fields are ignored, optional
ones may be missing, numbers may come as strings. Everything else in `results` reads `CallRecord`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Literal

from ...errors import InvalidPhone
from ...templates.filters import normalise_phone

Result = Literal["answered", "busy", "no_answer", "failed", "unknown"]
RESULTS: tuple[Result, ...] = ("answered", "busy", "no_answer", "failed", "unknown")
LIVE_STATES = frozenset({"ringing", "answered", "hangup"})
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
    }
)
_ANSWERED = frozenset({"answered", "answer"})
_NO_KEYS = frozenset({"", "none", "null", "-"})
_PHONE_FIELDS = ("destination_number", "phone_number", "to_number")
_TIME_FIELDS = ("time_start_call", "time_ringing_start", "time_answer_start", "time_end_call")


class InvalidRecord(ValueError):
    """The body is not a record at all (not a JSON object)."""


@dataclass(frozen=True, slots=True)
class LiveEvent:
    """A live call event (`ringing`, `answered`, `hangup`): counted, never a result."""

    state: str


@dataclass(frozen=True, slots=True)
class CallRecord:
    """One attempt's end-of-call record, however it arrived."""

    transaction_id: str
    phone: str | None  # national format, when the record has a valid number
    started_at: float | None  # epoch seconds
    result: Result
    attempt: int | None  # 1 for the first attempt; None when the record does not say
    keys: str | None
    answer_seconds: int
    billed_seconds: int
    ended_by: str | None
    recording_url: str | None
    autocall_id: str | None  # call-history items only
    auto_call: bool  # `is_auto_call`, true when the record does not say


def parse(document: Any) -> CallRecord | LiveEvent:
    """The record in a webhook body or a call-history item; InvalidRecord if it is no object."""
    if not isinstance(document, dict):
        raise InvalidRecord("a call record is a JSON object")
    state = _text(document.get("state"))
    state = state.lower() if state else None
    if state in LIVE_STATES:
        return LiveEvent(state)
    answer = _int(document.get("answer_sec")) or 0
    return CallRecord(
        transaction_id=_text(document.get("transaction_id")) or "",
        phone=_phone(document),
        started_at=_started(document),
        result=classify(document, answer),
        attempt=_attempt(document),
        keys=keys_of(document),
        answer_seconds=answer,
        billed_seconds=_int(document.get("bill_sec")) or 0,
        ended_by=_text(document.get("endby_name")),
        recording_url=_text(document.get("recording_file_url")),
        autocall_id=_text(document.get("autocall_id")),
        auto_call=_bool(document.get("is_auto_call"), default=True),
    )


def classify(document: dict[str, Any], answer_seconds: int) -> Result:
    """answered, busy, no_answer or failed, from whichever fields the record has."""
    words = [
        (_text(document.get(name)) or "").lower()
        for name in ("disposition", "dial_status", "hangup_cause")
    ]
    if answer_seconds > 0 or any(word in _ANSWERED for word in words):
        return "answered"
    if any(word in _BUSY for word in words):
        return "busy"
    if any(word in _NO_ANSWER for word in words):
        return "no_answer"
    return "failed"


def keys_of(document: dict[str, Any]) -> str | None:
    """The digits pressed: `press_key` or `digits` when present, else `ivr` (not `none`)."""
    for name in ("press_key", "digits", "ivr"):
        value = document.get(name)
        if isinstance(value, int) and not isinstance(value, bool):
            value = str(value)
        if isinstance(value, str) and value.strip().lower() not in _NO_KEYS:
            keys = "".join(char for char in value if char.isdigit() or char in "*#")
            if keys:
                return keys[:32]
    return None


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
    for name in _TIME_FIELDS:
        value = _number(document.get(name))
        if value is not None and value > 0:
            return value / 1000 if value > 1e11 else value  # milliseconds, by their size
    return None


def _attempt(document: dict[str, Any]) -> int | None:
    retries = _int(document.get("send_num_retry"))
    return retries + 1 if retries is not None and 0 <= retries < 100 else None


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
