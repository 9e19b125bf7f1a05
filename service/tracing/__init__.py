"""Traces (CONTRACT.md §14): one order followed from the event to its call's results, with
OpenTelemetry; off, and free, unless an OTLP endpoint is configured.

setup.py      the tracer provider the `OTEL_*` variables describe, its batch exporter, shutdown
carriers.py   W3C trace context: a delivery's parent, a message's headers, ids for the logs
spans.py      the spans of the event path and the result side, each a pass-through when off
finished.py   spans written once their work is done, for the SDK's batch processor and exporter
shapes.py     what the spans read of the objects the layers above hand them
http.py       CLIENT spans of the provider's requests, around the client's send
otlp.py       the SDK's OTLP/HTTP exporter with the encoder below (its private parts, in one place)
encoder.py    spans to OTLP protobuf bytes, written directly: ~4 µs a span against the SDK's 19-20
wire.py       protobuf's wire format: varints, fields, attribute keys and the values they keep
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Awaitable
from contextlib import asynccontextmanager

from yarl import URL

from . import setup, spans
from .carriers import log_ids as _log_ids
from .carriers import traceparent as _traceparent
from .finished import Recorder
from .http import Answered, request_span
from .spans import claimed, consumed, producing, result_span

__all__ = [
    "claimed",
    "consumed",
    "log_ids",
    "producing",
    "requested",
    "result_span",
    "started",
    "traceparent",
]
NAME = "autocall-bridge"
log = logging.getLogger("autocall")


@asynccontextmanager
async def started() -> AsyncIterator[bool]:
    """Tracing for the duration of the block, when the environment asks for it (whether it
    does); the spans still queued are exported, within a bound, when it ends."""
    pipeline = setup.pipeline()
    if pipeline is None:
        yield False
        return
    spans.RECORDER = Recorder(pipeline.provider, pipeline.batches, NAME)
    log.info(
        "traces: OTLP to %s as %s",
        setup.endpoint(),
        pipeline.provider.resource.attributes.get("service.name"),
    )
    try:
        yield True
    finally:
        spans.RECORDER = None
        await setup.shut_down(pipeline)


def requested(sending: Awaitable[Answered], method: str, url: URL | str) -> Awaitable[Answered]:
    """A request to the provider (`sending`, not started yet) in its CLIENT span, within an
    event's or a result's kept trace only: the poller's searches, outside any, would each be a
    trace of one span."""
    if spans.RECORDER is None or (parent := spans.kept()) is None:
        return sending
    return request_span(spans.RECORDER, parent, sending, method, url)


def traceparent() -> str:
    """The current span's W3C traceparent, for a call's record; "" while tracing is off."""
    return "" if spans.RECORDER is None else _traceparent()


def log_ids() -> tuple[str, str] | None:
    """(trace_id, span_id) for a log record; None while tracing is off or outside any span."""
    return None if spans.RECORDER is None else _log_ids()
