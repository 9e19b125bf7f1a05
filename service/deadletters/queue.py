"""One pass over `<queue>.dead` that leaves what it does not take where it was.

AMQP cannot read a queue without taking its messages, so a pass takes each message the queue held
when it began and gives it a fate: kept, replayed (published to the input exchange) or removed.
Nothing is acknowledged before what replaces it (a replay, or a copy) is confirmed by the broker.
A classic queue puts a requeued message back in its place, so there the pass holds every message
it took and at the end acknowledges the replayed and removed ones and requeues the rest. A quorum
queue (RabbitMQ 3.10, measured) requeues a batch out of order, counts each return as a delivery,
and may forget acknowledgements queued behind 32 commands in flight when the channel closes; so
there each kept message is published again at the tail, confirmed, and its original acknowledged
at once: after one pass the queue holds the same messages in the same order.
"""

from __future__ import annotations

from collections.abc import Callable
from enum import Enum

import aio_pika
from aio_pika.abc import (
    AbstractChannel,
    AbstractConnection,
    AbstractExchange,
    AbstractIncomingMessage,
    AbstractQueue,
)
from pamqp.commands import Basic

from ..amqp.headers import DELIVERY_COUNT_HEADER, REPLAYED_HEADER, message_of
from ..amqp.publisher import writable
from .letters import DROPPED_ON_REPLAY, DeadLetter

GET_TIMEOUT = 30.0


class Fate(Enum):
    """What a pass does with one dead letter."""

    KEEP = "keep"
    REPLAY = "replay"
    REMOVE = "remove"


class NotConfirmed(Exception):
    """The broker did not take a copy of a kept message (its original stays)."""


class DeadQueue:
    """A pass over one dead-letter queue: `open`, `sweep`, `close` (which gives back whatever a
    failed pass still holds)."""

    def __init__(
        self, connection: AbstractConnection, name: str, *, quorum: bool, exchange: str
    ) -> None:
        self.name = name
        self.count = 0  # messages on the queue when the pass began
        self._connection = connection
        self._quorum = quorum
        self._exchange_name = exchange  # where replays go
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

    async def sweep(
        self, judge: Callable[[DeadLetter], Fate], enough: Callable[[], bool]
    ) -> list[tuple[DeadLetter, Fate]]:
        """Each message the queue held when opened, in order, with the fate it got (a replay no
        queue took is kept). On a classic queue the pass stops once `enough`: the rest stay."""
        assert self._queue is not None, "open() first"
        done: list[tuple[DeadLetter, Fate]] = []
        held: list[tuple[AbstractIncomingMessage, Fate]] = []
        # Messages that arrive during the pass come after these: they are not looked at.
        while len(done) < self.count and (self._quorum or not enough()):
            message = await self._queue.get(no_ack=False, fail=False, timeout=GET_TIMEOUT)
            if message is None:
                break
            letter = DeadLetter.of(message_of(message))
            fate = await self._carry_out(message, letter, judge(letter))
            done.append((letter, fate))
            if self._quorum:
                await message.ack()
            else:
                held.append((message, fate))
        await self._settle_classic(held)
        return done

    async def _carry_out(
        self, message: AbstractIncomingMessage, letter: DeadLetter, fate: Fate
    ) -> Fate:
        assert self._confirmed is not None, "open() first"
        if fate is Fate.REPLAY:
            exchange = await self._confirmed.get_exchange(self._exchange_name, ensure=True)
            # Marked, so that the service counts replays by the code they had failed with.
            mark = {REPLAYED_HEADER: letter.code or "unknown"}
            replay = _copy(message, DROPPED_ON_REPLAY, mark)
            if not await _published(exchange, replay, letter.routing_key):
                fate = Fate.KEEP
        if fate is Fate.KEEP and self._quorum:
            copy = _copy(message, frozenset())
            if not await _published(self._confirmed.default_exchange, copy, self.name):
                raise NotConfirmed(f"{self.name}: the broker did not take a copy back")
        return fate

    async def _settle_classic(self, held: list[tuple[AbstractIncomingMessage, Fate]]) -> None:
        for message, fate in held:
            if fate is not Fate.KEEP:
                await message.ack()
        for message, fate in held:
            if fate is Fate.KEEP:
                await message.nack(requeue=True)
        if held:
            # The queue has them back once it answers this channel again (Erlang keeps the order
            # of one process's messages): the next command sees the whole queue.
            await self._channels[0].declare_queue(self.name, passive=True)

    async def close(self) -> None:
        """Close the pass's channels: any message still held goes back to the queue."""
        for channel in reversed(self._channels):
            if not channel.is_closed:
                await channel.close()


async def _published(exchange: AbstractExchange, message: aio_pika.Message, key: str) -> bool:
    # mandatory: a message no queue takes comes back (a Basic.Return) instead of vanishing
    result = await exchange.publish(message, routing_key=key, mandatory=True)
    return isinstance(result, Basic.Ack)


def _copy(
    original: AbstractIncomingMessage, drop: frozenset[str], extra: dict[str, str] | None = None
) -> aio_pika.Message:
    headers = {
        key: writable(value)
        for key, value in (original.headers or {}).items()
        if key not in drop and key != DELIVERY_COUNT_HEADER
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
