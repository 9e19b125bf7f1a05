"""Redis commands of concurrent events, sent together: one round trip a loop turn (resp.py).

Each command still answers on its own (its reply or its error); nothing is a transaction, and
a command is only ever issued after what it depends on answered, so the order between batches
does not matter. A command is queued when it is submitted, not when its reply is awaited: a
caller can queue two and await both, one round trip and no task. A Lua script goes by its SHA1
and is sent in full, in the next batch, once Redis does not know it (after a restart or a
failover). With replicas wanted, a batch holding a command that must be replicated ends with one
`WAIT`, which counts the replicas holding every write before it."""

from __future__ import annotations

import asyncio
import hashlib
from typing import Any

import redis.asyncio as redis
from redis.exceptions import NoScriptError

from .resp import Command, round_trip

# Seconds a batch stays open after its first command (0: until the loop turn ends). Each round
# trip's write wakes Redis, and that write is most of what the store costs the event path: a
# longer window gathers more commands into one. 1 ms against 0: 3-8 % less CPU per event with
# the Redis store at 0 ms provider latency (two bench A/Bs); 4 ms against 1 ms: 2.5-5 % less
# (three alternating rounds, 1 Dec), for 4 ms more per command, a few ms on an event whose call
# takes hundreds.
WINDOW = 0.004
# The command, its reply, whether it WAITs, and for EVALSHA the script's source.
Queued = tuple[Command, asyncio.Future[Any], bool, str | None]


class Batch:
    """Queues commands and sends every command queued in one loop turn in one pipeline."""

    def __init__(self, client: redis.Redis, replicas: int = 0, wait_ms: int = 0) -> None:
        self._client = client
        self._wait = ("WAIT", replicas, wait_ms)
        self._queued: list[Queued] = []
        self._sending: set[asyncio.Task[None]] = set()

    async def execute(self, *command: Any) -> Any:
        """The reply of one command; RedisError or OSError if it or its round trip failed."""
        return await self.submit(*command)

    async def script(self, source: str, keys: list[str], args: list[Any]) -> Any:
        """Run a Lua script by its SHA1; in full when Redis does not have it yet."""
        return await self.submit_script(source, keys, args)

    async def replicated(self, source: str, keys: list[str], args: list[Any]) -> tuple[Any, int]:
        """A script's reply, and how many replicas held its writes within the wait (WAIT)."""
        reply: tuple[Any, int] = await self.submit_script(source, keys, args, waits=True)
        return reply

    def submit(self, *command: Any) -> asyncio.Future[Any]:
        """Queue one command now; its reply (or error) comes in the future."""
        return self._put(command, waits=False, source=None)

    def submit_script(
        self, source: str, keys: list[str], args: list[Any], *, waits: bool = False
    ) -> asyncio.Future[Any]:
        """Queue a Lua script now, by its SHA1 (see `script`)."""
        return self._put(("EVALSHA", _sha(source), len(keys), *keys, *args), waits, source)

    def _put(
        self,
        command: Command,
        waits: bool,
        source: str | None,
        future: asyncio.Future[Any] | None = None,
    ) -> asyncio.Future[Any]:
        loop = asyncio.get_running_loop()
        if future is None:  # a new command (else a script queued again in full)
            future = loop.create_future()
        if not self._queued:  # after the other events of this turn (or window) queued theirs
            if WINDOW:
                loop.call_later(WINDOW, self._flush)
            else:
                loop.call_soon(self._flush)
        self._queued.append((command, future, waits, source))
        return future

    def _flush(self) -> None:
        queued, self._queued = self._queued, []
        task = asyncio.get_running_loop().create_task(self._send(queued))
        self._sending.add(task)
        task.add_done_callback(self._sending.discard)

    async def _send(self, queued: list[Queued]) -> None:
        commands = [command for command, *_ in queued]
        waits = any(waiting for _, _, waiting, _ in queued)
        if waits:  # one round trip is one connection: WAIT counts the writes above
            commands.append(self._wait)
        try:
            replies = await self._round_trip(commands)
        except BaseException as exc:  # the round trip failed: every command of it did
            for _, future, *_ in queued:
                if not future.done():
                    future.set_exception(exc if isinstance(exc, Exception) else OSError(exc))
            if not isinstance(exc, Exception):
                raise
            return
        acked = replies.pop() if waits else 0
        acked = acked if isinstance(acked, int) else 0  # a failed WAIT confirms nothing
        for queued_one, reply in zip(queued, replies, strict=True):
            self._answer(queued_one, reply, acked)

    async def _round_trip(self, commands: list[Command]) -> list[Any]:
        """Every command's raw reply, or its error, in order (see resp.round_trip)."""
        return await round_trip(self._client, commands)

    def _answer(self, queued: Queued, reply: Any, acked: int) -> None:
        command, future, waiting, source = queued
        if future.done():  # its caller was cancelled
            return
        if isinstance(reply, NoScriptError) and source is not None:
            self._put(("EVAL", source, *command[2:]), waiting, None, future)
        elif isinstance(reply, Exception):
            future.set_exception(reply)
        else:
            future.set_result((reply, acked) if waiting else reply)

    async def aclose(self) -> None:
        """Wait for the round trips under way."""
        if self._sending:
            await asyncio.gather(*self._sending, return_exceptions=True)


_SHAS: dict[str, str] = {}


def _sha(source: str) -> str:
    sha = _SHAS.get(source)
    if sha is None:
        sha = _SHAS[source] = hashlib.sha1(source.encode(), usedforsecurity=False).hexdigest()
    return sha
