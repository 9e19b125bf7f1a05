"""The Redis store's batching: the commands of concurrent events share one round trip, and each
still gets its own answer."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
import redis.asyncio as redis
from redis.exceptions import ResponseError

from service.store import Reservation, State
from service.store.batch import Batch

from .test_store import DAY, LIMIT, RedisEnv, redis_corner

pytestmark = pytest.mark.integration


@pytest.fixture(name="env")
async def env_fixture() -> AsyncIterator[RedisEnv]:
    async with redis_corner() as env:
        yield env


def count_round_trips(client: redis.Redis) -> list[int]:
    """Counts the pipelines `client` sends, and how many commands each carries."""
    sizes: list[int] = []
    make = client.pipeline

    def pipeline(*args: Any, **kwargs: Any) -> Any:
        pipe = make(*args, **kwargs)
        execute = pipe.execute

        async def counted(*a: Any, **k: Any) -> Any:
            sizes.append(len(pipe.command_stack))
            return await execute(*a, **k)

        pipe.execute = counted  # type: ignore[method-assign]
        return pipe

    client.pipeline = pipeline  # type: ignore[method-assign]
    return sizes


async def test_concurrent_claims_share_one_round_trip(env: RedisEnv) -> None:
    store = await env.make()
    sizes = count_round_trips(store._redis)
    reservation = Reservation(DAY, 10, LIMIT)
    claims = await asyncio.gather(*(store.claim(f"k{i}", f"e{i}", reservation) for i in range(30)))
    assert [c.state for c in claims] == [State.NEW] * 30
    assert sizes == [30]
    # and each took its own characters, in some order: 10, 20, … 300
    assert sorted(c.used or 0 for c in claims) == list(range(10, 310, 10))
    await asyncio.gather(*(store.complete(f"k{i}", f"e{i}", b"{}") for i in range(30)))
    assert sizes == [30, 30]
    again = await store.claim("k7", "e7", reservation)
    assert again.state is State.DONE and again.outcome == b"{}"


async def test_a_failing_command_fails_alone(env: RedisEnv) -> None:
    batch = Batch(env.client)
    text, number = env.key("text"), env.key("number")
    await env.client.set(text, b"not a number")
    results = await asyncio.gather(
        batch.execute("INCR", number),
        batch.execute("INCR", text),
        batch.execute("GET", text),
        return_exceptions=True,
    )
    assert results[0] == 1
    assert isinstance(results[1], ResponseError)
    assert results[2] == b"not a number"


async def test_a_script_redis_does_not_know_runs_in_full(env: RedisEnv) -> None:
    batch = Batch(env.client)
    source = f"-- {uuid.uuid4().hex}\nreturn redis.call('INCRBY', KEYS[1], ARGV[1])"
    key = env.key("counter")
    assert await batch.script(source, [key], [5]) == 5  # EVALSHA: NOSCRIPT, then EVAL
    assert await batch.script(source, [key], [5]) == 10  # known now: EVALSHA


async def test_a_broken_round_trip_fails_each_command_of_it() -> None:
    client = redis.Redis.from_url("redis://127.0.0.1:1/0", socket_connect_timeout=1)
    batch = Batch(client)
    try:
        results = await asyncio.gather(
            batch.execute("GET", "a"), batch.execute("GET", "b"), return_exceptions=True
        )
    finally:
        await client.aclose()
    assert all(isinstance(r, redis.ConnectionError | OSError) for r in results)
