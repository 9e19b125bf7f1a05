"""CLIENT spans of the provider's requests (HTTP conventions), around the client's own send:
aiohttp's request hooks would cost every request ~15 µs (measured), traced or not."""

from __future__ import annotations

import functools
from collections.abc import Awaitable
from time import time_ns
from typing import Protocol, TypeVar

from opentelemetry.trace import SpanKind, Status, StatusCode
from opentelemetry.util.types import AttributeValue
from yarl import URL

from .finished import UNSET, Parent, Recorder
from .spans import leaf


class Answer(Protocol):
    """What a span reads of the provider's answer."""

    @property
    def status(self) -> int: ...


Answered = TypeVar("Answered", bound=Answer)


async def request_span(
    recorder: Recorder,
    parent: Parent,
    sending: Awaitable[Answered],
    method: str,
    url: URL | str,
) -> Answered:
    """`sending` in its CLIENT span `<method> <path>`, a child of `parent`."""
    started = time_ns()
    name, full = _described(method, url)
    attributes: dict[str, AttributeValue] = {"http.request.method": method, "url.full": full}
    try:
        answer = await sending
    except BaseException as exc:
        leaf(recorder, parent, name, started, attributes, kind=SpanKind.CLIENT, failure=exc)
        raise
    attributes["http.response.status_code"] = answer.status
    status = UNSET
    if answer.status >= 400:
        attributes["error.type"] = str(answer.status)
        status = Status(StatusCode.ERROR)
    leaf(recorder, parent, name, started, attributes, kind=SpanKind.CLIENT, status=status)
    return answer


@functools.lru_cache(maxsize=256)
def _described(method: str, url: URL | str) -> tuple[str, str]:
    """The span's name and its URL without the query, once for each of the few URLs the
    service calls (yarl's parse and three copies of the URL: ~3 µs a request, measured)."""
    address = public(URL(url))
    return f"{method} {address.path}", str(address)


def public(url: URL) -> URL:
    """The URL without its query (a key or token may travel there), credentials or fragment."""
    return url.with_query(None).with_fragment(None).with_user(None)
