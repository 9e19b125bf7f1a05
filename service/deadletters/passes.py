"""One pass of a `dead-letters` command over the queue: connect, take, act, settle."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Literal

import aio_pika
from aio_pika.abc import AbstractConnection

from ..amqp.topology import DEAD_QUEUE_ARGUMENTS, dead_queue_name
from ..errors import ConfigError
from ..settings import Settings
from .letters import DeadLetter, Selection
from .queue import DeadQueue, Fate, NotConfirmed

CONNECT_TIMEOUT = 10.0
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
        async with connect(settings) as connection:
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


@asynccontextmanager
async def connect(settings: Settings) -> AsyncIterator[AbstractConnection]:
    """A connection to the first broker node that answers within the timeout."""
    failures = []
    for url in settings.amqp_urls:
        try:
            connection = await asyncio.wait_for(aio_pika.connect(url), CONNECT_TIMEOUT)
        except (OSError, TimeoutError, aio_pika.exceptions.AMQPError) as exc:
            failures.append(_reason(exc))
            continue
        async with connection:
            yield connection
        return
    raise ConfigError([f"AUTOCALL_AMQP_URL: cannot reach the broker ({'; '.join(failures)})"])


def _reason(exc: BaseException) -> str:
    """Why a connection failed, without the URL (it carries the password)."""
    if isinstance(exc, TimeoutError):
        return f"no answer in {CONNECT_TIMEOUT:g} s"
    if isinstance(exc, aio_pika.exceptions.ProbableAuthenticationError):
        return "credentials refused"
    return type(exc).__name__ + (f": {exc.strerror}" if isinstance(exc, OSError) else "")
