"""One round trip of raw RESP on a redis-py connection: a speed-up in place of its pipeline.

What it touches: redis-py's connection below its client API: `connection_pool.get_connection`
and `release`, `Connection.send_packed_command`, `Connection.read_response(timeout=...)`, the
connection's `retry.call_with_retry`, and RESP as redis-py's encoder writes it (`pack`).
redis-py still owns the connection: the pool (Sentinel's, when configured), the handshake, the
reply parser (hiredis when installed) and the client's retry policy, applied as to its
pipeline (the store's: once more on a fresh connection when it was lost, never after a
time-out).

Measured: for a few small commands, redis-py's pipeline (per-command packing through its
encoder, a time-out context and a response callback per reply, observability hooks) cost more
CPU than the round trip itself (110-150 µs per event in the profile). An A/B of three
alternating rounds with the Redis store: 2,032 -> 1,715 µs of CPU per event (with the corked
writer, worth about 70 of those). `pack` testing exact types first: 28 -> 14 µs per event's
three commands (micro-benchmark). tests/store/test_batch.py checks the hook on the pinned
redis-py (docs/speedups.md)."""

from __future__ import annotations

import asyncio
import math
from typing import Any

import redis.asyncio as redis
from redis.asyncio.connection import Connection
from redis.exceptions import DataError, ResponseError

Command = tuple[Any, ...]


async def round_trip(client: redis.Redis, commands: list[Command]) -> list[Any]:
    """Every command's raw reply, or its error, in order: one write, the replies read back
    under one time-out. The replies are the RESP values as they come (bytes, int, list)."""
    pool = client.connection_pool
    connection: Connection = await pool.get_connection()  # type: ignore[no-untyped-call]
    packed = pack(commands)

    async def lost(error: Exception) -> None:
        await connection.disconnect()

    try:
        replies: list[Any] = await connection.retry.call_with_retry(
            lambda: _exchange(connection, packed, len(commands)), lost
        )
        return replies
    except BaseException:
        await connection.disconnect()  # replies may be left unread on it
        raise
    finally:
        await pool.release(connection)


async def _exchange(connection: Connection, packed: bytes, count: int) -> list[Any]:
    await connection.send_packed_command(packed)
    replies: list[Any] = []
    # One time-out over the whole read, not one per reply (math.inf: none of its own).
    async with asyncio.timeout(connection.socket_timeout):
        for _ in range(count):
            try:
                replies.append(await connection.read_response(timeout=math.inf))
            except ResponseError as exc:
                replies.append(exc)
    return replies


def pack(commands: list[Command]) -> bytes:
    """Commands in RESP, as redis-py's encoder writes them (str as UTF-8, numbers by repr).
    Exact types first: this runs for every command, and `isinstance` against a union was half
    its time."""
    out: list[bytes] = []
    append = out.append
    for command in commands:
        append(b"*%d\r\n" % len(command))
        for arg in command:
            kind = type(arg)
            if kind is bytes:
                value = arg
            elif kind is str:
                value = arg.encode()
            elif kind is int or kind is float:
                value = repr(arg).encode()
            else:
                value = _encode(arg)
            append(b"$%d\r\n%b\r\n" % (len(value), value))
    return b"".join(out)


def _encode(arg: Any) -> bytes:
    """A subclass of bytes, str, int or float (an enum, say), or a bytearray or memoryview."""
    if isinstance(arg, bytes | bytearray | memoryview):
        return bytes(arg)
    if isinstance(arg, str):
        return str.encode(arg)
    if isinstance(arg, int) and not isinstance(arg, bool):
        return b"%d" % arg
    if isinstance(arg, float):
        return repr(float(arg)).encode()
    raise DataError(f"a Redis argument must be bytes, str, int or float, not {arg!r}")
