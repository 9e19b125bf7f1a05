"""AUTOCALL_STORE_MIN_REPLICAS (CONTRACT.md §10) on the real Redis, which has no replica: a claim
that no replica confirms in time is withdrawn (the key free again, its TTS characters given back)
and reported as store_unavailable, so the event is retried and no call is made."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import orjson
import pytest
import redis.asyncio as redis

from service.errors import StoreUnavailable
from service.store import RedisStore, Reservation, State

from .conftest import REDIS_URL


@pytest.fixture
async def prefix() -> AsyncIterator[str]:
    prefix = f"test.wait.{uuid.uuid4().hex}:"
    yield prefix
    client = redis.Redis.from_url(REDIS_URL)
    async with client:
        keys = [key async for key in client.scan_iter(match=f"{prefix}*")]
        if keys:
            await client.delete(*keys)


async def test_a_claim_no_replica_confirms_is_withdrawn(prefix: str) -> None:
    client = redis.Redis.from_url(REDIS_URL)
    store = RedisStore(client, prefix, 60, min_replicas=1, wait_timeout=0.05)
    async with store:
        with pytest.raises(StoreUnavailable) as raised:
            await store.claim("order:W1", "e1", Reservation("2026-11-30", 40, 1000))

        assert "reached 0 of 1 replicas in 50 ms: withdrawn" in raised.value.message
        assert await store.tts_used("2026-11-30") == 0  # the characters given back
        free = RedisStore(redis.Redis.from_url(REDIS_URL), prefix, 60)
        async with free:  # the key is free: another process (without WAIT) takes it
            assert (await free.claim("order:W1", "e1")).state is State.NEW


async def test_without_min_replicas_the_claim_needs_no_replica(prefix: str) -> None:
    async with RedisStore(redis.Redis.from_url(REDIS_URL), prefix, 60) as store:
        assert (await store.claim("order:W2", "e2")).state is State.NEW


async def test_our_own_claim_whose_answer_was_lost_is_taken_again(prefix: str) -> None:
    """The store went away mid-reply: the claim is ours and no call went out on it; a claim of
    ours still in use (its call may be out) stays busy."""
    client = redis.Redis.from_url(REDIS_URL)
    async with RedisStore(client, prefix, 60) as store:
        lost = orjson.dumps({"s": "pending", "e": "e3", "o": store.owner, "r": ""})
        await client.set(f"{prefix}key:order:W3", lost)
        assert (await store.claim("order:W3", "e3")).state is State.NEW

        assert (await store.claim("order:W4", "e4")).state is State.NEW
        assert (await store.claim("order:W4", "e4")).state is State.BUSY
