"""Acknowledgements, batched: one `basic.ack multiple=True` for a contiguous run of finished
deliveries, sent at the end of the loop turn in which they finished.

A multiple ack settles every unsettled delivery of its channel up to its tag, so it is only
sent for the highest tag of a run in which every lower tag is settled: finished (its outcome
confirmed) and waiting for this ack, or settled already (acked alone, or given back with a
nack). A finished delivery behind one still in flight is acked alone, in the same turn: no ack
waits longer than it did unbatched. Tags count from 1 on each channel, so each channel has
its own window. Every ack and nack goes through one queue of our own, written in order by one
task: the client's frame queue is bounded, and a frame that waits there must not be overtaken
by a multiple ack that covers its tag.

What it touches below aio-pika's API: the aiormq channel under each message
(`IncomingMessage.channel`), acked with `basic_ack(tag, multiple=..., wait=False)` instead of
`IncomingMessage.ack()` (which acks one tag). No gain of its own was recorded: it came with the
settle path, and it is kept for the ordering above as much as for the frames it saves
(docs/speedups.md). tests/amqp/test_acks.py checks the hook against the real broker."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from aio_pika.abc import AbstractIncomingMessage

log = logging.getLogger("autocall")
MAX_SPREAD = 8192  # settled tags kept above a gap; past it the channel is acked one by one


@dataclass(slots=True)
class _Window:
    """One channel's deliveries: all tags up to `upto` are settled."""

    upto: int = 0
    finished: dict[int, AbstractIncomingMessage] = field(default_factory=dict)
    settled: set[int] = field(default_factory=set)  # above `upto`, acked alone or nacked
    alone: bool = False  # a tag never settled: no more multiple acks on this channel


class Acks:
    """Collects finished deliveries and acks them in runs, once a loop turn."""

    def __init__(self) -> None:
        self._windows: dict[int, tuple[Any, _Window]] = {}  # id(channel): (channel, window)
        self._flushing = False
        # (delivery, multiple): an ack; (delivery, None): a nack that requeues
        self._queue: deque[tuple[AbstractIncomingMessage, bool | None]] = deque()
        self._writer: asyncio.Task[None] | None = None

    def __repr__(self) -> str:
        return f"Acks(channels={len(self._windows)})"

    def ack(self, delivery: AbstractIncomingMessage) -> None:
        """`delivery` finished (its outcome confirmed): ack it at the end of this turn."""
        tag = delivery.delivery_tag
        try:
            window = self._window(delivery)
        except Exception as exc:  # its channel closed: the delivery comes back by itself
            _cannot_ack(exc)
            return
        if tag is None or window.alone:
            self._send([(delivery, False)])
            return
        window.finished[tag] = delivery
        if not self._flushing:
            self._flushing = True
            asyncio.get_running_loop().call_soon(self.flush)

    def nack(self, delivery: AbstractIncomingMessage) -> None:
        """Give `delivery` back to the queue (after anything queued before it)."""
        tag = delivery.delivery_tag
        with contextlib.suppress(Exception):  # a closed channel has given it back already
            if tag is not None:
                self._window(delivery).settled.add(tag)
        self._send([(delivery, None)])

    def flush(self) -> None:
        """Send what finished: a multiple ack for each contiguous run, the rest alone."""
        self._flushing = False
        acks: list[tuple[AbstractIncomingMessage, bool | None]] = []
        for key, (channel, window) in list(self._windows.items()):
            if getattr(channel, "is_closed", False):
                del self._windows[key]  # its deliveries come back to someone; acks would fail
                continue
            acks += _runs(window)
        if acks:
            self._send(acks)

    async def drain(self) -> None:
        """Send what finished and wait until it is queued (before the channel closes)."""
        self.flush()
        if self._writer is not None:
            await asyncio.gather(self._writer, return_exceptions=True)

    def _window(self, delivery: AbstractIncomingMessage) -> _Window:
        channel = delivery.channel
        found = self._windows.get(id(channel))
        if found is None or found[0] is not channel:
            found = self._windows[id(channel)] = (channel, _Window())
        return found[1]

    def _send(self, settles: list[tuple[AbstractIncomingMessage, bool | None]]) -> None:
        self._queue.extend(settles)
        if self._writer is None or self._writer.done():
            self._writer = asyncio.get_running_loop().create_task(self._write())

    async def _write(self) -> None:
        """Hand each frame to the client in order, one at a time."""
        failed: Exception | None = None
        while self._queue:
            delivery, multiple = self._queue.popleft()
            try:
                if multiple is None:
                    with contextlib.suppress(Exception):  # closed: given back already
                        await delivery.nack(requeue=True)
                    continue
                tag = delivery.delivery_tag or 0
                await delivery.channel.basic_ack(tag, multiple=multiple, wait=False)
            except Exception as exc:
                failed = exc
        if failed is not None:
            _cannot_ack(failed)


def _runs(window: _Window) -> list[tuple[AbstractIncomingMessage, bool | None]]:
    """The acks to send for a window: (delivery, multiple)."""
    acks: list[tuple[AbstractIncomingMessage, bool | None]] = []
    tag, last = window.upto + 1, None
    finished, settled = window.finished, window.settled
    while tag in finished or tag in settled:
        if tag in finished:
            last = finished.pop(tag)
        settled.discard(tag)
        tag += 1
    window.upto = tag - 1
    if last is not None:
        acks.append((last, True))
    for later, delivery in sorted(finished.items()):  # behind a delivery still in flight
        acks.append((delivery, False))
        settled.add(later)
    finished.clear()
    if len(settled) > MAX_SPREAD:
        log.warning("a delivery was never settled; acking one by one on this channel")
        window.alone = True
        settled.clear()
    return acks


def _cannot_ack(exc: Exception) -> None:
    why = f"{type(exc).__name__}: {exc}"[:200]
    log.warning("cannot ack (%s); a redelivery will replay the outcome", why)
