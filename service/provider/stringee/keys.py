"""The keys pressed in Stringee calls, kept from the input callback until the call's `ended`
event publishes its result: in memory for one process, in Redis (beside the store's keys) when
replicas share the webhook's posts."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Protocol

import redis.asyncio as redis
from redis.exceptions import RedisError

from ...errors import StoreUnavailable
from ...store import RedisStore, Store

KEEP_SECONDS = 24 * 3600.0  # a call ends long before this


class PressedKeys(Protocol):
    """The latest keys pressed in each call."""

    async def put(self, call_id: str, keys: str) -> None:
        """Remember `keys` for `call_id`."""

    async def get(self, call_id: str) -> str | None:
        """The keys pressed in `call_id`, if any were."""


class MemoryKeys:
    """One process's keys."""

    def __init__(self, ttl: float = KEEP_SECONDS, clock: Callable[[], float] = time.time) -> None:
        self._ttl = ttl
        self._clock = clock
        self._keys: dict[str, tuple[float, str]] = {}

    async def put(self, call_id: str, keys: str) -> None:
        now = self._clock()
        if len(self._keys) > 10_000:  # bounded: forget the expired first
            self._keys = {k: v for k, v in self._keys.items() if v[0] > now}
        self._keys[call_id] = (now + self._ttl, keys)

    async def get(self, call_id: str) -> str | None:
        held = self._keys.get(call_id)
        return held[1] if held is not None and held[0] > self._clock() else None


class RedisKeys:
    """Keys shared by replicas."""

    def __init__(self, client: redis.Redis, prefix: str, ttl: float = KEEP_SECONDS) -> None:
        self._client = client
        self._prefix = prefix
        self._ttl = int(ttl)

    async def put(self, call_id: str, keys: str) -> None:
        try:
            await self._client.set(self._prefix + call_id, keys, ex=self._ttl)
        except (RedisError, OSError) as exc:
            raise StoreUnavailable(f"the store did not answer: {type(exc).__name__}") from exc

    async def get(self, call_id: str) -> str | None:
        try:
            value = await self._client.get(self._prefix + call_id)
        except (RedisError, OSError) as exc:
            raise StoreUnavailable(f"the store did not answer: {type(exc).__name__}") from exc
        return value.decode() if isinstance(value, bytes) else value


def pressed_keys(store: Store, prefix: str) -> PressedKeys:
    """Beside the idempotency keys: in the same Redis (keys `<prefix>stringee:keys:<call_id>`),
    or in memory."""
    if isinstance(store, RedisStore):
        return RedisKeys(store.client, f"{prefix}stringee:keys:")
    return MemoryKeys()
