"""A real OTLP/HTTP receiver for the tests: an aiohttp server that decodes the exporter's
protobuf (`POST /v1/traces`) into plain spans, and awaits them instead of sleeping."""

from __future__ import annotations

import asyncio
import logging
import secrets
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

from aio_pika.abc import AbstractIncomingMessage
from aiohttp import web
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.trace.v1.trace_pb2 import Span, Status

from service.http import serve_app
from tests.conftest import WAIT

KINDS = {value: name.removeprefix("SPAN_KIND_") for name, value in Span.SpanKind.items()}
STATUSES = {value: name.removeprefix("STATUS_CODE_") for name, value in Status.StatusCode.items()}


@dataclass(frozen=True)
class Received:
    """One span as the collector got it."""

    name: str
    kind: str  # CONSUMER, CLIENT, PRODUCER, INTERNAL, ...
    trace_id: str
    span_id: str
    parent_id: str  # "" for a root span
    attributes: dict[str, Any]
    status: str  # UNSET, OK, ERROR
    status_message: str
    start_ns: int
    end_ns: int
    resource: dict[str, Any]

    @property
    def traceparent(self) -> str:
        return f"00-{self.trace_id}-{self.span_id}-01"


@dataclass
class Receiver:
    """The spans posted so far, by every exporter that posted here."""

    url: str = ""
    spans: list[Received] = field(default_factory=list)
    posts: int = 0
    _changed: asyncio.Condition = field(default_factory=asyncio.Condition)

    async def wait(
        self, found: Callable[[list[Received]], bool], timeout: float = WAIT
    ) -> list[Received]:
        """The spans so far, once `found(spans)` holds."""
        async with asyncio.timeout(timeout), self._changed:
            await self._changed.wait_for(lambda: found(self.spans))
        return list(self.spans)

    async def trace(self, trace_id: str, count: int) -> list[Received]:
        """The spans of `trace_id`, once there are `count` of them."""
        spans = await self.wait(lambda s: sum(x.trace_id == trace_id for x in s) >= count)
        return [span for span in spans if span.trace_id == trace_id]

    async def named(self, trace_id: str, name: str) -> list[Received]:
        """The spans of `trace_id`, once one of them is called `name`."""
        spans = await self.wait(lambda s: any((x.trace_id, x.name) == (trace_id, name) for x in s))
        return [span for span in spans if span.trace_id == trace_id]

    async def _post(self, request: web.Request) -> web.Response:
        export = ExportTraceServiceRequest.FromString(await request.read())
        async with self._changed:
            self.posts += 1
            self.spans.extend(decoded(export))
            self._changed.notify_all()
        answer = ExportTraceServiceResponse().SerializeToString()
        return web.Response(body=answer, content_type="application/x-protobuf")


def decoded(export: ExportTraceServiceRequest) -> list[Received]:
    spans = []
    for resource_spans in export.resource_spans:
        resource = attributes(resource_spans.resource.attributes)
        for scope_spans in resource_spans.scope_spans:
            for span in scope_spans.spans:
                spans.append(
                    Received(
                        name=span.name,
                        kind=KINDS[span.kind],
                        trace_id=span.trace_id.hex(),
                        span_id=span.span_id.hex(),
                        parent_id=span.parent_span_id.hex(),
                        attributes=attributes(span.attributes),
                        status=STATUSES[span.status.code],
                        status_message=span.status.message,
                        start_ns=span.start_time_unix_nano,
                        end_ns=span.end_time_unix_nano,
                        resource=resource,
                    )
                )
    return spans


def attributes(pairs: Any) -> dict[str, Any]:
    return {pair.key: value(pair.value) for pair in pairs if isinstance(pair, KeyValue)}


def value(any_value: AnyValue) -> Any:
    kind = any_value.WhichOneof("value")
    if kind == "array_value":
        return [value(item) for item in any_value.array_value.values]
    return getattr(any_value, kind) if kind else None


@asynccontextmanager
async def receiver() -> AsyncIterator[Receiver]:
    """A receiver on a free port, for the duration of the block."""
    collected = Receiver()
    app = web.Application()
    app.router.add_post("/v1/traces", collected._post)
    async with serve_app(app, "127.0.0.1", 0) as port:
        collected.url = f"http://127.0.0.1:{port}"
        yield collected


def new_parent() -> tuple[str, str]:
    """A producer's (trace id, span id)."""
    return secrets.token_hex(16), secrets.token_hex(8)


def one(spans: list[Received], name: str) -> Received:
    [span] = [span for span in spans if span.name == name]
    return span


def traceparent_of(message: AbstractIncomingMessage) -> str:
    value = (message.headers or {}).get("traceparent")
    assert isinstance(value, str), message.headers
    return value


class Keep(logging.Handler):
    def __init__(self, kept: list[logging.LogRecord]) -> None:
        super().__init__()
        self.kept = kept

    def emit(self, record: logging.LogRecord) -> None:
        self.kept.append(record)
