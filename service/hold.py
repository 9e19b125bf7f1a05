"""`on_exhausted: hold`: stop consuming when the balance or the day's TTS budget runs out, probe
with one event at a time, and consume again once a probe's call is accepted."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from datetime import datetime
from typing import Literal, Protocol

from aio_pika.abc import AbstractIncomingMessage, AbstractQueue

from .budget import next_midnight
from .errors import cancelled_by_channel
from .metrics import Metrics

log = logging.getLogger("autocall")
ProbeResult = Literal["accepted", "held", "other"]


class Probed(Protocol):
    """What a hold needs of the consumer."""

    queue: AbstractQueue

    async def pause(self) -> None: ...

    async def resume(self) -> None: ...

    async def probe(self, message: AbstractIncomingMessage) -> ProbeResult: ...


class Hold:
    """The hold of one consumer. While active, only the probe's message is processed."""

    def __init__(
        self,
        consumer: Probed,
        interval: float,
        metrics: Metrics,
        clock: Callable[[], datetime],
    ) -> None:
        self._consumer = consumer
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
        return self.reason is not None

    def probing(self, message: AbstractIncomingMessage) -> bool:
        return message is self._probe

    async def start(self, reason: str) -> None:
        """Hold consuming for `reason` (balance_is_not_enough or limit_word)."""
        if self.reason is not None:
            self._set(reason)
            return
        self._set(reason)
        log.warning("consuming held: %s; probing every %g s", reason, self._interval)
        await self._consumer.pause()
        self._task = asyncio.create_task(self._probe_until_accepted(), name="hold-probe")

    async def stop(self, *, force: bool = False) -> None:
        """No more probes; a probe in flight is left to finish unless `force`."""
        self._closing = True
        if self._task is not None and (force or self._probe is None):
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _probe_until_accepted(self) -> None:
        await self._wait()
        while not self._closing:
            try:
                result = await self._probe_one()
            except (Exception, asyncio.CancelledError) as exc:
                if not isinstance(exc, Exception) and not cancelled_by_channel(exc):
                    raise
                # e.g. the broker is away: the hold goes on, probing later
                log.warning("hold probe failed (%s); trying again later", type(exc).__name__)
                result = "held"
            if result == "accepted":
                break
            if result in ("held", "empty"):
                await self._wait()
            # "other" (a skip, another failure) proves nothing either way: probe the next event
        if self._closing:
            return
        log.warning("hold released: a probe call was accepted; consuming again")
        self._set(None)
        self._task = None
        await self._consumer.resume()

    async def _probe_one(self) -> ProbeResult | Literal["empty"]:
        message = await self._consumer.queue.get(no_ack=False, fail=False)
        if message is None:
            return "empty"
        self._probe = message
        try:
            return await self._consumer.probe(message)
        finally:
            self._probe = None

    async def _wait(self) -> None:
        """The probe interval; for the day's budget, no earlier than local midnight."""
        delay = self._interval
        if self.reason == "limit_word":
            until_midnight = (next_midnight(self._clock()) - self._clock()).total_seconds()
            delay = max(delay, until_midnight)
        await asyncio.sleep(delay)

    def _set(self, reason: str | None) -> None:
        for known in ("balance_is_not_enough", "limit_word"):
            self._metrics.paused.labels(known).set(1 if known == reason else 0)
        self.reason = reason
