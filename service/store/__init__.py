"""Idempotency keys and the daily TTS counter: in memory for one process, in Redis for replicas.

protocol.py     Store, State, Claim, Reservation: what every store answers
memory.py       MemoryStore: one process's keys, nothing shared
redis_store.py  RedisStore: shared keys with owner leases
scripts.py      the Lua scripts RedisStore runs, one step each
records.py      the records RedisStore keeps: a key's claim, a suppression entry
batch.py        the commands of concurrent events in one round trip a loop turn
resp.py         that round trip in raw RESP on redis-py's connection (a speed-up)
sentinel.py     redis+sentinel:// URLs: the master the sentinels name, followed on failover
"""

from __future__ import annotations

from .memory import MemoryStore
from .protocol import Claim, Guard, Reservation, State, Store, Suppression
from .redis_store import LEASE_SECONDS, TTS_KEY_SECONDS, RedisStore

__all__ = [
    "LEASE_SECONDS",
    "TTS_KEY_SECONDS",
    "Claim",
    "Guard",
    "MemoryStore",
    "RedisStore",
    "Reservation",
    "State",
    "Store",
    "Suppression",
    "open_store",
]


def open_store(
    url: str, prefix: str, ttl: float, *, min_replicas: int = 0, wait_timeout: float = 0.25
) -> Store:
    """The store for `url`: memory://, redis://… or redis+sentinel://…; with `min_replicas`, a
    claim counts once that many replicas hold it (Redis WAIT)."""
    if url.startswith("memory://"):
        return MemoryStore(ttl)
    replicas = {"min_replicas": min_replicas, "wait_timeout": wait_timeout}
    return RedisStore.from_url(url, prefix, ttl, **replicas)
