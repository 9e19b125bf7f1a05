"""The stores' customer protections: the suppression list and a number's rolling limit, checked
in the claim's one step (CONTRACT.md §11), in memory and in the real Redis."""

from __future__ import annotations

import asyncio
import time

import orjson

from service.store import Claim, Guard, State, Suppression
from tests.store import test_store
from tests.store.test_store import OUTCOME, RedisEnv, Stores

stores = test_store.stores  # the fixtures: both stores on one state; a corner of the real Redis
redis_env = test_store.redis_env

PHONE = "+84912345678"
OTHER = "+84987654321"
DAY = 86400.0


def limit(now: float, calls: int = 2, window: float = DAY) -> Guard:
    return Guard(PHONE, now, calls, window, keep=7 * DAY, margin=30.0)


async def test_a_suppressed_number_takes_no_key(stores: Stores) -> None:
    store = await stores.make()
    now = time.time()
    await store.suppress(Suppression(PHONE, "asked not to be called", None, now))

    assert await store.claim("k1", "e1", guard=Guard(PHONE, now)) == Claim(State.SUPPRESSED)
    assert (await store.claim("k1", "e2")).state is State.NEW  # the key was not taken
    assert (await store.claim("k2", "e3", guard=Guard(OTHER, now))).state is State.NEW
    assert await store.protections(Guard(PHONE, now)) is State.SUPPRESSED


async def test_suppression_until_ends_and_remove_lifts_it(stores: Stores) -> None:
    store = await stores.make()
    now = time.time()
    await store.suppress(Suppression(PHONE, "holiday", now + 3600, now))
    await store.suppress(Suppression(OTHER, "gone", now - 1, now - 7200))

    assert (await store.claim("k1", "e1", guard=Guard(PHONE, now))).state is State.SUPPRESSED
    assert [entry.phone for entry in await store.suppressions()] == [PHONE]  # OTHER's ended
    assert await store.suppressed_count() == 1
    later = Guard(PHONE, now + 3601)
    assert (await store.claim("k1", "e1", guard=later)).state is State.NEW
    await store.suppress(Suppression(PHONE, "again", None, now))
    assert await store.unsuppress(PHONE) is True
    assert await store.unsuppress(PHONE) is False
    assert await store.suppressed_count() == 0


async def test_the_list_keeps_reason_until_and_when_added(stores: Stores) -> None:
    store = await stores.make()
    await store.suppress(Suppression(PHONE, "a", None, 1000.0))
    await store.suppress(Suppression(PHONE, "b", 4e9, 2000.0))  # replaces the entry

    assert await store.suppressions() == [Suppression(PHONE, "b", 4e9, 2000.0)]


async def test_a_number_gets_n_calls_a_window_across_keys(stores: Stores) -> None:
    store = await stores.make()
    now = time.time()
    first = await store.claim("k1", "e1", guard=limit(now))
    second = await store.claim("k2", "e2", guard=limit(now + 60))
    third = await store.claim("k3", "e3", guard=limit(now + 120))

    assert (first.state, second.state, third) == (State.NEW, State.NEW, Claim(State.PHONE_LIMIT))
    assert (await store.claim("k3", "e4")).state is State.NEW  # k3 was not taken
    # A slot counts for a day after its claim and the margin for the provider's answer (30 s).
    assert (await store.claim("k5", "e5", guard=limit(now + DAY + 29))).state is State.PHONE_LIMIT
    assert (await store.claim("k5", "e5", guard=limit(now + DAY + 31))).state is State.NEW
    assert (await store.claim("k6", "e6", guard=limit(now + DAY + 31))).state is State.PHONE_LIMIT


async def test_a_shorter_limit_does_not_forget_what_a_longer_one_counts(stores: Stores) -> None:
    store = await stores.make()
    now = time.time()
    week = Guard(PHONE, now, 2, 7 * DAY, keep=7 * DAY)
    hour = Guard(PHONE, now + 7200, 1, 3600, keep=7 * DAY)
    assert (await store.claim("k1", "e1", guard=week)).state is State.NEW
    assert (await store.claim("k2", "e2", guard=hour)).state is State.NEW  # k1 is 2 h old
    week.now = now + 7300
    assert (await store.claim("k3", "e3", guard=week)).state is State.PHONE_LIMIT


async def test_a_released_claim_gives_its_slot_back(stores: Stores) -> None:
    store = await stores.make()
    now = time.time()
    assert (await store.claim("k1", "e1", guard=limit(now, calls=1))).state is State.NEW
    await store.release("k1")  # refused by the provider: no call was made

    assert (await store.claim("k2", "e2", guard=limit(now, calls=1))).state is State.NEW
    await store.complete("k2", "e2", OUTCOME)
    await store.release("k2")  # a completed call keeps its slot
    assert (await store.claim("k3", "e3", guard=limit(now, calls=1))).state is State.PHONE_LIMIT


async def test_a_redelivery_finds_its_own_key_whatever_the_protections_say(
    stores: Stores,
) -> None:
    store = await stores.make()
    now = time.time()
    assert (await store.claim("k1", "e1", guard=limit(now, calls=1))).state is State.NEW
    await store.complete("k1", "e1", OUTCOME)
    await store.suppress(Suppression(PHONE, "later", None, now))

    again = await store.claim("k1", "e1", guard=limit(now, calls=1))
    other = await store.claim("k1", "e2", guard=limit(now, calls=1))

    assert (again.state, again.outcome) == (State.DONE, OUTCOME)
    assert other.state is State.SUPPRESSED  # before the key, in the order of §4


async def test_replicas_racing_for_a_numbers_last_slot_make_one_claim(
    redis_env: RedisEnv,
) -> None:
    replicas = (await redis_env.make(), await redis_env.make())
    now = time.time()
    await replicas[0].claim("earlier", "e0", guard=limit(now, calls=3))
    await replicas[0].claim("earlier-2", "e00", guard=limit(now, calls=3))

    claims = await asyncio.gather(
        *(replicas[i % 2].claim(f"k{i}", f"e{i}", guard=limit(now, calls=3)) for i in range(20))
    )

    assert sorted(claim.state for claim in claims).count(State.NEW) == 1
    assert {claim.state for claim in claims} == {State.NEW, State.PHONE_LIMIT}


async def test_redis_keeps_a_numbers_slots_no_longer_than_needed(redis_env: RedisEnv) -> None:
    store = await redis_env.make()
    now = time.time()
    await store.claim("k1", "e1", guard=Guard(PHONE, now, 2, 3600, keep=7200, margin=30))
    await store.suppress(Suppression(OTHER, "x", now + 60, now))

    slots = f"{redis_env.prefix}phone:{PHONE}"
    assert 7200 < await redis_env.client.ttl(slots) <= 7232
    entry = await redis_env.client.hget(f"{redis_env.prefix}suppressed", OTHER)
    assert entry is not None
    assert orjson.loads(entry) == {"reason": "x", "until": now + 60, "added": now}
