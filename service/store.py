"""Idempotency keys and the daily TTS counter: in memory for one process, in Redis for replicas."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Protocol, Self

import orjson
import redis.asyncio as redis
from redis.exceptions import RedisError

from .errors import StoreUnavailable

log = logging.getLogger(__name__)
LEASE_SECONDS = 15  # a dead process's claims are known as such this long after it died
TTS_KEY_SECONDS = 2 * 86400
REDIS_TIMEOUT = 5.0


class State(StrEnum):
    NEW = "new"  # the key is ours now
    DONE = "done"  # an event completed it; `outcome` is that event's outcome
    BUSY = "busy"  # a live process holds it
    ORPHANED = "orphaned"  # a process died holding it: its call may have gone out
    OVER_BUDGET = "over_budget"  # free, but the call's TTS characters do not fit today: not taken


@dataclass(slots=True)
class Claim:
    """What claiming a key found."""

    state: State
    event_id: str | None = None  # the event that holds or completed the key
    outcome: bytes | None = None
    used: int | None = None  # the day's TTS characters, when a reservation was asked


@dataclass(slots=True)
class Reservation:
    """TTS characters to take from a day's budget together with a key."""

    day: str
    chars: int
    limit: int


class Store(Protocol):
    """Where idempotency keys and the day's TTS characters live."""

    async def claim(self, key: str, event_id: str, reservation: Reservation | None = None) -> Claim:
        """Take `key` for `event_id`, and the reservation's characters with it, in one step;
        unless something holds the key (say what) or the characters do not fit."""

    async def complete(self, key: str, event_id: str, outcome: bytes) -> None:
        """Mark `key` done by `event_id`, keeping its outcome for redeliveries."""

    async def release(self, key: str) -> None:
        """Give `key` back: no call was made, so a corrected event may use it."""

    async def add_tts(self, day: str, chars: int, limit: int) -> tuple[bool, int]:
        """Reserve `chars` of `day`'s budget if they fit under `limit`: (reserved, used)."""

    async def refund_tts(self, day: str, chars: int) -> None:
        """Give back characters of a call the provider refused."""

    async def tts_used(self, day: str) -> int:
        """Characters used on `day` so far."""

    async def __aenter__(self) -> Self: ...

    async def __aexit__(self, *exc_info: object) -> None: ...


def open_store(url: str, prefix: str, ttl: float) -> Store:
    """The store for `url`: memory:// or redis://…"""
    if url.startswith("memory://"):
        return MemoryStore(ttl)
    # Bounded waits: a Redis that stops answering must fail calls, not hang them.
    client = redis.Redis.from_url(
        url, socket_timeout=REDIS_TIMEOUT, socket_connect_timeout=REDIS_TIMEOUT
    )
    return RedisStore(client, prefix, ttl)


def _record(state: str, event_id: str, owner: str = "", outcome: bytes = b"") -> bytes:
    return orjson.dumps({"s": state, "e": event_id, "o": owner, "r": outcome.decode()})


class MemoryStore:
    """One process's store: nothing is shared, nothing survives a restart."""

    def __init__(self, ttl: float, clock: Callable[[], float] = time.monotonic) -> None:
        self._ttl = ttl
        self._clock = clock
        self._keys: dict[str, tuple[float, Claim]] = {}  # insertion order is expiry order
        self._tts: dict[str, int] = {}

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        return None

    async def claim(self, key: str, event_id: str, reservation: Reservation | None = None) -> Claim:
        now = self._clock()
        self._expire(now)
        held = self._keys.get(key)
        if held is not None:
            return held[1]
        used = None
        if reservation is not None:
            reserved, used = await self.add_tts(
                reservation.day, reservation.chars, reservation.limit
            )
            if not reserved:
                return Claim(State.OVER_BUDGET, used=used)
        self._keys[key] = (now + self._ttl, Claim(State.BUSY, event_id))
        return Claim(State.NEW, event_id, used=used)

    async def complete(self, key: str, event_id: str, outcome: bytes) -> None:
        expires = self._keys.get(key, (self._clock() + self._ttl, None))[0]
        # A copy: orjson's bytes keep a 4 KiB buffer each, and these live for days.
        self._keys[key] = (expires, Claim(State.DONE, event_id, bytes(memoryview(outcome))))

    async def release(self, key: str) -> None:
        self._keys.pop(key, None)

    async def add_tts(self, day: str, chars: int, limit: int) -> tuple[bool, int]:
        used = self._tts.get(day, 0)
        if used + chars > limit:
            return False, used
        self._tts[day] = used + chars
        for old in sorted(self._tts)[:-2]:  # yesterday may still be settling; older days not
            del self._tts[old]
        return True, used + chars

    async def refund_tts(self, day: str, chars: int) -> None:
        if day in self._tts:
            self._tts[day] = max(0, self._tts[day] - chars)

    async def tts_used(self, day: str) -> int:
        return self._tts.get(day, 0)

    def _expire(self, now: float) -> None:
        while self._keys:
            key, (expires, _) = next(iter(self._keys.items()))
            if expires > now:
                return
            del self._keys[key]


_CLAIM = """
local held = redis.call('GET', KEYS[1])
if held then return {'held', held} end
local used = -1
local chars = tonumber(ARGV[3])
if chars > 0 then
  used = tonumber(redis.call('GET', KEYS[2]) or '0')
  if used + chars > tonumber(ARGV[4]) then return {'over', tostring(used)} end
  used = redis.call('INCRBY', KEYS[2], chars)
  redis.call('EXPIRE', KEYS[2], ARGV[5])
end
redis.call('SET', KEYS[1], ARGV[1], 'EX', ARGV[2])
return {'new', tostring(used)}
"""
_RESERVE = """
local used = tonumber(redis.call('GET', KEYS[1]) or '0')
local chars = tonumber(ARGV[1])
if used + chars > tonumber(ARGV[2]) then return {0, used} end
used = redis.call('INCRBY', KEYS[1], chars)
redis.call('EXPIRE', KEYS[1], ARGV[3])
return {1, used}
"""
_REFUND = """
local used = redis.call('GET', KEYS[1])
if not used then return 0 end
redis.call('SET', KEYS[1], math.max(0, tonumber(used) - tonumber(ARGV[1])), 'KEEPTTL')
return 1
"""
_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""


class RedisStore:
    """Shared by every replica. A claim names its owner; an owner keeps a lease while it lives,
    so a claim whose owner's lease lapsed was left by a dead process."""

    def __init__(self, client: redis.Redis, prefix: str, ttl: float) -> None:
        self._redis = client
        self._prefix = prefix
        self._ttl = max(1, int(ttl))
        self.owner = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self._claims: dict[str, bytes] = {}  # our pending claims' exact values, for release
        self._lease_task: asyncio.Task[None] | None = None
        self._claim = client.register_script(_CLAIM)
        self._reserve = client.register_script(_RESERVE)
        self._refund = client.register_script(_REFUND)
        self._release = client.register_script(_RELEASE)

    def __repr__(self) -> str:
        return f"RedisStore(prefix={self._prefix!r}, owner={self.owner!r})"

    async def __aenter__(self) -> Self:
        try:
            await self._call(self._renew())
        except StoreUnavailable:
            await self._redis.aclose()
            raise
        self._lease_task = asyncio.create_task(self._keep_lease(), name="store-lease")
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        if self._lease_task is not None:
            self._lease_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._lease_task
        with contextlib.suppress(RedisError, OSError):
            # Claims still pending stay: their calls may be out. The lease lapses on its own.
            await self._redis.delete(self._owner_key(self.owner))
        await self._redis.aclose()

    async def claim(self, key: str, event_id: str, reservation: Reservation | None = None) -> Claim:
        value = _record("pending", event_id, self.owner)
        counter = self._tts_key(reservation.day) if reservation else self._tts_key("-")
        chars, limit = (reservation.chars, reservation.limit) if reservation else (0, 0)
        args: list[bytes | int] = [value, self._ttl, chars, limit, TTS_KEY_SECONDS]
        found, detail = await self._call(
            self._claim(keys=[self._key(key), counter], args=args)
        )  # one round trip: the key is taken only with the characters, and the other way round
        if found == b"new":
            self._claims[key] = value
            used = int(detail)
            return Claim(State.NEW, event_id, used=used if used >= 0 else None)
        if found == b"over":
            return Claim(State.OVER_BUDGET, used=int(detail))
        record: dict[str, Any] = orjson.loads(detail)
        if record["s"] == "done":
            return Claim(State.DONE, record["e"], record["r"].encode())
        alive = await self._call(self._redis.exists(self._owner_key(record["o"])))
        return Claim(State.BUSY if alive else State.ORPHANED, record["e"])

    async def complete(self, key: str, event_id: str, outcome: bytes) -> None:
        self._claims.pop(key, None)
        value = _record("done", event_id, outcome=outcome)
        await self._call(self._redis.set(self._key(key), value, ex=self._ttl))

    async def release(self, key: str) -> None:
        value = self._claims.pop(key, None)
        if value is not None:
            await self._call(self._release(keys=[self._key(key)], args=[value]))

    async def add_tts(self, day: str, chars: int, limit: int) -> tuple[bool, int]:
        args = [chars, limit, TTS_KEY_SECONDS]
        reserved, used = await self._call(self._reserve(keys=[self._tts_key(day)], args=args))
        return bool(reserved), int(used)

    async def refund_tts(self, day: str, chars: int) -> None:
        await self._call(self._refund(keys=[self._tts_key(day)], args=[chars]))

    async def tts_used(self, day: str) -> int:
        return int(await self._call(self._redis.get(self._tts_key(day))) or 0)

    async def _call(self, pending: Any) -> Any:
        try:
            return await pending
        except (RedisError, OSError) as exc:
            raise StoreUnavailable(f"the store did not answer: {type(exc).__name__}") from exc

    async def _keep_lease(self) -> None:
        while True:
            await asyncio.sleep(LEASE_SECONDS / 3)
            try:
                await self._renew()
            except (RedisError, OSError) as exc:
                log.warning("cannot renew the store lease: %s", type(exc).__name__)

    async def _renew(self) -> None:
        await self._redis.set(self._owner_key(self.owner), b"1", ex=LEASE_SECONDS)

    def _key(self, key: str) -> str:
        return f"{self._prefix}key:{key}"

    def _owner_key(self, owner: str) -> str:
        return f"{self._prefix}owner:{owner}"

    def _tts_key(self, day: str) -> str:
        return f"{self._prefix}tts:{day}"
