"""An account disabled for a while during a flow of events (CONTRACT.md §12): with
`on_exhausted: hold`, nothing fails, nothing is lost, and each event is called once, after the
account returns. The real broker and the sandbox; the 30 s of the issue shortened to 2 s."""

from __future__ import annotations

import asyncio
import time

import orjson
import pytest

from service.sandbox import Sandbox
from tests.conftest import Broker, MakeSettings, StartService, templates_of
from tests.helpers import TEMPLATES, configure, metric, wait_for

pytestmark = pytest.mark.integration
EVENTS = 30
DISABLED = 2.0  # seconds the account is disabled
GAP = 0.05  # seconds between two events of the flow


def shipment(n: int) -> bytes:
    return orjson.dumps({"code": f"F{n}", "phone": f"0912{n:06d}"})


async def test_an_account_disabled_during_a_flow_holds_and_calls_each_event_once(
    make_settings: MakeSettings, broker: Broker, start_service: StartService, sandbox: Sandbox
) -> None:
    config = make_settings(concurrency=4, prefetch=4)
    outcomes = await broker.outcomes(config)
    service = await start_service(config, templates_of(TEMPLATES))
    window: list[float] = []

    async def flow() -> None:
        for n in range(EVENTS):
            await broker.publish(config, shipment(n), "shipment.created", message_id=f"f-{n}")
            await asyncio.sleep(GAP)

    async def outage() -> None:
        await asyncio.sleep(10 * GAP)
        await configure(sandbox, {"account": "tenant_disabled"})
        window.append(time.time())
        await asyncio.sleep(DISABLED)
        window.append(time.time())
        await configure(sandbox, {"account": ""})

    async with asyncio.timeout(30):
        await asyncio.gather(flow(), outage())
    bodies = await outcomes.wait(EVENTS)

    assert sorted(body["event"]["id"] for body in bodies) == sorted(f"f-{n}" for n in range(EVENTS))
    assert {body["status"] for body in bodies} == {"accepted"}
    assert len(outcomes.received) == EVENTS  # one outcome each, none twice
    assert await broker.count(f"{config.queue}.dead") == 0
    assert len(sandbox.state.calls) == EVENTS
    assert set(sandbox.state.calls_by_phone.values()) == {1}
    off, on = window
    assert not [call for call in sandbox.state.calls if off < call.at.timestamp() < on]
    assert sandbox.state.requests["tenant_disabled"] >= 1  # it was met, and held
    await wait_for(
        lambda: metric(service, "autocall_consumer_paused", reason="tenant_disabled") == 0
    )
