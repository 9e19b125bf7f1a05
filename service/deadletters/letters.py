"""What a dead letter says about itself (its headers), and which ones a command selects."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from ..amqp.headers import (
    ATTEMPT_HEADER,
    DEAD_LETTERED_AT_HEADER,
    DEATH_HEADERS,
    ERROR_HEADER,
    EVENT_ID_HEADER,
    EXCHANGE_HEADER,
    REASON_HEADER,
    REPLAYED_HEADER,
    RETRIES_HEADER,
    ROUTING_KEY_HEADER,
    TEMPLATE_HEADER,
)
from ..errors import InvalidEvent
from ..events import Message, decode
from ..templates.filters import LOCAL_TZ

# What a replay leaves out: it is the original message, delivered anew from the start.
DROPPED_ON_REPLAY = frozenset(
    {
        REASON_HEADER,
        ERROR_HEADER,
        EVENT_ID_HEADER,
        TEMPLATE_HEADER,
        DEAD_LETTERED_AT_HEADER,
        ROUTING_KEY_HEADER,
        REPLAYED_HEADER,
        EXCHANGE_HEADER,
        ATTEMPT_HEADER,
        RETRIES_HEADER,
        *DEATH_HEADERS,
    }
)


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """One message of `<queue>.dead`, as `dead-letters list` shows it."""

    event_id: str | None
    type: str | None
    code: str | None
    template: str | None
    when: datetime | None
    message: str | None
    routing_key: str

    @classmethod
    def of(cls, message: Message) -> DeadLetter:
        """Read from the service's headers; the broker's own (`x-death`) fill the gaps of a
        message it dead-lettered itself (the quorum queue's delivery limit)."""
        headers = message.headers
        death = _oldest_death(headers)
        return cls(
            event_id=_text(headers.get(EVENT_ID_HEADER)) or message.message_id,
            type=_type(message),
            code=_text(headers.get(REASON_HEADER)) or _text(headers.get("x-first-death-reason")),
            template=_text(headers.get(TEMPLATE_HEADER)),
            when=_time(headers.get(DEAD_LETTERED_AT_HEADER)) or _time(death.get("time")),
            message=_text(headers.get(ERROR_HEADER)),
            routing_key=_text(headers.get(ROUTING_KEY_HEADER))
            or _first(death.get("routing-keys"))
            or message.routing_key,
        )

    def as_json(self) -> dict[str, Any]:
        """The `--json` form: one object per line."""
        return {
            "event_id": self.event_id,
            "type": self.type,
            "code": self.code,
            "template": self.template,
            "dead_lettered_at": self.when.astimezone(LOCAL_TZ).isoformat() if self.when else None,
            "message": self.message,
            "routing_key": self.routing_key,
        }

    def line(self) -> str:
        """The text form: event id, type, code, template, when, message."""
        fields = self.as_json()
        names = ("event_id", "type", "code", "template", "dead_lettered_at", "message")
        return "  ".join(str(fields[name]) if fields[name] else "-" for name in names)


@dataclass(frozen=True, slots=True)
class Selection:
    """The filters of a command: a dead letter is selected when it passes every one given."""

    codes: frozenset[str] = field(default_factory=frozenset)
    templates: frozenset[str] = field(default_factory=frozenset)
    event_ids: frozenset[str] = field(default_factory=frozenset)
    older_than: float | None = None  # seconds; a letter of unknown age is never older
    limit: int | None = None  # at most this many, the first ones that match

    def matches(self, letter: DeadLetter, now: datetime) -> bool:
        """Whether `letter` passes the filters (the limit aside)."""
        if self.codes and letter.code not in self.codes:
            return False
        if self.templates and letter.template not in self.templates:
            return False
        if self.event_ids and letter.event_id not in self.event_ids:
            return False
        if self.older_than is None:
            return True
        return letter.when is not None and (now - letter.when).total_seconds() > self.older_than


def _type(message: Message) -> str | None:
    try:
        return decode(message, max_bytes=len(message.body)).type
    except InvalidEvent:
        return message.type


def _oldest_death(headers: Mapping[str, Any]) -> Mapping[str, Any]:
    deaths = headers.get("x-death")
    if isinstance(deaths, list) and deaths and isinstance(deaths[-1], Mapping):
        return deaths[-1]
    return {}


def _first(values: Any) -> str | None:
    return _text(values[0]) if isinstance(values, list) and values else None


def _text(value: Any) -> str | None:
    if isinstance(value, bytes | bytearray):
        value = bytes(value).decode("utf-8", "replace")
    return value if isinstance(value, str) and value else None


def _time(value: Any) -> datetime | None:
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value)
        except ValueError:
            return None
    if not isinstance(value, datetime):
        return None
    return value if value.tzinfo else value.replace(tzinfo=UTC)  # AMQP timestamps are UTC
