"""Exchanges and queues: the input and outcome exchanges, the quorum queue, its dead letters,
the retry tiers and the call-window delays (messages wait there by TTL, then dead-letter back).

Every queue is a quorum queue, so that each survives the loss of a minority of a cluster's nodes;
where the broker moves messages (a delay queue back to the main queue) it does so at least once.
"""

from __future__ import annotations

from dataclasses import dataclass

import aio_pika
from aio_pika.abc import AbstractChannel, AbstractQueue
from aiormq.exceptions import ChannelPreconditionFailed
from pamqp.common import FieldTable

from ..errors import ConfigError
from ..settings import Settings
from ..suppression.changes import CONTROL_PATTERN
from ..templates import CallWindow, Templates

# How `<queue>.dead` is declared. `dead-letters` reads it to learn the queue's type: a quorum
# queue does not keep the order of requeued messages, so they are put back another way.
DEAD_QUEUE_ARGUMENTS: FieldTable = {"x-queue-type": "quorum"}


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
    held: str = ""  # where a held account's events wait (several accounts, CONTRACT.md §13)

    @classmethod
    def of(cls, settings: Settings, templates: Templates) -> Names:
        queue = settings.queue
        retries = tuple(f"{queue}.retry.{tier + 1}" for tier in range(len(settings.retry_delays)))
        windows = {str(w): f"{queue}.defer.{w.start:%H%M}" for w in templates.windows()}
        results, held = f"{queue}.results", f"{queue}.held"
        return cls(queue, dead_queue_name(queue), retries, windows, results, held)

    def window(self, window: CallWindow) -> str:
        return self.windows[str(window)]

    def all(self) -> list[str]:
        windows = dict.fromkeys(self.windows.values())
        return [self.queue, self.dead, *self.retries, *windows, self.results, self.held]


@dataclass(frozen=True, slots=True)
class Topology:
    """What start-up declared."""

    names: Names
    queue: AbstractQueue


async def declare(channel: AbstractChannel, settings: Settings, templates: Templates) -> Topology:
    """Declare everything (idempotent) and bind the queue to each template's `event` pattern."""
    names = Names.of(settings, templates)
    topic, durable = aio_pika.ExchangeType.TOPIC, True
    events = await channel.declare_exchange(settings.input_exchange, topic, durable=durable)
    await channel.declare_exchange(settings.outcome_exchange, topic, durable=durable)
    backstop: FieldTable = {
        # Backstop for poison messages: the consumer fails an event itself at this count
        # (with an outcome); the broker dead-letters it if processing never gets that far.
        "x-delivery-limit": settings.delivery_limit,
        "x-dead-letter-exchange": "",
        "x-dead-letter-routing-key": names.dead,
    }
    queue = await _quorum(channel, names.queue, backstop)
    await _declare(channel, names.dead, DEAD_QUEUE_ARGUMENTS)
    for name in [*names.retries, *names.windows.values(), names.held]:
        await _quorum(channel, name, _back_to(names.queue))
    # and to the suppression list's control events, whatever the templates
    for pattern in (*templates.patterns(), CONTROL_PATTERN):
        await queue.bind(events, routing_key=pattern)
    return Topology(names, queue)


def _back_to(queue: str) -> FieldTable:
    """A delay queue's arguments: expired messages go back to `queue`, at least once (the broker
    keeps each until the main queue confirms it, which needs reject-publish on overflow)."""
    return {
        "x-dead-letter-exchange": "",
        "x-dead-letter-routing-key": queue,
        "x-dead-letter-strategy": "at-least-once",
        "x-overflow": "reject-publish",
    }


async def _quorum(channel: AbstractChannel, name: str, arguments: FieldTable) -> AbstractQueue:
    """Declare a durable quorum queue."""
    return await _declare(channel, name, {"x-queue-type": "quorum", **arguments})


async def _declare(channel: AbstractChannel, name: str, arguments: FieldTable) -> AbstractQueue:
    """Declare a durable queue; a queue of that name with other arguments (one declared by an
    earlier version, classic or at-most-once) stops start-up with what to do."""
    try:
        return await channel.declare_queue(name, durable=True, arguments=arguments)
    except ChannelPreconditionFailed as exc:
        raise ConfigError(
            [
                f"queue {name!r}: the broker has it with other arguments ({exc.args[0]}); "
                "an earlier version declared it as a classic queue. Migrate it to a quorum "
                "queue: stop every replica, move its messages, delete it, start again "
                "(README, 'Migrating to quorum queues')"
            ]
        ) from None
