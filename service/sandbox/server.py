"""The sandbox as an aiohttp application, in-process (`serve`) or as a command (`serve_forever`)."""

from __future__ import annotations

import asyncio
import signal
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass
from typing import TypeVar

from aiohttp import web

from ..http import serve_app
from ..logs import redact_url
from . import answers, api, control
from .dialer import Dialer
from .state import SandboxState

T = TypeVar("T")


def create_app(state: SandboxState | None = None) -> web.Application:
    """The sandbox as an aiohttp application; its state is app[STATE_KEY]."""
    app = web.Application(middlewares=[_not_found])
    app[api.STATE_KEY] = SandboxState() if state is None else state
    app[api.HANGING_KEY] = set()
    app.on_startup.append(_start_dialer)
    app.on_shutdown.append(_release_hanging)
    app.on_cleanup.append(_stop_dialer)
    api.add_routes(app)
    control.add_routes(app)
    return app


@web.middleware
async def _not_found(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    """The `not_found` knob: paths the sandbox's provider does not serve (a history version)."""
    refused = answers.not_found(request.app[api.STATE_KEY], request.path)
    return await handler(request) if refused is None else refused


async def _start_dialer(app: web.Application) -> None:
    app[api.DIALER_KEY] = Dialer(app[api.STATE_KEY])


async def _stop_dialer(app: web.Application) -> None:
    await app[api.DIALER_KEY].close()


async def _release_hanging(app: web.Application) -> None:
    # Without this, shutdown would wait out its timeout for every request that never answers.
    hanging = app[api.HANGING_KEY]
    for waiter in list(hanging):
        if not waiter.done():
            waiter.set_result(None)


@dataclass(frozen=True)
class Sandbox:
    """A running sandbox."""

    url: str
    port: int
    state: SandboxState
    dialer: Dialer

    async def idle(self) -> None:
        """Return once every call with a webhook has been played out (its CDRs posted)."""
        await self.dialer.idle()


@asynccontextmanager
async def serve(
    state: SandboxState | None = None, host: str = "127.0.0.1", port: int = 0
) -> AsyncIterator[Sandbox]:
    """Run the sandbox on host:port (0: a free port) for the duration of the block."""
    app = create_app(state)
    # handler_cancellation: a request that never answers ends when its client goes away
    async with serve_app(app, host, port, handler_cancellation=True) as bound:
        url = f"http://{host}:{bound}"
        yield Sandbox(url, bound, app[api.STATE_KEY], app[api.DIALER_KEY])


def serve_forever(host: str, port: int, state: SandboxState) -> None:
    """Run the sandbox until SIGTERM or SIGINT (`autocall-bridge sandbox`)."""

    def banner(sandbox: Sandbox) -> list[str]:
        keys = ", ".join(sorted(state.api_keys))
        lines = [f"sandbox listening on {sandbox.url} (api key: {keys})"]
        if state.webhook_url:
            lines.append(f"sandbox posts call events to {redact_url(state.webhook_url)}")
        return lines

    run_until_signalled(serve(state, host, port), banner)


def run_until_signalled(
    server: AbstractAsyncContextManager[T], banner: Callable[[T], list[str]]
) -> None:
    """Run `server` until SIGTERM or SIGINT, after printing its banner."""
    with asyncio.Runner(loop_factory=_new_loop) as runner:
        runner.run(_until_signalled(server, banner))


async def _until_signalled(
    server: AbstractAsyncContextManager[T], banner: Callable[[T], list[str]]
) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    async with server as running:
        sys.stdout.write("".join(line + "\n" for line in banner(running)))
        sys.stdout.flush()
        await stop.wait()


def _new_loop() -> asyncio.AbstractEventLoop:
    try:
        import uvloop
    except ImportError:  # uvloop is not built for Windows
        return asyncio.new_event_loop()
    return uvloop.new_event_loop()
