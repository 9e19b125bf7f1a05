"""Fixtures: the real broker (names unique to this run, deleted afterwards), the sandbox provider
over HTTP, the service in-process, and collectors that await outcomes instead of sleeping."""

from __future__ import annotations

import asyncio
import itertools
import os
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aio_pika
import orjson
import pytest
import redis.asyncio as redis
from aio_pika.abc import AbstractChannel, AbstractIncomingMessage, AbstractRobustConnection

from service.amqp.topology import Names
from service.app import Service
from service.sandbox import Sandbox, serve
from service.settings import Settings
from service.templates import Templates, load, parse

AMQP_URL = os.environ.get("AUTOCALL_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/")
REDIS_URL = os.environ.get("AUTOCALL_REDIS_TEST_URL", "redis://127.0.0.1:6379/0")
ROOT = Path(__file__).parent.parent
EXAMPLES = ROOT / "examples"
SAMPLES = Path(__file__).parent / "samples"
RUN = uuid.uuid4().hex[:8]  # every name this run declares starts with it
_serial = itertools.count()
WAIT = 20.0  # seconds any single awaited event may take before a test fails


@pytest.fixture
def prefix() -> str:
    return f"test.{RUN}.{next(_serial)}"


@pytest.fixture
async def sandbox() -> AsyncIterator[Sandbox]:
    async with serve() as running:
        yield running


@pytest.fixture
def example_templates() -> Templates:
    return load(EXAMPLES / "templates.yaml")


def template(**fields: Any) -> dict[str, Any]:
    """One valid template as a dict; a field given as ... is left out."""
    spec = {
        "name": "t",
        "event": "order.created",
        "phone": "{{ data.phone }}",
        "script": [{"say": "Xin chào"}],
    } | fields
    return {key: value for key, value in spec.items() if value is not ...}


def templates_of(text: str) -> Templates:
    return parse(text, "test")


MakeSettings = Callable[..., Settings]


@pytest.fixture
def make_settings(prefix: str, sandbox: Sandbox) -> MakeSettings:
    """Settings for one test: its own queue and exchanges, the sandbox, fast retries."""

    def make(**overrides: Any) -> Settings:
        values: dict[str, Any] = {
            "amqp_url": AMQP_URL,
            "queue": f"{prefix}.events",
            "input_exchange": f"{prefix}.in",
            "outcome_exchange": f"{prefix}.out",
            "api_base_url": sandbox.url,
            "api_key": "sandbox-key",
            "http_port": 0,
            "retry_delays": "50ms,100ms",
            "hold_probe_interval": "200ms",
            "shutdown_grace": "5s",
            "api_timeout": "2s",
            "api_connect_timeout": "1s",
            "prefetch": 16,
            "concurrency": 16,
        }
        return Settings(**(values | overrides))

    return make


@dataclass
class Outcomes:
    """Outcome events as they arrive on a queue bound to the outcome exchange."""

    received: list[AbstractIncomingMessage] = field(default_factory=list)
    _changed: asyncio.Condition = field(default_factory=asyncio.Condition)

    async def add(self, message: AbstractIncomingMessage) -> None:
        async with self._changed:
            self.received.append(message)
            self._changed.notify_all()

    async def wait(self, count: int, timeout: float = WAIT) -> list[dict[str, Any]]:
        """The first `count` outcomes' bodies, once that many arrived."""
        async with asyncio.timeout(timeout), self._changed:
            await self._changed.wait_for(lambda: len(self.received) >= count)
        return [orjson.loads(message.body) for message in self.received[:count]]

    def bodies(self) -> list[dict[str, Any]]:
        return [orjson.loads(message.body) for message in self.received]


class Broker:
    """A test's own connection to the real broker; deletes what the test's settings named."""

    def __init__(self, connection: AbstractRobustConnection, channel: AbstractChannel) -> None:
        self.connection = connection
        self.channel = channel
        self._queues: set[str] = set()
        self._exchanges: set[str] = set()
        self._store_prefixes: set[str] = set()

    def owns(self, settings: Settings, templates: Templates) -> None:
        self._queues.update(Names.of(settings, templates).all())
        self._exchanges.update({settings.input_exchange, settings.outcome_exchange})
        if settings.store_url.get_secret_value().startswith("redis"):
            self._store_prefixes.add(f"autocall:{settings.queue}:")

    async def publish(
        self, settings: Settings, body: bytes | dict[str, Any], routing_key: str, **properties: Any
    ) -> None:
        """An event on the input exchange, confirmed by the broker."""
        exchange = await self.channel.declare_exchange(
            settings.input_exchange, aio_pika.ExchangeType.TOPIC, durable=True
        )
        self._exchanges.add(settings.input_exchange)
        raw = body if isinstance(body, bytes) else orjson.dumps(body)
        properties.setdefault("content_type", "application/json")
        await exchange.publish(aio_pika.Message(raw, **properties), routing_key=routing_key)

    async def outcomes(self, settings: Settings) -> Outcomes:
        exchange = await self.channel.declare_exchange(
            settings.outcome_exchange, aio_pika.ExchangeType.TOPIC, durable=True
        )
        self._exchanges.add(settings.outcome_exchange)
        queue = await self.channel.declare_queue(exclusive=True, auto_delete=True)
        await queue.bind(exchange, routing_key="#")
        collected = Outcomes()

        async def on_message(message: AbstractIncomingMessage) -> None:
            await message.ack()
            await collected.add(message)

        await queue.consume(on_message)
        return collected

    async def drain(self, queue: str) -> list[AbstractIncomingMessage]:
        """Every message now on `queue`, taken off it."""
        declared = await self.channel.declare_queue(queue, passive=True)
        messages = []
        while (message := await declared.get(no_ack=True, fail=False)) is not None:
            messages.append(message)
        return messages

    async def count(self, queue: str) -> int:
        declared = await self.channel.declare_queue(queue, passive=True)
        result = declared.declaration_result
        return int(result.message_count or 0) if result else 0

    async def cleanup(self) -> None:
        channel = await self.connection.channel()
        for name in self._queues:
            await channel.queue_delete(name)
        for name in self._exchanges:
            await channel.exchange_delete(name)
        if self._store_prefixes:
            client = redis.Redis.from_url(REDIS_URL)
            for prefix in self._store_prefixes:
                keys = [key async for key in client.scan_iter(match=f"{prefix}*")]
                if keys:
                    await client.delete(*keys)
            await client.aclose()


@pytest.fixture
async def broker() -> AsyncIterator[Broker]:
    connection = await aio_pika.connect_robust(AMQP_URL)
    channel = await connection.channel(publisher_confirms=True)
    helper = Broker(connection, channel)
    try:
        yield helper
    finally:
        # Bounded: a broker that stops answering fails this teardown, not the whole run.
        try:
            async with asyncio.timeout(WAIT):
                await helper.cleanup()
        finally:
            async with asyncio.timeout(WAIT):
                await connection.close()


StartService = Callable[..., Awaitable[Service]]


@pytest.fixture
async def start_service(broker: Broker) -> AsyncIterator[StartService]:
    """Starts the service in-process; stops every one started when the test ends."""
    async with AsyncExitStack() as stack:

        async def start(settings: Settings, templates: Templates, **kwargs: Any) -> Service:
            broker.owns(settings, templates)
            return await stack.enter_async_context(Service(settings, templates, **kwargs))

        yield start
