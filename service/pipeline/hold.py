"""`on_exhausted: hold`: stop consuming when the balance or the day's TTS budget runs out, probe
with one event at a time, and consume again once a probe's call is accepted."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from datetime import datetime
from enum import Enum

from aio_pika.abc import AbstractIncomingMessage, AbstractQueue

from ..errors import EXHAUSTION_CODES, cancelled_by_channel
from ..metrics import Metrics
from ..settings import DEFAULT_ACCOUNT
from ..stopping import cancel
from .holds import hold_seconds

log = logging.getLogger("autocall")


class ProbeResult(Enum):
    """What one probe showed."""

    ACCEPTED = "accepted"  # its call went through: consume again
    HELD = "held"  # put back again: still exhausted (or the probe itself failed)
    OTHER = "other"  # a skip or another failure proves nothing either way: probe the next
    EMPTY = "empty"  # nothing on the queue to probe with


Probe = Callable[[AbstractIncomingMessage], Awaitable[ProbeResult]]
Resume = Callable[[], Awaitable[None]]


class Hold:
    """The hold of one consumer. While active, only the probe's message is processed."""

    def __init__(
        self,
        interval: float,
        metrics: Metrics,
        clock: Callable[[], datetime],
        account: str = DEFAULT_ACCOUNT,
    ) -> None:
        self.account = account  # the one account whose hold this is
        self._interval = interval
        self._metrics = metrics
        self._clock = clock
        self.reason: str | None = None
        self._probe: AbstractIncomingMessage | None = None
        self._task: asyncio.Task[None] | None = None
        self._closing = False

    def __repr__(self) -> str:
        return f"Hold(reason={self.reason!r})"

    @property
    def active(self) -> bool:
        """Whether consuming is held."""
        return self.reason is not None

    def probing(self, message: AbstractIncomingMessage) -> bool:
        """Whether `message` is the probe (the one event processed while held)."""
        return message is self._probe

    def start(self, reason: str, queue: AbstractQueue, probe: Probe, resume: Resume) -> bool:
        """Hold for `reason` (an exhaustion code): probe with events from `queue` until `probe`
        says ACCEPTED, then `resume`. True when this starts a hold; False when one is on."""
        started = self.reason is None
        self._set(reason)
        if started:
            log.warning("consuming held: %s; probing every %g s", reason, self._interval)
            probing = self._probe_until_accepted(queue, probe, resume)
            self._task = asyncio.create_task(probing, name="hold-probe")
        return started

    async def stop(self, *, force: bool = False) -> None:
        """No more probes; a probe in flight is left to finish unless `force`."""
        self._closing = True
        if self._task is not None and (force or self._probe is None):
            await cancel(self._task)

    def wait_seconds(self) -> float:
        """Until the next probe: the interval; for the day's budget, no earlier than midnight."""
        return hold_seconds(self.reason or "", self._interval, self._clock())

    async def _probe_until_accepted(
        self, queue: AbstractQueue, probe: Probe, resume: Resume
    ) -> None:
        result = ProbeResult.HELD
        while not self._closing and result is not ProbeResult.ACCEPTED:
            if result in (ProbeResult.HELD, ProbeResult.EMPTY):
                await asyncio.sleep(self.wait_seconds())
            if not self._closing:
                result = await self._probe_one(queue, probe)
        if self._closing:
            return
        log.warning("hold released: a probe call was accepted; consuming again")
        self._set(None)
        self._task = None
        await resume()

    async def _probe_one(self, queue: AbstractQueue, probe: Probe) -> ProbeResult:
        try:
            message = await queue.get(no_ack=False, fail=False)
            if message is None:
                return ProbeResult.EMPTY
            self._probe = message
            return await probe(message)
        except (Exception, asyncio.CancelledError) as exc:
            if not isinstance(exc, Exception) and not cancelled_by_channel(exc):
                raise
            # e.g. the broker is away: the hold goes on, probing later
            log.warning("hold probe failed (%s); trying again later", type(exc).__name__)
            return ProbeResult.HELD
        finally:
            self._probe = None

    def _set(self, reason: str | None) -> None:
        for known in sorted(EXHAUSTION_CODES):
            self._metrics.paused.labels(known).set(1 if known == reason else 0)
        self._metrics.held(self.account, reason)
        self.reason = reason
