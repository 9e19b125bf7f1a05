"""The assembled service: replicas sharing Redis, draining on stop, and losing the broker."""

from __future__ import annotations

import asyncio
import shutil
import subprocess
from collections import Counter
from typing import Any

import pytest
from aio_pika.robust_connection import RobustConnection

from service.sandbox import Sandbox
from tests.conftest import REDIS_URL, Broker, MakeSettings, StartService, templates_of
from tests.helpers import TEMPLATES, configure, http_status, metric, order, wait_for

pytestmark = pytest.mark.integration


async def test_replicas_sharing_redis_call_each_key_once(
    make_settings: MakeSettings, broker: Broker, start_service: StartService, sandbox: Sandbox
) -> None:
    config = make_settings(store_url=REDIS_URL, prefetch=8, concurrency=8)
    templates = templates_of(TEMPLATES)
    outcomes = await broker.outcomes(config)
    for _ in range(3):
        await start_service(config, templates)
    keys = [f"R{i % 10}" for i in range(60)]  # ten keys, six events each, all at once
    for i, key in enumerate(keys):
        await broker.publish(config, order(code=key), "order.created", message_id=f"r-{i}")

    bodies = await outcomes.wait(60)

    assert Counter(body["status"] for body in bodies) == {"accepted": 10, "skipped": 50}
    assert Counter(call.body["name"] for call in sandbox.state.calls) == {
        f"Đơn R{i}": 1 for i in range(10)
    }
    assert len({body["event"]["id"] for body in bodies}) == 60


async def test_replicas_share_the_daily_budget(
    make_settings: MakeSettings, broker: Broker, start_service: StartService, sandbox: Sandbox
) -> None:
    config = make_settings(store_url=REDIS_URL, tts_daily_limit=29 * 4)
    templates = templates_of(TEMPLATES)
    outcomes = await broker.outcomes(config)
    await start_service(config, templates)
    await start_service(config, templates)
    for i in range(10):
        await broker.publish(config, order(code=f"Q{i}"), "order.created")

    bodies = await outcomes.wait(10)

    assert Counter(body["status"] for body in bodies) == {"accepted": 4, "failed": 6}
    assert len(sandbox.state.calls) == 4


async def test_stop_drains_in_flight_calls_and_leaves_the_rest_queued(
    make_settings: MakeSettings, broker: Broker, start_service: StartService, sandbox: Sandbox
) -> None:
    await configure(sandbox, {"latency": 0.3})
    config = make_settings(prefetch=2, concurrency=2, shutdown_grace="10s")
    templates = templates_of(TEMPLATES)
    outcomes = await broker.outcomes(config)
    service = await start_service(config, templates)
    for i in range(10):
        await broker.publish(config, order(code=f"G{i}"), "order.created")
    await wait_for(lambda: metric(service, "autocall_inflight_events") == 2)

    await service.__aexit__(None, None, None)

    finished = len(outcomes.received)
    assert finished >= 2  # the calls in flight when it stopped ended normally
    assert len(sandbox.state.calls) == finished
    assert await broker.count(config.queue) == 10 - finished
    await start_service(config, templates)
    bodies = await outcomes.wait(10)
    assert [body["status"] for body in bodies] == ["accepted"] * 10
    assert len(sandbox.state.calls) == 10


async def test_grace_exhausted_cancels_before_the_call_and_reports_after_it(
    make_settings: MakeSettings, broker: Broker, start_service: StartService, sandbox: Sandbox
) -> None:
    """A call still out when the grace ends keeps its key: its redelivery is outcome_unknown,
    never a second call."""
    await configure(sandbox, {"faults": ["accept_then_hang"]})
    config = make_settings(store_url=REDIS_URL, shutdown_grace="200ms", api_timeout="30s")
    templates = templates_of(TEMPLATES)
    outcomes = await broker.outcomes(config)
    service = await start_service(config, templates)
    await broker.publish(config, order(code="C1"), "order.created", message_id="c-1")
    await wait_for(lambda: len(sandbox.state.calls) == 1)

    await service.__aexit__(None, None, None)

    assert outcomes.received == []
    assert [k async for k in redis_keys(f"autocall:{config.queue}:owner:*")] == []  # lease ended
    await start_service(config, templates)
    [body] = await outcomes.wait(1)
    assert body["error"]["code"] == "outcome_unknown"
    assert len(sandbox.state.calls) == 1


@pytest.mark.skipif(shutil.which("rabbitmqctl") is None, reason="needs rabbitmqctl")
async def test_connection_closed_by_the_broker_reconnects(
    make_settings: MakeSettings, broker: Broker, start_service: StartService, sandbox: Sandbox
) -> None:
    config = make_settings()
    outcomes = await broker.outcomes(config)
    service = await start_service(config, templates_of(TEMPLATES))
    await broker.publish(config, order(code="N1"), "order.created")
    await outcomes.wait(1)

    connection = service._connection
    assert isinstance(connection, RobustConnection)
    connected = connection.connection_attempt  # successful connections so far
    await close_connection(f"autocall-bridge {config.queue}")
    # A reconnection to the one node can take milliseconds: count it rather than catch the gap.
    await wait_for(lambda: connection.connection_attempt > connected)
    await wait_for(lambda: service.ready()[0])
    await broker.publish(config, order(code="N2"), "order.created")

    _, body = await outcomes.wait(2)
    assert body["status"] == "accepted"
    async with asyncio.timeout(5):  # the watchdog re-counts the broker's consumers every 0.5 s
        while await http_status(service, "/readyz") != 200:
            await asyncio.sleep(0.1)


async def close_connection(name: str) -> None:
    """Closes, from the broker's side, the connection whose client-given name is `name`."""
    listing = await run_command("rabbitmqctl", "-q", "list_connections", "pid", "client_properties")
    pids = [line.split("\t")[0] for line in listing.splitlines() if f'"{name}"' in line]
    assert pids, f"no connection named {name}"
    for pid in pids:
        await run_command("rabbitmqctl", "-q", "close_connection", pid, "test: broker side close")


async def run_command(*argv: str) -> str:
    process = await asyncio.create_subprocess_exec(
        *argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    stdout, stderr = await asyncio.wait_for(process.communicate(), 30)
    assert process.returncode == 0, stderr.decode()
    return stdout.decode()


async def redis_keys(pattern: str) -> Any:
    import redis.asyncio as redis

    client = redis.Redis.from_url(REDIS_URL)
    try:
        async for key in client.scan_iter(match=pattern):
            yield key
    finally:
        await client.aclose()
