"""The one module that reads Stringee's callbacks and call-log items (CONTRACT.md §13). Tolerant
by design: unknown fields are ignored, missing ones are not an error, numbers may come as strings.
What it hands on is the provider-neutral `CallRecord` the result side reads for OMICall too.

Call events: `call_status` created | ringing | answered | ended, with `call_id`, `endCallCause`,
`duration`, `answerDuration` (seconds), `endedBy`, `to.number`. Key presses (an input's
`eventUrl`): `time`, `dtmf`, `call_id`, `customField`, `timeout`. Each body is signed:
`X-STRINGEE-SIGNATURE` = base64(HMAC-SHA1(signing secret, raw body)).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from dataclasses import dataclass
from typing import Any

from ...errors import InvalidPhone
from ...templates.filters import normalise_phone
from ..omicall.records import CallRecord, InvalidRecord, Result, _int, _number, _seconds, _text

SIGNATURE_HEADER = "X-STRINGEE-SIGNATURE"
_BUSY = ("486", "busy")
_NO_ANSWER = ("480", "408", "487", "no answer", "no_answer", "noanswer", "cancel", "timeout")
_STATUS_FIELDS = ("call_status", "status", "event")
_CAUSE_FIELDS = ("endCallCause", "end_call_cause", "stop_reason", "hangup_cause")


@dataclass(frozen=True, slots=True)
class CallEvent:
    """A call event; only `ended` is a result."""

    call_id: str
    status: str  # created | ringing | answered | ended | whatever else Stringee sends
    end_cause: str | None
    duration: int
    answer_duration: int
    ended_by: str | None
    phone: str | None  # national format, when the event has a valid number
    at: float | None  # epoch seconds

    @property
    def ended(self) -> bool:
        return self.status == "ended"

    def result(self) -> Result:
        """answered, busy, no_answer or failed."""
        if self.answer_duration > 0:
            return "answered"
        cause = (self.end_cause or "").lower()
        if any(word in cause for word in _BUSY):
            return "busy"
        if any(word in cause for word in _NO_ANSWER):
            return "no_answer"
        return "failed"

    def record(self, keys: str | None) -> CallRecord:
        """The call's one record, as the result side reads every provider's."""
        answered = self.result() == "answered"
        return CallRecord(
            transaction_id=self.call_id,
            phone=self.phone,
            started_at=self.at,
            result=self.result(),
            keys=keys if answered else None,
            keys_field="dtmf" if answered and keys else None,
            answer_seconds=self.answer_duration,
            billed_seconds=self.answer_duration,
            ended_by=self.ended_by,
            recording_url=None,
            autocall_id=self.call_id,
            auto_call=True,
        )


@dataclass(frozen=True, slots=True)
class KeysPressed:
    """An input's callback: the keys pressed during the call `call_id`."""

    call_id: str
    keys: str | None  # None: nothing pressed (the input timed out)
    custom_field: str | None
    timed_out: bool


def parse(document: Any) -> CallEvent | KeysPressed:
    """A callback body; InvalidRecord when it is no object or names no call."""
    if not isinstance(document, dict):
        raise InvalidRecord("a Stringee callback is a JSON object")
    call_id = _text(document.get("call_id")) or _text(document.get("callId"))
    if not call_id:
        raise InvalidRecord("a Stringee callback names its call_id")
    if "dtmf" in document or ("customField" in document and not _status(document)):
        return KeysPressed(
            call_id,
            keys_of(document.get("dtmf")),
            _text(document.get("customField")),
            document.get("timeout") in (True, "true", 1),
        )
    return event_of(document, call_id, _status(document))


def log_item(document: Any) -> CallEvent | None:
    """A call-log item as an `ended` event; None for a call still going or no call at all."""
    if not isinstance(document, dict):
        return None
    call_id = _text(document.get("id")) or _text(document.get("call_id"))
    stopped = _number(document.get("stop_time")) or _number(document.get("end_time"))
    if not call_id or not stopped:
        return None
    return event_of(document, call_id, "ended")


def event_of(document: dict[str, Any], call_id: str, status: str) -> CallEvent:
    """A call event (or a call-log item) read from whichever fields it has."""
    cause = next((c for c in (_text(document.get(f)) for f in _CAUSE_FIELDS) if c), None)
    answer = _first_int(document, "answerDuration", "answer_duration")
    return CallEvent(
        call_id=call_id,
        status=status,
        end_cause=cause,
        duration=_first_int(document, "duration"),
        answer_duration=max(0, answer),
        ended_by=_text(document.get("endedBy")) or _text(document.get("ended_by")),
        phone=_phone(document),
        at=_moment(document),
    )


def keys_of(value: Any) -> str | None:
    """The digits and * # pressed; None when none were."""
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
    if not isinstance(value, str):
        return None
    keys = "".join(char for char in value if char.isdigit() or char in "*#")
    return keys[:32] or None


def sign(body: bytes, secret: str) -> str:
    """The signature Stringee sends with `body`."""
    digest = hmac.new(secret.encode(), body, hashlib.sha1).digest()
    return base64.b64encode(digest).decode()


def signed(body: bytes, signature: str | None, secret: str) -> bool:
    """Whether `signature` is `body`'s, compared in constant time."""
    return bool(signature) and hmac.compare_digest(
        sign(body, secret).encode(), (signature or "").strip().encode()
    )


def _status(document: dict[str, Any]) -> str:
    return next((s.lower() for s in (_text(document.get(f)) for f in _STATUS_FIELDS) if s), "")


def _first_int(document: dict[str, Any], *names: str) -> int:
    return next((v for v in (_int(document.get(n)) for n in names) if v is not None), 0)


def _phone(document: dict[str, Any]) -> str | None:
    to = document.get("to")
    number = to.get("number") if isinstance(to, dict) else document.get("to_number")
    if isinstance(number, str | int) and not isinstance(number, bool):
        try:
            return normalise_phone(str(number))
        except InvalidPhone:
            return None
    return None


def _moment(document: dict[str, Any]) -> float | None:
    names = ("timestamp_ms", "start_time", "created", "time")
    return next((at for name in names if (at := _seconds(document.get(name))) is not None), None)
