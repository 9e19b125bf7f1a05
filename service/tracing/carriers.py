"""W3C trace context in and out: a delivery's parent (its headers, or the distributed-tracing
attribute of a structured CloudEvent), the headers of a message sent, the current span's ids."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import orjson
from aio_pika.abc import AbstractIncomingMessage
from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.trace import SpanContext
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from .finished import current_span

W3C = TraceContextTextMapPropagator()
TRACEPARENT = "traceparent"
TRACESTATE = "tracestate"
# The AMQP header of each: plain (W3C), or a binary-mode CloudEvent's extension attribute.
HEADER_PREFIXES = ("", "cloudEvents:", "cloudEvents_")
_HEADERS = tuple((prefix + TRACEPARENT, prefix + TRACESTATE) for prefix in HEADER_PREFIXES)
_NAMED = TRACEPARENT.encode()


def parent_of(delivery: AbstractIncomingMessage) -> Context | None:
    """The trace context the event was published in; None: it starts a trace of its own."""
    headers = delivery.headers
    carrier = (_from_headers(headers) if headers else None) or _from_structured(delivery.body)
    return W3C.extract(carrier) if carrier else None


def _from_headers(headers: Mapping[str, Any]) -> dict[str, str] | None:
    for parent_header, state_header in _HEADERS:
        found = headers.get(parent_header)
        parent = None if found is None else _text(found)
        if parent:
            state = _text(headers.get(state_header))
            return {TRACEPARENT: parent, TRACESTATE: state} if state else {TRACEPARENT: parent}
    return None


def _from_structured(body: bytes) -> dict[str, str] | None:
    """A structured CloudEvent's `traceparent` and `tracestate` (the distributed-tracing
    extension). The body is parsed again only when it names a traceparent at all."""
    if _NAMED not in body:
        return None
    try:
        document = orjson.loads(body)
    except orjson.JSONDecodeError:
        return None  # the event path reports it invalid
    if not isinstance(document, dict) or "specversion" not in document:
        return None
    return _from_headers({key: document.get(key) for key in (TRACEPARENT, TRACESTATE)})


def _text(value: Any) -> str | None:
    if isinstance(value, bytes | bytearray):
        value = bytes(value).decode("ascii", "replace")
    return value.strip() if isinstance(value, str) and value.strip() else None


def traceparent_of(span: SpanContext, span_id: int = 0) -> dict[str, str]:
    """The W3C headers of `span` (with `span_id` instead of its own, for a span of its trace
    not made yet): what the propagator writes, without its look-ups."""
    span_id = span_id or span.span_id
    carrier = {TRACEPARENT: f"00-{span.trace_id:032x}-{span_id:016x}-{span.trace_flags:02x}"}
    if span.trace_state:
        carrier[TRACESTATE] = span.trace_state.to_header()
    return carrier


def traceparent() -> str:
    """The current span's context as a W3C traceparent ("" outside any span): what a call's
    record keeps, so that its results, minutes later, belong to the same trace."""
    current = current_span().get_span_context()
    if not current.is_valid:
        return ""
    return f"00-{current.trace_id:032x}-{current.span_id:016x}-{current.trace_flags:02x}"


def resumed(parent: str) -> Context | None:
    """The context a kept traceparent names; None for "" (a new trace)."""
    return W3C.extract({TRACEPARENT: parent}) if parent else None


def log_ids() -> tuple[str, str] | None:
    """(trace_id, span_id) of the current span, as hex; None outside any span."""
    context = current_span().get_span_context()
    if not context.is_valid:
        return None
    return trace.format_trace_id(context.trace_id), trace.format_span_id(context.span_id)
