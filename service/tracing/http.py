"""CLIENT spans of the provider's requests (HTTP conventions), through aiohttp's request hooks:
added to the session only while tracing is on, so an untraced service has no hooks to call."""

from __future__ import annotations

from types import SimpleNamespace

import aiohttp
from opentelemetry import trace
from opentelemetry.trace import SpanKind, Status, StatusCode, Tracer
from yarl import URL


def trace_config(tracer: Tracer) -> aiohttp.TraceConfig:
    """Hooks that open a span when a request starts and end it with its answer or error."""
    config = aiohttp.TraceConfig()

    async def start(
        session: aiohttp.ClientSession,
        ctx: SimpleNamespace,
        params: aiohttp.TraceRequestStartParams,
    ) -> None:
        ctx.span = None
        # Only within an event's or a result's trace: the poller's searches would each be a
        # trace of one span.
        if not trace.get_current_span().get_span_context().is_valid:
            return
        url = public(params.url)
        ctx.span = tracer.start_span(
            f"{params.method} {url.path}",
            kind=SpanKind.CLIENT,
            attributes={"http.request.method": params.method, "url.full": str(url)},
        )

    async def end(
        session: aiohttp.ClientSession, ctx: SimpleNamespace, params: aiohttp.TraceRequestEndParams
    ) -> None:
        span = ctx.span
        if span is None:
            return
        status = params.response.status
        span.set_attribute("http.response.status_code", status)
        if status >= 400:
            span.set_attribute("error.type", str(status))
            span.set_status(Status(StatusCode.ERROR))
        span.end()

    async def failed(
        session: aiohttp.ClientSession,
        ctx: SimpleNamespace,
        params: aiohttp.TraceRequestExceptionParams,
    ) -> None:
        span = ctx.span
        if span is None:
            return
        kind = type(params.exception).__qualname__
        span.set_attribute("error.type", kind)
        span.set_status(Status(StatusCode.ERROR, kind))  # the message may name the URL: not kept
        span.end()

    config.on_request_start.append(start)
    config.on_request_end.append(end)
    config.on_request_exception.append(failed)
    return config


def public(url: URL) -> URL:
    """The URL without its query (the token request carries the API key there), credentials
    or fragment."""
    return url.with_query(None).with_fragment(None).with_user(None)
