"""The tracer provider the standard `OTEL_*` variables describe (CONTRACT.md §14), or None.

Off unless an OTLP endpoint is set. The SDK reads the rest itself: `OTEL_SERVICE_NAME`,
`OTEL_RESOURCE_ATTRIBUTES`, `OTEL_TRACES_SAMPLER(_ARG)`, `OTEL_EXPORTER_OTLP_*` (headers,
timeout, compression, certificates), `OTEL_BSP_*` (the batch's queue, size, delay)."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import importlib
import logging
import os
import threading
from collections.abc import Mapping
from dataclasses import dataclass

from opentelemetry.sdk.resources import SERVICE_NAME, Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter

from ..errors import ConfigError
from .finished import Unbundled

log = logging.getLogger("autocall")
DEFAULT_SERVICE_NAME = "autocall-bridge"
ENDPOINTS = ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "OTEL_EXPORTER_OTLP_ENDPOINT")
PROTOCOLS = ("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "OTEL_EXPORTER_OTLP_PROTOCOL")
# The exporter of each protocol: its module, its class, and the distribution that brings it.
# OTLP/HTTP's is the SDK's with a faster encoder (otlp.py).
EXPORTERS = {
    "http/protobuf": (f"{__package__}.otlp", "FastOTLPSpanExporter", "proto-http"),
    "grpc": (
        "opentelemetry.exporter.otlp.proto.grpc.trace_exporter",
        "OTLPSpanExporter",
        "proto-grpc",
    ),
}
FLUSH_TIMEOUT = 5.0  # seconds the spans still queued get at shutdown: a collector may be gone


def endpoint(environ: Mapping[str, str] = os.environ) -> str:
    """Where the spans go, for the start-up line."""
    return next((environ[n].strip() for n in ENDPOINTS if environ.get(n, "").strip()), "")


def enabled(environ: Mapping[str, str]) -> bool:
    """Whether tracing is on: an OTLP endpoint is set, and the SDK is not disabled."""
    if environ.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return False
    return any(environ.get(name, "").strip() for name in ENDPOINTS)


@dataclass(frozen=True, slots=True)
class Pipeline:
    """The tracer provider, its batch processor, and the exporter its batches go to."""

    provider: TracerProvider
    batches: BatchSpanProcessor
    exporter: SpanExporter


def pipeline(environ: Mapping[str, str] = os.environ) -> Pipeline | None:
    """The service's own tracer provider (not the global one: several services may run in one
    process, in tests), exporting in batches from a thread of its own; None when off."""
    if not enabled(environ):
        return None
    traces = TracerProvider(resource=resource(), shutdown_on_exit=False)
    exporting = exporter(environ)
    try:
        batches = BatchSpanProcessor(exporting)
    except ValueError as exc:  # the SDK's own check of the batch sizes it read
        raise ConfigError([f"OTEL_BSP_*: {exc}"]) from None
    traces.add_span_processor(batches)
    return Pipeline(traces, batches, exporting)


class _Resource(Resource):
    """A resource that hashes once: the exporter groups every span by its resource, and the
    SDK's hash writes the attributes out as JSON each time (~4 µs a span, measured)."""

    @functools.cached_property
    def _hash(self) -> int:
        return super().__hash__()

    def __hash__(self) -> int:
        return self._hash


def resource() -> Resource:
    """The SDK's resource from the environment, named `autocall-bridge` unless it says."""
    detected = Resource.create()
    if str(detected.attributes.get(SERVICE_NAME, "")).startswith("unknown_service"):
        detected = detected.merge(Resource({SERVICE_NAME: DEFAULT_SERVICE_NAME}))
    return _Resource(detected.attributes, detected.schema_url)


def exporter(environ: Mapping[str, str]) -> SpanExporter:
    """The OTLP exporter of `OTEL_EXPORTER_OTLP_(TRACES_)PROTOCOL` (http/protobuf unless set)."""
    name = next((n for n in PROTOCOLS if environ.get(n, "").strip()), PROTOCOLS[1])
    protocol = environ.get(name, "").strip() or "http/protobuf"
    if protocol not in EXPORTERS:
        raise ConfigError([f"{name}: {protocol!r} is not one of {', '.join(EXPORTERS)}"])
    module, exporter_class, extra = EXPORTERS[protocol]
    try:
        exporting = importlib.import_module(module)
    except ImportError:
        raise ConfigError(
            [f"{name}: {protocol} needs opentelemetry-exporter-otlp-{extra} installed"]
        ) from None
    made: SpanExporter = getattr(exporting, exporter_class)()
    # Only the encoder of OTLP/HTTP's exporter knows the spans an event's span gathers.
    return made if protocol == "http/protobuf" else Unbundled(made)


async def shut_down(traces: Pipeline, within: float | None = None) -> None:
    """Export what is queued, for `within` seconds at most. In a daemon thread: the exporter
    retries an absent collector for its whole timeout, and neither the loop nor the process's
    exit may wait for that. Past the bound the exporter is stopped too, which ends its retries
    (the provider would stop it only once its batch thread ended)."""
    loop = asyncio.get_running_loop()
    done = loop.create_future()

    def finish() -> None:
        if not done.done():
            done.set_result(None)

    def run() -> None:
        try:
            traces.provider.shutdown()
        finally:
            with contextlib.suppress(RuntimeError):  # the loop closed after giving up on it
                loop.call_soon_threadsafe(finish)

    threading.Thread(target=run, name="otel-shutdown", daemon=True).start()
    within = FLUSH_TIMEOUT if within is None else within
    try:
        async with asyncio.timeout(within):
            await done
    except TimeoutError:
        log.warning("traces not exported within %g s of stopping; dropped", within)
        traces.exporter.shutdown()
