"""Spans written once their work is done: the SDK's `ReadableSpan`, handed straight to the
batch processor, instead of the SDK's live `Span`.

Why: the SDK's live span (`Tracer.start_span` and `end`) takes ~25 µs to make, fill and end
on the bench machine, a lock, a bounded-attributes copy and two processor calls among it; a
finished `ReadableSpan` handed to the processor takes ~3. The event path makes four spans an
event, and at full sampling that difference was most of what tracing cost (docs/tracing.md).
Its work is known only when it ends, so nothing of a live span is needed: while a span's
block runs, the current span is a `NonRecordingSpan` of its context, which is all the
children, the logs and a call's record read of it.

What the SDK still does, as its own tracer would: the sampler (`OTEL_TRACES_SAMPLER`) decides
each new span under the parent it is given, the id generator draws the ids, the resource and
the instrumentation scope are the provider's, the batch processor queues and the exporter
sends. Attribute values are cut at `OTEL_(SPAN_)ATTRIBUTE_VALUE_LENGTH_LIMIT` when set; the
count limit (128 by default) is above what any span here carries."""

from __future__ import annotations

from collections.abc import Mapping
from time import time_ns

from opentelemetry.context import Context
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, SpanLimits, SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.sampling import Decision
from opentelemetry.sdk.util.instrumentation import InstrumentationScope
from opentelemetry.trace import SpanContext, SpanKind, Status, TraceFlags, get_current_span
from opentelemetry.util.types import AttributeValue

Attributes = Mapping[str, AttributeValue]
# A new span's context, and its parent's (None: the first of its trace)
Opened = tuple[SpanContext, SpanContext | None]
UNSET = Status()
_SAMPLED = TraceFlags.SAMPLED
_RANDOM = TraceFlags.RANDOM_TRACE_ID


class Recorder:
    """Contexts for new spans, and their finished spans to the provider's batch processor."""

    __slots__ = ("_framing", "_ids", "_length", "_processor", "_random", "_sampler")

    def __init__(self, provider: TracerProvider, processor: SpanProcessor, name: str) -> None:
        self._sampler = provider.sampler
        self._ids = provider.id_generator
        self._random = self._ids.is_trace_id_random()
        self._framing = (provider.resource, InstrumentationScope(name))
        self._processor = processor
        self._length = SpanLimits().max_span_attribute_length

    def opened(
        self, name: str, parent: Context | None, kind: SpanKind, attributes: Attributes
    ) -> Opened:
        """The context of a new span under `parent` (a new trace without one), sampled as the
        sampler says; and its parent's span context, None for a new trace."""
        parent_span = get_current_span(parent).get_span_context() if parent is not None else None
        if parent_span is not None and parent_span.is_valid:
            trace_id, random = parent_span.trace_id, parent_span.trace_flags.random_trace_id
        else:
            parent_span, trace_id, random = None, self._ids.generate_trace_id(), self._random
        decided = self._sampler.should_sample(parent, trace_id, name, kind, attributes)
        flags = (_SAMPLED if decided.decision is Decision.RECORD_AND_SAMPLE else 0) | (
            _RANDOM if random else 0
        )
        span_id = self._ids.generate_span_id()
        context = SpanContext(trace_id, span_id, False, TraceFlags(flags), decided.trace_state)
        return context, parent_span

    def child(self, parent: SpanContext) -> SpanContext:
        """The context of a new span under `parent`, a span of this process: the same trace,
        kept as it is (a span not kept makes no children at all)."""
        span_id = self._ids.generate_span_id()
        return SpanContext(parent.trace_id, span_id, False, parent.trace_flags, parent.trace_state)

    def finish(
        self,
        name: str,
        kind: SpanKind,
        opened: Opened,
        attributes: Attributes,
        *,
        started: int,
        status: Status = UNSET,
    ) -> None:
        """The span, started at `started` (ns) and ending now, to the exporter if it is kept."""
        context, parent = opened
        if not context.trace_flags.sampled:
            return
        if self._length is not None:
            attributes = {key: _cut(value, self._length) for key, value in attributes.items()}
        fields = (context, parent, name, kind, started, time_ns(), attributes, status)
        self._processor.on_end(Finished(fields, self._framing))


# What encoder.py writes of a span: context, parent, name, kind, start and end (ns), attributes,
# status; and the span's resource and scope, one pair (the same object) for all of a recorder's.
Fields = tuple[SpanContext, SpanContext | None, str, SpanKind, int, int, Attributes, Status]
Framing = tuple[Resource, InstrumentationScope]


class Finished(ReadableSpan):
    """A finished span that also keeps what the encoder writes in one tuple, read at once
    rather than through a property each (the encoder's time a span halves, measured)."""

    def __init__(self, fields: Fields, framing: Framing) -> None:
        context, parent, name, kind, started, ended, attributes, status = fields
        super().__init__(
            name,
            context,
            parent,
            framing[0],
            attributes,
            kind=kind,
            status=status,
            start_time=started,
            end_time=ended,
            instrumentation_scope=framing[1],
        )
        self.fields = fields
        self.framing = framing


def _cut(value: AttributeValue, length: int) -> AttributeValue:
    return value[:length] if isinstance(value, str) else value
