"""The load generator: CloudEvents published with pipelined confirms, outcomes collected."""

from __future__ import annotations

import asyncio
import contextlib
import math
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime

import aio_pika
import orjson
from aio_pika.abc import AbstractChannel, AbstractExchange, AbstractIncomingMessage, AbstractQueue

from service.sandbox.answers import scripted_code

EVENT_TYPE = "order.created"
IN_FLIGHT = 512  # publishes awaiting their confirms at once
# Vietnamese mobile prefixes that Google's numbering rules accept
PREFIXES = ("090", "091", "093", "094", "096", "097", "098", "070", "077", "086", "032")
NAMES = ("Nguyễn Văn An", "Trần Thị Bình", "Lê Hoàng Cường", "Phạm Thu Dung")


def phone(index: int) -> str:
    """A valid mobile number for each index, never one the sandbox scripts to answer with an
    error code (throttles, a revoked token, account codes: service/sandbox/answers.py), which
    would measure the error paths instead of the event path."""
    digits = index % 10_000_000
    number = f"{PREFIXES[index % len(PREFIXES)]}{digits:07d}"
    while scripted_code(number) is not None:
        digits = (digits + 100) % 10_000_000  # the last digit, the call's script, is kept
        number = f"{PREFIXES[index % len(PREFIXES)]}{digits:07d}"
    return number


def event(run: str, index: int) -> tuple[str, bytes]:
    """The id and structured-mode body of one order.created CloudEvent."""
    event_id = f"{run}-{index}"
    data = {
        "code": f"DH-{run[:4].upper()}-{index:06d}",
        "customer": {
            "name": NAMES[index % len(NAMES)],
            "phone": phone(index),
        },
        "total_price": 150_000 + (index % 997) * 1_000 + 0.5,
    }
    body = {
        "specversion": "1.0",
        "id": event_id,
        "type": EVENT_TYPE,
        "source": "/bench/shop",
        "time": datetime.now(UTC).isoformat(timespec="milliseconds"),
        "datacontenttype": "application/json",
        "data": data,
    }
    return event_id, orjson.dumps(body)


def events(run: str, start: int, count: int) -> Iterator[tuple[str, bytes]]:
    return (event(run, index) for index in range(start, start + count))


async def publish(
    exchange: AbstractExchange,
    batch: Iterator[tuple[str, bytes]],
    rate: float | None = None,
    in_flight: int = IN_FLIGHT,
) -> dict[str, float]:
    """Publish every event, each confirmed, `in_flight` at a time (or paced at `rate` per
    second); the perf_counter time each publish started, by event id."""
    started: dict[str, float] = {}
    numbered = enumerate(batch)
    t0 = time.perf_counter()

    async def worker() -> None:
        for index, (event_id, body) in numbered:
            if rate is not None:
                delay = t0 + index / rate - time.perf_counter()
                if delay > 0:
                    await asyncio.sleep(delay)
            message = aio_pika.Message(
                body,
                content_type="application/cloudevents+json",
                delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
                message_id=event_id,
                type=EVENT_TYPE,
            )
            started[event_id] = time.perf_counter()
            await exchange.publish(message, routing_key=EVENT_TYPE)

    await asyncio.gather(*(worker() for _ in range(in_flight)))
    return started


@dataclass
class Collector:
    """Records when each outcome arrives, by its correlation id (the event id)."""

    arrivals: dict[str, float] = field(default_factory=dict)
    statuses: Counter[str] = field(default_factory=Counter)
    _target: int = 0
    _done: asyncio.Event = field(default_factory=asyncio.Event)
    _queue: AbstractQueue | None = None

    async def start(self, channel: AbstractChannel, outcome_exchange: str) -> None:
        exchange = await channel.get_exchange(outcome_exchange, ensure=False)
        self._queue = await channel.declare_queue(exclusive=True, auto_delete=True)
        await self._queue.bind(exchange, routing_key="#")
        await self._queue.consume(self._on_message, no_ack=True)

    async def _on_message(self, message: AbstractIncomingMessage) -> None:
        arrived = time.perf_counter()
        event_id = message.correlation_id or ""
        if event_id not in self.arrivals:
            self.arrivals[event_id] = arrived
            self.statuses[(message.routing_key or "").removeprefix("autocall.")] += 1
        if self._target and len(self.arrivals) >= self._target:
            self._done.set()

    async def wait(
        self, count: int, stall: float = 30.0, alive: Callable[[], bool] = lambda: True
    ) -> bool:
        """Until `count` distinct outcomes arrived; False once none came for `stall` seconds
        or `alive()` says the consumer is gone."""
        self._target = count
        seen, since = len(self.arrivals), time.monotonic()
        while len(self.arrivals) < count:
            self._done.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._done.wait(), 1.0)
            if len(self.arrivals) > seen:
                seen, since = len(self.arrivals), time.monotonic()
            elif time.monotonic() - since > stall or not alive():
                return len(self.arrivals) >= count
        return True

    def last_arrival(self, ids: dict[str, float]) -> float | None:
        times = [self.arrivals[i] for i in ids if i in self.arrivals]
        return max(times) if times else None


def latencies_ms(started: dict[str, float], arrivals: dict[str, float]) -> list[float]:
    """Publish-to-outcome latency of each event that got an outcome, sorted, in ms."""
    return sorted((arrivals[i] - t) * 1000 for i, t in started.items() if i in arrivals)


def percentile(values: list[float], p: float) -> float | None:
    """The nearest-rank percentile of sorted `values`."""
    if not values:
        return None
    rank = max(1, math.ceil(p / 100 * len(values)))
    return values[rank - 1]
