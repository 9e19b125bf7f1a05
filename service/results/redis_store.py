"""The result store in Redis, shared by replicas: each step that must be atomic is one script."""

from __future__ import annotations

import time
from collections.abc import Awaitable
from typing import Any

import redis.asyncio as redis
from redis.exceptions import RedisError

from ..errors import StoreUnavailable
from ..store.batch import Batch
from .calls import OpenCall
from .store import FINAL, KEEP_SECONDS, PENDING_SECONDS

# KEYS: call, open set, phone set; ARGV: id, call json, accepted_at, ttl
_RECORD = """
redis.call('SET', KEYS[1], ARGV[2], 'EX', ARGV[4])
redis.call('ZADD', KEYS[2], ARGV[3], ARGV[1])
redis.call('SADD', KEYS[3], ARGV[1])
redis.call('EXPIRE', KEYS[3], ARGV[4])
return 1
"""
# KEYS: attempt mark, final mark; ARGV: final?, pending seconds
_CLAIM = """
if redis.call('GET', KEYS[2]) == 'done' then return 0 end
if not redis.call('SET', KEYS[1], 'pending', 'NX', 'EX', ARGV[2]) then return 0 end
if ARGV[1] == '1' and not redis.call('SET', KEYS[2], 'pending', 'NX', 'EX', ARGV[2]) then
  redis.call('DEL', KEYS[1])
  return 0
end
return 1
"""
# KEYS: attempt mark, final mark, open set, phone set, transaction; ARGV: final?, ttl, id, tx?
_DONE = """
redis.call('SET', KEYS[1], 'done', 'EX', ARGV[2])
if ARGV[4] == '1' then redis.call('SET', KEYS[5], ARGV[3], 'EX', ARGV[2]) end
if ARGV[1] == '1' then
  redis.call('SET', KEYS[2], 'done', 'EX', ARGV[2])
  redis.call('ZREM', KEYS[3], ARGV[3])
  redis.call('SREM', KEYS[4], ARGV[3])
end
return 1
"""
_RELEASE = """
for i, key in ipairs(KEYS) do
  if redis.call('GET', key) == 'pending' then redis.call('DEL', key) end
end
return 1
"""
# KEYS: the call's transactions (hash: transaction -> "rank:start"); ARGV: transaction, start, ttl
# One script, so that replicas taking two records of one call at once never share a rank.
_RANK = """
local held = redis.call('HGET', KEYS[1], ARGV[1])
if held then
  return {tonumber(string.match(held, '^(%d+):')), redis.call('HLEN', KEYS[1])}
end
local start, rank, taken = tonumber(ARGV[2]), 1, {}
local known = redis.call('HVALS', KEYS[1])
for _, value in ipairs(known) do
  local n, at = string.match(value, '^(%d+):(.+)$')
  taken[tonumber(n)] = true
  if tonumber(at) < start then rank = rank + 1 end
end
while taken[rank] do rank = rank + 1 end
redis.call('HSET', KEYS[1], ARGV[1], rank .. ':' .. ARGV[2])
redis.call('EXPIRE', KEYS[1], ARGV[3])
return {rank, #known + 1}
"""
# KEYS: the kept bodies; ARGV: entry, limit, seconds
_KEEP = """
redis.call('LPUSH', KEYS[1], ARGV[1])
redis.call('LTRIM', KEYS[1], 0, tonumber(ARGV[2]) - 1)
redis.call('EXPIRE', KEYS[1], ARGV[3])
return 1
"""
_LEASE = """
local held = redis.call('GET', KEYS[1])
if held and held ~= ARGV[1] then return 0 end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
return 1
"""


class RedisResults:
    """Accepted calls and result marks in Redis, under `prefix`."""

    def __init__(
        self, client: redis.Redis, prefix: str, ttl: float, batch: Batch | None = None
    ) -> None:
        # Every command joins a per-turn pipeline (the store's, when shared): concurrent
        # records take one round trip and one connection, not one each.
        self._batch = batch or Batch(client)
        self._prefix = f"{prefix}res:"
        self._ttl = max(1, int(ttl))

    def __repr__(self) -> str:
        return f"RedisResults(prefix={self._prefix!r})"

    def record(self, call: OpenCall) -> Awaitable[None]:
        keys = [self._call_key(call.autocall_id), self._open_key, self._phone_key(call.phone)]
        args = [call.autocall_id, call.dumps(), call.accepted_at, self._ttl]
        return self._call(self._batch.submit_script(_RECORD, keys, args))

    def record_unknown(self, call: OpenCall) -> Awaitable[None]:
        return self._call(
            self._batch.submit("ZADD", self._unknown_key, call.accepted_at, call.dumps())
        )

    async def forget_unknown(self, call: OpenCall) -> None:
        # By what was stored, not by `call.dumps()`: a call kept by an older release is other JSON.
        kept = await self._run(
            "ZRANGE", self._unknown_key, call.accepted_at, call.accepted_at, "BYSCORE"
        )
        gone = [m for m in kept if OpenCall.loads(m).idempotency_key == call.idempotency_key]
        if gone:
            await self._run("ZREM", self._unknown_key, *gone)

    async def call(self, autocall_id: str) -> OpenCall | None:
        data = await self._run("GET", self._call_key(autocall_id))
        return OpenCall.loads(data) if data else None

    async def open_by_phone(self, phone: str) -> list[OpenCall]:
        ids = await self._run("SMEMBERS", self._phone_key(phone))
        return await self._load(sorted(i.decode() for i in ids))

    async def open_calls(self) -> list[OpenCall]:
        ids = await self._run("ZRANGE", self._open_key, 0, -1)
        return await self._load([i.decode() for i in ids])

    async def unknown_calls(self) -> list[OpenCall]:
        members = await self._run("ZRANGE", self._unknown_key, 0, -1)
        return [OpenCall.loads(member) for member in members]

    async def open_count(self) -> int:
        return int(await self._run("ZCARD", self._open_key))

    async def claim(self, call: OpenCall, attempt: str, final: bool) -> bool:
        keys = [self._mark(call, attempt), self._mark(call, FINAL)]
        args = [int(final), PENDING_SECONDS]
        return bool(await self._script(_CLAIM, keys, args))

    async def done(self, call: OpenCall, attempt: str, final: bool, transaction_id: str) -> None:
        keys = [
            self._mark(call, attempt),
            self._mark(call, FINAL),
            self._open_key,
            self._phone_key(call.phone),
            self._transaction_key(transaction_id),
        ]
        args: list[str | int] = [int(final), self._ttl, call.autocall_id, int(bool(transaction_id))]
        await self._script(_DONE, keys, args)

    async def transaction(self, transaction_id: str) -> str | None:
        found = await self._run("GET", self._transaction_key(transaction_id))
        return found.decode() if found else None

    async def release(self, call: OpenCall, attempt: str, final: bool) -> None:
        keys = [self._mark(call, attempt)] + ([self._mark(call, FINAL)] if final else [])
        await self._script(_RELEASE, keys, [])

    async def rank(self, call: OpenCall, transaction_id: str, started_at: float) -> tuple[int, int]:
        keys = [f"{self._prefix}attempts:{call.autocall_id or call.idempotency_key}"]
        rank, count = await self._script(
            _RANK, keys, [transaction_id, f"{started_at:.3f}", self._ttl]
        )
        return int(rank), int(count)

    async def keep(self, entry: bytes, limit: int) -> None:
        keys = [f"{self._prefix}recent"]
        await self._script(_KEEP, keys, [entry, limit, KEEP_SECONDS])

    async def recent(self, limit: int) -> list[bytes]:
        found = await self._run("LRANGE", f"{self._prefix}recent", 0, max(0, limit - 1))
        return list(found)

    async def lease(self, name: str, owner: str, seconds: float) -> bool:
        keys = [f"{self._prefix}lease:{name}"]
        return bool(await self._script(_LEASE, keys, [owner, int(seconds * 1000)]))

    async def backoff(self) -> tuple[float, int]:
        until, level = await self._run(
            "MGET", f"{self._prefix}backoff", f"{self._prefix}backoff-level"
        )
        left = float(until) - time.time() if until else 0.0
        return max(0.0, left), int(level or 0)

    async def set_backoff(self, seconds: float, level: int) -> None:
        key = f"{self._prefix}backoff"
        if seconds > 0:
            await self._run("SET", key, time.time() + seconds, "PX", int(seconds * 1000) + 1)
        else:
            await self._run("DEL", key)
        await self._run("SET", f"{self._prefix}backoff-level", level, "EX", 86400)

    async def _load(self, ids: list[str]) -> list[OpenCall]:
        """The calls of `ids` still kept; ids whose call expired leave the open set."""
        if not ids:
            return []
        found = await self._run("MGET", *[self._call_key(i) for i in ids])
        gone = [i for i, data in zip(ids, found, strict=True) if data is None]
        if gone:
            await self._run("ZREM", self._open_key, *gone)
        return sorted(
            (OpenCall.loads(data) for data in found if data is not None),
            key=lambda call: call.accepted_at,
        )

    async def _run(self, *command: Any) -> Any:
        return await self._call(self._batch.execute(*command))

    async def _script(self, source: str, keys: list[str], args: list[Any]) -> Any:
        return await self._call(self._batch.script(source, keys, args))

    async def _call(self, pending: Any) -> Any:
        try:
            return await pending
        except (RedisError, OSError) as exc:
            raise StoreUnavailable(f"the store did not answer: {type(exc).__name__}") from exc

    @property
    def _open_key(self) -> str:
        return f"{self._prefix}open"

    @property
    def _unknown_key(self) -> str:
        return f"{self._prefix}unknown"

    def _call_key(self, autocall_id: str) -> str:
        return f"{self._prefix}call:{autocall_id}"

    def _phone_key(self, phone: str) -> str:
        return f"{self._prefix}phone:{phone}"

    def _transaction_key(self, transaction_id: str) -> str:
        return f"{self._prefix}tx:{transaction_id}"

    def _mark(self, call: OpenCall, attempt: str) -> str:
        return f"{self._prefix}mark:{call.autocall_id or call.idempotency_key}:{attempt}"
