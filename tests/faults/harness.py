"""The fault suite's harness: a Rig per case runs the sandbox and the service as processes, with
names of its own, publishes with confirms, collects outcomes, and ends with a Ledger."""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import sys
import time
from collections import Counter
from collections.abc import Awaitable, Iterable
from pathlib import Path
from typing import Any

import aio_pika
import aiohttp
import orjson
import redis.asyncio as redis
from aio_pika.abc import AbstractChannel, AbstractExchange, AbstractRobustConnection

from service.amqp.connection import connect
from service.store import sentinel
from tests.faults.ledger import RESULTS, Collector, Ledger, Outcome
from tests.faults.processes import (
    COMMAND,
    Process,
    Sandbox,
    Service,
    clean_env,
    close_connection,
    connections,
    free_port,
    http_session,
    rabbitmqctl,
    spawn,
    until,
    wait_ready,
)

__all__ = [
    "RESULTS",
    "Ledger",
    "Rig",
    "Service",
    "close_connection",
    "connections",
    "order",
    "phone",
    "rabbitmqctl",
    "shipment",
    "until",
]

TEMPLATES = Path(__file__).with_name("templates.yaml")
AMQP_URL = os.environ.get("AUTOCALL_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/")
REDIS_URL = os.environ.get("AUTOCALL_REDIS_TEST_URL", "redis://127.0.0.1:6379/0")
RETRY_DELAYS = "200ms,500ms,1s,2s"
MAX_RETRY_TIERS = 10  # retry queues to delete: deleting one that does not exist is fine
# The sandbox's account must never be what stops a call, unless a case says so.
UNLIMITED = {"daily_limit": 10**12, "balance": 10**15}

Event = tuple[str, str, bytes]  # (event id, routing key, body)


def phone(n: int) -> str:
    """A valid Vietnamese mobile number, distinct for each n below 10 million."""
    return f"091{n:07d}"


def order(event_id: str, code: str, number: str) -> Event:
    body = orjson.dumps({"code": code, "phone": number, "total": 455000})
    return event_id, "order.created", body


def shipment(event_id: str, code: str, number: str) -> Event:
    body = orjson.dumps({"code": code, "phone": number})
    return event_id, "shipment.created", body


class Rig:
    """One case's world: its names, its sandbox, its service processes, a publisher and an outcome
    collector. Everything it starts or declares goes when the case ends, whatever happened."""

    def __init__(
        self,
        case: str,
        directory: Path,
        amqp_urls: list[str] | None = None,
        store_url: str = REDIS_URL,
    ) -> None:
        self.case = case
        self.amqp_urls = amqp_urls or [AMQP_URL]  # the service's nodes, in its order
        self.store_url = store_url
        self.prefix = f"fault.{secrets.token_hex(4)}"
        self.directory = directory
        self.started = time.monotonic()
        self.queue = f"{self.prefix}.events"
        self.input_exchange = f"{self.prefix}.in"
        self.outcome_exchange = f"{self.prefix}.out"
        self.collect_queue = f"{self.prefix}.collect"
        self.processes: list[Process] = []
        self.services: list[Service] = []
        self.published: list[str] = []
        self.outcomes = Collector()
        self.ledger: Ledger | None = None
        self.sandbox: Sandbox
        self.other_sandboxes: list[Sandbox] = []  # more providers' stand-ins (accounts)
        self._http: aiohttp.ClientSession
        self._connection: AbstractRobustConnection
        self._channel: AbstractChannel
        self._collecting: AbstractChannel
        self._events: AbstractExchange
        self._serial = 0

    def __repr__(self) -> str:
        return f"Rig({self.case!r}, prefix={self.prefix!r})"

    async def __aenter__(self) -> Rig:
        self._http = http_session()
        try:
            await self._open_broker()
            self.sandbox = await self._start_sandbox()
        except BaseException:
            await self.close()
            raise
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    async def _open_broker(self) -> None:
        # the nodes the other way round: the rig stays on when the service's first node goes
        self._connection = await connect(self.amqp_urls[::-1], f"fault-suite {self.prefix}")
        self._channel = await self._connection.channel(publisher_confirms=True)
        topic = aio_pika.ExchangeType.TOPIC
        self._events = await self._channel.declare_exchange(
            self.input_exchange, topic, durable=True
        )
        outcomes = await self._channel.declare_exchange(self.outcome_exchange, topic, durable=True)
        # Durable, not exclusive: it must keep outcomes while the broker app is stopped.
        self._collecting = await self._connection.channel()
        # quorum: on a cluster it survives the loss of the node that would have held it
        quorum: dict[str, Any] = {"x-queue-type": "quorum"}
        queue = await self._collecting.declare_queue(
            self.collect_queue, durable=True, arguments=quorum
        )
        await queue.bind(outcomes, routing_key="#")
        await queue.consume(self.outcomes.on_message)

    async def another_sandbox(self) -> Sandbox:
        """One more sandbox (a second account's provider): its calls count in the ledger."""
        sandbox = await self._start_sandbox()
        self.other_sandboxes.append(sandbox)
        return sandbox

    async def _start_sandbox(self) -> Sandbox:
        port = free_port()
        command = [COMMAND, "sandbox", "--port", str(port)]
        process = await spawn("sandbox", command, clean_env(), self.directory / "sandbox.log")
        self.processes.append(process)
        url = f"http://127.0.0.1:{port}"
        await wait_ready(self._http, process, f"{url}/_sandbox/state")
        sandbox = Sandbox(process, url, self._http)
        await sandbox.configure(**UNLIMITED)
        return sandbox

    def env(self, http_port: int, **settings: Any) -> dict[str, str]:
        """The service's environment; `settings` override by name (prefetch=16 is
        AUTOCALL_PREFETCH=16)."""
        values: dict[str, Any] = {
            "amqp_url": ",".join(self.amqp_urls),
            "queue": self.queue,
            "input_exchange": self.input_exchange,
            "outcome_exchange": self.outcome_exchange,
            "api_base_url": self.sandbox.url,
            "api_key": "sandbox-key",
            "http_port": http_port,
            "templates": TEMPLATES,
            "store_url": self.store_url,
            "retry_delays": RETRY_DELAYS,
            "hold_probe_interval": "500ms",
            "shutdown_grace": "10s",
            "api_timeout": "5s",
            "api_connect_timeout": "2s",
            "tts_daily_limit": 10**12,
            "prefetch": 64,
            "concurrency": 64,
            "log_format": "json",
            "log_level": "INFO",
        }
        values |= settings
        return clean_env() | {f"AUTOCALL_{k.upper()}": str(v) for k, v in values.items()}

    async def declare(self) -> None:
        """The service's queues, exchanges and bindings before it runs, so that a backlog can
        wait for it (events published to an exchange with no binding are dropped)."""
        from service.amqp.topology import declare
        from service.settings import Settings
        from service.templates import load

        settings = Settings(
            amqp_url=",".join(self.amqp_urls),
            queue=self.queue,
            input_exchange=self.input_exchange,
            outcome_exchange=self.outcome_exchange,
            retry_delays=RETRY_DELAYS,
            api_key="sandbox-key",
        )
        channel = await self._connection.channel()
        try:
            await declare(channel, settings, load(TEMPLATES))
        finally:
            await channel.close()

    async def start_service(self, **settings: Any) -> Service:
        """One more `autocall-bridge run`, ready (its /readyz answers 200)."""
        port = free_port()
        self._serial += 1
        name = f"service-{self._serial}"
        command = [COMMAND, "run"]
        process = await spawn(name, command, self.env(port, **settings), self._log(name))
        self.processes.append(process)
        service = Service(process, port, self._http)
        await wait_ready(self._http, process, f"{service.base}/readyz")
        self.services.append(service)
        return service

    def _log(self, name: str) -> Path:
        return self.directory / f"{name}.log"

    async def publish(self, events: Iterable[Event], batch: int = 50) -> None:
        """Each event on the input exchange, persistent, confirmed by the broker."""
        pending: list[Awaitable[Any]] = []
        for event_id, routing_key, body in events:
            message = aio_pika.Message(
                body,
                content_type="application/json",
                delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
                message_id=event_id,
            )
            pending.append(self._events.publish(message, routing_key=routing_key))
            self.published.append(event_id)
            if len(pending) >= batch:
                await asyncio.wait_for(asyncio.gather(*pending), 30)
                pending = []
        if pending:
            await asyncio.wait_for(asyncio.gather(*pending), 30)

    async def queue_depth(self, queue: str | None = None) -> int:
        """Messages ready on `queue` (the service's by default)."""
        channel = await self._connection.channel()
        try:
            declared = await channel.declare_queue(queue or self.queue, passive=True)
            result = declared.declaration_result
            return int(result.message_count or 0) if result else 0
        finally:
            await channel.close()

    async def settle(self, timeout: float, quiet: float = 1.0) -> Ledger:
        """Wait for an outcome of every published event (bounded), let stragglers arrive, and
        record the ledger: it is computed even when the wait runs out."""
        waited: BaseException | None = None
        try:
            await self.outcomes.wait_events(len(set(self.published)), timeout)
            await asyncio.wait_for(self.outcomes.quiet(quiet), 30)
        except TimeoutError as exc:
            waited = exc
        ledger = await self.record(list(self.outcomes.received))
        sys.stdout.write(ledger.line() + "\n")
        if waited is not None:
            raise AssertionError(f"{waited}; {ledger.line()}")
        return ledger

    async def record(self, outcomes: list[Outcome]) -> Ledger:
        """The case's ledger of `outcomes`, the provider's calls and the dead-letter queue."""
        calls = [c for box in [self.sandbox, *self.other_sandboxes] for c in await box.calls()]
        ledger = Ledger.of(
            self.case, self.published, outcomes, calls, time.monotonic() - self.started
        )
        with contextlib.suppress(Exception):
            dead = self.queue_depth(f"{self.queue}.dead")
            ledger.dead_letters = await asyncio.wait_for(dead, 30)
        self.ledger = ledger
        RESULTS.append(ledger)
        return ledger

    def logs(self) -> dict[str, str]:
        """The tail of each process's log."""
        return {process.name: process.tail() for process in self.processes}

    async def close(self) -> None:
        """Kill every process, delete the case's queues, exchanges and store keys."""
        for process in self.processes:
            with contextlib.suppress(Exception):
                await process.kill()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self._collecting.close(), 10)
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self._delete_topology(), 30)
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self._delete_store_keys(), 30)
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self._connection.close(), 10)
        await self._http.close()

    async def _delete_topology(self) -> None:
        channel = await self._connection.channel()
        retries = [f"{self.queue}.retry.{n + 1}" for n in range(MAX_RETRY_TIERS)]
        queues = [self.collect_queue, self.queue, f"{self.queue}.dead", f"{self.queue}.results"]
        queues.append(f"{self.queue}.held")
        for name in [*queues, *retries]:
            await channel.queue_delete(name)
        for name in (self.input_exchange, self.outcome_exchange):
            await channel.exchange_delete(name)
        await channel.close()

    def _redis(self) -> redis.Redis:
        if self.store_url.startswith(sentinel.SCHEMES):
            return sentinel.client(self.store_url)
        return redis.Redis.from_url(self.store_url)

    async def _delete_store_keys(self) -> None:
        client = self._redis()
        async with client:
            keys = [key async for key in client.scan_iter(f"autocall:{self.prefix}.*", count=1000)]
            for start in range(0, len(keys), 1000):
                await client.delete(*keys[start : start + 1000])

    async def claims(self) -> Counter[str]:
        """The service's idempotency keys in Redis by state: pending (a call may be out) or
        done."""
        client = self._redis()
        states: Counter[str] = Counter()
        async with client:
            async for key in client.scan_iter(f"autocall:{self.queue}:key:*", count=1000):
                value = await client.get(key)
                if value is not None:
                    states[str(orjson.loads(value)["s"])] += 1
        return states
