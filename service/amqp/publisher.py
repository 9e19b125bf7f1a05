"""Every publish the service makes, confirmed: outcomes, results, dead letters, delays."""

from __future__ import annotations

from typing import Any, Protocol

import aio_pika
import aiormq
from aio_pika.abc import AbstractChannel, AbstractExchange, AbstractIncomingMessage

from .. import tracing
from .headers import (
    DEAD_LETTERED_AT_HEADER,
    DEATH_HEADERS,
    DELIVERY_COUNT_HEADER,
    ERROR_HEADER,
    EVENT_ID_HEADER,
    EXCHANGE_HEADER,
    REASON_HEADER,
    ROUTING_KEY_HEADER,
    TEMPLATE_HEADER,
)

_DROPPED_HEADERS = (DELIVERY_COUNT_HEADER, *DEATH_HEADERS)
Properties = aiormq.spec.Basic.Properties
PERSISTENT = int(aio_pika.DeliveryMode.PERSISTENT)


class Failed(Protocol):
    """What a dead letter's headers tell of its failed outcome (pipeline.outcomes.Outcome)."""

    @property
    def error(self) -> dict[str, Any] | None: ...
    @property
    def event(self) -> dict[str, Any]: ...
    @property
    def template(self) -> str | None: ...
    @property
    def occurred_at(self) -> str: ...


class Publisher:
    """Publishes on a channel in confirm mode: each call returns once the broker has the message."""

    def __init__(self, channel: AbstractChannel, outcome_exchange: AbstractExchange) -> None:
        self._channel = channel
        self._outcomes = outcome_exchange

    async def outcome(self, body: bytes, status: str, event_id: str) -> None:
        """An outcome event: routing key and type `autocall.<status>`."""
        properties = Properties(
            content_type="application/json",
            delivery_mode=PERSISTENT,
            correlation_id=event_id,
            message_type=f"autocall.{status}",
        )
        await self._publish(body, f"autocall.{status}", properties)

    async def result(self, body: bytes, routing_key: str, event_id: str, result_id: str) -> None:
        """A call's result event (CONTRACT.md §9): type `autocall.result`; `message_id` names
        the call and attempt, the same in a copy published again after a crash."""
        properties = Properties(
            content_type="application/json",
            delivery_mode=PERSISTENT,
            correlation_id=event_id,
            message_id=result_id,
            message_type="autocall.result",
        )
        await self._publish(body, routing_key, properties)

    async def _publish(self, body: bytes, routing_key: str, properties: Properties) -> None:
        """On the outcome exchange, confirmed (tracing may add `traceparent` to the headers
        before it goes)."""
        publish = self._basic_publish(body, routing_key, properties)
        await tracing.producing(publish, self._outcomes.name, routing_key, properties)

    async def _basic_publish(self, body: bytes, routing_key: str, properties: Properties) -> None:
        """What aio-pika's `Exchange.publish` does, without an `aio_pika.Message` built and
        turned into these properties for every event: 35 µs of CPU an event in a profile of
        7 Dec 2026 (docs/speedups.md); aiormq's public `basic_publish`, nothing private."""
        if self._channel.is_closed:
            raise aiormq.exceptions.ChannelInvalidStateError(f"{self._channel!r} closed")
        channel = await self._channel.get_underlay_channel()
        await channel.basic_publish(
            body,
            exchange=self._outcomes.name,
            routing_key=routing_key,
            properties=properties,
            mandatory=True,  # as aio-pika's default: an outcome nobody's queue takes comes back
        )

    async def copy(
        self,
        original: AbstractIncomingMessage,
        queue: str,
        headers: dict[str, Any],
        expiration_ms: int | None = None,
    ) -> None:
        """The original message, unchanged but for `headers`, into `queue`."""
        merged = {
            key: writable(value)
            for key, value in (original.headers or {}).items()
            if key not in _DROPPED_HEADERS
        }
        # A copy's own routing key and exchange are the delay queue's: keep the first ones.
        merged.setdefault(ROUTING_KEY_HEADER, original.routing_key or "")
        merged.setdefault(EXCHANGE_HEADER, original.exchange or "")
        merged.update(headers)
        message = aio_pika.Message(
            original.body,
            headers=merged,
            content_type=original.content_type,
            content_encoding=original.content_encoding,
            delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
            priority=original.priority,
            correlation_id=original.correlation_id,
            reply_to=original.reply_to,
            expiration=expiration_ms / 1000 if expiration_ms is not None else None,
            message_id=original.message_id,
            timestamp=original.timestamp,
            type=original.type,
            user_id=None,
            app_id=original.app_id,
        )
        await self._channel.default_exchange.publish(message, routing_key=queue, mandatory=True)

    async def dead_letter(
        self, original: AbstractIncomingMessage, queue: str, outcome: Failed
    ) -> None:
        """The original message on the dead-letter queue, with why it failed in its headers."""
        error = outcome.error or {}
        headers = {
            REASON_HEADER: error.get("code", ""),
            ERROR_HEADER: error.get("message", ""),
            EVENT_ID_HEADER: str(outcome.event["id"]),
            TEMPLATE_HEADER: outcome.template or "",
            DEAD_LETTERED_AT_HEADER: outcome.occurred_at,
        }
        await self.copy(original, queue, headers)


def writable(value: Any) -> Any:
    """A header value as pamqp can write it back: it reads long strings that are not UTF-8 as
    bytes, but writes bytes only as a byte array."""
    if isinstance(value, bytes | memoryview):
        return bytearray(value)
    if isinstance(value, list | tuple):
        return [writable(item) for item in value]
    if isinstance(value, dict):
        return {key: writable(item) for key, item in value.items()}
    return value
