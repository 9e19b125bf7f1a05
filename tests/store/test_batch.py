"""The Redis store's batching: the commands of concurrent events share one round trip, and each
still gets its own answer."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
import redis.asyncio as redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError as LostConnection
from redis.exceptions import DataError, ResponseError

from service.store import Reservation, State
from service.store.batch import Batch
from service.store.resp import Command, pack, round_trip
from tests.conftest import REDIS_URL
from tests.store.test_store import DAY, LIMIT, RedisEnv, redis_corner

pytestmark = pytest.mark.integration


@pytest.fixture(name="env")
async def env_fixture() -> AsyncIterator[RedisEnv]:
    async with redis_corner() as env:
        yield env


def count_round_trips(batch: Batch) -> list[int]:
    """Counts the round trips `batch` makes, and how many commands each carries."""
    sizes: list[int] = []
    round_trip = batch._round_trip

    async def counted(commands: list[Command]) -> list[Any]:
        sizes.append(len(commands))
        return await round_trip(commands)

    batch._round_trip = counted  # type: ignore[method-assign]
    return sizes


async def test_concurrent_claims_share_one_round_trip(env: RedisEnv) -> None:
    store = await env.make()
    sizes = count_round_trips(store.batch)
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


def test_commands_are_packed_as_redis_py_packs_them() -> None:
    command = ("EVALSHA", "abc", 2, "k:é", b"\x00raw", -7, 1.5, 1e-7, "")
    connection = redis.Connection()  # packs with the encoder a client has by default
    assert pack([command, ("GET", "x")]) == b"".join(
        connection.pack_commands([command, ("GET", "x")])
    )
    assert pack([("SET", State.NEW, bytearray(b"v"))]) == pack([("SET", "new", b"v")])
    for wrong in (True, None, ["list"]):
        with pytest.raises(DataError):
            pack([("SET", "k", wrong)])


async def test_a_lost_connection_is_tried_once_more_on_a_fresh_one(env: RedisEnv) -> None:
    """What the store's client is built with: after a restart or failover each pooled connection
    fails once; the round trip goes again on a new one (the store's commands are safe to send
    twice)."""
    retry = Retry(NoBackoff(), 1, supported_errors=(LostConnection,))
    client = redis.Redis.from_url(REDIS_URL, retry=retry)
    batch = Batch(client)
    key = env.key("counter")
    try:
        first = await batch.execute("CLIENT", "ID")
        await env.client.execute_command("CLIENT", "KILL", "ID", first)  # type: ignore[no-untyped-call]
        assert await batch.execute("INCR", key) == 1
        assert await batch.execute("CLIENT", "ID") != first
    finally:
        await client.aclose()


async def test_a_redis_that_does_not_answer_fails_the_batch_at_the_time_out() -> None:
    """A silent peer: the commands fail (a time-out is not tried again), nothing hangs."""

    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read()  # never answers
        writer.close()

    server = await asyncio.start_server(silent, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    # No handshake to send (RESP2, no driver info, no password): the first bytes are the batch's.
    client = redis.Redis(
        host="127.0.0.1", port=port, socket_timeout=0.2, protocol=2, driver_info=None
    )
    batch = Batch(client)
    try:
        async with server, asyncio.timeout(10):
            results = await asyncio.gather(
                batch.execute("GET", "a"), batch.execute("GET", "b"), return_exceptions=True
            )
    finally:
        await client.aclose()
    assert all(isinstance(r, TimeoutError) for r in results), results


async def test_the_raw_round_trip_hook_works_on_the_pinned_redis_py(env: RedisEnv) -> None:
    """service/store/resp.py reaches below redis-py's client API: this fails if that moves."""
    key = f"{env.prefix}hook"
    replies = await round_trip(
        env.client, [("SET", key, "v", "EX", 60), ("GET", key), ("INCR", key), ("DEL", key)]
    )
    assert replies[:2] == [b"OK", b"v"]
    assert isinstance(replies[2], ResponseError)  # an error is that command's reply alone
    assert replies[3] == 1
