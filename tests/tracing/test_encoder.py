"""The OTLP encoder of our own (tracing/encoder.py) writes the request the SDK's encoder would:
both decoded with the OTLP protobuf classes and compared, for every shape of span; and the
SDK's private parts its exporter (tracing/otlp.py) reaches for are still there."""

from __future__ import annotations

import logging

import pytest
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, SpanLimits, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import (
    Link,
    NonRecordingSpan,
    SpanContext,
    SpanKind,
    Status,
    StatusCode,
    TraceFlags,
    set_span_in_context,
)
from opentelemetry.trace.span import TraceState
from opentelemetry.util.types import AttributeValue

from service.tracing import setup
from service.tracing.encoder import Encoder
from service.tracing.otlp import FastOTLPSpanExporter

REMOTE = SpanContext(
    0x4BF92F3577B34DA6A3CE929D0E0E4736,
    0x00F067AA0BA902B7,
    is_remote=True,
    trace_flags=TraceFlags(TraceFlags.SAMPLED),
    trace_state=TraceState([("shop", "1"), ("vendor", "x")]),
)


def finished(resource: Resource) -> list[ReadableSpan]:
    """Spans of every shape the encoder writes itself or hands to the SDK's encoder."""
    kept = InMemorySpanExporter()
    provider = TracerProvider(resource=resource, span_limits=SpanLimits(max_span_attributes=6))
    provider.add_span_processor(SimpleSpanProcessor(kept))
    ours, other = provider.get_tracer("autocall-bridge"), provider.get_tracer("x", "1.2", "s:/u")
    parent = set_span_in_context(NonRecordingSpan(REMOTE))
    attributes: dict[str, AttributeValue] = {
        "messaging.system": "rabbitmq",
        "count": 3,
        "below": -5,
        "share": 1.5,
    }
    span = ours.start_span("autocall.process a.b", parent, SpanKind.CONSUMER, attributes)
    span.set_attributes({"yes": True, "no": False})
    span.set_status(Status(StatusCode.ERROR, "invalid_phone"))
    span.end()
    with ours.start_as_current_span("claim", end_on_exit=True) as current:  # a local parent
        current.set_attributes({"one": 1, "one.f": 1.0, "one.b": True, "big": -(2**63)})
        ours.start_span("ünïcode", attributes={"ké": "ü" * 300, "m": "x"}).end()
    ours.start_span("seq", attributes={"list": ("a", "b"), "s": "v"}).end()
    ours.start_span("full", attributes={str(i): i for i in range(9)}).end()  # some dropped
    event = other.start_span("evt", kind=SpanKind.PRODUCER)
    event.add_event("retry", {"attempt": 2})
    event.set_status(StatusCode.OK)
    event.end()
    other.start_span("link", links=[Link(SpanContext(5, 6, False), {"k": "v"})]).end()
    for kind in SpanKind:
        ours.start_span(f"kind {kind.name}", kind=kind).end()
    return list(kept.get_finished_spans())


@pytest.mark.parametrize("resource", [setup.resource(), Resource({}, "https://schema/1")])
def test_the_same_request_as_the_sdks_encoder(resource: Resource) -> None:
    spans = finished(resource)
    encoder = Encoder()
    for _ in range(2):  # the second time from what it kept encoded
        ours = ExportTraceServiceRequest.FromString(encoder.encode(spans))
        assert ours == encode_spans(spans)
    assert sum(len(s.spans) for r in ours.resource_spans for s in r.scope_spans) == len(spans)


def test_spans_of_several_resources() -> None:
    spans = finished(Resource({"service.name": "a"})) + finished(Resource({"service.name": "b"}))
    ours = ExportTraceServiceRequest.FromString(Encoder().encode(spans[::-1]))
    assert ours == encode_spans(spans[::-1])


def test_the_sdks_exporter_still_has_what_ours_uses(caplog: pytest.LogCaptureFixture) -> None:
    exporter = FastOTLPSpanExporter()
    assert isinstance(exporter, OTLPSpanExporter)
    assert callable(exporter._client.export) and exporter._shutdown is False
    exporter.shutdown()  # type: ignore[no-untyped-call]
    with caplog.at_level(logging.WARNING):
        assert exporter.export(finished(setup.resource())).name == "FAILURE"
