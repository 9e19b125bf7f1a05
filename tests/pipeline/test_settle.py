"""The settler over fakes: what each action publishes, confirmed before the ack; a delivery whose
publish failed goes back, never acked."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, cast

import pytest
from aio_pika.abc import AbstractQueue

from service.amqp.topology import Names, Topology
from service.errors import InvalidPhone
from service.metrics import Metrics
from service.pipeline import settle
from service.pipeline.actions import Action, Delay, Publish, PutBack, Requeue
from service.pipeline.budget import Budget
from service.pipeline.caller import Caller
from service.pipeline.consumer import Consumer
from service.pipeline.hold import Hold
from service.pipeline.outcomes import Outcome
from service.pipeline.settle import Settler
from service.settings import Settings
from service.store import MemoryStore
from service.templates import Templates
from tests.fakes import Channel, Publisher
from tests.fakes import Provider as FakeProvider
from tests.helpers import by_account, call_of

NOW = datetime(2026, 11, 27, 7, 30, tzinfo=UTC)
NAMES = Names("q", "q.dead", ("q.retry.1",), {}, "q.results")


class Rig:
    def __init__(self) -> None:
        self.publisher = Publisher()
        self.metrics = Metrics()
        self.settler = Settler(self.publisher, NAMES, self.metrics)  # type: ignore[arg-type]
        self.channel = Channel()
        self.delivery: Any = self.channel.deliver(1)

    def sample(self, name: str, **labels: str) -> float:
        return self.metrics.registry.get_sample_value(name, by_account(name, labels)) or 0.0


async def test_an_outcome_is_published_then_acked() -> None:
    rig = Rig()
    outcome = Outcome.accepted(call_of(), "a-1", 1, NOW)
    assert await rig.settler.publish(rig.delivery, Publish(outcome))
    assert rig.publisher.steps == [("outcome", "accepted")]
    assert rig.channel.frames == []  # nothing acked before the settler is told to
    rig.settler.ack(rig.delivery, Publish(outcome), 0.0)
    await rig.settler.drain()
    assert rig.channel.unsettled == set()
    assert rig.sample("autocall_outcomes_total", status="accepted", template="t") == 1


async def test_a_failure_is_dead_lettered_before_its_outcome() -> None:
    rig = Rig()
    failed = Outcome.failed(call_of().event.identity, InvalidPhone("no number"), NOW)
    assert await rig.settler.publish(rig.delivery, Publish(failed))
    assert rig.publisher.steps == [("dead_letter", "q.dead"), ("outcome", "failed")]
    assert rig.sample("autocall_dead_lettered_total", reason="invalid_phone") == 1


async def test_a_retry_is_a_delayed_copy() -> None:
    rig = Rig()
    delay = Delay("q.retry.1", 5000, "provider_unavailable", call_of().event, retry=True)
    assert await rig.settler.publish(rig.delivery, delay)
    assert rig.publisher.steps == [("copy", ("q.retry.1", 5000))]
    assert rig.sample("autocall_retries_total") == 1


async def test_a_put_back_is_a_copy_at_the_back_of_the_queue() -> None:
    rig = Rig()
    assert await rig.settler.publish(rig.delivery, PutBack("balance_too_low", holds=True))
    assert rig.publisher.steps == [("copy", ("q", None))]


async def test_a_delivery_whose_publish_failed_goes_back(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(settle, "REPUBLISH_PAUSE", 0.0)
    rig = Rig()
    rig.publisher.down = True
    outcome = Outcome.accepted(call_of(), "a-1", 1, NOW)
    assert not await rig.settler.publish(rig.delivery, Publish(outcome))
    await rig.settler.drain()
    assert rig.channel.frames == [(1, False)]  # a nack, requeued
    assert rig.sample("autocall_outcomes_total", status="accepted", template="t") == 0


async def test_requeue_gives_the_delivery_back_unsettled() -> None:
    rig = Rig()
    rig.settler.requeue(rig.delivery)
    await rig.settler.drain()
    assert rig.channel.frames == [(1, False)]
    assert rig.publisher.steps == []


# The consumer's settle order: publish, then the hold's decision, then the ack.


class Consuming:
    """A consumer over fakes, to settle deliveries with."""

    def __init__(self) -> None:
        self.rig = Rig()
        store = MemoryStore(3600)
        budget = Budget(store, 10_000, self.rig.metrics, lambda: NOW)
        caller = Caller(store, budget, FakeProvider(), lambda: NOW)
        self.hold = Hold(3600.0, self.rig.metrics, lambda: NOW)
        self.consumer = Consumer(
            Settings(),
            templates=Templates([]),
            topology=Topology(NAMES, cast(AbstractQueue, object())),
            caller=caller,
            publisher=self.rig.publisher,  # type: ignore[arg-type]
            hold=self.hold,
            metrics=self.rig.metrics,
            clock=lambda: NOW,
        )
        self.consumer.settler = self.rig.settler

    async def settle(self, action: Action) -> None:
        await self.consumer._settle(self.rig.delivery, action, 0.0)
        await self.rig.settler.drain()


async def test_a_hold_starts_after_its_put_back_copy_is_confirmed_and_before_the_ack() -> None:
    consuming = Consuming()
    order: list[str] = []
    start, ack = consuming.hold.start, consuming.rig.settler.ack

    def starting(*args: Any) -> bool:
        order.append(f"hold after {len(consuming.rig.publisher.steps)} publish")
        return start(*args)

    def acking(*args: Any) -> None:
        order.append("ack")
        ack(*args)

    consuming.hold.start = starting  # type: ignore[method-assign, assignment]
    consuming.rig.settler.ack = acking  # type: ignore[method-assign, assignment]
    try:
        await consuming.settle(PutBack("balance_too_low", holds=True))
        assert order == ["hold after 1 publish", "ack"]
        assert consuming.rig.publisher.steps == [("copy", ("q", None))]
        assert consuming.hold.active
        assert consuming.rig.channel.unsettled == set()
    finally:
        await consuming.hold.stop(force=True)


async def test_no_hold_and_no_ack_when_the_put_back_copy_is_not_confirmed(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(settle, "REPUBLISH_PAUSE", 0.0)
    consuming = Consuming()
    consuming.rig.publisher.down = True
    await consuming.settle(PutBack("balance_too_low", holds=True))
    assert not consuming.hold.active
    assert consuming.rig.channel.frames == [(1, False)]  # given back, not acked


async def test_a_requeue_is_given_back_without_a_publish() -> None:
    consuming = Consuming()
    await consuming.settle(Requeue())
    assert consuming.rig.publisher.steps == []
    assert consuming.rig.channel.frames == [(1, False)]
