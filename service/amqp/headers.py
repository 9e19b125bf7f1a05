"""Reading an AMQP delivery: its message, first routing key, counters kept in headers."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from aio_pika.abc import AbstractIncomingMessage

from ..errors import DeliveryLimit
from ..events import Message

ROUTING_KEY_HEADER = "x-autocall-routing-key"
EXCHANGE_HEADER = "x-autocall-exchange"
ATTEMPT_HEADER = "x-autocall-attempt"
RETRIES_HEADER = "x-autocall-retries"
DELIVERY_COUNT_HEADER = "x-delivery-count"  # the broker's, on quorum queues
# Why a dead letter failed (dead-letters reads them back), and the mark of a replayed one.
REASON_HEADER = "x-autocall-reason"
ERROR_HEADER = "x-autocall-error"
EVENT_ID_HEADER = "x-autocall-event-id"
TEMPLATE_HEADER = "x-autocall-template"
DEAD_LETTERED_AT_HEADER = "x-autocall-dead-lettered-at"
REPLAYED_HEADER = "x-autocall-replayed"
# What the broker writes when it dead-letters a message (a copy must not carry them on).
DEATH_HEADERS = (
    "x-death",
    "x-first-death-exchange",
    "x-first-death-queue",
    "x-first-death-reason",
    "x-last-death-exchange",
    "x-last-death-queue",
    "x-last-death-reason",
)


def int_header(headers: Mapping[str, Any] | None, name: str) -> int:
    """The header `name` as a count: 0 when absent or not an integer (a bool is not one)."""
    value = (headers or {}).get(name)
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def message_of(delivery: AbstractIncomingMessage) -> Message:
    """What decoding needs of a delivery, with the routing key it was first published with."""
    return Message(
        body=delivery.body,
        routing_key=routing_key_of(delivery),
        content_type=delivery.content_type,
        type=delivery.type,
        message_id=delivery.message_id,
        timestamp=delivery.timestamp,
        headers=delivery.headers or {},
    )


def routing_key_of(delivery: AbstractIncomingMessage) -> str:
    """The routing key the event was first published with (delays and dead letters keep it)."""
    return _first(delivery.headers, ROUTING_KEY_HEADER, delivery.routing_key)


def origin_of(delivery: AbstractIncomingMessage) -> tuple[str, str]:
    """The routing key and the exchange the event was first published with (a delayed copy
    comes through the default exchange)."""
    exchange = _first(delivery.headers, EXCHANGE_HEADER, delivery.exchange)
    return routing_key_of(delivery), exchange


def _first(headers: Mapping[str, Any] | None, name: str, current: str | None) -> str:
    """The header `name` kept from the first delivery, else the delivery's own value."""
    original = (headers or {}).get(name)
    if isinstance(original, bytes | bytearray):
        original = bytes(original).decode("utf-8", "replace")
    return original if isinstance(original, str) else current or ""


def attempts_of(delivery: AbstractIncomingMessage) -> int:
    """Provider attempts already made for this event (0 on its first delivery)."""
    return int_header(delivery.headers, ATTEMPT_HEADER)


def retries_of(delivery: AbstractIncomingMessage) -> int:
    """Retry delays this event already waited in (0 on its first delivery)."""
    return int_header(delivery.headers, RETRIES_HEADER)


def replayed_code(delivery: AbstractIncomingMessage) -> str | None:
    """The code a replayed dead letter had failed with; None for any other delivery."""
    code = (delivery.headers or {}).get(REPLAYED_HEADER)
    return code if isinstance(code, str) else None


def check_deliveries(delivery: AbstractIncomingMessage, limit: int) -> None:
    """DeliveryLimit once the broker delivered it `limit` times before without a settle."""
    count = int_header(delivery.headers, DELIVERY_COUNT_HEADER)
    if count >= limit:
        raise DeliveryLimit(
            f"delivered {count + 1} times without finishing; processing it keeps failing"
        )
