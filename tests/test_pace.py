"""AUTOCALL_RATE_LIMIT: calls are spaced at the rate, across replicas sharing a Redis."""

from __future__ import annotations

import pytest

from service.pace import Pace
from service.store import MemoryStore

from .test_store import redis_corner


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


async def test_memory_pace_spaces_calls_at_the_rate() -> None:
    clock = Clock()
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
