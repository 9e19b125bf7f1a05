"""AUTOCALL_RATE_LIMIT: calls are spaced at the rate, across replicas sharing a Redis."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from service.metrics import Metrics
from service.pipeline.budget import Budget
from service.pipeline.caller import Caller
from service.pipeline.outcomes import Outcome
from service.pipeline.pace import Pace
from service.store import Claim, MemoryStore
from tests.fakes import Clock
from tests.fakes import Provider as FakeProvider
from tests.helpers import call_of
from tests.store.test_store import redis_corner


async def test_memory_pace_spaces_calls_at_the_rate() -> None:
    clock = Clock(100.0)
    store = MemoryStore(60, clock=clock)
    waits = [await store.pace(10) for _ in range(4)]
    assert waits == pytest.approx([0.0, 0.1, 0.2, 0.3])
    clock.now += 5  # idle for a while: no credit piles up beyond the next call
    assert await store.pace(10) == 0.0
    assert await store.pace(10) == pytest.approx(0.1)


@pytest.mark.integration
async def test_replicas_share_one_pace_through_redis() -> None:
    async with redis_corner() as env:
        first, second = await env.make(), await env.make()
        waits = [await (first if i % 2 else second).pace(1) for i in range(6)]
        # a second apart whichever replica asks, less the time the asking took
        for turn, wait in enumerate(waits):
            assert turn - 0.5 < wait <= turn
        assert await env.client.pttl(f"{env.prefix}pace") > 0  # it expires on its own


async def test_no_rate_means_no_store_round_trip() -> None:
    class Refusing(MemoryStore):
        async def pace(self, rate: float) -> float:
            raise AssertionError("asked the store")

    await Pace(Refusing(60), 0).wait()


async def test_the_call_waits_for_its_turn_before_its_key_is_claimed() -> None:
    steps: list[str] = []

    class Recording(MemoryStore):
        async def pace(self, rate: float) -> float:
            steps.append(f"pace {rate:g}")
            return 0.0

        async def claim(self, *args: Any, **kwargs: Any) -> Claim:
            steps.append("claim")
            return await super().claim(*args, **kwargs)

    store = Recording(60)
    now = lambda: datetime(2026, 11, 27, 7, 30, tzinfo=UTC)  # noqa: E731
    budget = Budget(store, 10_000, Metrics(), now)
    caller = Caller(store, budget, FakeProvider(steps=steps), now, Pace(store, 5))
    outcome = await caller.call(call_of(), 0)
    assert isinstance(outcome, Outcome) and outcome.status == "accepted"
    assert steps == ["pace 5", "claim", "call"]
