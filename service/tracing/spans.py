"""The spans of CONTRACT.md §14, each a pass-through while tracing is off (`TRACER` None): the
event path then pays one global read a hook, no context manager and no dict."""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, Protocol, TypeVar

from aio_pika.abc import AbstractIncomingMessage
from opentelemetry.trace import Span, SpanKind, Status, StatusCode, Tracer
from opentelemetry.util.types import AttributeValue

from ..amqp.headers import EXCHANGE_HEADER, routing_key_of
from ..pipeline.actions import Action, Delay, Publish, PutBack
from ..store import Claim
from .carriers import headers, parent_of, resumed

TRACER: Tracer | None = None  # set while tracing is on
RABBITMQ = {"messaging.system": "rabbitmq"}
Owner = TypeVar("Owner")
Taken = TypeVar("Taken")
Sent = TypeVar("Sent")


class Properties(Protocol):
    """The AMQP properties of a message about to be published (aiormq's)."""

    headers: dict[str, Any] | None
    message_id: str | None
    correlation_id: str | None


class KeptCall(Protocol):
    """What a result span reads of the call it belongs to (results.calls.OpenCall)."""

    @property
    def traceparent(self) -> str: ...
    @property
    def template(self) -> str: ...
    @property
    def event(self) -> dict[str, Any]: ...


class Result(Protocol):
    """What a result span reads of a result event (results.calls.ResultEvent)."""

    @property
    def call(self) -> KeptCall: ...
    @property
    def result(self) -> str: ...
    @property
    def final(self) -> bool: ...
    @property
    def attempt(self) -> int: ...
    @property
    def choice(self) -> str | None: ...
    @property
    def source(self) -> str: ...


ResultT = TypeVar("ResultT", bound=Result)


def consumed(
    step: Callable[[AbstractIncomingMessage, float], Awaitable[Action]],
    delivery: AbstractIncomingMessage,
    started: float,
) -> Awaitable[Action]:
    """`step(delivery, started)`, processing and settling a delivery, in its CONSUMER span
    `autocall.process <routing key>`, the parent of the spans below."""
    if TRACER is None:
        return step(delivery, started)
    return _consumed(TRACER, step, delivery, started)


async def _consumed(
    tracer: Tracer,
    step: Callable[[AbstractIncomingMessage, float], Awaitable[Action]],
    delivery: AbstractIncomingMessage,
    started: float,
) -> Action:
    routing_key = routing_key_of(delivery)
    with tracer.start_as_current_span(
        f"autocall.process {routing_key}",
        parent_of(delivery),
        SpanKind.CONSUMER,
        attributes=_received(delivery, routing_key),
        record_exception=False,  # an exception's text may carry what a span must not
    ) as span:
        action = await step(delivery, started)
        if span.is_recording():
            _describe(span, action)
        return action


def _received(delivery: AbstractIncomingMessage, routing_key: str) -> dict[str, AttributeValue]:
    exchange = (delivery.headers or {}).get(EXCHANGE_HEADER)  # a delayed copy's first exchange
    attributes: dict[str, AttributeValue] = RABBITMQ | {
        "messaging.operation.type": "process",
        "messaging.destination.name": exchange if isinstance(exchange, str) else delivery.exchange,
        "messaging.rabbitmq.destination.routing_key": routing_key,
        "messaging.message.body.size": len(delivery.body),
    }
    if delivery.message_id:
        attributes["messaging.message.id"] = delivery.message_id
    return attributes


def _describe(span: Span, action: Action) -> None:
    """What became of the event: its outcome (a failure sets the span's status), or why not yet."""
    if isinstance(action, Publish):
        outcome = action.outcome
        span.set_attributes(
            _present(
                {
                    "autocall.status": outcome.status,
                    "autocall.template": outcome.template,
                    "autocall.reason": outcome.reason,
                    "autocall.attempts": outcome.attempts,
                    "autocall.phone": outcome.phone,  # masked, as in the outcome
                    "autocall.autocall_id": outcome.autocall_id,
                    "cloudevents.event_id": outcome.event.get("id"),
                    "cloudevents.event_type": outcome.event.get("type"),
                    "cloudevents.event_source": outcome.event.get("source"),
                }
            )
        )
        if outcome.code is not None:
            span.set_attribute("error.type", outcome.code)
            span.set_status(Status(StatusCode.ERROR, outcome.code))
    elif isinstance(action, Delay):
        span.set_attribute("autocall.status", "retried" if action.retry else "deferred")
        span.set_attribute("autocall.reason", action.why)
    elif isinstance(action, PutBack):
        span.set_attributes({"autocall.status": "held", "autocall.reason": action.reason})
    else:
        span.set_attribute("autocall.status", "requeued")


def claimed(claiming: Awaitable[Claim]) -> Awaitable[Claim]:
    """The store's claim of an idempotency key, in its span `autocall.claim`."""
    if TRACER is None:
        return claiming
    return _claimed(TRACER, claiming)


async def _claimed(tracer: Tracer, claiming: Awaitable[Claim]) -> Claim:
    with tracer.start_as_current_span("autocall.claim", record_exception=False) as span:
        claim = await claiming
        span.set_attribute("autocall.claim", claim.state.value)
        return claim


def producing(
    publish: Awaitable[Sent], exchange: str, routing_key: str, properties: Properties
) -> Awaitable[Sent]:
    """`publish` (not started yet: it reads `properties` once awaited) in its PRODUCER span,
    whose context the message carries in its `traceparent` header."""
    if TRACER is None:
        return publish
    return _producing(TRACER, publish, exchange, routing_key, properties)


async def _producing(
    tracer: Tracer, publish: Awaitable[Sent], exchange: str, key: str, properties: Properties
) -> Sent:
    attributes = RABBITMQ | {
        "messaging.operation.type": "send",
        "messaging.operation.name": "publish",
        "messaging.destination.name": exchange,
        "messaging.rabbitmq.destination.routing_key": key,
        "messaging.message.id": properties.message_id,
        "messaging.message.conversation_id": properties.correlation_id,
    }
    with tracer.start_as_current_span(
        f"publish {key}", kind=SpanKind.PRODUCER, attributes=_present(attributes)
    ):
        properties.headers = (properties.headers or {}) | headers()
        return await publish


def result_span(
    publish: Callable[[Owner, ResultT], Awaitable[Taken]],
) -> Callable[[Owner, ResultT], Awaitable[Taken]]:
    """Publishes a call's result in its span `autocall.result <result>`, a child of the span
    that processed the call's event (its context kept with the call's record)."""

    @functools.wraps(publish)
    async def traced(owner: Owner, event: ResultT) -> Taken:
        if TRACER is None:
            return await publish(owner, event)
        with TRACER.start_as_current_span(
            f"autocall.result {event.result}",
            resumed(event.call.traceparent),
            attributes=_present(_of_result(event)),
            record_exception=False,
        ) as span:
            taken = await publish(owner, event)
            span.set_attribute("autocall.published", str(taken))
            return taken

    return traced


def _of_result(event: Result) -> dict[str, Any]:
    return {
        "autocall.result": event.result,
        "autocall.choice": event.choice,
        "autocall.final": event.final,
        "autocall.attempt": event.attempt,
        "autocall.source": event.source,
        "autocall.template": event.call.template,
        "cloudevents.event_id": event.call.event.get("id"),
    }


def _present(attributes: Mapping[str, Any]) -> dict[str, AttributeValue]:
    """The attributes that have a value (a span refuses None)."""
    return {key: value for key, value in attributes.items() if value is not None}
