"""Where accepted calls and their results' marks live: in memory for one process, in Redis for
replicas (`redis_store.py`). One result per (call, attempt), and one final result per call; a
call's attempts are its distinct transactions, ranked by when they started (CONTRACT.md §12).
The listener's last webhook bodies are kept here too, for `autocall-bridge results recent`."""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Awaitable, Callable, Iterable
from typing import Protocol

from .calls import OpenCall

PENDING_SECONDS = 30  # a mark whose publish never finished (the process died) frees itself after
FINAL = "final"
KEEP_SECONDS = 86400  # how long a kept webhook body is shown
SWEEP_SECONDS = 60.0  # how often the memory store drops what has expired


class ResultStore(Protocol):
    """Accepted calls, the open ones by phone, and the marks that keep each result single."""

    def record(self, call: OpenCall) -> Awaitable[None]:
        """Remember an accepted call, open until its final result. Queued when this is called
        (see `Store.complete`)."""

    def record_unknown(self, call: OpenCall) -> Awaitable[None]:
        """Remember an `outcome_unknown` call (no autocall_id) to look for by phone and time
        (queued when this is called)."""

    async def forget_unknown(self, call: OpenCall) -> None:
        """Stop looking for an `outcome_unknown` call."""

    async def call(self, autocall_id: str) -> OpenCall | None:
        """The accepted call `autocall_id`, open or not, while its TTL lasts."""

    async def open_by_phone(self, phone: str) -> list[OpenCall]:
        """The open calls to `phone`."""

    async def open_calls(self) -> list[OpenCall]:
        """Every open call, oldest first."""

    async def unknown_calls(self) -> list[OpenCall]:
        """Every `outcome_unknown` call still looked for, oldest first."""

    async def open_count(self) -> int:
        """How many calls are open."""

    async def claim(self, call: OpenCall, attempt: str, final: bool) -> bool:
        """Take the right to publish `attempt`'s result (and the call's final one, if `final`):
        False when it is taken, or the call already has its final result."""

    async def done(self, call: OpenCall, attempt: str, final: bool, transaction_id: str) -> None:
        """The result is published: keep the mark, and which call `transaction_id` belongs to;
        a final one closes the call."""

    async def transaction(self, transaction_id: str) -> str | None:
        """The autocall_id of a published record's `transaction_id` (a resent record)."""

    async def release(self, call: OpenCall, attempt: str, final: bool) -> None:
        """The result could not be published: give the marks back."""

    async def rank(self, call: OpenCall, transaction_id: str, started_at: float) -> tuple[int, int]:
        """(the attempt `transaction_id` is of `call`, how many transactions the call has had).
        The first sight fixes it: 1 + the call's transactions seen that started earlier, or the
        next number free when that one is taken (a record of an earlier attempt came late)."""

    async def keep(self, entry: bytes, limit: int) -> None:
        """Keep a webhook body (masked, with what was read from it): the last `limit` only."""

    async def recent(self, limit: int) -> list[bytes]:
        """The kept bodies, newest first."""

    async def lease(self, name: str, owner: str, seconds: float) -> bool:
        """Take or extend the lease `name` for `owner`, unless another owner holds it."""

    async def backoff(self) -> tuple[float, int]:
        """(seconds left of the poller's back-off, its level)."""

    async def set_backoff(self, seconds: float, level: int) -> None:
        """Back off the provider's history API for `seconds`; `level` counts the failures."""


class MemoryResults:
    """One process's result store."""

    def __init__(self, ttl: float, clock: Callable[[], float] = time.time) -> None:
        self._ttl = ttl
        self._clock = clock
        self._calls: dict[str, tuple[float, OpenCall]] = {}
        self._open: dict[str, OpenCall] = {}
        self._phones: dict[str, set[str]] = {}
        self._unknown: dict[str, OpenCall] = {}
        self._marks: dict[str, tuple[float, str]] = {}  # key -> (expires, pending | done)
        self._leases: dict[str, tuple[float, str]] = {}
        self._backoff = (0.0, 0)
        self._ranks: dict[str, dict[str, tuple[int, float]]] = {}
        self._kept: deque[tuple[float, bytes]] = deque()
        self._swept = clock()

    async def record(self, call: OpenCall) -> None:
        if self._clock() >= self._swept + SWEEP_SECONDS:
            self._sweep()
        self._calls[call.autocall_id] = (self._clock() + self._ttl, call)
        self._open[call.autocall_id] = call
        self._phones.setdefault(call.phone, set()).add(call.autocall_id)

    async def record_unknown(self, call: OpenCall) -> None:
        self._unknown[call.idempotency_key] = call

    async def forget_unknown(self, call: OpenCall) -> None:
        self._unknown.pop(call.idempotency_key, None)

    async def call(self, autocall_id: str) -> OpenCall | None:
        held = self._calls.get(autocall_id)
        if held is None or held[0] <= self._clock():
            self._calls.pop(autocall_id, None)
            self._open.pop(autocall_id, None)
            self._ranks.pop(autocall_id, None)
            return None
        return held[1]

    async def open_by_phone(self, phone: str) -> list[OpenCall]:
        ids = [i for i in self._phones.get(phone, ()) if i in self._open]
        calls = [await self.call(autocall_id) for autocall_id in sorted(ids)]
        return [call for call in calls if call is not None and call.autocall_id in self._open]

    async def open_calls(self) -> list[OpenCall]:
        calls = [await self.call(autocall_id) for autocall_id in list(self._open)]
        return sorted((c for c in calls if c is not None), key=lambda c: c.accepted_at)

    async def unknown_calls(self) -> list[OpenCall]:
        return sorted(self._unknown.values(), key=lambda call: call.accepted_at)

    async def open_count(self) -> int:
        return len(self._open)

    async def claim(self, call: OpenCall, attempt: str, final: bool) -> bool:
        key, final_key = _mark(call, attempt), _mark(call, FINAL)
        if self._state(final_key) == "done" or self._state(key) is not None:
            return False
        if final and self._state(final_key) is not None:
            return False
        pending = (self._clock() + PENDING_SECONDS, "pending")
        self._marks[key] = pending
        if final:
            self._marks[final_key] = pending
        return True

    async def done(self, call: OpenCall, attempt: str, final: bool, transaction_id: str) -> None:
        done = (self._clock() + self._ttl, "done")
        if transaction_id:
            self._marks[f"tx:{transaction_id}"] = (done[0], call.autocall_id)
        self._marks[_mark(call, attempt)] = done
        if final:
            self._marks[_mark(call, FINAL)] = done
            self._open.pop(call.autocall_id, None)
            self._phones.get(call.phone, set()).discard(call.autocall_id)
            self._ranks.pop(call.autocall_id or call.idempotency_key, None)  # closed: no more

    async def transaction(self, transaction_id: str) -> str | None:
        return self._state(f"tx:{transaction_id}")

    async def release(self, call: OpenCall, attempt: str, final: bool) -> None:
        for key in (_mark(call, attempt), _mark(call, FINAL) if final else ""):
            if self._state(key) == "pending":
                del self._marks[key]

    async def rank(self, call: OpenCall, transaction_id: str, started_at: float) -> tuple[int, int]:
        ranks = self._ranks.setdefault(call.autocall_id or call.idempotency_key, {})
        if transaction_id not in ranks:
            ranks[transaction_id] = (_free(ranks.values(), started_at), started_at)
        return ranks[transaction_id][0], len(ranks)

    async def keep(self, entry: bytes, limit: int) -> None:
        self._kept.appendleft((self._clock() + KEEP_SECONDS, entry))
        while len(self._kept) > limit:
            self._kept.pop()

    async def recent(self, limit: int) -> list[bytes]:
        now = self._clock()
        return [entry for until, entry in self._kept if until > now][:limit]

    async def lease(self, name: str, owner: str, seconds: float) -> bool:
        held = self._leases.get(name)
        if held is not None and held[0] > self._clock() and held[1] != owner:
            return False
        self._leases[name] = (self._clock() + seconds, owner)
        return True

    async def backoff(self) -> tuple[float, int]:
        until, level = self._backoff
        return max(0.0, until - self._clock()), level

    async def set_backoff(self, seconds: float, level: int) -> None:
        self._backoff = (self._clock() + seconds, level)

    def _sweep(self) -> None:
        """Drop the calls, marks and kept bodies that have expired, whoever asks for them next:
        a call nobody asks about again would stay for good."""
        now = self._swept = self._clock()
        for autocall_id in [i for i, (until, _) in self._calls.items() if until <= now]:
            _, call = self._calls.pop(autocall_id)
            self._open.pop(autocall_id, None)
            self._ranks.pop(autocall_id, None)
            phones = self._phones.get(call.phone, set())
            phones.discard(autocall_id)
            if not phones:
                self._phones.pop(call.phone, None)
        self._ranks = {key: ranks for key, ranks in self._ranks.items() if key in self._calls}
        self._marks = {key: held for key, held in self._marks.items() if held[0] > now}
        while self._kept and self._kept[-1][0] <= now:
            self._kept.pop()

    def _state(self, key: str) -> str | None:
        held = self._marks.get(key)
        if held is None or held[0] <= self._clock():
            return None
        return held[1]


def _free(known: Iterable[tuple[int, float]], started_at: float) -> int:
    """The rank of a new transaction started at `started_at` among `known` (rank, start)."""
    known = list(known)
    rank = 1 + sum(1 for _, at in known if at < started_at)
    taken = {n for n, _ in known}
    while rank in taken:
        rank += 1
    return rank


def _mark(call: OpenCall, attempt: str) -> str:
    return f"{call.autocall_id or call.idempotency_key}:{attempt}"
