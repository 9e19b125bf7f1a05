"""Plays out every accepted call: its attempts go into the call history as they end, and while a
webhook is set, its live events and CDRs are posted at their times."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Coroutine
from typing import Any

from .poster import Poster
from .script import Attempt, Dial, plan
from .state import DEFAULT_HOTLINE, RecordedCall, SandboxState


class Playing:
    """The calls being played out now; `idle()` waits until none is."""

    def __init__(self) -> None:
        self._tasks: set[asyncio.Task[None]] = set()
        self._idle = asyncio.Event()
        self._idle.set()

    def start(self, play: Coroutine[Any, Any, None]) -> None:
        """Play a call out in the background."""
        task = asyncio.create_task(play)
        self._tasks.add(task)
        self._idle.clear()
        task.add_done_callback(self._finished)

    async def idle(self) -> None:
        """Return once no call is being played out."""
        await self._idle.wait()

    async def cancel(self) -> None:
        """Stop every play-out."""
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    def _finished(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        if not self._tasks:
            self._idle.set()


class Dialer:
    """The calls in progress; `idle()` waits until every one has been played out."""

    def __init__(self, state: SandboxState) -> None:
        self.state = state
        self.poster = Poster(state)
        self._playing = Playing()

    def start(self, call: RecordedCall) -> None:
        """Plan a newly accepted call's attempts and, while a webhook is set, post them."""
        dials = self._dials(call)
        if not self.state.webhook_targets():
            self.state.pending.extend(dials)  # the history plans them when it is read
            return
        attempts = [a for dial in dials for a in plan(dial)]
        self.state.planned().extend(attempts)
        if attempts:
            self._playing.start(self._play(attempts))

    def finished(self) -> list[Attempt]:
        """The attempts whose calls have ended: what the call history knows."""
        now = time.monotonic()
        return [a for a in self.state.planned() if a.ends_at <= now]

    async def idle(self) -> None:
        """Return once no call is being played out."""
        await self._playing.idle()

    async def close(self) -> None:
        """Stop playing calls out and close the webhook client."""
        await self._playing.cancel()
        await self.poster.close()

    def _dials(self, call: RecordedCall) -> list[Dial]:
        body, state = call.body, self.state
        by_phone = "phone_number_list" in body
        numbers: list[str] = body["phone_number_list"] if by_phone else body["extensions"]
        return [
            Dial(
                autocall_id=call.autocall_id,
                number=number,
                hotline=body.get("cid") or DEFAULT_HOTLINE,
                num_retry=body.get("num_retry", 0),
                accepted_wall=call.at.timestamp(),
                accepted_mono=time.monotonic(),
                seconds=state.call_seconds,
                number_format=state.number_format if by_phone else "as_sent",
                cdr_style=state.cdr_style,
                autocall_uuid=autocall_uuid,
                retry_style=state.send_num_retry,
            )
            for number, autocall_uuid in zip(numbers, call.autocall_uuids, strict=False)
        ]

    async def _play(self, attempts: list[Attempt]) -> None:
        schedule: list[tuple[float, bool, dict[str, Any]]] = []
        for attempt in attempts:
            schedule += [(due, False, body) for due, body in attempt.live]
            schedule.append((attempt.ends_at, True, attempt.cdr))
        schedule.sort(key=lambda entry: entry[0])
        try:
            for due, is_cdr, body in schedule:
                await asyncio.sleep(max(0.0, due - time.monotonic()))
                if is_cdr:
                    await asyncio.sleep(self.state.webhook_delay)
                    await self.poster.cdr(body)
                else:
                    await self.poster.live(body)
        except Exception:  # a receiver's misbehaviour must never stop the sandbox
            self.state.webhook_posts["error"] += 1
