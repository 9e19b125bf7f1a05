"""RedisStore: keys and the TTS counter shared by every replica, with owner leases."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import time
import uuid
from typing import Any, Self

import orjson
import redis.asyncio as redis
from redis.exceptions import RedisError

from ..errors import StoreUnavailable
from . import scripts, sentinel
from .batch import Batch
from .protocol import Claim, Guard, Reservation, State, Suppression

log = logging.getLogger(__name__)
LEASE_SECONDS = 15  # a dead process's claims are known as such this long after it died
TTS_KEY_SECONDS = 2 * 86400
REDIS_TIMEOUT = 5.0


def _record(state: str, event_id: str, owner: str = "", outcome: bytes = b"") -> bytes:
    return orjson.dumps({"s": state, "e": event_id, "o": owner, "r": outcome.decode()})


class RedisStore:
    """Shared by every replica. A claim names its owner; an owner keeps a lease while it lives,
    so a claim whose owner's lease lapsed was left by a dead process."""

    def __init__(self, client: redis.Redis, prefix: str, ttl: float) -> None:
        self._redis = client
        self._prefix = prefix
        self._ttl = max(1, int(ttl))
        self.owner = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        # Our pending claims' exact values and their slots of a number's limit, for release.
        self._claims: dict[str, tuple[bytes, str, str]] = {}
        self._lease_task: asyncio.Task[None] | None = None
        # The commands of events in flight at once go in one round trip.
        self._batch = Batch(client)
        self._suppressed = f"{prefix}suppressed"  # phone -> its entry
        self._suppressed_until = f"{prefix}suppressed:until"  # phone -> its until, if any

    @classmethod
    def from_url(cls, url: str, prefix: str, ttl: float) -> RedisStore:
        """A store on the Redis at `url`: redis://… or, behind Sentinel, redis+sentinel://…"""
        # Bounded waits: a Redis that stops answering must fail calls, not hang them.
        timeouts: dict[str, Any] = {
            "socket_timeout": REDIS_TIMEOUT,
            "socket_connect_timeout": REDIS_TIMEOUT,
        }
        if url.startswith(sentinel.SCHEMES):
            return cls(sentinel.client(url, **timeouts), prefix, ttl)
        return cls(redis.Redis.from_url(url, **timeouts), prefix, ttl)

    @property
    def client(self) -> redis.Redis:
        """The Redis client, for other state that lives beside the keys (call results)."""
        return self._redis

    @property
    def batch(self) -> Batch:
        """The per-turn pipeline, for per-event commands that live beside the keys."""
        return self._batch

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
            await self._batch.aclose()
            await self._redis.delete(self._owner_key(self.owner))
        await self._redis.aclose()

    async def claim(
        self,
        key: str,
        event_id: str,
        reservation: Reservation | None = None,
        guard: Guard | None = None,
    ) -> Claim:
        value = _record("pending", event_id, self.owner)
        counter = self._tts_key(reservation.day) if reservation else self._tts_key("-")
        chars, limit = (reservation.chars, reservation.limit) if reservation else (0, 0)
        g = guard or Guard("", 0.0)
        slots = self._slots_key(g.phone)
        keys = [self._key(key), counter, self._suppressed, slots, self._suppressed_until]
        args: list[bytes | int | float | str] = [value, self._ttl, chars, limit, TTS_KEY_SECONDS]
        args += [event_id, g.phone, g.now, g.calls, g.window, g.keep, g.margin, key]
        # One step: the key is taken only with the characters and the slot, and the other way
        # round; two replicas that see the number's last slot make one call.
        found, detail = await self._call(self._batch.script(scripts.CLAIM, keys, args))
        if found == b"new":
            self._claims[key] = (value, slots, key if g.phone and g.calls else "")
            used = int(detail)
            return Claim(State.NEW, event_id, used=used if used >= 0 else None)
        if found == b"over":
            return Claim(State.OVER_BUDGET, used=int(detail))
        if found in (b"suppressed", b"phone_limit"):
            return Claim(State(found.decode()))
        record: dict[str, Any] = orjson.loads(detail)
        if record["s"] == "done":
            return Claim(State.DONE, record["e"], record["r"].encode())
        alive = await self._call(self._batch.execute("EXISTS", self._owner_key(record["o"])))
        return Claim(State.BUSY if alive else State.ORPHANED, record["e"])

    async def complete(self, key: str, event_id: str, outcome: bytes) -> None:
        self._claims.pop(key, None)
        value = _record("done", event_id, outcome=outcome)
        await self._call(self._batch.execute("SET", self._key(key), value, "EX", self._ttl))

    async def release(self, key: str) -> None:
        claim = self._claims.pop(key, None)
        if claim is not None:
            value, slots, member = claim
            release = self._batch.script(scripts.RELEASE, [self._key(key), slots], [value, member])
            await self._call(release)

    async def protections(self, guard: Guard) -> State | None:
        keys = [self._suppressed, self._slots_key(guard.phone)]
        args = [guard.phone, guard.now, guard.calls, guard.window]
        found = await self._call(self._batch.script(scripts.PROTECTIONS, keys, args))
        return State(found.decode()) if found else None

    async def suppress(self, entry: Suppression) -> None:
        record = orjson.dumps({"reason": entry.reason, "until": entry.until, "added": entry.added})
        until = "" if entry.until is None else entry.until
        keys = [self._suppressed, self._suppressed_until]
        await self._call(self._batch.script(scripts.SUPPRESS, keys, [entry.phone, record, until]))

    async def unsuppress(self, phone: str) -> bool:
        keys = [self._suppressed, self._suppressed_until]
        return bool(await self._call(self._batch.script(scripts.UNSUPPRESS, keys, [phone])))

    async def suppressions(self) -> list[Suppression]:
        await self.suppressed_count()
        entries = await self._call(self._redis.hgetall(self._suppressed))
        return [_suppression(phone, record) for phone, record in sorted(entries.items())]

    async def suppressed_count(self) -> int:
        keys = [self._suppressed, self._suppressed_until]
        return int(await self._call(self._batch.script(scripts.PRUNE, keys, [time.time()])))

    async def add_tts(self, day: str, chars: int, limit: int) -> tuple[bool, int]:
        args = [chars, limit, TTS_KEY_SECONDS]
        reserved, used = await self._call(
            self._batch.script(scripts.RESERVE, [self._tts_key(day)], args)
        )
        return bool(reserved), int(used)

    async def refund_tts(self, day: str, chars: int) -> None:
        await self._call(self._batch.script(scripts.REFUND, [self._tts_key(day)], [chars]))

    async def pace(self, rate: float) -> float:
        interval = max(1, round(1_000_000 / rate))
        key = f"{self._prefix}pace"
        wait_us = await self._call(self._batch.script(scripts.PACE, [key], [interval]))
        return int(wait_us) / 1_000_000

    async def tts_used(self, day: str) -> int:
        return int(await self._call(self._batch.execute("GET", self._tts_key(day))) or 0)

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

    def _slots_key(self, phone: str) -> str:
        return f"{self._prefix}phone:{phone}"


def _suppression(phone: bytes, record: bytes) -> Suppression:
    entry = orjson.loads(record)
    return Suppression(phone.decode(), entry["reason"], entry["until"], entry["added"])
