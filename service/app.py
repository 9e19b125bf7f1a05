"""run(settings): the service's resources in one AsyncExitStack, torn down in reverse."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import time
from collections.abc import Callable
from contextlib import AsyncExitStack
from datetime import UTC, datetime
from types import TracebackType
from typing import Self

from aio_pika.abc import AbstractChannel, AbstractRobustConnection

from . import http, tracing
from .accounts import Accounts
from .accounts import check as check_accounts
from .accounts import load as load_accounts
from .accounts.registry import Registry, open_registry
from .amqp import connection as broker
from .amqp.publisher import Publisher
from .amqp.topology import Topology, declare
from .errors import ConfigError, cancelled_by_channel
from .metrics import Metrics
from .pipeline.budget import budgets
from .pipeline.caller import Caller
from .pipeline.consumer import Consumer
from .pipeline.hold import Hold
from .pipeline.holds import AccountHolds
from .pipeline.pace import Pace
from .provider.session import provider_session
from .results import runtime as results
from .settings import Settings
from .stopping import bounded, cancel
from .store import Store, open_store
from .templates import Templates, load

log = logging.getLogger("autocall")
WATCHDOG_INTERVAL = 5.0
WATCHDOG_RETRY = 0.5


class Service:
    """The running service: `async with Service(settings) as service: await service.wait()`."""

    def __init__(
        self,
        settings: Settings,
        templates: Templates | None = None,
        *,
        accounts: Accounts | None = None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.settings = settings
        self.templates = templates or load(settings.templates)
        self.accounts = accounts or load_accounts(settings)
        if problems := check_accounts(self.accounts, self.templates):
            raise ConfigError(problems)
        self.metrics = Metrics()
        self.metrics.templates(self.templates.names(), tuple(self.accounts.specs))
        self.clock = clock
        self.http_port = 0
        self.consumer: Consumer | None = None
        self.results: results.ResultSide | None = None
        self._connection: AbstractRobustConnection | None = None
        self._store: Store | None = None
        self._broker_consumers: int | None = None  # as the watchdog last saw them
        self._unready_since: float | None = time.monotonic()
        self._stack = AsyncExitStack()

    def __repr__(self) -> str:
        return f"Service(queue={self.settings.queue!r}, templates={len(self.templates)})"

    async def __aenter__(self) -> Self:
        try:
            await self._start(self._stack)
        except BaseException:
            await self._stack.aclose()
            raise
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self._stack.aclose()

    async def _start(self, stack: AsyncExitStack) -> None:
        s = self.settings
        await stack.enter_async_context(tracing.started())  # first: the last to stop
        self.http_port = await stack.enter_async_context(
            http.serve(s.http_port, self.metrics, self)
        )
        store = await stack.enter_async_context(
            open_store(
                s.store_url.get_secret_value(),
                s.store_prefix,
                s.idempotency_ttl,
                min_replicas=s.store_min_replicas,
                wait_timeout=s.store_wait_timeout,
            )
        )
        self._store = store
        registry = await self._open_accounts(stack, store)
        connection = await self._open_broker(stack)
        topology, self.publisher = await self._open_channels(connection)
        self.results = await self._open_results(stack, store, registry, connection)
        caller = Caller(
            store,
            None,
            None,
            self.clock,
            Pace(store, s.rate_limit),
            registry=registry,
            holds=AccountHolds(s.hold_probe_interval, self.metrics, self.clock),
            metrics=self.metrics,
            recorder=self.results.recorder,
            phone_window=self.templates.longest_phone_window(),
        )
        consumer = self._consumer(stack, topology, caller)
        for live in registry:
            await live.budget.refresh()
        await consumer.resume()
        watchdog = await connection.channel(publisher_confirms=False)
        watching = asyncio.create_task(self._watch(watchdog), name="watchdog")
        stack.push_async_callback(cancel, watching)
        log.info(
            "consuming %s (%d templates, bound to %s)",
            s.queue,
            len(self.templates),
            ", ".join(self.templates.patterns()),
            extra={"http_port": self.http_port, "accounts": ", ".join(self.accounts.specs)},
        )

    async def _open_accounts(self, stack: AsyncExitStack, store: Store) -> Registry:
        """Every account's provider client over one HTTP session, closed with the stack."""
        s = self.settings
        session = await stack.enter_async_context(provider_session(s))
        budget = budgets(store, self.metrics, self.clock)
        return open_registry(self.accounts, s, session=session, metrics=self.metrics, budget=budget)

    async def _open_broker(self, stack: AsyncExitStack) -> AbstractRobustConnection:
        """The broker connection (waiting until it answers), closed with the stack."""
        name = f"autocall-bridge {self.settings.queue}"
        self._connection = connection = await broker.connect(self.settings.amqp_urls, name)
        stack.push_async_callback(lambda: bounded(connection.close(), "closing the broker"))
        connection.close_callbacks.add(_connection_lost)
        connection.reconnect_callbacks.add(self._reconnected)
        return connection

    async def _open_results(
        self,
        stack: AsyncExitStack,
        store: Store,
        registry: Registry,
        connection: AbstractRobustConnection,
    ) -> results.ResultSide:
        """The result side (it publishes on our publisher), closed with the stack."""
        return await stack.enter_async_context(
            results.start(
                self.settings,
                self.templates,
                store=store,
                registry=self.metrics.registry,
                api=registry.omicall(),
                accounts=registry.clients(),
                publisher=self.publisher,
                connection=connection,
                clock=lambda: self.clock().timestamp(),
            )
        )

    async def _open_channels(
        self, connection: AbstractRobustConnection
    ) -> tuple[Topology, Publisher]:
        """The topology, declared on the consuming channel; the publisher on a channel of its
        own, in confirm mode (the result side publishes there too)."""
        s = self.settings
        consuming = await connection.channel(publisher_confirms=False)
        await consuming.set_qos(prefetch_count=s.prefetch)
        topology = await declare(consuming, s, self.templates)
        publishing = await connection.channel(publisher_confirms=True)
        outcomes = await publishing.get_exchange(s.outcome_exchange, ensure=False)
        return topology, Publisher(publishing, outcomes)

    def _consumer(self, stack: AsyncExitStack, topology: Topology, caller: Caller) -> Consumer:
        """The consumer of the declared queue; stopped first when the stack closes."""
        s = self.settings
        self.consumer = consumer = Consumer(
            s,
            templates=self.templates,
            topology=topology,
            caller=caller,
            publisher=self.publisher,
            hold=Hold(s.hold_probe_interval, self.metrics, self.clock, caller.registry.names()[0]),
            metrics=self.metrics,
            clock=self.clock,
        )
        # Last in, first out: stop consuming and drain before anything above closes.
        stack.push_async_callback(consumer.stop, s.shutdown_grace)
        return consumer

    def alive(self) -> tuple[bool, str]:
        """Alive unless not ready for longer than the watchdog allows: Kubernetes restarts it."""
        since = self._unready_since
        if since is not None and time.monotonic() - since > self.settings.watchdog_timeout:
            return False, f"not consuming for {time.monotonic() - since:.0f} s"
        return True, "ok"

    def ready(self) -> tuple[bool, str]:
        """Ready while connected and consuming (or deliberately on hold)."""
        connection, consumer, store = self._connection, self.consumer, self._store
        if connection is None or consumer is None or store is None:
            return False, "starting"
        if lost := _unreachable(connection, store):
            return False, lost
        if not consumer.consuming:
            return False, "not consuming"
        if consumer.hold.active:
            return True, f"connected; on hold ({consumer.hold.reason})"
        if self._broker_consumers == 0:
            return False, "the broker lists no consumer on the queue"
        return True, "ok"

    def _reconnected(self, connection: object) -> None:
        self._broker_consumers = None  # counted before the consumer was restored: look again
        log.warning("broker connection restored; consuming again")

    async def _watch(self, channel: AbstractChannel) -> None:
        """Asks the broker whether the queue has consumers: a consumer can die silently."""
        while True:
            self._broker_consumers = await self._count_consumers(channel)
            ok, _ = self.ready()
            if ok:
                self._unready_since = None
            elif self._unready_since is None:
                self._unready_since = time.monotonic()
            # Not ready: look again soon, so that /readyz follows a recovery within a second.
            await asyncio.sleep(WATCHDOG_INTERVAL if ok else WATCHDOG_RETRY)

    async def _count_consumers(self, channel: AbstractChannel) -> int | None:
        """The queue's consumers as the broker counts them; None while it cannot say."""
        try:
            # The channel underneath, not the robust one: that one would re-declare the queue
            # (passively, from here) on every reconnect, before the consumer is back.
            # asyncio.timeout, not wait_for: on 3.11 wait_for drops a cancel that comes in the
            # turn the reply does, and this loop would then never stop.
            async with asyncio.timeout(WATCHDOG_INTERVAL):
                underlay = await channel.get_underlay_channel()
                declared = await underlay.queue_declare(self.settings.queue, passive=True)
        except asyncio.CancelledError as exc:
            if not cancelled_by_channel(exc):
                raise
            return None
        except Exception:
            return None
        return declared.consumer_count


def _unreachable(connection: AbstractRobustConnection, store: Store) -> str | None:
    """What the service cannot reach: no broker node, or no store master."""
    if connection.is_closed or not connection.connected.is_set():
        return "not connected to the broker"
    if not store.reachable:
        return "no store master reachable"
    return None


def _connection_lost(connection: object, reason: BaseException | None = None) -> None:
    if reason is not None and not isinstance(reason, asyncio.CancelledError):
        log.warning("broker connection lost (%s); reconnecting", type(reason).__name__)


async def run(settings: Settings, templates: Templates | None = None) -> None:
    """The service until SIGTERM or SIGINT; then a drain bounded by the shutdown grace."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    async with AsyncExitStack() as stack:
        starting = asyncio.create_task(stack.enter_async_context(Service(settings, templates)))
        stopping = asyncio.create_task(stop.wait())
        await asyncio.wait({starting, stopping}, return_when=asyncio.FIRST_COMPLETED)
        if not starting.done():  # a signal while still reaching the broker
            starting.cancel()  # once: what started is closed in bounded steps as it unwinds
            with contextlib.suppress(asyncio.CancelledError):
                await starting
            return
        starting.result()
        await stopping
        log.info("stopping: draining in-flight events (up to %.0f s)", settings.shutdown_grace)
    log.info("stopped")
