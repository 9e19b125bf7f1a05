"""Fault cases of the provider's account (CONTRACT.md §12): the service as a process, the real
broker, Redis and the sandbox as a process."""

from __future__ import annotations

import asyncio
import time
from datetime import datetime

import pytest

from tests.faults.harness import Rig, Service, phone, shipment, until

pytestmark = pytest.mark.faults
EVENTS = 120
DISABLED = 30.0  # seconds, as the issue has it
RATE = 0.25  # seconds between two events of the flow: the flow lasts 30 s


async def test_account_disabled_for_30_s_during_a_flow(rig: Rig) -> None:
    """account disabled (tenant_disabled) for 30 s during a flow of events (on_exhausted: hold)."""
    service = await rig.start_service()
    window: list[float] = []

    async def flow() -> None:
        for i in range(EVENTS):
            await rig.publish([shipment(f"a-{i}", f"A{i}", phone(i))])
            await asyncio.sleep(RATE)

    async def outage() -> None:
        await asyncio.sleep(20 * RATE)
        await rig.sandbox.configure(account="tenant_disabled")
        window.append(time.time())
        await until(lambda: _held(service, 1.0), 15, "held for tenant_disabled")
        await asyncio.sleep(DISABLED - (time.time() - window[0]))
        window.append(time.time())
        await rig.sandbox.configure(account="")

    await asyncio.gather(flow(), outage())
    ledger = await rig.settle(timeout=90)

    calls = await rig.sandbox.calls()
    off, on = window
    during = [c for c in calls if off < datetime.fromisoformat(c["at"]).timestamp() < on]
    refused = (await rig.sandbox.state())["requests"]["tenant_disabled"]
    ledger.notes.append(
        f"disabled {on - off:.0f} s; {refused} requests refused (probes), "
        f"{len(during)} calls while disabled"
    )
    assert ledger.problems() == []
    assert ledger.statuses == {"accepted": EVENTS}
    assert ledger.calls == EVENTS
    assert ledger.dead_letters == 0
    assert during == []
    assert refused >= 1
    assert await _held(service, 0.0)


async def _held(service: Service, value: float) -> bool:
    return await service.metric("autocall_consumer_paused", reason="tenant_disabled") == value
