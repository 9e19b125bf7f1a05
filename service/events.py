"""Events in: a message's identity, type, time and data, decoded in the order of CONTRACT.md §3;
and the statuses of the outcome events out (`autocall.<status>`)."""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal, get_args

import orjson

from .errors import InvalidEvent

MAX_TYPE_LENGTH = 255  # an AMQP routing key's limit: longer types cannot have been routed to us
MAX_ID_BYTES = 255  # an AMQP short string's limit: the outcome's correlation_id carries the id
MAX_HEADER_DEPTH = 32
Status = Literal["accepted", "failed", "skipped"]  # an outcome's, also its routing key's end
STATUSES: tuple[Status, ...] = get_args(Status)
_CE_PREFIXES = ("cloudevents_", "cloudevents:")


# The records made for every event are plain slotted dataclasses, treated as immutable but not
# frozen: a frozen dataclass's __init__ costs about a microsecond more, several times an event.
@dataclass(slots=True)
class Message:
    """What decoding reads of an AMQP message (no broker types: `render` builds one too)."""

    body: bytes
    routing_key: str = ""
    content_type: str | None = None
    type: str | None = None
    message_id: str | None = None
    timestamp: datetime | None = None
    headers: Mapping[str, Any] = field(default_factory=dict)


@dataclass(slots=True)
class Event:
    """A decoded event: what templates see as `event` (and `data`)."""

    id: str
    type: str
    source: str | None
    time: datetime | None
    data: Any
    headers: Mapping[str, Any]

    @property
    def identity(self) -> dict[str, Any]:
        """The `event` object of outcomes and decisions."""
        return {"id": self.id, "type": self.type, "source": self.source}


def decode(message: Message, max_bytes: int = 1024 * 1024) -> Event:
    """The event in `message`: CloudEvents structured, then binary mode, then plain JSON."""
    if len(message.body) > max_bytes:
        raise InvalidEvent(f"body is {len(message.body)} bytes; the limit is {max_bytes}")
    headers = _plain_headers(message.headers)
    body = _parse_json(message.body)
    content_type = (message.content_type or "").lower()
    if content_type.startswith("application/cloudevents") or (
        isinstance(body, dict) and "specversion" in body
    ):
        return _structured(message, body, headers)
    attributes = _binary_attributes(headers)
    if attributes:
        return _binary(message, body, headers, attributes)
    return _plain(message, body, headers)


def fallback_id(message: Message) -> str:
    """A stable id for a message that carries none: a hash of its routing key and body."""
    digest = hashlib.sha256(message.routing_key.encode() + b"\n" + message.body)
    return digest.hexdigest()[:32]


def identity_of(message: Message) -> dict[str, Any]:
    """The best identity of a message that could not be decoded, for its `failed` outcome."""
    return {
        "id": (message.message_id or "").strip() or fallback_id(message),
        "type": None,
        "source": None,
    }


def _parse_json(body: bytes) -> Any:
    """The JSON document in `body`; InvalidEvent for an empty body or one that is not JSON."""
    if not body:
        raise InvalidEvent("empty body")
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise InvalidEvent(f"body is not UTF-8 JSON: {exc}") from None


def _structured(message: Message, body: Any, headers: Mapping[str, Any]) -> Event:
    if not isinstance(body, dict):
        raise InvalidEvent("a structured CloudEvent must be a JSON object")
    data = body.get("data")
    if data is None and isinstance(body.get("data_base64"), str):
        data = _base64_data(body["data_base64"])
    return Event(
        id=_id(body.get("id"), message),
        type=_type(body.get("type")),
        source=_text(body.get("source"), "source"),
        time=_time(body.get("time")),
        data=data,
        headers=headers,
    )


def _binary(
    message: Message, body: Any, headers: Mapping[str, Any], attributes: dict[str, Any]
) -> Event:
    return Event(
        id=_id(attributes.get("id"), message),
        type=_type(attributes.get("type")),
        source=_text(attributes.get("source"), "source"),
        time=_time(attributes.get("time")),
        data=body,
        headers=headers,
    )


def _plain(message: Message, body: Any, headers: Mapping[str, Any]) -> Event:
    return Event(
        id=_id(None, message),
        type=_type(message.type or message.routing_key),
        source=None,
        time=_time(message.timestamp),
        data=body,
        headers=headers,
    )


def _binary_attributes(headers: Mapping[str, Any]) -> dict[str, Any]:
    return {
        key[len(prefix) :]: value
        for key, value in headers.items()
        for prefix in _CE_PREFIXES
        if key.lower().startswith(prefix)
    }


def _plain_headers(headers: Mapping[str, Any], depth: int = 0) -> dict[str, Any]:
    """Headers as JSON-like values: AMQP byte strings become text, unknown types their repr."""
    if depth > MAX_HEADER_DEPTH:
        raise InvalidEvent(f"headers nest deeper than {MAX_HEADER_DEPTH} levels")
    return {str(key): _plain_value(value, depth) for key, value in headers.items()}


def _plain_value(value: Any, depth: int) -> Any:
    if isinstance(value, bytes | bytearray | memoryview):
        return bytes(value).decode("utf-8", "replace")
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, list | tuple):
        if depth > MAX_HEADER_DEPTH:
            raise InvalidEvent(f"headers nest deeper than {MAX_HEADER_DEPTH} levels")
        return [_plain_value(item, depth + 1) for item in value]
    if isinstance(value, dict):
        return _plain_headers(value, depth + 1)
    if value is None or isinstance(value, str | int | float | bool):
        return value
    return repr(value)


def _id(value: Any, message: Message) -> str:
    """The event's own id, else the message id, else a hash of the message."""
    text = _text(value, "id") or (message.message_id or "").strip() or fallback_id(message)
    if len(text.encode()) > MAX_ID_BYTES:
        raise InvalidEvent(f"id is longer than {MAX_ID_BYTES} bytes")
    return text


def _type(value: Any) -> str:
    text = _text(value, "type")
    if not text:
        raise InvalidEvent("the event has no type")
    if len(text) > MAX_TYPE_LENGTH:
        raise InvalidEvent(f"type is longer than {MAX_TYPE_LENGTH} characters")
    return text


def _text(value: Any, name: str) -> str | None:
    if value is None:
        return None
    if isinstance(value, bytes):
        value = value.decode("utf-8", "replace")
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise InvalidEvent(f"{name} must be a string")
    return str(value).strip() or None


def _time(value: Any) -> datetime | None:
    if value is None or isinstance(value, datetime):
        return _aware(value) if value else None
    if isinstance(value, bytes):
        value = value.decode("utf-8", "replace")
    if not isinstance(value, str):
        raise InvalidEvent("time must be an RFC 3339 string")
    try:
        return _aware(datetime.fromisoformat(value.strip()))
    except ValueError:
        raise InvalidEvent(f"time is not RFC 3339: {value[:40]!r}") from None


def _aware(value: datetime) -> datetime:
    # A CloudEvents time always has an offset; a bare one is read as UTC, as AMQP timestamps are.
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def _base64_data(text: str) -> Any:
    try:
        raw = base64.b64decode(text, validate=True)
    except ValueError:
        raise InvalidEvent("data_base64 is not base64") from None
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError:
        return raw.decode("utf-8", "replace")
