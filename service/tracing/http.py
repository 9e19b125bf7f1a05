"""CLIENT spans of the provider's requests (HTTP conventions), around the client's own send:
aiohttp's request hooks would cost every request ~15 µs (measured), traced or not."""

from __future__ import annotations

from collections.abc import Awaitable
from typing import Protocol, TypeVar

from opentelemetry.trace import SpanKind, Status, StatusCode, Tracer
from yarl import URL

from .spans import Ending


class Answer(Protocol):
    """What a span reads of the provider's answer."""

    @property
    def status(self) -> int: ...


Answered = TypeVar("Answered", bound=Answer)


async def request_span(
    tracer: Tracer, sending: Awaitable[Answered], method: str, url: URL | str
) -> Answered:
    """`sending` in its CLIENT span `<method> <path>`, a child of the current span."""
    address = public(URL(url) if isinstance(url, str) else url)
    attributes = {"http.request.method": method, "url.full": str(address)}
    span = tracer.start_span(
        f"{method} {address.path}", kind=SpanKind.CLIENT, attributes=attributes
    )
    with Ending(span):
        answer = await sending
        span.set_attribute("http.response.status_code", answer.status)
        if answer.status >= 400:
            span.set_attribute("error.type", str(answer.status))
            span.set_status(Status(StatusCode.ERROR))
        return answer


def public(url: URL) -> URL:
    """The URL without its query (a key or token may travel there), credentials or fragment."""
    return url.with_query(None).with_fragment(None).with_user(None)
