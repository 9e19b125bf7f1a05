"""The spans made once their work is done (the claim's, the provider request's): they time
the whole await, belong to the current span, and a failure names its code or type."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode, Tracer, use_span

from service.errors import ProviderUnavailable
from service.store import Claim, State
from service.tracing import spans
from service.tracing.finished import Recorder
from service.tracing.http import request_span

URL = "http://provider.test:8080/api/auto_call/execute_by_phone?apikey=secret-key"


@dataclass
class Answer:
    status: int


@pytest.fixture
def kept() -> Iterator[tuple[Tracer, InMemorySpanExporter]]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider(shutdown_on_exit=False)
    processor = SimpleSpanProcessor(exporter)
    provider.add_span_processor(processor)
    spans.RECORDER = Recorder(provider, processor, "test")
    try:
        yield provider.get_tracer("test"), exporter
    finally:
        spans.RECORDER = None


async def slow(value: object, fails: BaseException | None = None) -> object:
    await asyncio.sleep(0.01)  # the span must cover the await
    if fails is not None:
        raise fails
    return value


def only(exporter: InMemorySpanExporter, name: str) -> ReadableSpan:
    [span] = [s for s in exporter.get_finished_spans() if s.name == name]
    assert span.end_time is not None and span.start_time is not None
    assert span.end_time - span.start_time >= 10_000_000
    return span


async def test_the_claim_s_span(kept: tuple[Tracer, InMemorySpanExporter]) -> None:
    tracer, exporter = kept
    with use_span(tracer.start_span("process"), end_on_exit=True) as parent:
        claim = await spans.claimed(slow(Claim(State.NEW)))  # type: ignore[arg-type]
        with pytest.raises(ProviderUnavailable):
            await spans.claimed(slow(None, ProviderUnavailable("store down")))  # type: ignore[arg-type]
    assert claim == Claim(State.NEW)
    done, failed = [s for s in exporter.get_finished_spans() if s.name == "autocall.claim"]
    assert done.attributes == {"autocall.claim": "new"}
    assert failed.attributes == {"error.type": "provider_unavailable"}
    assert (failed.status.status_code, failed.status.description) == (
        StatusCode.ERROR,
        "provider_unavailable",
    )
    for span in (done, failed):
        assert span.parent is not None and span.parent.span_id == parent.get_span_context().span_id


@pytest.mark.parametrize(
    ("answer", "attributes", "status"),
    [
        (Answer(200), {"http.response.status_code": 200}, StatusCode.UNSET),
        (Answer(503), {"http.response.status_code": 503, "error.type": "503"}, StatusCode.ERROR),
        (ConnectionResetError(), {"error.type": "ConnectionResetError"}, StatusCode.ERROR),
    ],
)
async def test_the_request_s_span(
    kept: tuple[Tracer, InMemorySpanExporter],
    answer: Answer | BaseException,
    attributes: dict[str, object],
    status: StatusCode,
) -> None:
    tracer, exporter = kept
    with use_span(tracer.start_span("process"), end_on_exit=True):
        sending = slow(answer) if isinstance(answer, Answer) else slow(None, answer)
        parent = spans.kept()
        assert spans.RECORDER is not None and parent is not None
        try:
            answered = await request_span(spans.RECORDER, parent, sending, "POST", URL)  # type: ignore[type-var]
            assert answered is answer
        except ConnectionResetError:
            assert isinstance(answer, ConnectionResetError)
    span = only(exporter, "POST /api/auto_call/execute_by_phone")
    assert span.kind is SpanKind.CLIENT and span.status.status_code is status
    assert dict(span.attributes or {}) == {
        "http.request.method": "POST",
        "url.full": "http://provider.test:8080/api/auto_call/execute_by_phone",
        **attributes,
    }
