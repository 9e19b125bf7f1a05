"""Outcome events, and every publish the service makes: outcomes, dead letters, delays."""

from __future__ import annotations

import functools
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal, get_args

import aio_pika
import aiormq
import orjson
from aio_pika.abc import AbstractChannel, AbstractExchange, AbstractIncomingMessage

from .delivery import (
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
from .errors import AutocallError
from .filters import LOCAL_TZ, mask_digits
from .render import Call

Properties = aiormq.spec.Basic.Properties
PERSISTENT = int(aio_pika.DeliveryMode.PERSISTENT)

Status = Literal["accepted", "failed", "skipped"]
STATUSES: tuple[Status, ...] = get_args(Status)
_DROPPED_HEADERS = (DELIVERY_COUNT_HEADER, *DEATH_HEADERS)


@dataclass(slots=True)
class Outcome:
    """The outcome event of one consumed event (CONTRACT.md §7)."""

    status: Status
    event: dict[str, Any]
    template: str | None
    idempotency_key: str | None
    autocall_id: str | None
    attempts: int
    phone: str | None
    error: dict[str, Any] | None
    reason: str | None
    occurred_at: str

    @classmethod
    def accepted(cls, call: Call, autocall_id: str, attempts: int, now: datetime) -> Outcome:
        """The provider took the call."""
        return cls._of(
            "accepted", call.event.identity, now, call, autocall_id=autocall_id, attempts=attempts
        )

    @classmethod
    def failed(
        cls,
        event: dict[str, Any],
        error: AutocallError,
        now: datetime,
        *,
        call: Call | None = None,
        template: str | None = None,
        attempts: int = 0,
    ) -> Outcome:
        """The event ends failed with `error` (masked, bounded); it is dead-lettered too."""
        detail = {
            "code": error.code,
            "message": mask_digits(error.message)[:500],
            "retryable": error.retryable,
        }
        return cls._of("failed", event, now, call, template, attempts=attempts, error=detail)

    @classmethod
    def skipped(
        cls, event: dict[str, Any], reason: str, now: datetime, *, call: Call | None = None
    ) -> Outcome:
        """No call, for `reason`."""
        return cls._of("skipped", event, now, call, reason=reason)

    @classmethod
    def applied(cls, event: dict[str, Any], phone: str, now: datetime) -> Outcome:
        """A control event applied (a change to the suppression list): `phone` masked."""
        outcome = cls._of("accepted", event, now, None)
        outcome.phone = phone
        return outcome

    @classmethod
    def _of(
        cls,
        status: Status,
        event: dict[str, Any],
        now: datetime,
        call: Call | None,
        template: str | None = None,
        *,
        autocall_id: str | None = None,
        attempts: int = 0,
        error: dict[str, Any] | None = None,
        reason: str | None = None,
    ) -> Outcome:
        """An outcome; the template, key and masked phone come from the call when there is one."""
        return cls(
            status,
            event,
            call.template.name if call else template,
            call.idempotency_key if call else None,
            autocall_id,
            attempts,
            call.phone if call else None,
            error,
            reason,
            _local(now),
        )

    def record(self) -> bytes:
        """What the store keeps of a call's outcome, to replay it to a redelivery of its event:
        the parts the redelivered call cannot know (kept small: there is one per key)."""
        return orjson.dumps(
            [self.status, self.autocall_id, self.attempts, self.error, self.occurred_at]
        )

    @classmethod
    def replay(cls, record: bytes, call: Call) -> Outcome:
        """The outcome `record` kept for the event of `call`."""
        status, autocall_id, attempts, error, occurred_at = orjson.loads(record)
        outcome = cls._of(
            status,
            call.event.identity,
            datetime.now(LOCAL_TZ),
            call,
            autocall_id=autocall_id,
            attempts=attempts,
            error=error,
        )
        outcome.occurred_at = occurred_at
        return outcome

    @property
    def code(self) -> str | None:
        """The error's code, for a failed outcome."""
        return self.error["code"] if self.error else None

    def body(self) -> bytes:
        """The outcome event's JSON body (CONTRACT.md §7)."""
        return orjson.dumps(
            {
                "status": self.status,
                "event": self.event,
                "template": self.template,
                "idempotency_key": self.idempotency_key,
                "autocall_id": self.autocall_id,
                "attempts": self.attempts,
                "phone": self.phone,
                "error": self.error,
                "reason": self.reason,
                "occurred_at": self.occurred_at,
            }
        )


def _local(now: datetime) -> str:
    return _local_second(int(now.timestamp()))


@functools.lru_cache(maxsize=4)  # events come in bursts: most share their second
def _local_second(second: int) -> str:
    return datetime.fromtimestamp(second, LOCAL_TZ).isoformat(timespec="seconds")


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
        """On the outcome exchange, confirmed: what aio-pika's `Exchange.publish` does, without
        an `aio_pika.Message` built and turned into these properties for every event (a tenth
        of the outcome's CPU in the profile)."""
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
        self, original: AbstractIncomingMessage, queue: str, outcome: Outcome
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
