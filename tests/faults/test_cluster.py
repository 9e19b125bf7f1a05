"""The fault suite on a cluster (CONTRACT.md §10): three RabbitMQ nodes and Redis behind three
sentinels, started once for this module on free ports. Any one node dies, restarts or fails
over; every case counts events, outcomes and calls as the others do, and the seconds until the
service is ready again."""

from __future__ import annotations

import asyncio
import contextlib
import re
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import pytest_asyncio

from tests.faults.cluster import Node, RabbitCluster, RedisSentinels, redis_server
from tests.faults.harness import Rig, Service, order, phone, until

pytestmark = [
    pytest.mark.faults,
    pytest.mark.asyncio(loop_scope="module"),
    pytest.mark.timeout(400),
]
READY_TIMEOUT = 120.0


@dataclass
class Cluster:
    rabbit: RabbitCluster
    redis: RedisSentinels
    directory: Path
    seconds: float  # to start it all


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def cluster(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Cluster]:
    """The rig's nodes, started in parallel; all of them stopped at the end, whatever happened."""
    directory = tmp_path_factory.mktemp("cluster")
    rabbit = RabbitCluster(directory / "rabbit")
    sentinels = RedisSentinels(directory / "redis")
    began = time.monotonic()
    try:
        await asyncio.gather(rabbit.start(), sentinels.start())
        yield Cluster(rabbit, sentinels, directory, time.monotonic() - began)
    finally:
        await asyncio.gather(rabbit.close(), sentinels.close(), return_exceptions=True)


@pytest_asyncio.fixture(loop_scope="module")
async def rig(
    request: pytest.FixtureRequest, cluster: Cluster, tmp_path: Path
) -> AsyncIterator[Rig]:
    """A case's rig on the cluster: the service's nodes in order, the store behind Sentinel."""
    await _whole(cluster.rabbit)
    doc = (request.node.function.__doc__ or request.node.name).strip()
    case = doc.splitlines()[0].rstrip(".")
    async with Rig(case, tmp_path, cluster.rabbit.urls, cluster.redis.url()) as running:
        yield running


async def _whole(rabbit: RabbitCluster) -> None:
    """Every node up again before a case: a case may have left one down."""
    down = [node for node in rabbit.nodes if not node.running]
    await asyncio.gather(*(rabbit.start_node(node) for node in down))
    await rabbit.ctl(rabbit.nodes[0], "await_online_nodes", str(len(rabbit.nodes)))


def _node_in_use(service: Service, rabbit: RabbitCluster) -> Node:
    """The node the service says it connected to last (its log names host:port)."""
    found = re.findall(r"connected to broker node 127\.0\.0\.1:(\d+)", service.process.tail(400))
    assert found, "the service never said which node it connected to"
    [node] = [node for node in rabbit.nodes if node.port == int(found[-1])]
    return node


async def _moved_off(service: Service, rabbit: RabbitCluster, victim: Node) -> Node:
    """The node the service reports having moved to from `victim`. Waited for, not read once:
    on a loaded machine one reading found the killed node still named while /readyz already
    answered 200 again. A move that never comes still fails the case."""
    await until(lambda: _node_in_use(service, rabbit) is not victim, 30, "a move to another node")
    return _node_in_use(service, rabbit)


async def _ready_again(service: Service, since: float) -> float:
    """Seconds from `since` until /readyz answers 200 again, having seen it fail (or not)."""

    async def ready() -> bool:
        with contextlib.suppress(Exception):
            return (await service.readyz())[0] == 200
        return False

    await until(ready, READY_TIMEOUT, "the service ready again", every=0.1)
    return time.monotonic() - since


async def _not_ready(service: Service) -> bool:
    with contextlib.suppress(Exception):
        return (await service.readyz())[0] != 200
    return True


async def test_kill_9_the_node_the_service_is_on(rig: Rig, cluster: Cluster) -> None:
    """kill -9 the RabbitMQ node the service is connected to, 300 events flowing."""
    rabbit = cluster.rabbit
    await rig.sandbox.configure(latency=0.1)
    await rig.declare()
    await rig.publish(order(f"n-{i}", f"N{i}", phone(i)) for i in range(300))
    service = await rig.start_service(prefetch=64, concurrency=32)
    await rig.outcomes.wait_events(50, timeout=60)
    victim = _node_in_use(service, rabbit)
    inflight = await service.metric("autocall_inflight_events") or 0

    await rabbit.kill(victim)
    killed = time.monotonic()
    await until(lambda: _not_ready(service), 30, "/readyz 503 after the node died", every=0.05)
    ready_after = await _ready_again(service, killed)
    moved_to = await _moved_off(service, rabbit, victim)
    ledger = await rig.settle(timeout=180)

    unknown = ledger.statuses["failed/outcome_unknown"]
    ledger.notes.append(
        f"rig started in {cluster.seconds:.0f} s; {inflight:.0f} in flight when node "
        f"{rabbit.nodes.index(victim) + 1} of 3 was killed; ready again on node "
        f"{rabbit.nodes.index(moved_to) + 1} after {ready_after:.1f} s; {unknown} outcome_unknown"
    )
    assert ledger.problems() == []
    assert service.process.returncode is None  # the process survived
    assert ledger.statuses["accepted"] + unknown == 300
    assert unknown <= 32  # at most the calls in flight: concurrency


async def test_rolling_restart_of_all_three_nodes(rig: Rig, cluster: Cluster) -> None:
    """a rolling restart of all three RabbitMQ nodes, events flowing."""
    rabbit = cluster.rabbit
    await rig.sandbox.configure(latency=0.2)
    await rig.declare()
    await rig.publish(order(f"r-{i}", f"R{i}", phone(i)) for i in range(300))
    service = await rig.start_service(prefetch=32, concurrency=16)
    await rig.outcomes.wait_events(30, timeout=60)

    worst, began = 0.0, time.monotonic()
    for node in rabbit.nodes:
        await _quorum_safe(rabbit, node)
        stopping = time.monotonic()
        await rabbit.stop_node(node)
        worst = max(worst, await _ready_again(service, stopping))  # on another node
        await rabbit.start_node(node)
    rolled = time.monotonic() - began
    ledger = await rig.settle(timeout=180)

    unknown = ledger.statuses["failed/outcome_unknown"]
    ledger.notes.append(
        f"three nodes stopped and started one after the other in {rolled:.0f} s; ready on "
        f"another node at most {worst:.1f} s after a node began to stop; {unknown} outcome_unknown"
    )
    assert ledger.problems() == []
    assert service.process.returncode is None
    assert ledger.statuses["accepted"] + unknown == 300
    assert unknown <= 3 * 16


async def _quorum_safe(rabbit: RabbitCluster, node: Node) -> None:
    """Wait until stopping `node` leaves every quorum queue a majority (what an operator's
    rolling upgrade checks before each node)."""

    async def safe() -> bool:
        try:
            await rabbit.ctl(node, "await_startup")
            await rabbit.queues(node, "check_if_node_is_quorum_critical")
        except (RuntimeError, TimeoutError):
            return False
        return True

    await until(safe, 120, f"{node.name} not quorum-critical", every=1.0)


async def test_kill_9_the_redis_master(rig: Rig, cluster: Cluster) -> None:
    """kill -9 the Redis master (Sentinel failover), events flowing."""
    sentinels = cluster.redis
    await rig.sandbox.configure(latency=0.1)
    await rig.declare()
    await rig.publish(order(f"m-{i}", f"M{i}", phone(i)) for i in range(300))
    service = await rig.start_service(
        prefetch=64, concurrency=32, retry_delays="1s,2s,4s,8s,16s", store_min_replicas=1
    )
    await rig.outcomes.wait_events(50, timeout=60)
    old = sentinels.master_port

    master = sentinels.master if (await old()) == sentinels.master.port else sentinels.replica
    await master.kill()
    killed = time.monotonic()

    async def promoted() -> bool:
        return (await old()) not in (None, master.port)

    await until(promoted, 60, "a sentinel failover", every=0.1)
    failover = time.monotonic() - killed
    # The old master comes back (as Kubernetes restarts a pod) and the sentinels make it the
    # new master's replica: until then no claim is replicated, so none counts.
    await master.start()
    ready_after = await _ready_again(service, killed)
    ledger = await rig.settle(timeout=180)
    retried = await _store_retries(service)

    unknown = ledger.statuses["failed/outcome_unknown"]
    ledger.notes.append(
        f"sentinels promoted the replica {failover:.1f} s after the kill; ready after "
        f"{ready_after:.1f} s (AUTOCALL_STORE_MIN_REPLICAS=1: claims count once the restarted "
        f"old master replicates them); {retried} retries for store_unavailable; "
        f"{unknown} outcome_unknown"
    )
    assert ledger.problems() == []
    assert service.process.returncode is None
    assert set(ledger.statuses) <= {"accepted", "failed/outcome_unknown"}
    assert ledger.statuses["accepted"] + unknown == 300


async def _store_retries(service: Service) -> int:
    """Events the service sent to a retry delay for want of the store (its log, a line each)."""
    lines = service.process.tail(100_000).splitlines()
    return sum('"code":"store_unavailable"' in line and "retried" in line for line in lines)


async def test_redis_down_for_20_seconds(rig: Rig, cluster: Cluster) -> None:
    """Redis down for 20 s and back with its data, events flowing."""
    store = redis_server("redis-solo", cluster.directory / f"solo-{rig.prefix}")
    await store.start()
    rig.store_url = store.url
    try:
        await rig.sandbox.configure(latency=0.05)
        await rig.declare()
        await rig.publish(order(f"d-{i}", f"D{i}", phone(i)) for i in range(200))
        service = await rig.start_service(
            prefetch=32, concurrency=16, retry_delays="1s,2s,4s,8s,16s"
        )
        await rig.outcomes.wait_events(40, timeout=60)
        before = await rig.claims()

        await store.kill()
        await until(lambda: _not_ready(service), 30, "/readyz 503 without the store", every=0.1)
        await asyncio.sleep(20)  # the outage itself: nothing to await but time
        await store.start()
        back = time.monotonic()
        ready_after = await _ready_again(service, back)
        kept = await rig.claims()
        ledger = await rig.settle(timeout=180)
    finally:
        await store.kill()

    unknown = ledger.statuses["failed/outcome_unknown"]
    ledger.notes.append(
        f"{before['done']} keys done before the outage, {kept['done']} found after it; "
        f"/readyz 503 while Redis was away (20 s), 200 again {ready_after:.1f} s after it "
        f"came back; {unknown} outcome_unknown"
    )
    assert ledger.problems() == []
    assert service.process.returncode is None
    assert kept["done"] >= before["done"]  # back with its data
    assert set(ledger.statuses) <= {"accepted", "failed/outcome_unknown"}
    assert ledger.statuses["accepted"] + unknown == 200
