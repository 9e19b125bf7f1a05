"""Shutdown steps that always end: a background task cancelled until it stops, and a closing
step given a bound. A stop that waits forever on a broker, a Redis or an HTTP peer hangs the
process (and Kubernetes only kills it after its grace period, with events still held).

A cancellation can be lost: on Python 3.11, `asyncio.wait_for` returns the inner result when
it and a cancel arrive in the same loop turn, so a loop around it carries on; hence `cancel`
cancels again until the task ends, and gives up on it after a bound."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable
from typing import Any

log = logging.getLogger("autocall")
STEP_TIMEOUT = 10.0  # one shutdown step: a task's stop, a connection's or channel's close
RECANCEL = 0.5  # a task still running this long after a cancel lost it: cancel again


async def cancel(task: asyncio.Task[Any], within: float = STEP_TIMEOUT) -> None:
    """Cancel `task` (a loop with nothing to clean up) and wait until it ends, cancelling again
    while it goes on (a cancellation it lost); after `within` seconds it is left behind, logged."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while not task.done():
        left = deadline - loop.time()
        if left <= 0:
            log.error("task %s did not stop within %g s; left behind", task.get_name(), within)
            return
        task.cancel()
        await asyncio.wait({task}, timeout=min(left, RECANCEL))
    if not task.cancelled() and (exc := task.exception()) is not None:
        log.warning("task %s ended with %s", task.get_name(), type(exc).__name__)


async def bounded(step: Awaitable[Any], what: str, within: float = STEP_TIMEOUT) -> None:
    """Await a shutdown step for at most `within` seconds; past that, go on without it
    (logged): the peer it waits for does not answer."""
    try:
        async with asyncio.timeout(within):
            await step
    except TimeoutError:
        log.warning("%s took longer than %g s; going on without it", what, within)
