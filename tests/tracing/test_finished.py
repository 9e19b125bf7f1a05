"""Spans written once their work is done (tracing/finished.py): an event's span and the children
gathered on it leave as one item, which the encoder writes as the spans the SDK's encoder would
write of each, and which any other exporter gets one by one; the sampler and the attribute
length limit are the SDK's."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import pytest
from aio_pika.abc import FieldValue
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExporter, SpanExportResult
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.sdk.trace.sampling import ALWAYS_OFF
from opentelemetry.trace import SpanKind, StatusCode

from service.store import Claim, State
from service.tracing import setup, spans
from service.tracing.carriers import W3C
from service.tracing.encoder import Encoder
from service.tracing.finished import Finished, Gathering, Recorder, Unbundled

PARENT = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"


class Items(SpanExporter):
    """Keeps what the processor hands over, as it is."""

    def __init__(self) -> None:
        self.items: list[ReadableSpan] = []

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        self.items.extend(spans)
        return SpanExportResult.SUCCESS


async def claim() -> Claim:
    return Claim(State.NEW)


async def failing() -> None:
    raise ConnectionResetError


def an_event(recorder: Recorder, *, parent: str = PARENT, event_id: str = "evt-1") -> None:
    """What the event path makes of one event: its span, and under it the claim's span, a
    request's and a publish that failed."""
    spans.RECORDER = recorder
    context = W3C.extract({"traceparent": parent}) if parent else None
    attributes = {"messaging.system": "rabbitmq", "messaging.message.id": event_id}
    name = "autocall.process order.created"
    opened = recorder.opened(name, context, SpanKind.CONSUMER, attributes)

    async def work() -> None:
        with Gathering(recorder, name, SpanKind.CONSUMER, opened, dict(attributes)) as span:
            await spans.claimed(claim())
            parent_span = spans.kept()
            if parent_span is not None:  # else not kept: nothing is made under it
                spans.leaf(recorder, parent_span, "POST /x", 5, {"http.response.status_code": 200})
            with pytest.raises(ConnectionResetError):
                await spans.producing(failing(), "outcomes", "autocall.accepted", Message())
            span.attributes["autocall.status"] = "accepted"

    try:
        asyncio.run(work())
    finally:
        spans.RECORDER = None


class Message:
    headers: dict[str, FieldValue] | None = None
    message_id: str | None = "evt-1"


def recorded(provider: TracerProvider | None = None) -> tuple[Recorder, Items]:
    items = Items()
    provider = provider or TracerProvider(resource=setup.resource(), shutdown_on_exit=False)
    return Recorder(provider, SimpleSpanProcessor(items), "autocall-bridge"), items


def test_an_event_s_spans_leave_as_one_item_and_are_written_as_four() -> None:
    recorder, kept = recorded()
    an_event(recorder)
    [item] = kept.items
    assert type(item) is Finished and len(item.children) == 3
    ours = ExportTraceServiceRequest.FromString(Encoder().encode([item]))
    assert ours == encode_spans(item.spans())  # the SDK's encoder, each span on its own
    written = [s for r in ours.resource_spans for scope in r.scope_spans for s in scope.spans]
    process, *children = written
    assert process.parent_span_id == bytes.fromhex("00f067aa0ba902b7")
    assert [c.name for c in children] == [
        "autocall.claim",
        "POST /x",
        "publish autocall.accepted",
    ]
    assert all(c.parent_span_id == process.span_id for c in children)
    assert all(c.trace_id == process.trace_id for c in children)
    publish = children[2]
    assert publish.status.code == StatusCode.ERROR.value
    assert len({process.span_id, *(c.span_id for c in children)}) == 4


def test_values_past_what_a_key_keeps_are_written_the_same() -> None:
    recorder, kept = recorded()
    for index in range(150):  # past the 64 values a key keeps encoded
        an_event(recorder, event_id=f"evt-{index}")
    encoder = Encoder()
    for start in (0, 50, 100):
        batch = kept.items[start : start + 50]
        ours = ExportTraceServiceRequest.FromString(encoder.encode(batch))
        assert ours == encode_spans([span for item in batch for span in item.spans()])  # type: ignore[attr-defined]


def test_another_exporter_gets_each_span_on_its_own() -> None:
    memory = InMemorySpanExporter()
    recorder, kept = recorded()
    an_event(recorder)
    Unbundled(memory).export(kept.items)
    process, claimed, request, publish = memory.get_finished_spans()
    assert process.name == "autocall.process order.created"
    for child in (claimed, request, publish):
        assert child.parent is not None and child.context is not None
        assert process.context is not None
        assert child.parent.span_id == process.context.span_id
    assert dict(claimed.attributes or {}) == {"autocall.claim": "new"}
    assert publish.kind is SpanKind.PRODUCER


def test_the_sampler_decides_and_a_span_not_kept_makes_nothing() -> None:
    recorder, kept = recorded(TracerProvider(sampler=ALWAYS_OFF, shutdown_on_exit=False))
    an_event(recorder, parent="")
    assert kept.items == []


def test_attribute_values_are_cut_at_the_sdk_s_limit(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OTEL_SPAN_ATTRIBUTE_VALUE_LENGTH_LIMIT", "4")
    recorder, kept = recorded()
    an_event(recorder)
    [item] = kept.items
    assert type(item) is Finished
    assert (item.attributes or {})["messaging.message.id"] == "evt-"
    assert all(
        len(value) <= 4
        for *_, attributes, _ in item.children
        for value in attributes.values()
        if isinstance(value, str)
    )
