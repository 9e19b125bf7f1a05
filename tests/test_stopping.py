"""Shutdown always ends: the watchdog stops when cancelled, even as the broker answers; a task
that loses a cancellation is cancelled again; a step whose peer never answers is given up."""

from __future__ import annotations

import asyncio
import contextlib
from types import SimpleNamespace
from typing import Any

from service.app import Service
from service.stopping import bounded, cancel
from service.templates import Templates
from tests.conftest import MakeSettings


class SilentBroker:
    """A watchdog channel whose passive declares are answered only when the test says so."""

    def __init__(self) -> None:
        self.replies: asyncio.Queue[asyncio.Future[Any]] = asyncio.Queue()

    async def get_underlay_channel(self) -> SilentBroker:
        return self

    async def queue_declare(self, queue: str, passive: bool) -> Any:
        reply: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self.replies.put_nowait(reply)
        return await reply


async def test_the_watchdog_stops_when_cancelled_in_the_turn_the_broker_answers(
    make_settings: MakeSettings, example_templates: Templates
) -> None:
    service = Service(make_settings(), example_templates)
    broker = SilentBroker()
    watching = asyncio.create_task(service._watch(broker))  # type: ignore[arg-type]
    try:
        reply = await broker.replies.get()
        reply.set_result(SimpleNamespace(consumer_count=1))
        await asyncio.sleep(0)  # one loop turn: the answer is in, the watchdog not resumed yet
        watching.cancel()

        done, _ = await asyncio.wait({watching}, timeout=5)

        assert done, "the watchdog lost the cancellation and kept watching"
        assert watching.cancelled()
    finally:
        await cancel(watching)


async def test_cancel_cancels_again_a_task_that_lost_the_cancellation() -> None:
    lost = asyncio.Event()

    async def loses_one() -> None:
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            lost.set()  # as wait_for does when the answer and the cancel come together
        await asyncio.Event().wait()

    task = asyncio.create_task(loses_one())
    await asyncio.sleep(0)

    await cancel(task)

    assert lost.is_set()
    assert task.cancelled()


async def test_cancel_leaves_behind_a_task_that_never_stops() -> None:
    stop = asyncio.Event()

    async def stubborn() -> None:
        while not stop.is_set():
            with contextlib.suppress(asyncio.CancelledError):
                await stop.wait()

    task = asyncio.create_task(stubborn())
    await asyncio.sleep(0)

    await cancel(task, within=0.2)

    assert not task.done()
    stop.set()
    await task


async def test_bounded_gives_up_a_step_whose_peer_never_answers() -> None:
    never = asyncio.Event()

    await bounded(never.wait(), "a silent peer", within=0.1)

    assert not never.is_set()
