"""The one place that acks: publish what an action says, confirmed by the broker; then ack it,
or give the delivery back. The consumer calls the steps in order (publish, hold, ack)."""

from __future__ import annotations

import asyncio
import logging
import time

from aio_pika.abc import AbstractIncomingMessage

from ..amqp.acks import Acks
from ..amqp.headers import replayed_code
from ..amqp.publisher import Publisher
from ..amqp.topology import Names
from ..errors import cancelled_by_channel
from ..metrics import Metrics
from .actions import Action, Delay, Publish, PutBack

log = logging.getLogger("autocall")
REPUBLISH_PAUSE = 1.0  # seconds before a delivery whose publish failed goes back to the broker


class Settler:
    """Carries out each action on its delivery: publish with confirms first, then ack."""

    def __init__(
        self,
        publisher: Publisher,
        names: Names,
        metrics: Metrics,
    ) -> None:
        self._publisher = publisher
        self._names = names
        self._metrics = metrics
        self._acks = Acks()

    def __repr__(self) -> str:
        return f"Settler(queue={self._names.queue!r})"

    async def publish(
        self, delivery: AbstractIncomingMessage, action: Publish | Delay | PutBack
    ) -> bool:
        """Publish what `action` says, confirmed by the broker. False: it could not be, and the
        delivery is given back (a redelivery replays it; the store keeps it from calling twice)."""
        try:
            await self._publish(delivery, action)
        except (Exception, asyncio.CancelledError) as exc:
            if not isinstance(exc, Exception) and not cancelled_by_channel(exc):
                raise
            log.error("cannot publish (%s); the event will be redelivered", _why(exc))
            await asyncio.sleep(REPUBLISH_PAUSE)
            self.requeue(delivery)
            return False
        return True

    def ack(self, delivery: AbstractIncomingMessage, action: Action, started: float) -> None:
        """Ack `delivery`, whose action was carried out, and log its line."""
        # At the end of this loop turn, with the other deliveries finished in it: one ack for
        # each run of them (a failed ack is logged there; a redelivery replays the outcome).
        self._acks.ack(delivery)
        log_event(delivery, action, started)

    def requeue(self, delivery: AbstractIncomingMessage) -> None:
        """Back to the queue, unsettled; a closed channel has already given it back."""
        self._acks.nack(delivery)  # in order with the acks: none may cover it

    async def drain(self) -> None:
        """Send the acks not sent yet (before the channel closes)."""
        await self._acks.drain()

    async def _publish(
        self, delivery: AbstractIncomingMessage, action: Publish | Delay | PutBack
    ) -> None:
        if isinstance(action, Delay):
            await self._publisher.copy(delivery, action.queue, action.headers, action.delay_ms)
            if action.retry:
                self._metrics.retries.inc()
            return
        if isinstance(action, PutBack):
            await self._publisher.copy(delivery, self._names.queue, {})
            return
        outcome = action.outcome
        event_id = str(outcome.event["id"])
        if outcome.error is not None:
            # First, so that whoever sees a failed outcome finds its message already kept.
            await self._publisher.dead_letter(delivery, self._names.dead, outcome)
        await self._publisher.outcome(outcome.body(), outcome.status, event_id)
        self._metrics.outcome(
            outcome.status, outcome.template or "", outcome.account or self._metrics.unrouted
        )
        if outcome.error is not None:
            self._metrics.dead_letter(outcome.error["code"])
        if (replayed := replayed_code(delivery)) is not None:
            self._metrics.replayed(replayed)
        self._metrics.settled()


def _why(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"[:200]


def log_event(delivery: AbstractIncomingMessage, action: Action, started: float) -> None:
    """The one line per settled event, with what became of it and how long that took."""
    if not log.isEnabledFor(logging.INFO):
        return
    duration_ms = round((time.perf_counter() - started) * 1000, 1)
    if isinstance(action, Publish):
        outcome = action.outcome
        extra = {
            "event_id": outcome.event.get("id"),
            "event_type": outcome.event.get("type"),
            "template": outcome.template,
            "status": outcome.status,
            "code": outcome.code or outcome.reason,
            "attempts": outcome.attempts,
            "phone": outcome.phone,
            "account": outcome.account,  # None (left out) before an account was tried
            "failover": ",".join(f"{h['account']}:{h['code']}" for h in outcome.failover or ())
            or None,
            "duration_ms": duration_ms,
        }
        log.info("event %s", outcome.status, extra=extra)
    elif isinstance(action, Delay):
        log.info(
            "event %s for %.1f s",
            "retried" if action.retry else "deferred",
            action.delay_ms / 1000,
            extra={
                "event_id": action.event.id,
                "event_type": action.event.type,
                "code": action.why,
                "queue": action.queue,
                "duration_ms": duration_ms,
            },
        )
    elif isinstance(action, PutBack) and action.holds:
        log.warning(
            "event put back: on hold (%s)",
            action.reason,
            extra={"message_id": delivery.message_id, "duration_ms": duration_ms},
        )
