"""Exchanges and queues: the input and outcome exchanges, the quorum queue, its dead letters,
the retry tiers and the call-window delays (messages wait there by TTL, then dead-letter back)."""

from __future__ import annotations

from dataclasses import dataclass

import aio_pika
from aio_pika.abc import AbstractChannel, AbstractExchange, AbstractQueue
from pamqp.common import FieldTable

from .settings import Settings
from .suppression.changes import CONTROL_PATTERN
from .templates import CallWindow, Templates

# How `<queue>.dead` is declared. `dead-letters` reads it to learn the queue's type: a quorum
# queue does not keep the order of requeued messages, so they are put back another way.
DEAD_QUEUE_ARGUMENTS: FieldTable = {}


def dead_queue_name(queue: str) -> str:
    """Where the failed events of `queue` are kept."""
    return f"{queue}.dead"


@dataclass(frozen=True, slots=True)
class Names:
    """Every queue name the service uses, derived from the settings and the templates."""

    queue: str
    dead: str
    retries: tuple[str, ...]
    windows: dict[str, str]  # str(CallWindow) -> its delay queue
    results: str  # the published call results, read back (service/results/published.py)

    @classmethod
    def of(cls, settings: Settings, templates: Templates) -> Names:
        queue = settings.queue
        retries = tuple(f"{queue}.retry.{tier + 1}" for tier in range(len(settings.retry_delays)))
        windows = {str(w): f"{queue}.defer.{w.start:%H%M}" for w in templates.windows()}
        return cls(queue, dead_queue_name(queue), retries, windows, f"{queue}.results")

    def window(self, window: CallWindow) -> str:
        return self.windows[str(window)]

    def all(self) -> list[str]:
        windows = dict.fromkeys(self.windows.values())
        return [self.queue, self.dead, *self.retries, *windows, self.results]


@dataclass(frozen=True, slots=True)
class Topology:
    """What start-up declared."""

    names: Names
    queue: AbstractQueue
    outcomes: AbstractExchange


async def declare(channel: AbstractChannel, settings: Settings, templates: Templates) -> Topology:
    """Declare everything (idempotent) and bind the queue to each template's `event` pattern."""
    names = Names.of(settings, templates)
    topic, durable = aio_pika.ExchangeType.TOPIC, True
    events = await channel.declare_exchange(settings.input_exchange, topic, durable=durable)
    outcomes = await channel.declare_exchange(settings.outcome_exchange, topic, durable=durable)
    queue = await channel.declare_queue(
        names.queue,
        durable=True,
        arguments={
            "x-queue-type": "quorum",
            # Backstop for poison messages: the consumer fails an event itself at this count
            # (with an outcome); the broker dead-letters it if processing never gets that far.
            "x-delivery-limit": settings.delivery_limit,
            "x-dead-letter-exchange": "",
            "x-dead-letter-routing-key": names.dead,
        },
    )
    await channel.declare_queue(names.dead, durable=True, arguments=DEAD_QUEUE_ARGUMENTS)
    back: FieldTable = {"x-dead-letter-exchange": "", "x-dead-letter-routing-key": names.queue}
    for name in [*names.retries, *names.windows.values()]:
        await channel.declare_queue(name, durable=True, arguments=back)
    # and to the suppression list's control events, whatever the templates
    for pattern in (*templates.patterns(), CONTROL_PATTERN):
        await queue.bind(events, routing_key=pattern)
    return Topology(names, queue, outcomes)
