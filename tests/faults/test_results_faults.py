"""Call results through a crash: kill -9 while the provider's records are arriving."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from typing import Any

import pytest
import redis.asyncio as redis

from tests.faults.harness import REDIS_URL, Rig, order, phone
from tests.faults.ledger import Outcome
from tests.faults.processes import free_port

pytestmark = pytest.mark.faults
TOKEN = "fault-results-" + "t" * 32
EVENTS = 200


def results(rig: Rig) -> list[dict[str, Any]]:
    return [o.body for o in rig.outcomes.received if o.body["status"] == "result"]


def outcomes(rig: Rig) -> list[Outcome]:
    return [o for o in rig.outcomes.received if o.body["status"] != "result"]


async def until_received(rig: Rig, done: Any, timeout: float) -> None:
    async with asyncio.timeout(timeout), rig.outcomes._changed:
        await rig.outcomes._changed.wait_for(done)


async def pending_marks(rig: Rig) -> int:
    """Result marks taken and not yet done: their results may or may not be out."""
    client = redis.Redis.from_url(REDIS_URL)
    async with client:
        keys = [k async for k in client.scan_iter(f"autocall:{rig.queue}:res:mark:*", count=1000)]
        values = await client.mget(keys) if keys else []
    return sum(1 for value in values if value == b"pending")


async def test_kill_9_while_records_are_arriving(rig: Rig) -> None:
    """kill -9 while call records are arriving (webhook and poller), then restart."""
    port = free_port()
    url = f"http://127.0.0.1:{port}/webhooks/omicall/{TOKEN}"
    await rig.sandbox.configure(
        call_seconds=0.3, webhook_url=url, webhook_retries=10, webhook_backoff=0.2
    )
    settings = {
        "webhook_token": TOKEN,
        "webhook_port": port,
        "result_poll_interval": "1s",
        "result_timeout": "1h",
    }
    await rig.declare()
    await rig.publish(order(f"r-{i}", f"R{i}", phone(i)) for i in range(EVENTS))
    service = await rig.start_service(**settings)
    await until_received(rig, lambda: len(results(rig)) >= EVENTS // 4, timeout=60)

    await service.process.kill()
    killed = time.monotonic()
    at_kill, pending = len(results(rig)), await pending_marks(rig)
    await rig.start_service(**settings)

    def settled() -> bool:
        finals = {r["event"]["id"] for r in results(rig) if r["final"]}
        expected = {o.event_id for o in outcomes(rig) if o.label == "accepted"}
        return len(expected) + len(unknown_ids(rig)) >= EVENTS and expected <= finals

    await until_received(rig, settled, timeout=150)
    await asyncio.wait_for(rig.outcomes.quiet(3.0), 30)
    recovery = time.monotonic() - killed

    ledger = await rig.record(outcomes(rig))  # counts the dead letters too
    found = results(rig)
    copies = Counter((r["event"]["id"], r["attempt"]) for r in found)
    twice = {key: n for key, n in copies.items() if n > 1}
    finals = Counter(r["event"]["id"] for r in found if r["final"])
    sources = Counter(r["source"] for r in found)
    ledger.notes.append(
        f"{len(found)} results ({at_kill} before the kill; webhook {sources['webhook']}, poll "
        f"{sources['poll']}), {pending} result marks pending at the kill, {len(twice)} results "
        f"published twice; every accepted call's final result {recovery:.0f} s after the kill"
    )
    assert ledger.problems() == []
    accepted = {o.event_id for o in outcomes(rig) if o.label == "accepted"}
    assert accepted <= set(finals), "an accepted call without a final result"
    assert twice == {}  # confirmed just before the kill, marked done from <queue>.results
    final_attempts: dict[str, set[int]] = {}
    for r in found:
        if r["final"]:
            final_attempts.setdefault(r["event"]["id"], set()).add(r["attempt"])
    assert {e: a for e, a in final_attempts.items() if len(a) > 1} == {}  # one final each


def unknown_ids(rig: Rig) -> set[str]:
    return {o.event_id for o in outcomes(rig) if o.label == "failed/outcome_unknown"}
