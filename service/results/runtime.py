"""The result side in one context: its store, the history, the listener and the poller."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from typing import Any

from aio_pika.abc import AbstractRobustConnection
from prometheus_client import CollectorRegistry

from ..errors import StoreUnavailable
from ..provider.omicall.history import Api, History
from ..settings import Settings
from ..stopping import bounded, cancel
from ..store import RedisStore, Store
from ..templates import Templates
from .kept import Keeper
from .listener import Listener, networks, serve
from .metrics import ResultMetrics
from .pipeline import Matcher, Publishes, Results
from .poller import Poller
from .published import Published
from .recorder import Recorder
from .redis_store import RedisResults
from .sources import Source, StringeeWebhook, sources, stringee_callbacks
from .store import MemoryResults, ResultStore

log = logging.getLogger("autocall.results")
OPEN_CALLS_INTERVAL = 15.0


@dataclass(slots=True)
class ResultSide:
    """What the rest of the service sees of the result side."""

    recorder: Recorder | None  # None when nothing would ever read what it records
    results: Results
    poller: Poller | None
    webhook_port: int  # 0 when the listener is off


@asynccontextmanager
async def start(
    settings: Settings,
    templates: Templates,
    *,
    store: Store,
    registry: CollectorRegistry,
    api: Api | None,
    publisher: Publishes,
    accounts: Mapping[str, Any] | None = None,
    connection: AbstractRobustConnection | None = None,
    clock: Callable[[], float] = time.time,
) -> AsyncIterator[ResultSide]:
    """The result side, running until the context ends."""
    async with AsyncExitStack() as stack:
        results_store = result_store(store, f"autocall:{settings.queue}:", settings.result_ttl)
        metrics = ResultMetrics(registry, templates.names())
        history = History(api, metrics, version=settings.history_api) if api is not None else None
        if history is not None:
            stack.push_async_callback(history.close)
        clients, prefix = accounts or {}, f"autocall:{settings.queue}:"
        version = settings.history_api
        own = sources(stack, clients, metrics, version=version, store=store, prefix=prefix)
        histories = {name: each for name, each in own.items() if isinstance(each, History)}
        matcher = Matcher(results_store, history, histories)
        key_fields = settings.result_key_fields
        choices = choices_of(templates)
        results = Results(
            results_store, matcher, publisher, metrics, choices, key_fields=key_fields
        )
        stringee = stringee_callbacks(clients, results, store, templates, prefix)
        port = await _listen(stack, settings, results, stringee)
        poller = _poll(stack, settings, results, history, clock, by_account=own)
        log.info(
            "call results: webhook %s, polling %s",
            f"on port {port}" if port else "off",
            f"every {settings.result_poll_interval:g} s" if poller else "off",
        )
        # Neither webhooks nor polling: no result can ever come, so calls are not recorded.
        recorder = Recorder(results_store) if port or poller else None
        if recorder is not None and poller is None:  # the poller sets the gauge when it runs
            gauge = asyncio.create_task(_count_open(results_store, metrics), name="open-calls")
            stack.push_async_callback(cancel, gauge)
        if recorder is not None and connection is not None:
            published = Published(results_store)
            queue = f"{settings.queue}.results"
            await published.start(connection, queue, settings.outcome_exchange)
            stack.push_async_callback(
                lambda: bounded(published.stop(), "closing the results queue")
            )
        yield ResultSide(recorder, results, poller, port)


async def _listen(
    stack: AsyncExitStack,
    settings: Settings,
    results: Results,
    stringee: StringeeWebhook | None = None,
) -> int:
    """The webhook listener, when on: the port it listens on (0: off)."""
    if not settings.webhook_on or settings.webhook_token is None:
        return 0
    token = settings.webhook_token.get_secret_value()
    allow = networks(",".join(settings.webhook_allow))
    keeper = Keeper(results.store, settings.webhook_keep) if settings.webhook_keep else None
    listener = Listener(token, results, results.metrics, allow, keeper=keeper, stringee=stringee)
    return await stack.enter_async_context(serve(listener, settings.webhook_port))


def _poll(
    stack: AsyncExitStack,
    settings: Settings,
    results: Results,
    history: History | None,
    clock: Callable[[], float],
    *,
    by_account: Mapping[str, Source],
) -> Poller | None:
    """The reconciliation poller, running, when on."""
    if settings.result_poll_interval <= 0:
        return None
    interval, timeout = settings.result_poll_interval, settings.result_timeout
    poller = Poller(
        results, history, interval=interval, timeout=timeout, clock=clock, by_account=by_account
    )
    stack.push_async_callback(cancel, asyncio.create_task(poller.run(), name="poller"))
    return poller


def result_store(store: Store, prefix: str, ttl: float) -> ResultStore:
    """Beside the idempotency keys: in the same Redis, or in memory."""
    if isinstance(store, RedisStore):
        return RedisResults(store.client, prefix, ttl, store.batch)
    return MemoryResults(ttl)


def choices_of(templates: Templates) -> dict[str, dict[str, str]]:
    """Each template's `choices`, by template name."""
    return {t.name: dict(t.spec.choices) for t in templates if t.spec.choices}


async def _count_open(store: ResultStore, metrics: ResultMetrics) -> None:
    """Keeps `autocall_open_calls` current while no poller does."""
    while True:
        with contextlib.suppress(StoreUnavailable):  # the next look, then
            metrics.open_calls.set(await store.open_count())
        await asyncio.sleep(OPEN_CALLS_INTERVAL)
