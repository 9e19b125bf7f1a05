"""Serving HTTP, one way for every server of ours (`serve_app`); and the service's own: GET
/metrics, /healthz (the process is alive) and /readyz (connected and consuming)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any, Protocol

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from .metrics import Metrics


class Health(Protocol):
    """What the probes ask; each answer is (ok, why)."""

    def alive(self) -> tuple[bool, str]: ...

    def ready(self) -> tuple[bool, str]: ...


def create_app(metrics: Metrics, health: Health) -> web.Application:
    async def metrics_page(request: web.Request) -> web.Response:
        body = generate_latest(metrics.registry)
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})

    async def healthz(request: web.Request) -> web.Response:
        return _probe(health.alive())

    async def readyz(request: web.Request) -> web.Response:
        return _probe(health.ready())

    app = web.Application()
    app.router.add_get("/metrics", metrics_page)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    return app


def _probe(answer: tuple[bool, str]) -> web.Response:
    ok, why = answer
    return web.Response(text=why + "\n", status=200 if ok else 503)


@asynccontextmanager
async def serve(port: int, metrics: Metrics, health: Health) -> AsyncIterator[int]:
    """Serve on `port` (0: any free port) and yield the port bound."""
    # all interfaces: probes and scrapes come from outside
    async with serve_app(create_app(metrics, health), "0.0.0.0", port) as bound:  # noqa: S104
        yield bound


@asynccontextmanager
async def serve_app(
    app: web.Application, host: str, port: int, **options: Any
) -> AsyncIterator[int]:
    """Serve `app` on host:port (0: any free port) and yield the port bound, until the block
    ends. No access log (a path may carry a token); signals are the caller's; a request still
    in its handler at shutdown gets 5 s, not aiohttp's 60. `options` go to aiohttp's runner,
    over these."""
    options = {"access_log": None, "handle_signals": False, "shutdown_timeout": 5.0} | options
    runner = web.AppRunner(app, **options)
    await runner.setup()
    try:
        await web.TCPSite(runner, host, port).start()
        yield runner.addresses[0][1]
    finally:
        await runner.cleanup()
