"""`autocall-bridge doctor`: checks the configured account and wiring without placing a call
(CONTRACT.md §12), one line each, `ok`, `warn` or `FAIL` and why: the token request, the webhook
registrations, a one-page call-history search of the last hour, the templates file, the broker,
the store. Exit 0 when nothing fails, 1 when something does, 2 for bad settings. No secret and no
full phone number is printed: URLs lose their last path segment (the webhook token) and their
credentials, digit runs are masked."""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import partial
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from ..accounts import load as load_accounts
from ..errors import AutocallError, ConfigError
from ..settings import Settings, load_settings
from ..templates.filters import mask_digits
from .webhook import redact

if TYPE_CHECKING:
    from ..provider.omicall.client import Provider

FAILED = 1
WEBHOOK_PATH = "/webhooks/omicall"  # the listener's (results/listener.py)
LOCAL_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})
HOUR_MS = 3_600_000
STORE_TIMEOUT = 5.0  # seconds for the store to answer
QUIET = ("aiormq", "aio_pika", "autocall")


@dataclass(frozen=True, slots=True)
class Line:
    """One check's verdict."""

    status: str  # ok | warn | FAIL
    name: str
    why: str

    def __str__(self) -> str:
        return f"{self.status:<4} {self.name}: {self.why}"


def add_parser(commands: Any) -> None:
    """The `doctor` command, on the CLI's subparsers."""
    doctor = commands.add_parser(
        "doctor", help="check the account, webhooks, history, templates, broker and store"
    )
    doctor.set_defaults(command=run)


def run(args: argparse.Namespace) -> int:
    """Every check, one line each; 1 when any fails (ConfigError: bad settings, exit 2)."""
    settings = load_settings()
    settings.require_credentials()
    loggers = [logging.getLogger(name) for name in QUIET]
    levels = [logger.level for logger in loggers]
    for logger in loggers:  # their reasons are in the lines
        logger.setLevel(logging.CRITICAL)
    try:
        lines = asyncio.run(checks(settings))
    finally:
        for logger, level in zip(loggers, levels, strict=True):
            logger.setLevel(level)
    for line in lines:
        sys.stdout.write(f"{line}\n")
    return FAILED if any(line.status == "FAIL" for line in lines) else 0


async def checks(settings: Settings) -> list[Line]:
    """The lines of every check, in order."""
    import aiohttp  # here: the other commands start faster without it

    from ..metrics import Metrics
    from ..provider.omicall.client import Provider

    accounts = load_accounts(settings)
    lines: list[Line] = []
    async with aiohttp.ClientSession(trust_env=True) as session:
        for spec in accounts:
            of = f" ({spec.name})" if settings.accounts_file is not None else ""
            if spec.provider != "omicall":
                lines.append(Line("ok", f"token{of}", "Stringee's JWT is made locally"))
                continue
            key, token = spec.secret("api_key"), spec.secret("api_token")
            provider = Provider(session, spec.base_url, Metrics(), api_key=key, token=token)
            lines += [
                await _check(f"token{of}", partial(_token, provider)),
                await _check(f"webhooks{of}", partial(_webhooks, provider, settings)),
                await _check(f"call history{of}", partial(_history, provider, settings)),
            ]
    lines.append(_templates(settings))
    lines.append(await _check("broker", lambda: _broker(settings)))
    lines.append(await _check("store", lambda: _store(settings)))
    return lines


async def _check(name: str, check: Callable[[], Awaitable[tuple[str, str]]]) -> Line:
    """A check's line: FAIL with the error's code and message when it raises."""
    try:
        status, why = await check()
    except AutocallError as exc:  # the provider's text: digit runs masked
        return Line("FAIL", name, mask_digits(f"{exc.code}: {exc.message}")[:300])
    except (OSError, TimeoutError) as exc:
        return Line("FAIL", name, mask_digits(f"{type(exc).__name__}: {exc}")[:300])
    return Line(status, name, why)


async def _token(provider: Provider) -> tuple[str, str]:
    if provider.fixed_token:
        return "ok", "a fixed token (AUTOCALL_API_TOKEN): no token request; the lines below use it"
    await provider.authenticate()
    return "ok", "the provider issued a token for the API key"


async def _webhooks(provider: Provider, settings: Settings) -> tuple[str, str]:
    payload = await provider.api("GET", "/api/webhooks/list")
    hooks = payload if isinstance(payload, list) else [payload] if payload else []
    urls = [str(h.get("url", "")) for h in hooks if isinstance(h, dict) and h.get("type") == "call"]
    if not settings.webhook_on:
        if urls:
            return "warn", (
                f"a call hook is registered ({redact(urls[0])}) but the listener is off "
                "(AUTOCALL_WEBHOOK_TOKEN unset or AUTOCALL_WEBHOOK_PORT=0): its posts are lost"
            )
        return "ok", "none registered, the listener is off: results come from polling"
    if not urls:
        return "warn", (
            "the listener is on but no call hook is registered: results come from polling "
            "only (autocall-bridge webhook register URL)"
        )
    return _our_hook(urls, settings)


def _our_hook(urls: list[str], settings: Settings) -> tuple[str, str]:
    assert settings.webhook_token is not None
    ours = f"{WEBHOOK_PATH}/{settings.webhook_token.get_secret_value()}"
    mine = [url for url in urls if urlsplit(url).path.endswith(ours)]
    if not mine:
        return "FAIL", (
            f"the call hook posts to {redact(urls[0])}, not to this service's path "
            f"{WEBHOOK_PATH}/*** (autocall-bridge webhook register URL)"
        )
    parts = urlsplit(mine[0])
    if parts.scheme == "http" and parts.hostname not in LOCAL_HOSTS:
        return "warn", f"{redact(mine[0])} is plain http://: only a local setup may use it"
    return "ok", f"a call hook posts to {redact(mine[0])}"


async def _history(provider: Provider, settings: Settings) -> tuple[str, str]:
    from prometheus_client import CollectorRegistry

    from ..provider.omicall.history import PAGE_SIZE, History
    from ..results.metrics import ResultMetrics

    version = settings.history_api
    history = History(provider, ResultMetrics(CollectorRegistry(), []), version=version)
    now = int(time.time() * 1000)
    items = 0
    try:
        # One page: the next would be asked for only after the first page's last item.
        async for _ in history.search({"fromDate": now - HOUR_MS, "toDate": now}, max_pages=1):
            items += 1
            if items == PAGE_SIZE:
                break
    finally:
        await history.close()
    return "ok", f"the last hour's search answered ({version}): {items} calls on its first page"


def _templates(settings: Settings) -> Line:
    from ..templates import load

    try:
        templates = load(settings.templates)
    except ConfigError as exc:
        more = f" (+{len(exc.problems) - 1} more)" if len(exc.problems) > 1 else ""
        return Line("FAIL", "templates", f"{exc.problems[0]}{more}")
    return Line("ok", "templates", f"{settings.templates}: {len(templates)} templates, all valid")


async def _broker(settings: Settings) -> tuple[str, str]:
    from ..amqp.connection import connect_once, where

    nodes = ", ".join(where(url) for url in settings.amqp_urls)
    try:
        async with connect_once(settings.amqp_urls) as connection:
            return "ok", f"{nodes}: {await _queue(connection, settings.queue)}"
    except ConfigError as exc:
        return "FAIL", exc.problems[0]


async def _queue(connection: Any, name: str) -> str:
    import aio_pika

    channel = await connection.channel()
    try:
        declared = await channel.declare_queue(name, passive=True)
    except aio_pika.exceptions.ChannelClosed:
        return f"connected; the queue {name} is not declared yet (the service declares it)"
    result = declared.declaration_result
    return f"connected; {name}: {result.message_count} ready, {result.consumer_count} consumers"


async def _store(settings: Settings) -> tuple[str, str]:
    from ..pipeline.budget import local_day
    from ..store import open_store

    url = settings.store_url.get_secret_value()
    if url.startswith("memory://"):
        return "ok", "memory:// (each process its own: not for more than one replica)"
    store = open_store(url, settings.store_prefix, settings.idempotency_ttl)
    async with asyncio.timeout(STORE_TIMEOUT), store:
        used = await store.tts_used(local_day(datetime.now(UTC)))
    parts = urlsplit(url)
    return "ok", f"{parts.scheme}://{parts.hostname}: reachable, {used} TTS characters used today"
