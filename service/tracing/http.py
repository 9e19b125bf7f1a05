"""CLIENT spans of the provider's requests (HTTP conventions), around the client's own send:
aiohttp's request hooks would cost every request ~15 µs (measured), traced or not."""

from __future__ import annotations

from collections.abc import Awaitable
from typing import Protocol, TypeVar

from opentelemetry import trace
from opentelemetry.trace import SpanKind, Status, StatusCode, Tracer
from yarl import URL


class Answer(Protocol):
    """What a span reads of the provider's answer."""

    @property
    def status(self) -> int: ...


Answered = TypeVar("Answered", bound=Answer)


async def request_span(
    tracer: Tracer, sending: Awaitable[Answered], method: str, url: URL
) -> Answered:
    """`sending` in its CLIENT span `<method> <path>`, within an event's or a result's kept
    trace only: the poller's searches, outside any, would each be a trace of one span."""
    if not trace.get_current_span().is_recording():  # outside a kept trace (or any)
        return await sending
    address = public(url)
    attributes = {"http.request.method": method, "url.full": str(address)}
    span = tracer.start_span(
        f"{method} {address.path}", kind=SpanKind.CLIENT, attributes=attributes
    )
    try:
        answer = await sending
        span.set_attribute("http.response.status_code", answer.status)
        if answer.status >= 400:
            span.set_attribute("error.type", str(answer.status))
            span.set_status(Status(StatusCode.ERROR))
        return answer
    except BaseException as exc:
        # The service's own error code when it has one; never the text (it may quote a URL).
        kind = getattr(exc, "code", None) or type(exc).__qualname__
        span.set_attribute("error.type", kind)
        span.set_status(Status(StatusCode.ERROR, kind))
        raise
    finally:
        span.end()


def public(url: URL) -> URL:
    """The URL without its query (the token request carries the API key there), credentials
    or fragment."""
    return url.with_query(None).with_fragment(None).with_user(None)
