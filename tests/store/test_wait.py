"""AUTOCALL_STORE_MIN_REPLICAS (CONTRACT.md §10) on the real Redis, which has no replica: a claim
that no replica confirms in time is withdrawn (the key free again, its TTS characters given back)
and reported as store_unavailable, so the event is retried and no call is made."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
import redis.asyncio as redis

from service.errors import StoreUnavailable
from service.store import Claim, RedisStore, Reservation, State
from service.store.resp import Command
from tests.conftest import REDIS_URL


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
    """The store went away mid-reply, after running the claim: Redis holds it and no call went
    out on it, so the next claim of the key takes it. A claim of ours in use stays busy."""
    client = redis.Redis.from_url(REDIS_URL)
    async with RedisStore(client, prefix, 60) as store:
        real = store.batch._round_trip

        async def answer_lost(commands: list[Command]) -> list[Any]:
            await real(commands)  # Redis ran them
            raise redis.ConnectionError("connection lost mid-reply")

        store.batch._round_trip = answer_lost  # type: ignore[method-assign]
        with pytest.raises(StoreUnavailable):
            await store.claim("order:W3", "e3")
        store.batch._round_trip = real  # type: ignore[method-assign]
        assert await client.get(f"{prefix}key:order:W3") is not None  # Redis holds it

        assert (await store.claim("order:W3", "e3")).state is State.NEW
        assert await store.claim("order:W3", "e5") == Claim(State.BUSY, "e3")
        assert (await store.claim("order:W4", "e4")).state is State.NEW
        assert (await store.claim("order:W4", "e4")).state is State.BUSY


async def test_a_claim_read_before_our_done_mark_landed_is_not_taken_for_ours(prefix: str) -> None:
    """Two events with one key in one process (the fault suite's three replicas with duplicate
    keys called one key twice): the second event's claim reads the first's pending record, and
    its answer comes back after the first's done mark, which went in another round trip. The
    record names this process, but the first call was made: the key is busy, not ours again."""
    client = redis.Redis.from_url(REDIS_URL)
    async with RedisStore(client, prefix, 60) as store:
        assert (await store.claim("order:R0", "r-0")).state is State.NEW
        real = store.batch._round_trip
        read, answer = asyncio.Event(), asyncio.Event()

        async def held_back(commands: list[Command]) -> list[Any]:
            replies = await real(commands)
            if not read.is_set():  # the second claim's round trip: answered, held back
                read.set()
                await answer.wait()
            return replies

        store.batch._round_trip = held_back  # type: ignore[method-assign]
        second = asyncio.create_task(store.claim("order:R0", "r-60"))
        await read.wait()
        await store.complete("order:R0", "r-0", b"{}")  # r-0 was called; its done mark lands
        answer.set()

        assert await second == Claim(State.BUSY, "r-0")
