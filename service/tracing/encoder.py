"""Spans to OTLP protobuf bytes (an `ExportTraceServiceRequest`), written straight to the wire
format instead of through a protobuf object per span, attribute and value.

The SDK's encoder (opentelemetry-exporter-otlp-proto-common's `encode_spans`) builds about a
dozen protobuf objects a span: 19-20 µs a span on the bench machine, most of the exporter
thread's time, against ~4 µs here for the service's own spans (`Finished`, read from one
tuple, their children from theirs; an event's ids and times new each time, names, keys and
the few values that repeat kept encoded). The request is the same message: tests decode both
and compare. What this module does not write itself (a span with events or links, an
attribute that is a sequence or bytes, the resource and the instrumentation scope) it takes
from the SDK's encoder, once for each resource and scope and once for each such span."""

from __future__ import annotations

import struct
from collections.abc import Mapping, Sequence
from typing import cast

from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.util.instrumentation import InstrumentationScope
from opentelemetry.trace import SpanContext, SpanKind, Status, StatusCode

from .finished import Attributes, Child, Fields, Finished
from .wire import Key, Unwritten, field, status_field, varint

# Span.SpanKind is SpanKind + 1 (0 is SPAN_KIND_UNSPECIFIED).
_KIND = {kind: bytes((0x30, kind.value + 1)) for kind in SpanKind}
_TIMES = struct.Struct("<BQBQ")  # start_time_unix_nano (7), end_time_unix_nano (8): fixed64
# Span.trace_id (1) and span_id (2) in one int's bytes: tag, length, 16 bytes, tag, length, 8.
_SPAN_ID_TAG = 0x1208
_TRACE_ID_TAG = 0x0A10 << 208
# Span.flags (16, fixed32): SpanFlags' "has is_remote", and "is remote" for a remote parent.
_LOCAL_FLAGS = b"\x85\x01" + struct.pack("<I", 0x100)
_REMOTE_FLAGS = b"\x85\x01" + struct.pack("<I", 0x300)
_CACHED = 4096  # span names and attribute keys kept encoded: a service has a few dozen
_SMALL = 4096  # spans below this size get their field's tag and length from a table
_SCOPES = 64  # (resource, scope) pairs kept encoded: a service has one or two


_SPAN_TAGS = [b"\x12" + varint(size) for size in range(_SMALL)]  # ScopeSpans.spans (2)


class Encoder:
    """Encodes batches of spans; keeps what repeats (the resource, the scope, attributes that
    recur) encoded between batches. One exporter's: not shared between threads."""

    def __init__(self) -> None:
        self._keys: dict[str, Key] = {}
        self._heads: dict[tuple[str, SpanKind], bytes] = {}  # names (with routing keys), kinds
        self._scopes: dict[tuple[Resource, InstrumentationScope | None], tuple[bytes, bytes]] = {}

    def encode(self, spans: Sequence[ReadableSpan]) -> bytes:
        """The serialized ExportTraceServiceRequest of `spans`."""
        grouped: dict[tuple[Resource, InstrumentationScope | None], list[bytes]] = {}
        last: tuple[Resource, InstrumentationScope | None] | None = None
        encoded: list[bytes] = []
        for span in spans:
            if type(span) is Finished:  # the service's own: its fields in one tuple
                framing: tuple[Resource, InstrumentationScope | None] = span.framing
                written = self._finished(span)
            else:
                framing = (span.resource, span.instrumentation_scope or None)
                written = self._span(span)
            if framing is not last:
                encoded = grouped.setdefault(framing, [])
                last = framing
            encoded.append(written)
        by_resource: dict[Resource, list[bytes]] = {}
        for (resource, scope), written_spans in grouped.items():
            resource_field, scope_fields = self._framing(resource, scope)
            body = scope_fields + b"".join(written_spans)
            # ResourceSpans.scope_spans (2)
            by_resource.setdefault(resource, [resource_field]).append(field(0x12, body))
        return b"".join(field(0x0A, b"".join(fields)) for fields in by_resource.values())

    def _framing(
        self, resource: Resource, scope: InstrumentationScope | None
    ) -> tuple[bytes, bytes]:
        """ResourceSpans' resource and schema_url; ScopeSpans' scope and schema_url: as the
        SDK encodes them, once."""
        key = (resource, scope)
        framing = self._scopes.get(key)
        if framing is None:
            if len(self._scopes) >= _SCOPES:
                self._scopes.clear()
            framing = self._scopes[key] = _sdk_framing(resource, scope)
        return framing

    def _span(self, span: ReadableSpan) -> bytes:
        try:
            return self._written(span)
        except (Unwritten, UnicodeEncodeError):
            return _sdk_span(span)

    def _finished(self, span: Finished) -> bytes:
        """The service's own span, and the children gathered on it."""
        try:
            written = self._write(span.fields)
            if span.children:
                written += b"".join(self._children(span.fields[0], span.children))
        except (Unwritten, UnicodeEncodeError):
            return b"".join(_sdk_span(each) for each in span.spans())
        return written

    def _written(self, span: ReadableSpan) -> bytes:
        if span.events or span.links:
            raise Unwritten
        assert span.context is not None and span.start_time is not None
        assert span.end_time is not None
        attributes = cast("Attributes", span.attributes)
        return self._write(
            (
                span.context,
                span.parent,
                span.name,
                span.kind,
                span.start_time,
                span.end_time,
                attributes,
                span.status,
            ),
            span.dropped_attributes,
        )

    def _write(self, fields: Fields, dropped: int = 0) -> bytes:
        """A Span's bytes, as a field of ScopeSpans.spans (2)."""
        context, parent, name, kind, started, ended, attributes, status = fields
        parts = [
            _ids(context.trace_id, context.span_id),
            self._head(name, kind),
            _TIMES.pack(0x39, started, 0x41, ended),
        ]
        if context.trace_state:
            parts.append(field(0x1A, context.trace_state.to_header().encode()))
        if parent is None:
            parts.append(_LOCAL_FLAGS)
        else:
            parts.append(b"\x22\x08" + parent.span_id.to_bytes(8, "big"))
            parts.append(_REMOTE_FLAGS if parent.is_remote else _LOCAL_FLAGS)
        return self._tail(parts, attributes, status, dropped)

    def _children(self, parent: SpanContext, children: list[Child]) -> list[bytes]:
        """The spans gathered on `parent`, each a Span of its own under it."""
        state = parent.trace_state
        lineage = (
            (field(0x1A, state.to_header().encode()) if state else b"")
            + b"\x22\x08"
            + parent.span_id.to_bytes(8, "big")
            + _LOCAL_FLAGS
        )
        trace = _TRACE_ID_TAG | parent.trace_id << 80 | _SPAN_ID_TAG << 64
        pack = _TIMES.pack
        written = []
        for span_id, name, kind, started, ended, attributes, status in children:
            parts = [
                (trace | span_id).to_bytes(28, "big"),
                self._head(name, kind),
                pack(0x39, started, 0x41, ended),
                lineage,
            ]
            written.append(self._tail(parts, attributes, status))
        return written

    def _head(self, name: str, kind: SpanKind) -> bytes:
        """Span.name (5) and kind (6), kept encoded: names carry routing keys, a few dozen."""
        head = self._heads.get((name, kind))
        if head is None:
            if len(self._heads) >= _CACHED:
                self._heads.clear()
            head = self._heads[(name, kind)] = field(0x2A, name.encode()) + _KIND[kind]
        return head

    def _tail(
        self, parts: list[bytes], attributes: Attributes, status: Status, dropped: int = 0
    ) -> bytes:
        """`parts` with the attributes and status after them, as a field of ScopeSpans.spans."""
        if attributes:
            parts.append(self._attributes_of(attributes))
        if dropped:
            parts.append(b"\x50" + varint(dropped))
        if status.status_code is StatusCode.UNSET and not status.description:
            parts.append(b"\x7a\x00")  # the SDK's encoder always writes one, empty while unset
        else:
            parts.append(status_field(status))
        body = b"".join(parts)
        size = len(body)
        return (_SPAN_TAGS[size] if size < _SMALL else b"\x12" + varint(size)) + body

    def _attributes_of(self, attributes: Mapping[str, object]) -> bytes:
        keys = self._keys
        out = []
        for key, value in attributes.items():
            known = keys.get(key)
            if known is None:
                if len(keys) >= _CACHED:
                    keys.clear()
                known = keys[key] = Key(key)
            texts = known.texts
            # a text seen before, the most of them, without a call
            encoded = texts.get(value) if texts is not None and type(value) is str else None
            out.append(encoded or known.attribute(value))
        return b"".join(out)


def _ids(trace_id: int, span_id: int) -> bytes:
    """Span.trace_id (1) and span_id (2), tags and lengths included, from one int."""
    return (_TRACE_ID_TAG | trace_id << 80 | _SPAN_ID_TAG << 64 | span_id).to_bytes(28, "big")


def _sdk_span(span: ReadableSpan) -> bytes:
    request = encode_spans([span])
    written = request.resource_spans[0].scope_spans[0].spans[0].SerializeToString()
    return field(0x12, written)  # as a ScopeSpans.spans field


def _sdk_framing(resource: Resource, scope: InstrumentationScope | None) -> tuple[bytes, bytes]:
    """The SDK's encoding of the resource's and the scope's fields, from an empty span of each."""
    probe = ReadableSpan(
        "-", SpanContext(1, 1, is_remote=False), resource=resource, instrumentation_scope=scope
    )
    resource_spans = encode_spans([probe]).resource_spans[0]
    scope_spans = resource_spans.scope_spans[0]
    del scope_spans.spans[:]
    del resource_spans.scope_spans[:]
    return resource_spans.SerializeToString(), scope_spans.SerializeToString()
