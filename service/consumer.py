"""The data path: consume → decode → route → render → call → publish → ack."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from aio_pika.abc import AbstractIncomingMessage

from .budget import Budget
from .errors import (
    EXHAUSTION_CODES,
    AutocallError,
    DeliveryLimit,
    OutcomeUnknown,
    QuotaExceeded,
    StoreUnavailable,
    cancelled_by_channel,
)
from .events import Event, Message, decode, identity_of
from .hold import Hold, ProbeResult
from .metrics import Metrics
from .outcomes import ATTEMPT_HEADER, Outcome, Publisher, attempts_of, routing_key_of
from .provider import Provider
from .render import Call, Defer, Fail, Skip, decide
from .settings import Settings
from .store import Claim, Reservation, State, Store
from .templates import Templates
from .topology import Topology

log = logging.getLogger("autocall")
RETRIES_HEADER = "x-autocall-retries"
BUSY_WAIT = 0.2  # seconds between looks at a key another delivery of the same event holds


@dataclass(slots=True)
class Publish:
    """Publish the outcome (and dead-letter a failure), then ack."""

    outcome: Outcome


@dataclass(slots=True)
class Delay:
    """Park a copy in a delay queue (a retry tier or a call window), then ack."""

    queue: str
    delay_ms: int
    why: str  # for the log line: "call_window 08:00-21:00" or the retried failure's code
    event: Event
    headers: dict[str, Any] = field(default_factory=dict)
    retry: bool = False


@dataclass(slots=True)
class Held:
    """Put a copy back on the queue and hold consuming, then ack."""

    reason: str


Action = Publish | Delay | Held


class Consumer:
    """Consumes the queue; each message's outcome is confirmed by the broker before its ack."""

    def __init__(
        self,
        settings: Settings,
        *,
        templates: Templates,
        topology: Topology,
        store: Store,
        provider: Provider,
        publisher: Publisher,
        metrics: Metrics,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.settings = settings
        self.templates = templates
        self.names = topology.names
        self.queue = topology.queue
        self.store = store
        self.provider = provider
        self.publisher = publisher
        self.metrics = metrics
        self.clock = clock
        self.budget = Budget(store, settings.tts_daily_limit, metrics, clock)
        self.hold = Hold(self, settings.hold_probe_interval, metrics, clock)
        self._slots = asyncio.Semaphore(settings.concurrency)
        self._tasks: set[asyncio.Task[Any]] = set()  # in flight
        self._owned: set[asyncio.Task[Any]] = set()  # every delivery's task, waiting or not
        self._idle = asyncio.Event()
        self._idle.set()
        self._tag: str | None = None
        self._stopping = False

    def __repr__(self) -> str:
        return f"Consumer(queue={self.names.queue!r}, inflight={len(self._tasks)})"

    @property
    def consuming(self) -> bool:
        """Whether our consumer is registered (or deliberately on hold)."""
        return self._tag is not None or self.hold.active

    async def start(self) -> None:
        await self.budget.refresh()
        await self.resume()

    async def resume(self) -> None:
        if self._tag is None and not self._stopping:
            self._tag = await self.queue.consume(self._dispatch)

    async def pause(self) -> None:
        tag, self._tag = self._tag, None
        if tag is not None:
            with contextlib.suppress(Exception):  # a closed channel has no consumer to cancel
                await self.queue.cancel(tag)

    async def stop(self, grace: float) -> None:
        """Stop consuming; let in-flight events finish for `grace` seconds, then cancel the rest:
        they are redelivered, and one cancelled once its key was claimed (its request may have
        left) is reported outcome_unknown rather than called again."""
        self._stopping = True
        await self.hold.stop()
        await self.pause()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._idle.wait(), grace)
        await self.hold.stop(force=True)
        leftover = list(self._owned)  # in flight past the grace, or still waiting for a slot
        for task in leftover:
            task.cancel()
        await asyncio.gather(*leftover, return_exceptions=True)

    async def _dispatch(self, message: AbstractIncomingMessage) -> None:
        """The consume callback: hands the delivery to a task of our own and returns. The broker
        client cancels its delivery tasks when a channel closes, and a provider call already
        out must finish."""
        self._start(message)

    async def handle(self, message: AbstractIncomingMessage) -> Action | None:
        """One delivery, start to finish (shielded from the caller's cancellation, as above)."""
        return await asyncio.shield(self._start(message))

    def _start(self, message: AbstractIncomingMessage) -> asyncio.Task[Action | None]:
        task = asyncio.create_task(self._handle(message))
        self._owned.add(task)
        task.add_done_callback(self._owned.discard)
        return task

    async def _handle(self, message: AbstractIncomingMessage) -> Action | None:
        async with self._slots:
            if self._stopping:
                await self._return(message)
                return None
            if self.hold.active and not self.hold.probing(message):
                await self._put_back(message)
                return None
            task = asyncio.current_task()
            assert task is not None
            self._enter(task)
            try:
                return await self._process_and_settle(message)
            finally:
                self._leave(task)

    async def _process_and_settle(self, message: AbstractIncomingMessage) -> Action | None:
        started = time.perf_counter()
        try:
            action = await self.process(message)
        except Exception:
            # A bug, not bad input: the event goes back; the delivery limit ends it with an
            # outcome if it keeps failing.
            log.exception("processing failed unexpectedly; returning the event")
            await self._return(message)
            return None
        await self.settle(message, action, started)
        return action

    async def probe(self, message: AbstractIncomingMessage) -> ProbeResult:
        """Process one event while on hold: did its call get accepted?"""
        action = await self.handle(message)
        if isinstance(action, Held):
            return "held"
        accepted = isinstance(action, Publish) and action.outcome.status == "accepted"
        return "accepted" if accepted else "other"

    async def process(self, message: AbstractIncomingMessage) -> Action:
        """What to do with a message; every failure becomes a `failed` outcome here."""
        self.metrics.events_received.inc()
        raw = _message(message)
        now = self.clock()
        try:
            self._check_deliveries(message)
            event = decode(raw, self.settings.max_event_bytes)
        except AutocallError as exc:
            return Publish(Outcome.failed(identity_of(raw), exc, now))
        decision = decide(self.templates, event, now)
        if isinstance(decision, Skip):
            return Publish(Outcome.skipped(event.identity, decision.reason, now))
        if isinstance(decision, Fail):
            failed = Outcome.failed(event.identity, decision.error, now, template=decision.template)
            return Publish(failed)
        if isinstance(decision, Defer):
            wait = (decision.until - now).total_seconds()
            queue = self.names.window(decision.window)
            why = f"call_window {decision.window}"
            return Delay(queue, max(1, int(wait * 1000)), why, event)
        try:
            return await self.call(decision, message)
        except StoreUnavailable as exc:
            return self._retry_or_fail(decision, exc, message, attempts_of(message))

    async def call(self, call: Call, message: AbstractIncomingMessage) -> Action:
        """Claim the idempotency key with the call's TTS characters, then call once."""
        attempts = attempts_of(message)
        reservation = self.budget.ask(call.tts_chars)
        claim = await self.store.claim(call.idempotency_key, call.event.id, reservation)
        if claim.state is State.BUSY and claim.event_id == call.event.id:
            claim = await self._wait_for(call, reservation)
        try:
            self.budget.check(reservation, claim)
        except QuotaExceeded as exc:
            return self._after_failure(call, exc, message, attempts)
        if claim.state is not State.NEW:
            return await self._claimed(call, claim, attempts)
        # From here the request may leave at any moment: cancelled or not, the key stays taken
        # unless the provider says no call was made.
        try:
            accepted = await self.provider.execute(call.request)
        except OutcomeUnknown as exc:
            now = self.clock()
            unknown = Outcome.failed(
                call.event.identity, exc, now, call=call, attempts=attempts + 1
            )
            return await self._complete(unknown)
        except AutocallError as exc:
            await self.budget.refund(reservation)
            await self.store.release(call.idempotency_key)
            return self._after_failure(call, exc, message, attempts + 1)
        outcome = Outcome.accepted(call, accepted.autocall_id, attempts + 1, self.clock())
        return await self._complete(outcome)

    async def settle(
        self, message: AbstractIncomingMessage, action: Action, started: float
    ) -> None:
        """The one place that acks: after the broker confirmed what the action publishes."""
        try:
            await self._publish(message, action)
        except (Exception, asyncio.CancelledError) as exc:
            if not isinstance(exc, Exception) and not cancelled_by_channel(exc):
                raise
            # Not acked: it comes back, and the store keeps a redelivery from calling twice.
            log.error("cannot publish (%s); the event will be redelivered", _why(exc))
            await asyncio.sleep(1)
            with contextlib.suppress(Exception):
                await message.nack(requeue=True)
            return
        try:
            await message.ack()
        except Exception as exc:
            log.warning("cannot ack (%s); a redelivery will replay the outcome", _why(exc))
        self._log(message, action, started)

    async def _publish(self, message: AbstractIncomingMessage, action: Action) -> None:
        if isinstance(action, Delay):
            await self.publisher.copy(message, action.queue, action.headers, action.delay_ms)
            if action.retry:
                self.metrics.retries.inc()
            return
        if isinstance(action, Held):
            await self.publisher.copy(message, self.names.queue, {})
            await self.hold.start(action.reason)
            return
        outcome = action.outcome
        body = outcome.body()
        event_id = str(outcome.event["id"])
        if outcome.error is not None:
            # First, so that whoever sees a failed outcome finds its message already kept.
            await self.publisher.dead_letter(message, self.names.dead, outcome.error, event_id)
        await self.publisher.outcome(body, outcome.status, event_id)
        self.metrics.outcome(outcome.status, outcome.template or "")
        if outcome.error is not None:
            self.metrics.dead_letter(outcome.error["code"])
        self.metrics.settled()

    def _after_failure(
        self, call: Call, exc: AutocallError, message: AbstractIncomingMessage, attempts: int
    ) -> Action:
        self.metrics.failure(exc)
        if exc.code in EXHAUSTION_CODES and call.holds:
            return Held(exc.code)
        if exc.retryable:
            return self._retry_or_fail(call, exc, message, attempts)
        return Publish(
            Outcome.failed(call.event.identity, exc, self.clock(), call=call, attempts=attempts)
        )

    def _retry_or_fail(
        self, call: Call, exc: AutocallError, message: AbstractIncomingMessage, attempts: int
    ) -> Action:
        retries = (message.headers or {}).get(RETRIES_HEADER, 0)
        retries = retries if isinstance(retries, int) else 0
        delays = self.settings.retry_delays
        if retries >= len(delays):
            outcome = Outcome.failed(
                call.event.identity, exc, self.clock(), call=call, attempts=attempts
            )
            return Publish(outcome)
        jitter = random.uniform(0.8, 1.2)  # spreads a burst of retries over the tier's window
        headers = {RETRIES_HEADER: retries + 1, ATTEMPT_HEADER: attempts}
        delay_ms = max(1, int(delays[retries] * jitter * 1000))
        queue = self.names.retries[retries]
        return Delay(queue, delay_ms, exc.code, call.event, headers, retry=True)

    async def _claimed(self, call: Call, claim: Claim, attempts: int) -> Action:
        now = self.clock()
        if claim.event_id != call.event.id:
            return Publish(Outcome.skipped(call.event.identity, "duplicate", now, call=call))
        if claim.state is State.DONE and claim.outcome is not None:
            return Publish(Outcome.replay(claim.outcome, call))
        unknown = OutcomeUnknown(
            "an earlier delivery of this event was calling when its process stopped; "
            "the call may have been made, so it is not made again"
        )
        failed = Outcome.failed(call.event.identity, unknown, now, call=call, attempts=attempts + 1)
        return await self._complete(failed)

    async def _complete(self, outcome: Outcome) -> Publish:
        """Mark the key done with this outcome, so a redelivery replays it instead of calling."""
        key = outcome.idempotency_key or ""
        try:
            await self.store.complete(key, str(outcome.event["id"]), outcome.record())
        except StoreUnavailable as exc:
            # The call is made either way: report it. The claim stays, so no one calls again.
            log.warning("cannot mark %s done: %s", outcome.event["id"], exc.message)
        return Publish(outcome)

    async def _wait_for(self, call: Call, reservation: Reservation | None) -> Claim:
        """The same event is being processed by another delivery (after a broker reconnect):
        wait until that one finishes rather than report it twice or call again."""
        deadline = (
            time.monotonic() + self.settings.api_timeout * 2 + self.settings.api_connect_timeout
        )
        claim = Claim(State.BUSY, call.event.id)
        while claim.state is State.BUSY and time.monotonic() < deadline:
            await asyncio.sleep(BUSY_WAIT)
            claim = await self.store.claim(call.idempotency_key, call.event.id, reservation)
        return claim

    def _check_deliveries(self, message: AbstractIncomingMessage) -> None:
        count = (message.headers or {}).get("x-delivery-count", 0)
        if isinstance(count, int) and count >= self.settings.delivery_limit:
            raise DeliveryLimit(
                f"delivered {count + 1} times without finishing; processing it keeps failing"
            )

    async def _return(self, message: AbstractIncomingMessage) -> None:
        """Shutting down: the delivery goes back to the queue."""
        with contextlib.suppress(Exception):
            await message.nack(requeue=True)

    async def _put_back(self, message: AbstractIncomingMessage) -> None:
        """On hold: a copy goes to the back of the queue, so long holds do not count as failed
        deliveries (a requeue would, towards the delivery limit)."""
        try:
            await self.publisher.copy(message, self.names.queue, {})
            await message.ack()
        except Exception:
            await self._return(message)

    def _enter(self, task: asyncio.Task[Any]) -> None:
        """`task` is in flight: counted for the drain, /readyz and the metric."""
        self._tasks.add(task)
        self._idle.clear()
        self.metrics.inflight.inc()

    def _leave(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        self.metrics.inflight.dec()
        if not self._tasks:
            self._idle.set()

    def _log(self, message: AbstractIncomingMessage, action: Action, started: float) -> None:
        if not log.isEnabledFor(logging.INFO):
            return
        duration_ms = round((time.perf_counter() - started) * 1000, 1)
        if isinstance(action, Publish):
            outcome = action.outcome
            log.info(
                "event %s",
                outcome.status,
                extra={
                    "event_id": outcome.event.get("id"),
                    "event_type": outcome.event.get("type"),
                    "template": outcome.template,
                    "status": outcome.status,
                    "code": outcome.code or outcome.reason,
                    "attempts": outcome.attempts,
                    "phone": outcome.phone,
                    "duration_ms": duration_ms,
                },
            )
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
        else:
            log.warning(
                "event put back: on hold (%s)",
                action.reason,
                extra={"message_id": message.message_id, "duration_ms": duration_ms},
            )


def _message(message: AbstractIncomingMessage) -> Message:
    return Message(
        body=message.body,
        routing_key=routing_key_of(message),
        content_type=message.content_type,
        type=message.type,
        message_id=message.message_id,
        timestamp=message.timestamp,
        headers=message.headers or {},
    )


def _why(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"[:200]
