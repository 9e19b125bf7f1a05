"""The stores: idempotency claims and the daily TTS budget, in memory and in the real Redis.

Behaviour both stores share runs against each of them; a "replica" is another store on the same
state (another RedisStore on the same prefix; for memory, the one process's store again)."""

from __future__ import annotations

import asyncio
import traceback
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from typing import Protocol

import orjson
import pytest
import redis.asyncio as redis

from service.errors import StoreUnavailable
from service.store import (
    LEASE_SECONDS,
    TTS_KEY_SECONDS,
    Claim,
    MemoryStore,
    RedisStore,
    Reservation,
    State,
    Store,
    open_store,
)
from tests.conftest import REDIS_URL
from tests.fakes import Clock as FakeClock

TTL = 3600.0
DAY = "2026-11-27"
NEXT_DAY = "2026-11-28"
LIMIT = 3000
OUTCOME = orjson.dumps({"status": "accepted", "template": "Xác nhận đơn", "autocall_id": "a-1"})
DOWN_URL = "redis://:s3cret-pass@127.0.0.1:1/0"  # nothing listens on port 1
BOUND = 5.0  # seconds a store may take to give up on a Redis that is down


class MakeRedis(Protocol):
    async def __call__(self, ttl: float = TTL) -> RedisStore: ...


@dataclass
class RedisEnv:
    """One test's corner of the real Redis: its prefix, a client to look, and a store factory."""

    prefix: str
    client: redis.Redis
    make: MakeRedis

    def key(self, key: str) -> str:
        return f"{self.prefix}key:{key}"

    def owner(self, store: RedisStore) -> str:
        return f"{self.prefix}owner:{store.owner}"

    def tts(self, day: str) -> str:
        return f"{self.prefix}tts:{day}"


@dataclass
class Stores:
    """Stores on one shared state, entered; each leaves when the test ends."""

    kind: str
    make: Callable[[], Awaitable[Store]]


async def delete_prefix(client: redis.Redis, prefix: str) -> None:
    keys = [key async for key in client.scan_iter(match=f"{prefix}*", count=500)]
    if keys:
        await client.delete(*keys)


@asynccontextmanager
async def redis_corner() -> AsyncIterator[RedisEnv]:
    prefix = f"test.{uuid.uuid4().hex}:"
    client = redis.Redis.from_url(REDIS_URL)
    async with AsyncExitStack() as stack:
        stack.push_async_callback(client.aclose)
        stack.push_async_callback(delete_prefix, client, prefix)  # after every store left

        async def make(ttl: float = TTL) -> RedisStore:
            store = RedisStore(redis.Redis.from_url(REDIS_URL), prefix, ttl)
            return await stack.enter_async_context(store)

        yield RedisEnv(prefix, client, make)


@pytest.fixture
async def redis_env() -> AsyncIterator[RedisEnv]:
    async with redis_corner() as env:
        yield env


@pytest.fixture(params=["memory", "redis"])
async def stores(request: pytest.FixtureRequest) -> AsyncIterator[Stores]:
    if request.param == "redis":
        async with redis_corner() as env:

            async def make_redis() -> Store:
                return await env.make()

            yield Stores("redis", make_redis)
        return
    async with MemoryStore(TTL) as memory:

        async def make_memory() -> Store:
            return memory

        yield Stores("memory", make_memory)


# --- claims, both stores ---------------------------------------------------------------------


async def test_first_claim_is_new(stores: Stores) -> None:
    store = await stores.make()
    assert await store.claim("order:A1", "e1") == Claim(State.NEW, "e1")


async def test_held_key_is_busy_with_the_holders_event(stores: Stores) -> None:
    holder, other = await stores.make(), await stores.make()
    await holder.claim("order:A1", "e1")

    assert await other.claim("order:A1", "e2") == Claim(State.BUSY, "e1")
    assert await holder.claim("order:A1", "e1") == Claim(State.BUSY, "e1")


async def test_a_held_key_says_where_its_holder_is_calling(stores: Stores) -> None:
    holder, other = await stores.make(), await stores.make()
    await holder.claim("order:A1", "e1", via=b"shop-a")

    await holder.trying("order:A1", b"shop-b")  # failing over to the next account

    assert await other.claim("order:A1", "e2") == Claim(State.BUSY, "e1", via=b"shop-b")
    await holder.release("order:A1")  # still ours as it now reads: given back
    assert await other.claim("order:A1", "e2") == Claim(State.NEW, "e2")


async def test_keys_are_independent(stores: Stores) -> None:
    store = await stores.make()
    await store.claim("order:A1", "e1")
    assert (await store.claim("order:A2", "e2")).state is State.NEW


async def test_completed_key_is_done_with_its_outcome(stores: Stores) -> None:
    holder, other = await stores.make(), await stores.make()
    await holder.claim("order:A1", "e1")
    await holder.complete("order:A1", "e1", OUTCOME)

    claim = await other.claim("order:A1", "e2")

    assert claim == Claim(State.DONE, "e1", OUTCOME)
    assert isinstance(claim.outcome, bytes)


async def test_released_key_is_new_again(stores: Stores) -> None:
    store, other = await stores.make(), await stores.make()
    await store.claim("order:A1", "e1")
    await store.release("order:A1")

    assert await other.claim("order:A1", "e2") == Claim(State.NEW, "e2")


async def test_releasing_a_key_never_claimed_changes_nothing(stores: Stores) -> None:
    store = await stores.make()
    await store.release("order:nobody")
    assert (await store.claim("order:nobody", "e1")).state is State.NEW


# --- the TTS budget, both stores -------------------------------------------------------------


async def test_reservations_within_the_limit_add_up(stores: Stores) -> None:
    store = await stores.make()
    assert await store.add_tts(DAY, 100, LIMIT) == (True, 100)
    assert await store.add_tts(DAY, 250, LIMIT) == (True, 350)
    assert await store.add_tts(DAY, LIMIT - 350, LIMIT) == (True, LIMIT)  # exactly full fits
    assert await store.tts_used(DAY) == LIMIT


async def test_reservation_over_the_limit_is_refused_and_takes_nothing(stores: Stores) -> None:
    store = await stores.make()
    await store.add_tts(DAY, 2950, LIMIT)

    assert await store.add_tts(DAY, 51, LIMIT) == (False, 2950)
    assert await store.tts_used(DAY) == 2950
    assert await store.add_tts(DAY, 50, LIMIT) == (True, LIMIT)


async def test_refund_gives_characters_back_and_never_goes_below_zero(stores: Stores) -> None:
    store = await stores.make()
    await store.add_tts(DAY, 300, LIMIT)

    await store.refund_tts(DAY, 120)
    assert await store.tts_used(DAY) == 180
    await store.refund_tts(DAY, 500)
    assert await store.tts_used(DAY) == 0
    assert await store.add_tts(DAY, 10, LIMIT) == (True, 10)


async def test_refund_of_a_day_with_nothing_used_stays_at_zero(stores: Stores) -> None:
    store = await stores.make()
    await store.refund_tts(DAY, 100)
    assert await store.tts_used(DAY) == 0
    assert await store.add_tts(DAY, 100, 100) == (True, 100)


async def test_concurrent_reservations_never_exceed_the_limit(stores: Stores) -> None:
    first, second = await stores.make(), await stores.make()
    results = await asyncio.gather(
        *(((first, second)[i % 2]).add_tts(DAY, 100, LIMIT) for i in range(40))
    )

    granted = sorted(used for reserved, used in results if reserved)
    assert granted == list(range(100, LIMIT + 1, 100))  # 30 of them, each seeing its own total
    assert all(used <= LIMIT for _, used in results)
    assert await first.tts_used(DAY) == LIMIT
    assert await second.tts_used(DAY) == LIMIT


async def test_a_full_day_leaves_the_next_day_untouched(stores: Stores) -> None:
    store = await stores.make()
    await store.add_tts(DAY, LIMIT, LIMIT)

    assert await store.add_tts(NEXT_DAY, 200, LIMIT) == (True, 200)
    assert await store.tts_used(NEXT_DAY) == 200


async def test_each_day_keeps_its_own_count(stores: Stores) -> None:
    store = await stores.make()
    await store.add_tts(DAY, 100, LIMIT)
    await store.add_tts(NEXT_DAY, 200, LIMIT)
    await store.add_tts(DAY, 50, LIMIT)

    assert await store.tts_used(DAY) == 150
    assert await store.tts_used(NEXT_DAY) == 200
    assert await store.add_tts(NEXT_DAY, LIMIT - 200, LIMIT) == (True, LIMIT)
    assert await store.add_tts(NEXT_DAY, 1, LIMIT) == (False, LIMIT)


# --- MemoryStore: expiry by its injected clock ----------------------------------------------


async def test_memory_store_forgets_keys_once_their_ttl_passed() -> None:
    clock = FakeClock()
    async with MemoryStore(60.0, clock=clock) as store:
        await store.claim("pending", "e1")
        await store.claim("done", "e2")
        await store.complete("done", "e2", OUTCOME)

        clock.now += 59.9
        assert await store.claim("pending", "e3") == Claim(State.BUSY, "e1")
        assert await store.claim("done", "e3") == Claim(State.DONE, "e2", OUTCOME)

        clock.now += 0.1
        assert await store.claim("pending", "e3") == Claim(State.NEW, "e3")
        assert await store.claim("done", "e4") == Claim(State.NEW, "e4")


async def test_memory_store_expires_only_keys_that_are_old() -> None:
    clock = FakeClock()
    async with MemoryStore(60.0, clock=clock) as store:
        await store.claim("old", "e1")
        clock.now += 30
        await store.claim("young", "e2")
        clock.now += 30

        assert (await store.claim("old", "e3")).state is State.NEW
        assert await store.claim("young", "e4") == Claim(State.BUSY, "e2")


# --- RedisStore: owners, leases, races, TTLs ------------------------------------------------


async def test_claim_of_a_store_whose_lease_is_gone_is_orphaned(redis_env: RedisEnv) -> None:
    dead, alive = await redis_env.make(), await redis_env.make()
    await dead.claim("order:A1", "e1")
    assert await redis_env.client.delete(redis_env.owner(dead)) == 1

    assert await alive.claim("order:A1", "e2") == Claim(State.ORPHANED, "e1")


async def test_an_orphaned_claim_says_where_its_call_went(redis_env: RedisEnv) -> None:
    dead, alive = await redis_env.make(), await redis_env.make()
    await dead.claim("order:A1", "e1", via=b"shop-a")
    await dead.trying("order:A1", b"shop-b")
    await redis_env.client.delete(redis_env.owner(dead))

    assert await alive.claim("order:A1", "e1") == Claim(State.ORPHANED, "e1", via=b"shop-b")


async def test_store_that_left_without_completing_leaves_an_orphan(redis_env: RedisEnv) -> None:
    async with RedisStore(redis.Redis.from_url(REDIS_URL), redis_env.prefix, TTL) as gone:
        await gone.claim("order:A1", "e1")
        await gone.claim("order:A2", "e2")
        await gone.complete("order:A2", "e2", OUTCOME)
    survivor = await redis_env.make()

    assert await redis_env.client.exists(redis_env.owner(gone)) == 0
    assert await survivor.claim("order:A1", "e3") == Claim(State.ORPHANED, "e1")
    assert await survivor.claim("order:A2", "e3") == Claim(State.DONE, "e2", OUTCOME)


async def test_release_leaves_a_claim_another_store_took(redis_env: RedisEnv) -> None:
    holder, stranger, observer = (
        await redis_env.make(),
        await redis_env.make(),
        await redis_env.make(),
    )
    await holder.claim("order:A1", "e1")

    await stranger.release("order:A1")

    assert await observer.claim("order:A1", "e9") == Claim(State.BUSY, "e1")


async def test_release_leaves_a_completed_key(redis_env: RedisEnv) -> None:
    store, observer = await redis_env.make(), await redis_env.make()
    await store.claim("order:A1", "e1")
    await store.complete("order:A1", "e1", OUTCOME)

    await store.release("order:A1")

    assert await observer.claim("order:A1", "e9") == Claim(State.DONE, "e1", OUTCOME)


async def test_release_leaves_a_newer_claim_on_a_key_that_expired(redis_env: RedisEnv) -> None:
    first, second, observer = await redis_env.make(), await redis_env.make(), await redis_env.make()
    await first.claim("order:A1", "e1")
    await redis_env.client.delete(redis_env.key("order:A1"))  # as if its TTL ran out
    assert (await second.claim("order:A1", "e2")).state is State.NEW

    await first.release("order:A1")

    assert await observer.claim("order:A1", "e9") == Claim(State.BUSY, "e2")


async def test_replicas_racing_for_one_key_get_exactly_one_new(redis_env: RedisEnv) -> None:
    replicas = (await redis_env.make(), await redis_env.make())
    claims = await asyncio.gather(
        *(replicas[i % 2].claim("order:race", f"e{i}") for i in range(50))
    )

    winners = [claim for claim in claims if claim.state is State.NEW]
    assert len(winners) == 1
    losers = [claim for claim in claims if claim.state is not State.NEW]
    assert losers == [Claim(State.BUSY, winners[0].event_id)] * 49


async def test_claims_and_completions_expire_within_the_ttl(redis_env: RedisEnv) -> None:
    store = await redis_env.make(ttl=120)
    await store.claim("order:A1", "e1")
    assert 0 < await redis_env.client.ttl(redis_env.key("order:A1")) <= 120

    await store.claim("order:A2", "e2")
    await store.complete("order:A2", "e2", OUTCOME)
    assert 0 < await redis_env.client.ttl(redis_env.key("order:A2")) <= 120
    assert 0 < await redis_env.client.ttl(redis_env.owner(store)) <= LEASE_SECONDS


async def test_tts_counter_expires_and_refund_keeps_its_ttl(redis_env: RedisEnv) -> None:
    store = await redis_env.make()
    await store.add_tts(DAY, 100, LIMIT)
    assert 0 < await redis_env.client.ttl(redis_env.tts(DAY)) <= TTS_KEY_SECONDS

    await store.refund_tts(DAY, 40)

    assert 0 < await redis_env.client.ttl(redis_env.tts(DAY)) <= TTS_KEY_SECONDS
    assert await store.tts_used(DAY) == 60


async def test_refund_of_a_day_without_counter_leaves_no_key_without_ttl(
    redis_env: RedisEnv,
) -> None:
    store = await redis_env.make()
    await store.refund_tts(DAY, 100)

    assert await redis_env.client.ttl(redis_env.tts(DAY)) != -1  # -2: absent; > 0: expires


# --- RedisStore: Redis down ------------------------------------------------------------------


@pytest.fixture
async def down_store() -> AsyncIterator[RedisStore]:
    client = redis.Redis.from_url(DOWN_URL)
    try:
        yield RedisStore(client, "test.down:", TTL)
    finally:
        await client.aclose()


Operation = Callable[[RedisStore], Awaitable[object]]
OPERATIONS: dict[str, Operation] = {
    "claim": lambda store: store.claim("order:A1", "e1"),
    "complete": lambda store: store.complete("order:A1", "e1", OUTCOME),
    "add_tts": lambda store: store.add_tts(DAY, 100, LIMIT),
    "refund_tts": lambda store: store.refund_tts(DAY, 100),
    "tts_used": lambda store: store.tts_used(DAY),
}


@pytest.mark.parametrize("operation", OPERATIONS)
async def test_redis_down_is_store_unavailable(down_store: RedisStore, operation: str) -> None:
    async with asyncio.timeout(BOUND):
        with pytest.raises(StoreUnavailable) as caught:
            await OPERATIONS[operation](down_store)

    assert caught.value.retryable
    assert caught.value.code == "store_unavailable"
    assert "s3cret-pass" not in "".join(traceback.format_exception(caught.value))


async def test_entering_with_redis_down_is_store_unavailable() -> None:
    store = RedisStore(redis.Redis.from_url(DOWN_URL), "test.down:", TTL)
    async with asyncio.timeout(BOUND):
        with pytest.raises(StoreUnavailable):
            async with store:
                pass


async def test_a_redis_that_never_answers_is_store_unavailable_in_bounded_time() -> None:
    connections: list[asyncio.StreamWriter] = []

    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        connections.append(writer)  # read nothing, answer nothing

    server = await asyncio.start_server(silent, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    store = open_store(f"redis://127.0.0.1:{port}/0", "test.silent:", TTL)
    assert isinstance(store, RedisStore)
    try:
        kwargs = store._redis.connection_pool.connection_kwargs
        timeout = kwargs.get("socket_timeout")
        assert timeout is not None, "open_store gives the Redis client no socket_timeout"
        async with asyncio.timeout(float(timeout) + 2.0):
            with pytest.raises(StoreUnavailable):
                await store.claim("order:A1", "e1")
    finally:
        await store._redis.aclose()
        for writer in connections:
            writer.close()
        server.close()
        await server.wait_closed()


async def test_open_store_picks_the_store_for_the_url() -> None:
    assert isinstance(open_store("memory://", "p:", TTL), MemoryStore)
    store = open_store(REDIS_URL, "p:", TTL)
    assert isinstance(store, RedisStore)
    await store._redis.aclose()


async def test_a_claim_takes_its_characters_with_the_key(stores: Stores) -> None:
    store = await stores.make()

    claim = await store.claim("order:A1", "e1", Reservation(DAY, 100, LIMIT))

    assert (claim.state, claim.used) == (State.NEW, 100)
    assert await store.tts_used(DAY) == 100


async def test_a_claim_over_the_budget_takes_neither(stores: Stores) -> None:
    store = await stores.make()
    await store.add_tts(DAY, LIMIT - 50, LIMIT)

    over = await store.claim("order:A1", "e1", Reservation(DAY, 100, LIMIT))
    fits = await store.claim("order:A1", "e1", Reservation(DAY, 50, LIMIT))

    assert (over.state, over.used) == (State.OVER_BUDGET, LIMIT - 50)
    assert fits.state is State.NEW  # the key was not taken by the refused claim
    assert await store.tts_used(DAY) == LIMIT


async def test_a_held_key_takes_no_characters(stores: Stores) -> None:
    store = await stores.make()
    await store.claim("order:A1", "e1", Reservation(DAY, 100, LIMIT))

    again = await store.claim("order:A1", "e2", Reservation(DAY, 100, LIMIT))

    assert again.state is State.BUSY
    assert await store.tts_used(DAY) == 100


async def test_concurrent_claims_never_overspend(stores: Stores) -> None:
    first, second = await stores.make(), await stores.make()
    claims = await asyncio.gather(
        *(
            (first if i % 2 else second).claim(f"order:{i}", f"e{i}", Reservation(DAY, 100, LIMIT))
            for i in range(40)
        )
    )

    assert sum(claim.state is State.NEW for claim in claims) == LIMIT // 100
    assert await first.tts_used(DAY) == LIMIT
