"""One pass over `<queue>.dead` that leaves what it does not take where it was.

AMQP has no way to read a queue without taking its messages, so a pass takes every message the
queue holds when it starts (unacknowledged) and then settles each one: removed ones are
acknowledged, kept ones go back. A classic queue puts a requeued message back in its place. A
quorum queue (RabbitMQ 3.10, measured) returns a batch of requeued messages out of order and
counts each return as a delivery; so on a quorum queue the kept messages are published again, in
order, and their originals acknowledged once the broker confirmed the copies. Nothing is
acknowledged before what replaces it (a copy, or a replay on the input exchange) is confirmed.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import aio_pika
from aio_pika.abc import (
    AbstractChannel,
    AbstractConnection,
    AbstractExchange,
    AbstractIncomingMessage,
    AbstractQueue,
)
from pamqp.commands import Basic

from ..events import Message
from .letters import DROPPED_ON_REPLAY, REPLAYED_HEADER, DeadLetter

GET_TIMEOUT = 30.0
_BROKER_HEADERS = ("x-delivery-count",)  # set by the broker on delivery, never by a publisher


@dataclass(slots=True)
class Held:
    """A message taken off the queue and not yet settled."""

    letter: DeadLetter
    message: AbstractIncomingMessage
    position: int


class NotConfirmed(Exception):
    """The broker did not take a copy of a kept message: nothing was removed."""


class DeadQueue:
    """A pass over one dead-letter queue: `open`, `take`, then `settle`; `close` gives back
    whatever is still held."""

    def __init__(self, connection: AbstractConnection, name: str, *, quorum: bool) -> None:
        self.name = name
        self.count = 0  # messages on the queue when the pass began
        self._connection = connection
        self._quorum = quorum
        self._channels: list[AbstractChannel] = []
        self._queue: AbstractQueue | None = None
        self._confirmed: AbstractChannel | None = None

    async def open(self) -> None:
        """Find the queue (passive: a missing queue is an error) and how many messages it holds."""
        reading = await self._connection.channel(publisher_confirms=False)
        self._channels.append(reading)
        self._queue = await reading.declare_queue(self.name, passive=True)
        result = self._queue.declaration_result
        self.count = int(result.message_count or 0) if result else 0
        self._confirmed = await self._connection.channel(publisher_confirms=True)
        self._channels.append(self._confirmed)

    async def take(
        self, want: int | None = None, matches: Callable[[DeadLetter], bool] = bool
    ) -> list[Held]:
        """The messages the queue held when opened, in order. On a classic queue, only as far
        as the `want`-th that `matches`: the rest need not move."""
        assert self._queue is not None, "open() first"
        held: list[Held] = []
        found = 0
        # Messages that arrive during the pass come after these: they are not looked at.
        while len(held) < self.count and (want is None or found < want or self._quorum):
            message = await self._queue.get(no_ack=False, fail=False, timeout=GET_TIMEOUT)
            if message is None:
                break
            letter = DeadLetter.of(_plain(message))
            found += matches(letter)
            held.append(Held(letter, message, len(held)))
        return held

    async def replay(self, picked: list[Held], exchange: str) -> set[int]:
        """Publish each of `picked` to `exchange` with its original routing key; the positions
        of those the broker confirmed and routed."""
        assert self._confirmed is not None, "open() first"
        target = await self._confirmed.get_exchange(exchange, ensure=True)
        done = set()
        for item in picked:
            # Marked, so the service counts replays by the code they failed with.
            mark = {REPLAYED_HEADER: item.letter.code or "unknown"}
            copy = _copy(item.message, DROPPED_ON_REPLAY, mark)
            if await _published(target, copy, item.letter.routing_key):
                done.add(item.position)
        return done

    async def settle(self, held: list[Held], removed: set[int]) -> None:
        """Take the messages at the positions in `removed` off the queue; leave the others in
        their order. Call only once whatever replaces a removed message is confirmed."""
        assert self._confirmed is not None, "open() first"
        kept = [item for item in held if item.position not in removed]
        if self._quorum:
            for item in kept:
                copy = _copy(item.message, frozenset())
                if not await _published(self._confirmed.default_exchange, copy, self.name):
                    raise NotConfirmed(f"{self.name}: the broker refused a copy")
            for item in held:
                await item.message.ack()
            return
        for item in held:
            if item.position in removed:
                await item.message.ack()
        for item in kept:
            await item.message.nack(requeue=True)

    async def close(self) -> None:
        """Close the pass's channels: any message still held goes back to the queue."""
        for channel in reversed(self._channels):
            if not channel.is_closed:
                await channel.close()


async def _published(exchange: AbstractExchange, message: aio_pika.Message, key: str) -> bool:
    # mandatory: a message no queue takes comes back (a Basic.Return) instead of vanishing
    result = await exchange.publish(message, routing_key=key, mandatory=True)
    return isinstance(result, Basic.Ack)


def _plain(message: AbstractIncomingMessage) -> Message:
    return Message(
        body=message.body,
        routing_key=message.routing_key or "",
        content_type=message.content_type,
        type=message.type,
        message_id=message.message_id,
        timestamp=message.timestamp,
        headers=message.headers or {},
    )


def _copy(
    original: AbstractIncomingMessage, drop: frozenset[str], extra: dict[str, str] | None = None
) -> aio_pika.Message:
    headers = {
        key: _writable(value)
        for key, value in (original.headers or {}).items()
        if key not in drop and key not in _BROKER_HEADERS
    } | (extra or {})
    return aio_pika.Message(
        original.body,
        headers=headers,
        content_type=original.content_type,
        content_encoding=original.content_encoding,
        delivery_mode=original.delivery_mode,
        priority=original.priority,
        correlation_id=original.correlation_id,
        reply_to=original.reply_to,
        message_id=original.message_id,
        timestamp=original.timestamp,
        type=original.type,
        app_id=original.app_id,
    )


def _writable(value: Any) -> Any:
    """pamqp reads a long string that is not UTF-8 as bytes, but writes bytes only as a byte
    array."""
    if isinstance(value, bytes | memoryview):
        return bytearray(value)
    if isinstance(value, list | tuple):
        return [_writable(item) for item in value]
    if isinstance(value, dict):
        return {key: _writable(item) for key, item in value.items()}
    return value
