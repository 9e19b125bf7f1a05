"""Accepted calls, their spans, and the marks that keep results single: memory and Redis alike."""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import AsyncIterator

import orjson
import pytest
import redis.asyncio as redis

from service.provider.omicall.records import CallRecord
from service.results.calls import OpenCall, choose, result_of, unknown_of
from service.results.redis_store import RedisResults
from service.results.store import MemoryResults, ResultStore
from service.store.batch import Batch

REDIS_URL = os.environ.get("AUTOCALL_REDIS_TEST_URL", "redis://127.0.0.1:6379/0")
T0 = 1_764_480_000.0


def open_call(autocall_id: str = "ac-1", phone: str = "0912345678", **changes: object) -> OpenCall:
    fields: dict[str, object] = {
        "autocall_id": autocall_id,
        "event": {"id": f"e-{autocall_id}", "type": "order.created", "source": "shop"},
        "template": "cod",
        "idempotency_key": f"k-{autocall_id}",
        "phone": phone,
        "accepted_at": T0,
        "num_retry": 1,
        "distance_retry": 60,
    }
    return OpenCall(**(fields | changes))  # type: ignore[arg-type]


def record(**changes: object) -> CallRecord:
    fields: dict[str, object] = {
        "transaction_id": "tx-1",
        "phone": "0912345678",
        "started_at": T0 + 10,
        "result": "answered",
        "keys": "1",
        "keys_field": "ivr",
        "answer_seconds": 12,
        "billed_seconds": 14,
        "ended_by": "end_call_by_customer",
        "recording_url": None,
        "autocall_id": None,
        "auto_call": True,
    }
    return CallRecord(**(fields | changes))  # type: ignore[arg-type]


@pytest.fixture(params=["memory", "redis", "redis-batch"])
async def store(request: pytest.FixtureRequest) -> AsyncIterator[ResultStore]:
    if request.param == "memory":
        yield MemoryResults(3600)
        return
    prefix = f"test.{uuid.uuid4().hex}:"
    client = redis.Redis.from_url(REDIS_URL)
    try:
        batch = Batch(client) if request.param == "redis-batch" else None
        yield RedisResults(client, prefix, 3600, batch)
    finally:
        keys = [key async for key in client.scan_iter(match=f"{prefix}*")]
        if keys:
            await client.delete(*keys)
        await client.aclose()


# the span rule and the result event


def test_span_covers_every_attempt_and_no_more() -> None:
    call = open_call(num_retry=2, distance_retry=60)
    assert call.span_end == T0 + 3 * 180
    assert call.covers(T0) and call.covers(T0 + 539) and not call.covers(T0 + 541)
    assert not call.covers(T0 - 60)
    assert [call.attempt_at(T0 + s) for s in (0, 179, 181, 400, 9999)] == [1, 1, 2, 3, 3]


def test_result_event_body_and_routing_key() -> None:
    event = result_of(open_call(), record(), 1, {"1": "confirmed"}, "webhook")
    body = orjson.loads(event.body())
    assert event.routing_key == "autocall.result.answered.confirmed"
    assert body["status"] == "result" and body["final"] is True and body["attempt"] == 1
    assert body["choice"] == "confirmed" and body["keys"] == "1"
    assert body["phone"] == "091****678" and body["source"] == "webhook"
    assert body["event"] == {"id": "e-ac-1", "type": "order.created", "source": "shop"}
    assert body["occurred_at"].endswith("+07:00")
    assert set(body) == {
        "status", "result", "final", "choice", "keys", "event", "template", "idempotency_key",
        "autocall_id", "transaction_id", "phone", "attempt", "answer_seconds", "billed_seconds",
        "ended_by", "recording_url", "occurred_at", "source",
    }  # fmt: skip


def test_final_only_on_the_last_unanswered_attempt() -> None:
    call = open_call(num_retry=2)
    finals = [
        result_of(call, record(result="no_answer", keys=None), n, {}, "poll").final
        for n in (1, 2, 3)
    ]
    assert finals == [False, False, True]
    no_answer = result_of(call, record(result="no_answer", keys=None), 1, {}, "poll")
    assert no_answer.routing_key == "autocall.result.no_answer.none"
    unknown = unknown_of(call, T0 + 9999)
    assert (unknown.final, unknown.routing_key) == (True, "autocall.result.unknown.none")
    assert orjson.loads(unknown.body())["transaction_id"] is None


def test_closing_an_attempt_makes_it_final_under_its_own_mark() -> None:
    call = open_call(num_retry=2)
    event = result_of(call, record(result="no_answer", keys=None), 1, {}, "poll")
    closing = result_of(call, record(result="no_answer", keys=None), 1, {}, "poll", closing=True)
    assert (event.final, event.mark) == (False, "1")
    assert (closing.final, closing.mark, closing.attempt) == (True, "1:final", 1)
    assert unknown_of(call, T0).mark == "unknown"


def test_choices() -> None:
    choices = {"1": "confirmed", "2": "cancelled"}
    assert choose("1", choices) == "confirmed"
    assert choose("7", choices) == "other"
    assert choose("7", {}) == "other"
    assert choose(None, choices) is None


# the store


async def test_open_calls_by_phone_until_the_final_result(store: ResultStore) -> None:
    first, second = open_call("ac-1"), open_call("ac-2", accepted_at=T0 + 1)
    other = open_call("ac-3", phone="0987654321", accepted_at=T0 + 2)
    for call in (first, second, other):
        await store.record(call)
    assert await store.open_by_phone("0912345678") == [first, second]
    assert [c.autocall_id for c in await store.open_calls()] == ["ac-1", "ac-2", "ac-3"]
    assert await store.open_count() == 3
    assert await store.claim(first, "1", final=True)
    await store.done(first, "1", final=True, transaction_id="")
    assert await store.open_by_phone("0912345678") == [second]
    assert await store.call("ac-1") == first  # closed, still known to history lookups
    assert await store.open_count() == 2


async def test_one_result_per_attempt_and_one_final(store: ResultStore) -> None:
    call = open_call()
    await store.record(call)
    assert await store.claim(call, "1", final=False)
    assert not await store.claim(call, "1", final=False)  # pending elsewhere
    await store.done(call, "1", final=False, transaction_id="")
    assert not await store.claim(call, "1", final=False)
    assert await store.claim(call, "2", final=True)
    assert not await store.claim(call, "unknown", final=True)  # a final one is in flight
    await store.done(call, "2", final=True, transaction_id="")
    assert not await store.claim(call, "3", final=False)  # closed: nothing more


async def test_a_released_claim_can_be_taken_again(store: ResultStore) -> None:
    call = open_call()
    assert await store.claim(call, "1", final=True)
    await store.release(call, "1", final=True)
    assert await store.claim(call, "1", final=True)


async def test_claims_race_to_one_winner(store: ResultStore) -> None:
    call = open_call()
    won = await asyncio.gather(*(store.claim(call, "1", final=True) for _ in range(20)))
    assert sum(won) == 1


async def test_outcome_unknown_calls(store: ResultStore) -> None:
    call = open_call("", idempotency_key="k-9")
    await store.record_unknown(call)
    assert await store.unknown_calls() == [call]
    await store.forget_unknown(call)
    assert await store.unknown_calls() == []


async def test_lease_and_backoff(store: ResultStore) -> None:
    assert await store.lease("poller", "a", 30)
    assert not await store.lease("poller", "b", 30)
    assert await store.lease("poller", "a", 30)  # the holder extends it
    assert await store.backoff() == (0.0, 0)
    await store.set_backoff(60, 2)
    left, level = await store.backoff()
    assert 50 < left <= 60 and level == 2


async def test_attempts_are_ranked_by_start_and_fixed_at_first_sight(store: ResultStore) -> None:
    call = open_call(num_retry=3)
    assert await store.rank(call, "tx-a", T0 + 10) == (1, 1)
    assert await store.rank(call, "tx-a", T0 + 10) == (1, 1)  # sent again: the same attempt
    assert await store.rank(call, "tx-b", T0 + 200) == (2, 2)
    # a record of an attempt between them arrives late: it takes the next number free
    assert await store.rank(call, "tx-c", T0 + 100) == (3, 3)
    assert await store.rank(call, "tx-b", T0 + 200) == (2, 3)
    # same second (the provider's times are whole seconds): in the order seen
    assert await store.rank(call, "tx-d", T0 + 300) == (4, 4)
    assert await store.rank(call, "tx-e", T0 + 300) == (5, 5)
    other = open_call("ac-2")
    assert await store.rank(other, "tx-a", T0) == (1, 1)  # per call


async def test_replicas_racing_on_one_call_never_share_a_rank(store: ResultStore) -> None:
    call = open_call(num_retry=9)
    ranks = await asyncio.gather(*(store.rank(call, f"tx-{n}", T0) for n in range(10)))
    assert sorted(rank for rank, _ in ranks) == list(range(1, 11))


async def test_kept_bodies_newest_first_and_only_the_last_n(store: ResultStore) -> None:
    for n in range(5):
        await store.keep(b'{"n": %d}' % n, limit=3)
    assert await store.recent(10) == [b'{"n": 4}', b'{"n": 3}', b'{"n": 2}']
    assert await store.recent(1) == [b'{"n": 4}']


async def test_an_outcome_unknown_call_kept_by_an_older_release_is_forgotten() -> None:
    """Stored before `autocall_uuids` (and `traceparent`) were fields: other JSON, same call."""
    prefix = f"test.{uuid.uuid4().hex}:"
    client = redis.Redis.from_url(REDIS_URL)
    try:
        store = RedisResults(client, prefix, 3600)
        older = orjson.dumps(
            {
                "autocall_id": "",
                "event": {"id": "e-1", "type": "order.created", "source": "shop"},
                "template": "cod",
                "idempotency_key": "k-lost",
                "phone": "0912345678",
                "accepted_at": T0,
                "num_retry": 0,
                "distance_retry": 60,
            }
        )
        await client.zadd(f"{prefix}res:unknown", {older: T0})
        await store.record_unknown(open_call("", idempotency_key="k-other", accepted_at=T0 + 1))
        [call, other] = await store.unknown_calls()
        assert call.idempotency_key == "k-lost"
        await store.forget_unknown(call)
        assert await store.unknown_calls() == [other]
        assert await client.zcard(f"{prefix}res:unknown") == 1
    finally:
        keys = [key async for key in client.scan_iter(match=f"{prefix}*")]
        if keys:
            await client.delete(*keys)
        await client.aclose()


async def test_the_memory_store_forgets_what_has_expired() -> None:
    now = [T0]
    store = MemoryResults(3600, clock=lambda: now[0])
    for n in range(200):
        call = open_call(f"ac-{n}", phone=f"09{n:08d}")
        await store.record(call)
        await store.rank(call, f"tx-{n}", T0)
        if n % 2:  # half of them closed by their final result
            assert await store.claim(call, "1", final=True)
            await store.done(call, "1", True, f"tx-{n}")
    assert len(store._ranks) == 100  # a closed call's attempts are ranked no more
    now[0] += 3601  # every call, mark and rank past the TTL; nobody asks for them again
    await store.record(open_call("ac-new", accepted_at=now[0]))
    held = (store._calls, store._open, store._phones, store._marks, store._ranks)
    assert [len(kept) for kept in held] == [1, 1, 1, 0, 0]
