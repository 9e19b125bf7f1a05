"""Fakes the unit tests share: a clock a test moves by hand, an AMQP channel with its
deliveries, a publisher that keeps what it is given, and a provider that answers as told."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

import orjson

from service.provider.edge import Accepted


class Clock:
    """Seconds since the epoch, moved on by setting `now`."""

    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@dataclass
class Channel:
    """Records the ack frames queued on it, and what the broker would make of them."""

    frames: list[tuple[int, bool]] = field(default_factory=list)
    unsettled: set[int] = field(default_factory=set)
    is_closed: bool = False
    slow: bool = False  # every frame waits a turn, as in a full frame queue

    def deliver(self, tag: int, **parts: Any) -> Delivery:
        self.unsettled.add(tag)
        return Delivery(tag, self, **parts)

    async def basic_ack(self, tag: int, multiple: bool = False, wait: bool = True) -> None:
        if self.slow:
            await asyncio.sleep(0)
        if self.is_closed:
            raise RuntimeError("channel closed")
        # RabbitMQ: the tag itself must be unsettled, or the channel is closed.
        assert tag in self.unsettled, f"unknown delivery tag {tag}"
        self.frames.append((tag, multiple))
        covered = {t for t in self.unsettled if t <= tag} if multiple else {tag}
        self.unsettled -= covered

    async def nack(self, tag: int) -> None:
        if self.slow:
            await asyncio.sleep(0)
        assert tag in self.unsettled, f"unknown delivery tag {tag}"
        self.frames.append((tag, False))
        self.unsettled.discard(tag)


@dataclass
class Delivery:
    """The parts of an incoming message the service reads, on a fake channel."""

    delivery_tag: int = 1
    channel: Channel | None = None
    headers: dict[str, Any] = field(default_factory=dict)
    routing_key: str | None = "order.created"
    exchange: str | None = "orders"
    body: bytes = b"{}"
    content_type: str | None = "application/json"
    type: str | None = None
    message_id: str | None = "m-1"
    timestamp: Any = None

    async def nack(self, requeue: bool = True) -> None:
        assert self.channel is not None
        await self.channel.nack(self.delivery_tag)


class Publisher:
    """Keeps what it is asked to publish, in order; raises while `down`."""

    def __init__(self) -> None:
        self.published: list[tuple[str, dict[str, Any], str]] = []  # results
        self.ids: list[str] = []  # the results' message ids
        self.steps: list[tuple[str, Any]] = []  # every publish: (kind, what)
        self.down = False

    async def outcome(self, body: bytes, status: str, event_id: str) -> None:
        self._up()
        self.steps.append(("outcome", status))

    async def result(self, body: bytes, routing_key: str, event_id: str, result_id: str) -> None:
        self._up()
        self.published.append((routing_key, orjson.loads(body), event_id))
        self.ids.append(result_id)
        self.steps.append(("result", routing_key))

    async def copy(
        self, original: Any, queue: str, headers: dict[str, Any], expiration_ms: int | None = None
    ) -> None:
        self._up()
        self.steps.append(("copy", (queue, expiration_ms)))

    async def dead_letter(self, original: Any, queue: str, outcome: Any) -> None:
        self._up()
        self.steps.append(("dead_letter", queue))

    def _up(self) -> None:
        if self.down:
            raise ConnectionError("broker down")


class Provider:
    """Answers each `execute` with the next of `answers` (an error is raised), then accepts."""

    call_time = 0.3

    def __init__(
        self, answers: list[Accepted | Exception] | None = None, steps: list[str] | None = None
    ) -> None:
        self.answers = list(answers or [])
        self.requests: list[Any] = []
        self.steps = steps if steps is not None else []

    async def execute(self, request: Any) -> Accepted:
        self.requests.append(request)
        self.steps.append("call")
        answer = self.answers.pop(0) if self.answers else Accepted(f"a-{len(self.requests)}")
        if isinstance(answer, Exception):
            raise answer
        return answer
