"""Spans written once their work is done: the SDK's `ReadableSpan`, handed straight to the
batch processor, instead of the SDK's live `Span`.

Why: the SDK's live span (`Tracer.start_span` and `end`) takes ~25 µs to make, fill and end
on the bench machine, a lock, a bounded-attributes copy and two processor calls among it; a
finished `ReadableSpan` handed to the processor takes ~3. The event path makes four spans an
event, and at full sampling that difference was most of what tracing cost (docs/tracing.md).
Its work is known only when it ends, so nothing of a live span is needed: while a span's
block runs, the current span is a `NonRecordingSpan` of its context, which is all the
children, the logs and a call's record read of it.

A span current while its work runs (an event's process span) gathers its children's fields,
and they leave with it as one item of the batch processor: 4 spans an event cost one
`ReadableSpan` and one `on_end`, and the batch's unit is an event's spans. encoder.py writes
each of them as a span of its own; for any other exporter (OTLP/gRPC's), `Unbundled` hands
them over one by one.

What the SDK still does, as its own tracer would: the sampler (`OTEL_TRACES_SAMPLER`) decides
each new span under the parent it is given, the id generator draws the ids, the resource and
the instrumentation scope are the provider's, the batch processor queues and the exporter
sends. Attribute values are cut at `OTEL_(SPAN_)ATTRIBUTE_VALUE_LENGTH_LIMIT` when set; the
count limit (128 by default) is above what any span here carries."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from contextvars import ContextVar, Token
from time import time_ns
from types import TracebackType

from opentelemetry import context as otel_context
from opentelemetry.context import Context
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, SpanLimits, SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult
from opentelemetry.sdk.trace.sampling import ALWAYS_ON, DEFAULT_ON, Decision
from opentelemetry.sdk.util.instrumentation import InstrumentationScope
from opentelemetry.trace import (
    NonRecordingSpan,
    Span,
    SpanContext,
    SpanKind,
    Status,
    StatusCode,
    TraceFlags,
    get_current_span,
    set_span_in_context,
)
from opentelemetry.util.types import AttributeValue

Attributes = Mapping[str, AttributeValue]
# A new span's context, and its parent's (None: the first of its trace)
Opened = tuple[SpanContext, SpanContext | None]
UNSET = Status()
_SAMPLED = TraceFlags.SAMPLED
_RANDOM = TraceFlags.RANDOM_TRACE_ID


class Recorder:
    """Contexts for new spans, and their finished spans to the provider's batch processor."""

    __slots__ = ("_framing", "_ids", "_length", "_processor", "_random", "_rule", "_sampler")

    def __init__(self, provider: TracerProvider, processor: SpanProcessor, name: str) -> None:
        self._sampler = provider.sampler
        # The SDK's own `parentbased_always_on` (its default: a span is kept as its parent
        # was, a new trace always) and `always_on` (every span), the parent's trace state
        # carried on, are answered here without the sampler's calls and result object (the
        # SDK's variables name these very objects); any other sampler is asked.
        self._rule = {id(DEFAULT_ON): "parent", id(ALWAYS_ON): "always"}.get(id(self._sampler))
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
        if self._rule is None:
            decided = self._sampler.should_sample(parent, trace_id, name, kind, attributes)
            kept, state = decided.decision is Decision.RECORD_AND_SAMPLE, decided.trace_state
        elif parent_span is None:
            kept, state = True, None
        else:
            kept = self._rule == "always" or parent_span.trace_flags.sampled
            state = parent_span.trace_state
        flags = (_SAMPLED if kept else 0) | (_RANDOM if random else 0)
        span_id = self._ids.generate_span_id()
        context = SpanContext(trace_id, span_id, False, TraceFlags(flags), state)
        return context, parent_span

    def leaf(
        self,
        parent: Parent,
        name: str,
        kind: SpanKind,
        started: int,
        *,
        attributes: Attributes,
        status: Status = UNSET,
        span_id: int = 0,
    ) -> None:
        """A span with no children under `parent` (a kept span of this process), its work done
        now: gathered on `parent` when it gathers, else to the exporter on its own. `span_id`:
        drawn already (the context a message carried)."""
        if self._length is not None:
            attributes = _limited(attributes, self._length)
        span_id = span_id or self._ids.generate_span_id()
        child = (span_id, name, kind, started, time_ns(), attributes, status)
        if type(parent) is Gathering:
            parent.children.append(child)
            return
        context = parent.get_span_context()
        self._processor.on_end(Finished(unbundled(context, child), self._framing))

    def span_id(self) -> int:
        """A new span's id, for a context that must be known before its span is made."""
        return self._ids.generate_span_id()

    def finish(
        self,
        name: str,
        kind: SpanKind,
        opened: Opened,
        attributes: Attributes,
        *,
        started: int,
        status: Status = UNSET,
        children: list[Child] | None = None,
    ) -> None:
        """The span, started at `started` (ns) and ending now, with the children gathered on
        it, to the exporter if it is kept."""
        context, parent = opened
        if not context.trace_flags.sampled:
            return
        if self._length is not None:
            attributes = _limited(attributes, self._length)
        fields = (context, parent, name, kind, started, time_ns(), attributes, status)
        self._processor.on_end(Finished(fields, self._framing, children))


# What encoder.py writes of a span: context, parent, name, kind, start and end (ns), attributes,
# status; and the span's resource and scope, one pair (the same object) for all of a recorder's.
Fields = tuple[SpanContext, SpanContext | None, str, SpanKind, int, int, Attributes, Status]
Framing = tuple[Resource, InstrumentationScope]
GATHERING: ContextVar[Gathering | None] = ContextVar("autocall_gathering", default=None)
# A child gathered on its parent: its span id, name, kind, start and end, attributes, status.
Child = tuple[int, str, SpanKind, int, int, Attributes, Status]
Parent = Span  # a kept span of this process, current while its children are made


class Gathering(NonRecordingSpan):
    """A span being made around a block: started when the block starts, finished when it ends
    with the attributes and status it has then, and the children made within gathered on it.
    Within the block it is the current span, to OpenTelemetry a `NonRecordingSpan` of its
    context, and while kept also `GATHERING`'s: the event path asks for the current span three
    to five times an event, and the one variable is read for a fraction of what the API's
    look-up through the context costs. A block that raises sets the status to error, named by
    the service's code for the exception or its type, never its text (which may quote what a
    span must not carry)."""

    def __init__(
        self,
        recorder: Recorder,
        name: str,
        kind: SpanKind,
        opened: Opened,
        attributes: dict[str, AttributeValue],
    ) -> None:
        super().__init__(opened[0])
        self.recorder, self.name, self.kind, self.opened = recorder, name, kind, opened
        self.attributes = attributes
        self.status = UNSET
        self.children: list[Child] = []
        self.started = 0
        self._tokens: tuple[object, Token[Gathering | None] | None] | None = None

    @property
    def kept(self) -> bool:
        """Whether its trace is kept (sampled): a span not kept makes nothing."""
        return self.opened[0].trace_flags.sampled

    def __enter__(self) -> Gathering:
        self.started = time_ns()
        token = otel_context.attach(set_span_in_context(self))
        self._tokens = (token, GATHERING.set(self) if self.kept else None)
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        assert self._tokens is not None
        token, kept = self._tokens
        if kept is not None:
            GATHERING.reset(kept)
        otel_context.detach(token)  # type: ignore[arg-type]
        if exc is not None:
            self.status = failed(self.attributes, exc)
        self.recorder.finish(
            self.name,
            self.kind,
            self.opened,
            self.attributes,
            started=self.started,
            status=self.status,
            children=self.children,
        )


def failed(attributes: dict[str, AttributeValue], exc: BaseException) -> Status:
    """The status of a span whose work raised `exc`: an error, named (in `attributes` too) by
    the service's code for `exc` or its type."""
    named = getattr(exc, "code", None) or type(exc).__qualname__
    attributes["error.type"] = named
    return Status(StatusCode.ERROR, named)


class Finished(ReadableSpan):
    """A finished span that also keeps what the encoder writes in one tuple, read at once
    rather than through a property each (the encoder's time a span halves, measured), and the
    children gathered on it, which are exported with it."""

    def __init__(
        self, fields: Fields, framing: Framing, children: list[Child] | None = None
    ) -> None:
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
        self.children = children or []

    def spans(self) -> list[ReadableSpan]:
        """This span and each of its children as a span of its own."""
        context = self.fields[0]
        spans: list[ReadableSpan] = [self]
        spans.extend(Finished(unbundled(context, c), self.framing) for c in self.children)
        return spans


def current_span() -> Span:
    """The current span: the kept one gathering, or whatever OpenTelemetry's context holds."""
    return GATHERING.get() or get_current_span()


def unbundled(parent: SpanContext, child: Child) -> Fields:
    """A child's fields as a span's own, under `parent`."""
    span_id, name, kind, started, ended, attributes, status = child
    context = SpanContext(parent.trace_id, span_id, False, parent.trace_flags, parent.trace_state)
    return (context, parent, name, kind, started, ended, attributes, status)


class Unbundled(SpanExporter):
    """An exporter other than encoder.py's, given each span on its own."""

    def __init__(self, inner: SpanExporter) -> None:
        self.inner = inner

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        each = [one for span in spans for one in _spans_of(span)]
        return self.inner.export(each)

    def shutdown(self) -> None:
        self.inner.shutdown()

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        return self.inner.force_flush(timeout_millis)


def _spans_of(span: ReadableSpan) -> list[ReadableSpan]:
    return span.spans() if type(span) is Finished else [span]


def _limited(attributes: Attributes, length: int) -> Attributes:
    """The attributes, their text cut at `length` (OTEL_ATTRIBUTE_VALUE_LENGTH_LIMIT)."""
    return {key: _cut(value, length) for key, value in attributes.items()}


def _cut(value: AttributeValue, length: int) -> AttributeValue:
    return value[:length] if isinstance(value, str) else value
