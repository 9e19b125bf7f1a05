"""GET /metrics, /healthz (the process is alive) and /readyz (connected and consuming)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Protocol

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
    # A scrape still answering at shutdown gets 5 s, not aiohttp's 60.
    app = create_app(metrics, health)
    runner = web.AppRunner(app, access_log=None, handle_signals=False, shutdown_timeout=5.0)
    await runner.setup()
    site = web.TCPSite(runner, "0.0.0.0", port)  # noqa: S104  (probes and scrapes come from outside)
    await site.start()
    try:
        yield runner.addresses[0][1]
    finally:
        await runner.cleanup()
