"""The hold, without a broker: probes one event at a time and resumes once a call is accepted."""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta
from typing import Any, cast

from aio_pika.abc import AbstractIncomingMessage, AbstractQueue

from service.metrics import Metrics
from service.pipeline.hold import Hold, ProbeResult
from service.templates.filters import LOCAL_TZ

NOON = datetime(2026, 11, 27, 12, 0, tzinfo=LOCAL_TZ)


class Queue:
    """Hands out the messages it was given, then None (an empty queue)."""

    def __init__(self, count: int) -> None:
        self.messages = [cast(AbstractIncomingMessage, object()) for _ in range(count)]
        self.taken = 0

    async def get(self, **_: Any) -> AbstractIncomingMessage | None:
        if self.taken == len(self.messages):
            return None
        self.taken += 1
        return self.messages[self.taken - 1]


class Probes:
    """Answers each probe from a script and records what the hold asked."""

    def __init__(self, hold: Hold, *answers: ProbeResult | Exception) -> None:
        self.hold = hold
        self.answers = list(answers)
        self.probed: list[AbstractIncomingMessage] = []
        self.resumed = asyncio.Event()

    async def probe(self, message: AbstractIncomingMessage) -> ProbeResult:
        assert self.hold.probing(message)  # only the probe is processed while held
        self.probed.append(message)
        answer = self.answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer

    async def resume(self) -> None:
        self.resumed.set()


def paused(metrics: Metrics, reason: str) -> float | None:
    return metrics.registry.get_sample_value("autocall_consumer_paused", {"reason": reason})


async def test_probes_until_a_call_is_accepted_then_resumes() -> None:
    metrics = Metrics()
    hold = Hold(0.0, metrics, lambda: NOON)
    probes = Probes(hold, ProbeResult.HELD, ProbeResult.OTHER, ProbeResult.ACCEPTED)
    queue = Queue(3)

    started = hold.start(
        "balance_is_not_enough", cast(AbstractQueue, queue), probes.probe, probes.resume
    )

    assert started is True
    assert hold.active and hold.reason == "balance_is_not_enough"
    assert paused(metrics, "balance_is_not_enough") == 1
    async with asyncio.timeout(5):
        await probes.resumed.wait()
    assert probes.probed == queue.messages  # one at a time, in order
    assert not hold.active
    assert paused(metrics, "balance_is_not_enough") == 0


async def test_a_second_reason_changes_the_hold_without_starting_another() -> None:
    metrics = Metrics()
    hold = Hold(60.0, metrics, lambda: NOON)
    probes = Probes(hold)
    queue = cast(AbstractQueue, Queue(0))
    hold.start("balance_is_not_enough", queue, probes.probe, probes.resume)

    again = hold.start("limit_word", queue, probes.probe, probes.resume)

    assert again is False
    assert hold.reason == "limit_word"
    assert paused(metrics, "limit_word") == 1
    assert paused(metrics, "balance_is_not_enough") == 0
    await hold.stop()


async def test_a_failing_probe_keeps_the_hold() -> None:
    hold = Hold(0.0, Metrics(), lambda: NOON)
    probes = Probes(hold, ConnectionError("broker away"), ProbeResult.ACCEPTED)

    hold.start("balance_is_not_enough", cast(AbstractQueue, Queue(2)), probes.probe, probes.resume)

    async with asyncio.timeout(5):
        await probes.resumed.wait()
    assert len(probes.probed) == 2


async def test_stop_ends_a_waiting_hold_without_resuming() -> None:
    hold = Hold(60.0, Metrics(), lambda: NOON)
    probes = Probes(hold)
    hold.start("balance_is_not_enough", cast(AbstractQueue, Queue(1)), probes.probe, probes.resume)

    await hold.stop()

    assert probes.probed == []
    assert not probes.resumed.is_set()
    assert hold.active  # still held: consuming does not come back while stopping


def test_the_day_budget_is_probed_no_earlier_than_local_midnight() -> None:
    before_midnight = datetime(2026, 11, 27, 23, 59, 30, tzinfo=LOCAL_TZ)
    hold = Hold(5.0, Metrics(), lambda: before_midnight)

    hold.reason = "limit_word"
    assert hold.wait_seconds() == 30.0
    hold.reason = "balance_is_not_enough"
    assert hold.wait_seconds() == 5.0


def test_the_interval_wins_when_midnight_is_closer() -> None:
    almost = datetime(2026, 11, 28, 0, 0, tzinfo=LOCAL_TZ) - timedelta(seconds=1)
    hold = Hold(5.0, Metrics(), lambda: almost)
    hold.reason = "limit_word"

    assert hold.wait_seconds() == 5.0
