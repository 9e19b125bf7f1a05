"""The webhook listener: the provider posts call records here. Its own port, so that only it is
exposed to the outside; it authenticates first, limits sizes, and answers bad input with 4xx."""

from __future__ import annotations

import hmac
import ipaddress
import logging
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager

import orjson
from aiohttp import web

from ..http import serve_app
from ..provider.omicall import WEBHOOK_PATH as PATH
from ..provider.omicall.records import parse
from ..provider.records import CallRecord, Contact, InvalidRecord, Parsed
from ..provider.stringee.records import SIGNATURE_HEADER
from ..provider.stringee.webhook import StringeeWebhook, split
from .kept import Keeper
from .metrics import ResultMetrics
from .pipeline import Reading, Results

log = logging.getLogger("autocall.webhooks")
MAX_BODY = 256 * 1024
TOKEN_HEADER = "X-Autocall-Token"  # noqa: S105  (a header name)
Network = ipaddress.IPv4Network | ipaddress.IPv6Network


class Listener:
    """Answers one webhook post: 200 once its result is published (or nothing needs to be)."""

    def __init__(
        self,
        token: str,
        results: Results,
        metrics: ResultMetrics,
        allow: Sequence[Network] = (),
        *,
        max_body: int = MAX_BODY,
        keeper: Keeper | None = None,
        stringee: StringeeWebhook | None = None,
    ) -> None:
        self._token = token.encode()
        self._stringee = stringee  # /webhooks/stringee/<account>/<token>, when an account is
        self._results = results
        self._metrics = metrics
        self._allow = tuple(allow)
        self.max_body = max_body
        self._keeper = keeper  # None: no body is kept (AUTOCALL_WEBHOOK_KEEP=0)

    def __repr__(self) -> str:
        return f"Listener(allow={[str(n) for n in self._allow]}, max_body={self.max_body})"

    async def handle(self, request: web.Request) -> web.Response:
        """Every request, whatever its path and method; never an exception."""
        refused = self._gate(request)
        if refused is not None:
            return refused
        body = await self._body(request)
        if body is None:
            answer = self._answer(413, "too large", "too_large")
            answer.force_close()  # the rest of the body is never read: no keep-alive after it
            return answer
        if (stringee := await self._from_stringee(request, body)) is not None:
            return stringee
        parsed, reading, status, outcome = await self._take(body)
        if self._keeper is not None:
            await self._keeper.keep(body, parsed, reading, outcome)
        text = {200: "ok", 400: "a JSON object, please", 503: "try again later"}
        return self._answer(status, text[status], outcome)

    async def _take(self, body: bytes) -> tuple[Parsed | None, Reading | None, int, str]:
        """What the body is, what became of it, the status to answer and the outcome counted."""
        try:
            parsed = parse(orjson.loads(body), self._results.key_fields)
        except (orjson.JSONDecodeError, InvalidRecord):
            return None, None, 400, "invalid"
        if isinstance(parsed, Contact):
            return parsed, None, 200, "ignored"
        if not isinstance(parsed, CallRecord):
            return parsed, None, 200, "live"
        try:
            reading = await self._results.receive(parsed, "webhook")
        except Exception as exc:
            # Not the sender's fault: the broker, the store or the history lookup did not answer.
            log.warning("cannot take a call record now (%s); asking for a resend", _why(exc))
            return parsed, None, 503, "unavailable"
        return parsed, reading, 200, reading.taken

    async def _from_stringee(self, request: web.Request, body: bytes) -> web.Response | None:
        """The answer to a Stringee callback; None for any other post."""
        path = split(request.rel_url.raw_path) if self._stringee is not None else None
        if path is None or self._stringee is None:
            return None
        try:
            reply = await self._stringee.take(path[0], request.headers.get(SIGNATURE_HEADER), body)
        except Exception as exc:
            log.warning("cannot take a Stringee callback now (%s); asking for a resend", _why(exc))
            return self._answer(503, "try again later", "unavailable")
        self._metrics.webhook(reply.outcome)
        return web.Response(status=reply.status, body=reply.body, content_type=reply.content_type)

    def _gate(self, request: web.Request) -> web.Response | None:
        """403 from outside the allowed networks, 404 without the token, 405 but for POST."""
        if not self._allowed(request.remote):
            return self._answer(403, "forbidden", "unauthorized")
        if not self._authentic(request):
            return self._answer(404, "not found", "unauthorized")
        if request.method != "POST":
            return self._answer(405, "method not allowed", "invalid", {"Allow": "POST"})
        return None

    def _answer(
        self, status: int, text: str, outcome: str, headers: dict[str, str] | None = None
    ) -> web.Response:
        self._metrics.webhook(outcome)
        return web.Response(status=status, text=text + "\n", headers=headers)

    def _allowed(self, remote: str | None) -> bool:
        if not self._allow:
            return True
        try:
            address = ipaddress.ip_address(remote or "")
        except ValueError:
            return False
        return any(address in network for network in self._allow)

    def _authentic(self, request: web.Request) -> bool:
        """The token in the path or the header, compared in constant time."""
        path = request.rel_url.raw_path
        given = request.headers.get(TOKEN_HEADER, "") if path == PATH else ""
        if path.startswith(PATH + "/"):
            given = path[len(PATH) + 1 :]
        elif self._stringee is not None and (stringee := split(path)) is not None:
            given = stringee[1]
        return bool(given) and hmac.compare_digest(given.encode(), self._token)

    async def _body(self, request: web.Request) -> bytes | None:
        """The body, or None once it passes the limit (read no further than that)."""
        if request.content_length is not None and request.content_length > self.max_body:
            return None
        body = bytearray()
        async for chunk in request.content.iter_chunked(64 * 1024):
            body += chunk
            if len(body) > self.max_body:
                return None
        return bytes(body)


def _why(exc: BaseException) -> str:
    message = getattr(exc, "code", None) or type(exc).__name__
    return str(message)[:100]


def networks(text: str) -> list[Network]:
    """'10.0.0.0/8, 192.168.1.7' -> networks; ValueError naming a bad one."""
    found: list[Network] = []
    for part in (p.strip() for p in text.split(",")):
        if part:
            try:
                found.append(ipaddress.ip_network(part, strict=False))
            except ValueError:
                raise ValueError(f"not a CIDR: {part!r}") from None
    return found


@asynccontextmanager
async def serve(listener: Listener, port: int, host: str = "0.0.0.0") -> AsyncIterator[int]:  # noqa: S104
    """Serve the listener on `port` (0: any free port) and yield the port bound. No access log:
    aiohttp's prints the path, and the path carries the token."""
    app = web.Application(client_max_size=listener.max_body + 1)
    app.router.add_route("*", "/{tail:.*}", listener.handle)
    # lingering: after a 413 the unread rest of a body is drained this long, not aiohttp's 10 s
    async with serve_app(app, host, port, lingering_time=1.0) as bound:
        yield bound
