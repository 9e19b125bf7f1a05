"""RedisStore: keys and the TTS counter shared by every replica, with owner leases."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import os
import socket
import time
import uuid
from collections.abc import Awaitable
from dataclasses import dataclass
from typing import Any, Self

import orjson
import redis.asyncio as redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError as LostConnection
from redis.exceptions import RedisError

from ..errors import StoreUnavailable
from ..stopping import bounded, cancel
from . import scripts, sentinel
from .batch import Batch
from .protocol import Claim, Guard, Reservation, State, Suppression
from .records import key_record, suppression_of

log = logging.getLogger(__name__)
LEASE_SECONDS = 15  # a dead process's claims are known as such this long after it died
TTS_KEY_SECONDS = 2 * 86400
REDIS_TIMEOUT = 5.0
LOST_KEPT = 10_000


@dataclass(frozen=True, slots=True)
class Replicas:
    """How many replicas must hold a claim before it counts (Redis WAIT), and how long to wait."""

    wanted: int
    timeout_ms: int


class RedisStore:
    """Shared by every replica. A claim names its owner; an owner keeps a lease while it lives,
    so a claim whose owner's lease lapsed was left by a dead process."""

    def __init__(
        self,
        client: redis.Redis,
        prefix: str,
        ttl: float,
        *,
        min_replicas: int = 0,
        wait_timeout: float = 0.25,
    ) -> None:
        self._redis = client
        self.reachable = True
        self._replicas = Replicas(min_replicas, max(1, int(wait_timeout * 1000)))
        self._prefix = prefix
        self._ttl = max(1, int(ttl))
        self.owner = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        # Our pending claims' exact values and their slots of a number's limit, for release.
        self._claims: dict[str, tuple[bytes, str, str]] = {}
        self._nonces = itertools.count(1)
        # Claims whose answer never reached us (the store went away mid-reply), by key: Redis may
        # hold them, and no call went out on them.
        self._lost: dict[str, bytes] = {}
        self._lease_task: asyncio.Task[None] | None = None
        # The commands of events in flight at once go in one round trip.
        self._batch = Batch(client, self._replicas.wanted, self._replicas.timeout_ms)
        self._suppressed = f"{prefix}suppressed"  # phone -> its entry
        self._suppressed_until = f"{prefix}suppressed:until"  # phone -> its until, if any

    @classmethod
    def from_url(cls, url: str, prefix: str, ttl: float, **replicas: Any) -> RedisStore:
        """A store on the Redis at `url`: redis://… or, behind Sentinel, redis+sentinel://…"""
        # Bounded waits: a Redis that stops answering must fail calls, not hang them.
        timeouts: dict[str, Any] = {
            "socket_timeout": REDIS_TIMEOUT,
            "socket_connect_timeout": REDIS_TIMEOUT,
            # Once more on a fresh connection: after Redis restarts or fails over, each pooled
            # connection fails once. (A claim sent twice finds itself: see claim().) Not after
            # a time-out: that would double the wait on a Redis that does not answer.
            "retry": Retry(NoBackoff(), 1, supported_errors=(LostConnection,)),
        }
        if url.startswith(sentinel.SCHEMES):
            return cls(sentinel.client(url, **timeouts), prefix, ttl, **replicas)
        return cls(redis.Redis.from_url(url, **timeouts), prefix, ttl, **replicas)

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
            await cancel(self._lease_task)
        with contextlib.suppress(RedisError, OSError):
            # Claims still pending stay: their calls may be out. The lease lapses on its own.
            await bounded(self._batch.aclose(), "the store's last round trips")
            await bounded(self._redis.delete(self._owner_key(self.owner)), "the store's lease")
        await bounded(self._redis.aclose(), "closing the store")

    async def claim(
        self,
        key: str,
        event_id: str,
        reservation: Reservation | None = None,
        guard: Guard | None = None,
        via: bytes | None = None,
    ) -> Claim:
        value = key_record("pending", event_id, self.owner, nonce=next(self._nonces), via=via)
        counter = self._tts_key(reservation.day) if reservation else self._tts_key("-")
        chars, limit = (reservation.chars, reservation.limit) if reservation else (0, 0)
        g = guard or Guard("", 0.0)
        slots = self._slots_key(g.phone)
        keys = [self._key(key), counter, self._suppressed, slots, self._suppressed_until]
        args: list[bytes | int | float | str] = [value, self._ttl, chars, limit, TTS_KEY_SECONDS]
        args += [event_id, g.phone, g.now, g.calls, g.window, g.keep, g.margin, key]
        # One step: the key is taken only with the characters and the slot, and the other way
        # round; two replicas that see the number's last slot make one call.
        held = (value, slots, key if g.phone and g.calls else "")  # what a release gives back
        try:
            if self._replicas.wanted:
                claiming = self._claim_replicated(keys, args, held, chars)
            else:
                claiming = self._batch.script(scripts.CLAIM, keys, args)
            found, detail = await self._call(claiming)
        except StoreUnavailable:
            self._lose(key, value)
            raise
        if found == b"new":
            self._claims[key] = held
            used = int(detail)
            return Claim(State.NEW, event_id, used=used if used >= 0 else None)
        if found == b"over":
            return Claim(State.OVER_BUDGET, used=int(detail))
        if found in (b"suppressed", b"phone_limit"):
            return Claim(State(found.decode()))
        if detail == value or (key in self._lost and detail == self._lost.pop(key)):
            # This very claim (sent again after a lost connection), or one of ours whose answer
            # never reached us: no call went out on it. Known by its exact record, not by its
            # owner: a claim of ours read before another event's done mark landed names us too,
            # and its call was made.
            self._claims[key] = (detail, *held[1:])
            return Claim(State.NEW, event_id)
        return await self._held(orjson.loads(detail))

    async def _held(self, record: dict[str, Any]) -> Claim:
        """A claim another delivery holds: done, or pending by a live process or a dead one."""
        if record["s"] == "done":
            return Claim(State.DONE, record["e"], record["r"].encode())
        alive = await self._call(self._batch.execute("EXISTS", self._owner_key(record["o"])))
        via = record["v"].encode() if "v" in record else None
        return Claim(State.BUSY if alive else State.ORPHANED, record["e"], via=via)

    async def trying(self, key: str, via: bytes) -> None:
        held = self._claims.get(key)
        if held is not None:
            value = orjson.dumps(orjson.loads(held[0]) | {"v": via.decode()})
            swap = self._batch.script(scripts.SWAP, [self._key(key)], [held[0], value])
            if await self._call(swap):  # else no longer ours as we knew it: left alone
                self._claims[key] = (value, *held[1:])

    def _lose(self, key: str, value: bytes) -> None:
        """A claim whose answer never came: the next claim of the key that finds it takes it."""
        self._lost[key] = value
        if len(self._lost) > LOST_KEPT:  # an outage's worth at most: the oldest go first
            del self._lost[next(iter(self._lost))]

    async def _claim_replicated(
        self, keys: list[str], args: list[Any], held: tuple[bytes, str, str], chars: int
    ) -> Any:
        """The claim, counted once the replicas wanted hold it (a WAIT in its round trip); a
        claim fewer confirm in time is taken back: no call is made on it."""
        claimed, acked = await self._batch.replicated(scripts.CLAIM, keys, args)
        if claimed[0] == b"new" and acked < self._replicas.wanted:
            value, slots, member = held
            await self._batch.script(scripts.RELEASE, [keys[0], slots], [value, member])
            if chars:
                await self._batch.script(scripts.REFUND, [keys[1]], [chars])
            raise StoreUnavailable(
                f"the claim reached {acked} of {self._replicas.wanted} replicas in "
                f"{self._replicas.timeout_ms} ms: withdrawn, no call made"
            )
        return claimed

    def complete(self, key: str, event_id: str, outcome: bytes) -> Awaitable[None]:
        value = key_record("done", event_id, outcome=outcome)
        return self._completed(
            key, self._batch.submit("SET", self._key(key), value, "EX", self._ttl)
        )

    async def _completed(self, key: str, sent: Awaitable[Any]) -> None:
        await self._call(sent)
        self._claims.pop(key, None)  # only now: until done, the claim is known to be ours

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
        return [suppression_of(phone, record) for phone, record in sorted(entries.items())]

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
            result = await pending
        except (RedisError, OSError) as exc:
            self.reachable = False
            raise StoreUnavailable(f"the store did not answer: {type(exc).__name__}") from exc
        self.reachable = True
        return result

    async def _keep_lease(self) -> None:
        while True:
            # Sooner while unreachable: /readyz follows the store's return within a second.
            await asyncio.sleep(LEASE_SECONDS / 3 if self.reachable else 1.0)
            try:
                await self._call(self._renew())
            except StoreUnavailable as exc:
                log.warning("cannot renew the store lease: %s", exc.message)

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
