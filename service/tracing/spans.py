"""The spans of CONTRACT.md §14, each a pass-through while tracing is off (`RECORDER` None):
the event path then pays one global read a hook, no context manager and no dict.

On, each span is written once its work is done (finished.py: ~3 µs against the SDK's live
span's ~25), with the attributes the contract names and a few that a search needs. A span
whose work has children (the process span, a result's) is current while it runs, as a
`NonRecordingSpan` of its context: the children, the log lines and the call's record read
only that."""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable, Mapping
from time import time_ns
from typing import Any, TypeVar

from aio_pika.abc import AbstractIncomingMessage
from opentelemetry.trace import (
    SpanKind,
    Status,
    StatusCode,
    get_current_span,
)
from opentelemetry.util.types import AttributeValue

from ..store import Claim
from .carriers import parent_of, resumed, traceparent_of
from .finished import GATHERING, UNSET, Gathering, Parent, Recorder, current_span, failed
from .shapes import Outcome, Outgoing, ResultEvent

RECORDER: Recorder | None = None  # set while tracing is on
Owner = TypeVar("Owner")
Taken = TypeVar("Taken")
Sent = TypeVar("Sent")
Action = TypeVar("Action")
Event = TypeVar("Event", bound=ResultEvent)


def kept() -> Parent | None:
    """The current span if its trace is kept (sampled), else None: the children of a span that
    is not kept would not be either, and are not made at all."""
    gathering = GATHERING.get()
    if gathering is not None:
        return gathering
    current = get_current_span()  # a span of another's making, as in the tests
    return current if current.get_span_context().trace_flags.sampled else None


def consumed(
    step: Callable[[AbstractIncomingMessage, float], Awaitable[Action]],
    delivery: AbstractIncomingMessage,
    started: float,
    origin: Callable[[AbstractIncomingMessage], tuple[str, str]],
) -> Awaitable[Action]:
    """`step(delivery, started)`, processing and settling a delivery, in its CONSUMER span
    `autocall.process <routing key>` (`origin` reads the routing key and exchange it was first
    published with), the parent of the spans below."""
    if RECORDER is None:
        return step(delivery, started)
    return _consumed(RECORDER, step, delivery, started, origin(delivery))


async def _consumed(
    recorder: Recorder,
    step: Callable[[AbstractIncomingMessage, float], Awaitable[Action]],
    delivery: AbstractIncomingMessage,
    started: float,
    origin: tuple[str, str],
) -> Action:
    name = f"autocall.process {origin[0]}"
    attributes = _messaging("process", *origin, delivery.message_id)
    opened = recorder.opened(name, parent_of(delivery), SpanKind.CONSUMER, attributes)
    # Current for what happens within: the claim, the provider's request, the publish, the
    # call's record (which keeps its context for the results) and the log lines.
    with Gathering(recorder, name, SpanKind.CONSUMER, opened, attributes) as span:
        action = await step(delivery, started)
        if span.kept:
            span.status = _describe(span.attributes, action, delivery.message_id)
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


def _describe(
    attributes: dict[str, AttributeValue], action: object, message_id: str | None
) -> Status:
    """What became of the event, in `attributes`: its outcome (a failure is the span's status,
    returned), or why not yet. Read by shape (the pipeline's actions live above this package):
    a publish has an `outcome`, a delay a `delay_ms` (and `retry`, `why`), a put-back `holds`
    (and `reason`)."""
    outcome: Outcome | None = getattr(action, "outcome", None)
    if outcome is not None:
        return _outcome(attributes, outcome, message_id)
    if hasattr(action, "delay_ms"):
        attributes["autocall.status"] = "retried" if getattr(action, "retry", False) else "deferred"
        attributes["autocall.reason"] = _text(action, "why")
    elif hasattr(action, "holds"):
        attributes["autocall.status"] = "held"
        attributes["autocall.reason"] = _text(action, "reason")
    else:
        attributes["autocall.status"] = "requeued"
    return UNSET


def _text(action: object, name: str) -> str:
    return str(getattr(action, name, ""))


def _outcome(
    attributes: dict[str, AttributeValue], outcome: Outcome, message_id: str | None
) -> Status:
    attributes["autocall.status"] = outcome.status
    if outcome.template is not None:
        attributes["autocall.template"] = outcome.template
    if outcome.autocall_id:
        attributes["autocall.autocall_id"] = outcome.autocall_id
    if outcome.reason:
        attributes["autocall.reason"] = outcome.reason
    if outcome.account is not None:  # the account that took the call (CONTRACT.md §13)
        attributes["autocall.account"] = outcome.account
        if outcome.provider is not None:
            attributes["autocall.provider"] = outcome.provider
    event_id = outcome.event.get("id")
    if event_id is not None and event_id != message_id:  # its id is its body's (CONTRACT §3)
        attributes["messaging.message.id"] = str(event_id)
    if outcome.code is None:
        return UNSET
    attributes["error.type"] = outcome.code
    return Status(StatusCode.ERROR, outcome.code)


def claimed(claiming: Awaitable[Claim]) -> Awaitable[Claim]:
    """The store's claim of an idempotency key, in its span `autocall.claim`."""
    if RECORDER is None or (parent := kept()) is None:
        return claiming
    return _claimed(RECORDER, parent, claiming)


async def _claimed(recorder: Recorder, parent: Parent, claiming: Awaitable[Claim]) -> Claim:
    started = time_ns()
    try:
        claim = await claiming
    except BaseException as exc:
        leaf(recorder, parent, "autocall.claim", started, {}, failure=exc)
        raise
    leaf(recorder, parent, "autocall.claim", started, {"autocall.claim": claim.state.value})
    return claim


def leaf(
    recorder: Recorder,
    parent: Parent,
    name: str,
    started: int,
    attributes: dict[str, AttributeValue],
    *,
    kind: SpanKind = SpanKind.INTERNAL,
    failure: BaseException | None = None,
    status: Status = UNSET,
    span_id: int = 0,
) -> None:
    """A span with no children under `parent`, made once its work is done (started at
    `started`, ns), with all its attributes at once."""
    if failure is not None:
        status = failed(attributes, failure)
    recorder.leaf(
        parent, name, kind, started, attributes=attributes, status=status, span_id=span_id
    )


def producing(
    publish: Awaitable[Sent], exchange: str, routing_key: str, message: Outgoing
) -> Awaitable[Sent]:
    """`publish` (not started yet: it reads `message` once awaited) in its PRODUCER span, whose
    context the message carries in its `traceparent` header."""
    if RECORDER is None:
        return publish
    if (parent := kept()) is None:  # not kept: the trace still goes on, in the headers
        current = current_span().get_span_context()
        if current.is_valid:
            message.headers = {**(message.headers or {}), **traceparent_of(current)}
        return publish
    return _producing(RECORDER, parent, publish, message, exchange=exchange, key=routing_key)


async def _producing(
    recorder: Recorder,
    parent: Parent,
    publish: Awaitable[Sent],
    message: Outgoing,
    *,
    exchange: str,
    key: str,
) -> Sent:
    span_id = recorder.span_id()  # the context the message carries: its span's, made after
    message.headers = {
        **(message.headers or {}),
        **traceparent_of(parent.get_span_context(), span_id),
    }
    started = time_ns()
    attributes = _messaging("send", key, exchange, message.message_id)
    name = f"publish {key}"
    kind = SpanKind.PRODUCER
    try:
        sent = await publish
    except BaseException as exc:
        leaf(recorder, parent, name, started, attributes, kind=kind, failure=exc, span_id=span_id)
        raise
    leaf(recorder, parent, name, started, attributes, kind=kind, span_id=span_id)
    return sent


def result_span(
    publish: Callable[[Owner, Event], Awaitable[Taken]],
) -> Callable[[Owner, Event], Awaitable[Taken]]:
    """Publishes a call's result in its span `autocall.result <result>`, a child of the span
    that processed the call's event (its context kept with the call's record)."""

    @functools.wraps(publish)
    async def traced(owner: Owner, event: Event) -> Taken:
        recorder = RECORDER
        if recorder is None:
            return await publish(owner, event)
        name = f"autocall.result {event.result}"
        attributes = _present(_of_result(event))
        opened = recorder.opened(
            name, resumed(event.call.traceparent), SpanKind.INTERNAL, attributes
        )
        # current: its publish is its child
        with Gathering(recorder, name, SpanKind.INTERNAL, opened, attributes) as span:
            taken = await publish(owner, event)
            span.attributes["autocall.published"] = str(taken)
            return taken

    return traced


def _of_result(event: ResultEvent) -> dict[str, Any]:
    event_id = event.call.event.get("id")
    return {
        "autocall.result": event.result,
        "autocall.choice": event.choice,
        "autocall.final": event.final,
        "autocall.attempt": event.attempt,
        "autocall.source": event.source,
        "autocall.template": event.call.template,
        "cloudevents.event_id": None if event_id is None else str(event_id),
    }


def _present(attributes: Mapping[str, Any]) -> dict[str, AttributeValue]:
    """The attributes that have a value (a span refuses None)."""
    return {key: value for key, value in attributes.items() if value is not None}
