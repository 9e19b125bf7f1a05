"""The data path: consume → decode → route → render → call → publish → ack."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime

from aio_pika.abc import AbstractIncomingMessage

from .. import tracing
from ..amqp.headers import attempts_of, check_deliveries, message_of, origin_of, retries_of
from ..amqp.publisher import Publisher
from ..amqp.topology import Topology
from ..errors import AutocallError
from ..events import Event, decode, identity_of
from ..metrics import Metrics
from ..render import Call, Defer, Fail, Skip, decide
from ..settings import Settings
from ..stopping import bounded
from ..suppression import CONTROL_TYPES
from ..templates import Templates
from .actions import Action, Delay, Publish, PutBack, Requeue
from .caller import Caller
from .control import Control
from .failover import NotCalled
from .hold import Hold, ProbeResult
from .outcomes import Outcome
from .retry import Retry
from .settle import Settler

log = logging.getLogger("autocall")


class Consumer:
    """Consumes the queue; each message's outcome is confirmed by the broker before its ack."""

    def __init__(
        self,
        settings: Settings,
        *,
        templates: Templates,
        topology: Topology,
        caller: Caller,
        publisher: Publisher,
        hold: Hold,
        metrics: Metrics,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.templates = templates
        self.names = topology.names
        self.queue = topology.queue
        self.caller = caller
        self.hold = hold
        self.metrics = metrics
        self.clock = clock
        self.retry = Retry(settings.retry_delays, self.names.retries)
        self.control = Control(caller.store, self.retry, metrics)
        self.settler = Settler(publisher, self.names, metrics)
        self._max_event_bytes = settings.max_event_bytes
        self._delivery_limit = settings.delivery_limit
        self._slots = asyncio.Semaphore(settings.concurrency)
        self._inflight_count = 0
        self._owned: set[asyncio.Task[Action]] = set()  # every delivery's task, waiting or not
        self._idle = asyncio.Event()
        self._idle.set()
        self._tag: str | None = None
        self._stopping = False

    def __repr__(self) -> str:
        return f"Consumer(queue={self.names.queue!r}, inflight={self._inflight_count})"

    @property
    def consuming(self) -> bool:
        """Whether our consumer is registered (or deliberately on hold)."""
        return self._tag is not None or self.hold.active

    async def resume(self) -> None:
        """Consume the queue (again), unless stopping."""
        if self._tag is None and not self._stopping:
            self._tag = await self.queue.consume(self._dispatch)

    async def pause(self) -> None:
        """Stop taking deliveries; those already taken go on."""
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
            async with asyncio.timeout(grace):
                await self._idle.wait()
        await self.hold.stop(force=True)
        leftover = list(self._owned)  # in flight past the grace, or still waiting for a slot
        for task in leftover:
            task.cancel()
        await bounded(asyncio.gather(*leftover, return_exceptions=True), "cancelled events")
        await bounded(self.settler.drain(), "the last acks")

    async def _dispatch(self, delivery: AbstractIncomingMessage) -> None:
        """The consume callback: hands the delivery to a task of our own and returns. The broker
        client cancels its delivery tasks when a channel closes, and a provider call already
        out must finish."""
        self._own(delivery)

    def _own(self, delivery: AbstractIncomingMessage) -> asyncio.Task[Action]:
        task = asyncio.create_task(self._take_slot(delivery))
        self._owned.add(task)
        task.add_done_callback(self._owned.discard)
        return task

    async def _take_slot(self, delivery: AbstractIncomingMessage) -> Action:
        """Waits for a slot; then the delivery goes back (stopping, on hold) or is processed."""
        async with self._slots:
            started = time.perf_counter()
            if self._stopping:
                action: Action = Requeue()
            elif self.hold.reason is not None and not self.hold.probing(delivery):
                action = PutBack(self.hold.reason)
            else:
                processing = self._process_and_settle
                return await tracing.consumed(processing, delivery, started, origin_of)
            await self._settle(delivery, action, started)
            return action

    async def _process_and_settle(
        self, delivery: AbstractIncomingMessage, started: float
    ) -> Action:
        """Processed, then settled: counted in flight all along."""
        async with self._inflight():
            try:
                action = await self.process(delivery)
            except Exception:
                # A bug, not bad input: the event goes back; the delivery limit ends it with an
                # outcome if it keeps failing.
                log.exception("processing failed unexpectedly; returning the event")
                action = Requeue()
            await self._settle(delivery, action, started)
            return action

    async def _settle(
        self, delivery: AbstractIncomingMessage, action: Action, started: float
    ) -> None:
        """The settle order, in one place: publish what `action` says (confirmed by the broker),
        then hold consuming if it says so, then ack; a delivery not published goes back."""
        if isinstance(action, Requeue):
            self.settler.requeue(delivery)
            return
        if not await self.settler.publish(delivery, action):
            return  # given back: it comes again
        if isinstance(action, PutBack) and action.holds:
            await self._hold(action.reason)  # before the put-back copy's original is acked
        self.settler.ack(delivery, action, started)

    async def process(self, delivery: AbstractIncomingMessage) -> Action:
        """What to do with a delivery; every failure becomes a `failed` outcome here."""
        self.metrics.events_received.inc()
        message = message_of(delivery)
        now = self.clock()
        try:
            check_deliveries(delivery, self._delivery_limit)
            event = decode(message, self._max_event_bytes)
        except AutocallError as exc:
            return Publish(Outcome.failed(identity_of(message), exc, now))
        if event.type in CONTROL_TYPES:
            return await self.control.apply(event, retries_of(delivery), now)
        decision = decide(self.templates, event, now)
        if not isinstance(decision, Call):
            return self._without_call(event, decision, now)
        called = await self.caller.call(decision, attempts_of(delivery))
        if isinstance(called, Outcome):
            return Publish(called)
        return self._after(called, decision, retries_of(delivery))

    def _without_call(self, event: Event, decision: Skip | Fail | Defer, now: datetime) -> Action:
        """A skip or a failure is published; a deferred event waits for its call window."""
        if isinstance(decision, Skip):
            return Publish(Outcome.skipped(event.identity, decision.reason, now))
        if isinstance(decision, Fail):
            failed = Outcome.failed(event.identity, decision.error, now, template=decision.template)
            return Publish(failed)
        wait = (decision.until - now).total_seconds()
        queue = self.names.window(decision.window)
        why = f"call_window {decision.window}"
        return Delay(queue, max(1, int(wait * 1000)), why, event)

    def _after(self, failure: NotCalled, call: Call, retries: int) -> Action:
        """No call was made: hold, retry or fail, as the retry policy says; with several
        accounts, a hold is the account's own and its events wait on the hold queue."""
        account = failure.account or self.metrics.unrouted
        if failure.parked_ms:  # nothing tried: no attempt, no outcome; routed again on return
            # At most a probe interval, as for a held account: the queue expires at its head.
            wait = min(failure.parked_ms, max(1, int(self.caller.holds.interval * 1000)))
            return Delay(self.names.held, wait, f"slowed {failure.error.code}", call.event)
        if not failure.waiting:
            self.metrics.failure(failure.error, account)
        now = self.clock()
        action = self.retry.after(failure.error, call, failure.attempts, retries, now)
        holds = self.caller.holds
        by_account = failure.account is not None and self.caller.registry.many
        if isinstance(action, PutBack) and action.holds and by_account:
            if not failure.waiting:
                holds.hold(account, failure.error.code)
            why = f"held {holds.reason(account) or failure.error.code}"
            return Delay(self.names.held, holds.delay_ms(account), why, call.event)
        live = self.caller.registry.get(account) if failure.account else None
        if isinstance(action, Publish) and live is not None:
            hops = [hop.as_json() for hop in failure.hops]
            action.outcome.via(live.name, live.provider, hops)
        return action

    async def _hold(self, reason: str) -> None:
        """Hold consuming for `reason` (or go on holding)."""
        if self.hold.start(reason, self.queue, self._probe, self.resume):
            await self.pause()

    async def _probe(self, delivery: AbstractIncomingMessage) -> ProbeResult:
        """Process one event while on hold: did its call get accepted?"""
        # shielded, like every delivery: a provider call already out must finish
        action = await asyncio.shield(self._own(delivery))
        if isinstance(action, PutBack):
            return ProbeResult.HELD
        accepted = isinstance(action, Publish) and action.outcome.status == "accepted"
        return ProbeResult.ACCEPTED if accepted else ProbeResult.OTHER

    @contextlib.asynccontextmanager
    async def _inflight(self) -> AsyncIterator[None]:
        """Counted in flight: for the drain, /readyz and the metric."""
        self._inflight_count += 1
        self._idle.clear()
        self.metrics.inflight.inc()
        try:
            yield
        finally:
            self._inflight_count -= 1
            self.metrics.inflight.dec()
            if self._inflight_count == 0:
                self._idle.set()
