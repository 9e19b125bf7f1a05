"""The spans of CONTRACT.md §14, each a pass-through while tracing is off (`TRACER` None): the
event path then pays one global read a hook, no context manager and no dict.

On, each span is the SDK's dearest part of an event (11-13 µs to make and end, and ~7 µs to
encode for export with encoder.py, measured on the bench machine, against ~550 µs for the
whole event): the event path's spans carry only the attributes the contract names and a few
that a search needs, and are started and ended directly rather than through the SDK's context
managers."""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable, Mapping
from time import time_ns
from types import TracebackType
from typing import Any, TypeVar

from aio_pika.abc import AbstractIncomingMessage
from opentelemetry import context
from opentelemetry.trace import (
    Span,
    SpanKind,
    Status,
    StatusCode,
    Tracer,
    get_current_span,
    set_span_in_context,
)
from opentelemetry.util.types import AttributeValue

from ..store import Claim
from .carriers import parent_of, resumed, traceparent_of
from .shapes import Outcome, Outgoing, ResultEvent

TRACER: Tracer | None = None  # set while tracing is on
Owner = TypeVar("Owner")
Taken = TypeVar("Taken")
Sent = TypeVar("Sent")


Action = TypeVar("Action")
Event = TypeVar("Event", bound=ResultEvent)


def consumed(
    step: Callable[[AbstractIncomingMessage, float], Awaitable[Action]],
    delivery: AbstractIncomingMessage,
    started: float,
    origin: Callable[[AbstractIncomingMessage], tuple[str, str]],
) -> Awaitable[Action]:
    """`step(delivery, started)`, processing and settling a delivery, in its CONSUMER span
    `autocall.process <routing key>` (`origin` reads the routing key and exchange it was first
    published with), the parent of the spans below."""
    if TRACER is None:
        return step(delivery, started)
    return _consumed(TRACER, step, delivery, started, origin(delivery))


async def _consumed(
    tracer: Tracer,
    step: Callable[[AbstractIncomingMessage, float], Awaitable[Action]],
    delivery: AbstractIncomingMessage,
    started: float,
    origin: tuple[str, str],
) -> Action:
    span = tracer.start_span(
        f"autocall.process {origin[0]}",
        parent_of(delivery),
        SpanKind.CONSUMER,
        _messaging("process", *origin, delivery.message_id),
    )
    # Current for what happens within: the claim, the provider's request, the publish, the
    # call's record (which keeps its context for the results) and the log lines.
    with Ending(span, current=True):
        action = await step(delivery, started)
        if span.is_recording():
            _describe(span, action, delivery.message_id)
        return action


def _messaging(
    operation: str, routing_key: str, exchange: str, message_id: str | None
) -> dict[str, AttributeValue]:
    """A messaging span's attributes (OpenTelemetry's conventions for RabbitMQ)."""
    attributes: dict[str, AttributeValue] = {
        "messaging.system": "rabbitmq",
        "messaging.operation.type": operation,
        "messaging.destination.name": exchange,
        "messaging.rabbitmq.destination.routing_key": routing_key,
    }
    if message_id:
        attributes["messaging.message.id"] = message_id
    return attributes


def _describe(span: Span, action: object, message_id: str | None) -> None:
    """What became of the event: its outcome (a failure sets the span's status), or why not yet.
    Read by shape (the pipeline's actions live above this package): a publish has an `outcome`,
    a delay a `delay_ms` (and `retry`, `why`), a put-back `holds` (and `reason`)."""
    outcome: Outcome | None = getattr(action, "outcome", None)
    if outcome is not None:
        _outcome(span, outcome, message_id)
    elif hasattr(action, "delay_ms"):
        status = "retried" if getattr(action, "retry", False) else "deferred"
        span.set_attributes({"autocall.status": status, "autocall.reason": _text(action, "why")})
    elif hasattr(action, "holds"):
        span.set_attributes({"autocall.status": "held", "autocall.reason": _text(action, "reason")})
    else:
        span.set_attribute("autocall.status", "requeued")


def _text(action: object, name: str) -> str:
    return str(getattr(action, name, ""))


def _outcome(span: Span, outcome: Outcome, message_id: str | None) -> None:
    attributes = {"autocall.status": outcome.status, "autocall.template": outcome.template}
    if outcome.autocall_id:
        attributes["autocall.autocall_id"] = outcome.autocall_id
    if outcome.reason:
        attributes["autocall.reason"] = outcome.reason
    if outcome.account is not None:  # the account that took the call (CONTRACT.md §13)
        attributes["autocall.account"] = outcome.account
        attributes["autocall.provider"] = outcome.provider
    if outcome.code is not None:
        attributes["error.type"] = outcome.code
        span.set_status(Status(StatusCode.ERROR, outcome.code))
    if outcome.event.get("id") != message_id:  # the event's id is its body's (CONTRACT §3)
        attributes["messaging.message.id"] = outcome.event.get("id")
    span.set_attributes(_present(attributes))


class Ending:
    """Ends `span` with its block; a block that raises sets the span's status to error, named
    by the service's code for the exception or its type, never its text (which may quote what
    a span must not carry). `current`: the span is the current one within the block."""

    __slots__ = ("_span", "_token")

    def __init__(self, span: Span, *, current: bool = False) -> None:
        self._span = span
        self._token = context.attach(set_span_in_context(span)) if current else None

    def __enter__(self) -> Span:
        return self._span

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if exc is not None:
            failed(self._span, exc)
        if self._token is not None:
            context.detach(self._token)
        self._span.end()


def claimed(claiming: Awaitable[Claim]) -> Awaitable[Claim]:
    """The store's claim of an idempotency key, in its span `autocall.claim`."""
    if TRACER is None or not recording():
        return claiming
    return _claimed(TRACER, claiming)


def recording() -> bool:
    """Whether the current span is kept: the children of one that is not (not sampled) would
    not be either, and are not made at all."""
    return get_current_span().is_recording()


async def _claimed(tracer: Tracer, claiming: Awaitable[Claim]) -> Claim:
    started = time_ns()
    try:
        claim = await claiming
    except BaseException as exc:
        leaf(tracer, "autocall.claim", started, failure=exc)
        raise
    leaf(tracer, "autocall.claim", started, {"autocall.claim": claim.state.value})
    return claim


def leaf(
    tracer: Tracer,
    name: str,
    started: int,
    attributes: Mapping[str, AttributeValue] | None = None,
    *,
    kind: SpanKind = SpanKind.INTERNAL,
    failure: BaseException | None = None,
    status: Status | None = None,
) -> None:
    """A span with no children, made once its work is done (started at `started`, ns) with
    all its attributes at once: each `set_attribute` takes the span's lock and cleans its
    value again (~3 µs a span in all, measured)."""
    span = tracer.start_span(name, kind=kind, attributes=attributes, start_time=started)
    if failure is not None:
        failed(span, failure)
    elif status is not None:
        span.set_status(status)
    span.end()


def failed(span: Span, exc: BaseException) -> None:
    """The span's status: an error, named by the service's code for `exc` or its type."""
    named = getattr(exc, "code", None) or type(exc).__qualname__
    span.set_attribute("error.type", named)
    span.set_status(Status(StatusCode.ERROR, named))


def producing(
    publish: Awaitable[Sent], exchange: str, routing_key: str, message: Outgoing
) -> Awaitable[Sent]:
    """`publish` (not started yet: it reads `message` once awaited) in its PRODUCER span, whose
    context the message carries in its `traceparent` header."""
    if TRACER is None:
        return publish
    if not recording():  # not sampled: the trace still goes on, in the message's headers
        current = get_current_span().get_span_context()
        if current.is_valid:
            message.headers = {**(message.headers or {}), **traceparent_of(current)}
        return publish
    return _producing(TRACER, publish, exchange, routing_key, message)


async def _producing(
    tracer: Tracer, publish: Awaitable[Sent], exchange: str, key: str, message: Outgoing
) -> Sent:
    attributes = _messaging("send", key, exchange, message.message_id)
    span = tracer.start_span(f"publish {key}", kind=SpanKind.PRODUCER, attributes=attributes)
    message.headers = {**(message.headers or {}), **traceparent_of(span.get_span_context())}
    with Ending(span):
        return await publish


def result_span(
    publish: Callable[[Owner, Event], Awaitable[Taken]],
) -> Callable[[Owner, Event], Awaitable[Taken]]:
    """Publishes a call's result in its span `autocall.result <result>`, a child of the span
    that processed the call's event (its context kept with the call's record)."""

    @functools.wraps(publish)
    async def traced(owner: Owner, event: Event) -> Taken:
        if TRACER is None:
            return await publish(owner, event)
        parent = resumed(event.call.traceparent)
        attributes = _present(_of_result(event))
        span = TRACER.start_span(f"autocall.result {event.result}", parent, attributes=attributes)
        with Ending(span, current=True):  # current: its publish is its child
            taken = await publish(owner, event)
            span.set_attribute("autocall.published", str(taken))
            return taken

    return traced


def _of_result(event: ResultEvent) -> dict[str, Any]:
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
