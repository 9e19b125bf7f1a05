"""One pass of a `dead-letters` command over the queue: connect, take, act, settle."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Literal

import aio_pika

from ..amqp.connection import connect_once
from ..amqp.topology import DEAD_QUEUE_ARGUMENTS, dead_queue_name
from ..errors import ConfigError
from ..settings import Settings
from .letters import DeadLetter, Selection
from .queue import DeadQueue, Fate, NotConfirmed

Action = Literal["list", "replay", "purge"]
_FATES = {"list": Fate.KEEP, "replay": Fate.REPLAY, "purge": Fate.REMOVE}
_BROKER_ERRORS = (OSError, TimeoutError, aio_pika.exceptions.AMQPError, NotConfirmed)


@dataclass(slots=True)
class Report:
    """What a pass found and did."""

    queue: str
    total: int = 0  # dead letters on the queue when the pass began
    selected: list[DeadLetter] = field(default_factory=list)
    done: int = 0  # replayed or purged

    @property
    def remaining(self) -> int:
        """Dead letters left of those the pass began with."""
        return self.total - self.done


async def run(
    settings: Settings, selection: Selection, action: Action, *, dry_run: bool = False
) -> Report:
    """List, replay or purge the dead letters `selection` picks; a dry run changes nothing."""
    name = dead_queue_name(settings.queue)
    quorum = DEAD_QUEUE_ARGUMENTS.get("x-queue-type") == "quorum"
    report = Report(name)
    fate = Fate.KEEP if dry_run else _FATES[action]
    try:
        async with connect_once(settings.amqp_urls) as connection:
            exchange = settings.input_exchange
            dead = DeadQueue(connection, name, quorum=quorum, exchange=exchange)
            try:
                await _act(dead, selection, fate, report)
            finally:
                await dead.close()
    except aio_pika.exceptions.ChannelNotFoundEntity as exc:
        raise ConfigError([f"{name}: not found on the broker ({exc.args[-1]})"]) from None
    except _BROKER_ERRORS as exc:
        raise ConfigError([f"{name}: the broker failed during the pass ({exc!r})"]) from None
    return report


async def _act(dead: DeadQueue, selection: Selection, fate: Fate, report: Report) -> None:
    await dead.open()
    report.total = dead.count
    now = datetime.now(UTC)

    def full() -> bool:
        return selection.limit is not None and len(report.selected) >= selection.limit

    def judge(letter: DeadLetter) -> Fate:
        if full() or not selection.matches(letter, now):
            return Fate.KEEP
        report.selected.append(letter)
        return fate

    fates = await dead.sweep(judge, full)
    report.done = sum(1 for _, given in fates if given is not Fate.KEEP)
