"""service/deadletters: what a dead letter says, a pass that leaves the queue as it was (classic
and quorum), purge, and a replay through the running service (CONTRACT.md §11)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import aio_pika
import aiohttp
import orjson
import pytest

from service.amqp import topology
from service.deadletters import DeadLetter, Selection, run
from service.deadletters import passes as deadletter_passes
from service.events import Message
from service.sandbox import Sandbox
from service.settings import Settings
from tests.conftest import Broker, StartService, templates_of
from tests.helpers import metric, wait_for

TEMPLATES = """
version: 1
templates:
  - name: confirm
    event: order.created
    phone: "{{ data.phone }}"
    idempotency_key: "order:{{ data.code }}"
    script:
      - say: "Đơn hàng {{ data.code | spell }}"
"""
NOW = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)


def letter(
    index: int, code: str = "invalid_phone", template: str = "confirm", now: datetime = NOW
) -> dict[str, Any]:
    """The headers the service gives a dead letter."""
    return {
        "x-autocall-reason": code,
        "x-autocall-error": f"failure {index}",
        "x-autocall-event-id": f"e-{index}",
        "x-autocall-template": template,
        "x-autocall-dead-lettered-at": (now - timedelta(hours=index)).isoformat(),
        "x-autocall-routing-key": "order.created",
    }


# What a dead letter says


def test_a_dead_letter_reads_the_services_headers() -> None:
    body = orjson.dumps({"specversion": "1.0", "id": "e-1", "type": "order.created", "source": "s"})
    read = DeadLetter.of(Message(body, routing_key="q.dead", headers=letter(1)))

    assert read.as_json() == {
        "event_id": "e-1",
        "type": "order.created",
        "code": "invalid_phone",
        "template": "confirm",
        "dead_lettered_at": "2026-11-30T18:00:00+07:00",
        "message": "failure 1",
        "routing_key": "order.created",
    }
    assert read.line() == (
        "e-1  order.created  invalid_phone  confirm  2026-11-30T18:00:00+07:00  failure 1"
    )


def test_a_letter_the_broker_dead_lettered_reads_its_x_death() -> None:
    """The quorum queue's delivery limit dead-letters without the service's headers."""
    death = {
        "reason": "delivery_limit",
        "queue": "q",
        "time": datetime(2026, 11, 30, 1, 0),  # AMQP timestamps are UTC, read without a zone
        "routing-keys": ["order.created"],
    }
    headers = {"x-death": [death], "x-first-death-reason": "delivery_limit"}
    message = Message(
        b"not json", routing_key="q.dead", type="order.created", message_id="m-1", headers=headers
    )

    read = DeadLetter.of(message)

    assert (read.event_id, read.type, read.code, read.template) == (
        "m-1",
        "order.created",
        "delivery_limit",
        None,
    )
    assert read.when == datetime(2026, 11, 30, 1, 0, tzinfo=UTC)
    assert read.routing_key == "order.created"
    assert read.line().startswith(
        "m-1  order.created  delivery_limit  -  2026-11-30T08:00:00+07:00  -"
    )


def test_selection_filters() -> None:
    letters = [
        DeadLetter.of(Message(b"{}", headers=letter(i, code=code, template=name)))
        for i, (code, name) in enumerate(
            [
                ("invalid_phone", "a"),
                ("expired", "a"),
                ("invalid_phone", "b"),
                ("invalid_phone", "a"),
            ]
        )
    ]
    unknown_age = DeadLetter.of(Message(b"{}", headers={"x-autocall-reason": "invalid_phone"}))

    assert pick(Selection(codes=frozenset({"invalid_phone"})), letters, NOW) == [0, 2, 3]
    assert pick(Selection(templates=frozenset({"a"})), letters, NOW) == [0, 1, 3]
    assert pick(Selection(event_ids=frozenset({"e-2", "e-9"})), letters, NOW) == [2]
    assert pick(Selection(older_than=1.5 * 3600), letters, NOW) == [2, 3]
    assert pick(Selection(), [*letters, unknown_age], NOW) == [0, 1, 2, 3, 4]
    assert pick(Selection(older_than=1.0), [unknown_age], NOW) == []  # unknown age: never older


def pick(selection: Selection, letters: list[DeadLetter], now: datetime) -> list[int]:
    return [i for i, letter in enumerate(letters) if selection.matches(letter, now)]


# A pass over the real broker


@pytest.fixture(params=["classic", "quorum"])
def dead_queue_type(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Both types the dead-letter queue may have; the service declares it as topology says."""
    arguments = {"x-queue-type": "quorum"} if request.param == "quorum" else {}
    monkeypatch.setattr(topology, "DEAD_QUEUE_ARGUMENTS", arguments)
    monkeypatch.setattr(deadletter_passes, "DEAD_QUEUE_ARGUMENTS", arguments)
    return str(request.param)


async def fill(
    broker: Broker, config: Settings, count: int, code: Any = None, now: datetime | None = None
) -> str:
    """`count` dead letters on the test's dead-letter queue, in order; its name."""
    now = now or datetime.now(UTC)
    broker.owns(config, templates_of(TEMPLATES))
    name = f"{config.queue}.dead"
    await broker.channel.declare_queue(name, durable=True, arguments=topology.DEAD_QUEUE_ARGUMENTS)
    for i in range(count):
        headers = letter(i, code(i) if code else "invalid_phone", f"t{i % 3}", now)
        message = aio_pika.Message(
            orjson.dumps({"n": i, "phone": "0912345678"}),
            headers=headers | {"x-binary": bytearray([0xFF, i % 256])},
            content_type="application/json",
            delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
            message_id=f"e-{i}",
            correlation_id=f"c-{i}",
            type="order.created",
            timestamp=NOW,
        )
        await broker.channel.default_exchange.publish(message, routing_key=name)
    return name


def snapshot(messages: list[Any]) -> list[tuple[Any, ...]]:
    """What a message is, less what the broker adds on delivery."""
    return [
        (
            message.body,
            {k: v for k, v in (message.headers or {}).items() if k != "x-delivery-count"},
            message.content_type,
            message.message_id,
            message.correlation_id,
            message.type,
            message.timestamp,
            message.delivery_mode,
        )
        for message in messages
    ]


async def test_list_leaves_the_queue_as_it_was(
    make_settings: Any, broker: Broker, dead_queue_type: str
) -> None:
    """Same messages in the same order, on both queue types (a quorum queue reorders requeued
    messages once there are a few dozen: 120 here)."""
    config, reference = make_settings(), make_settings(queue=f"{make_settings().queue}.ref")
    codes = lambda i: "expired" if i % 4 == 0 else "invalid_phone"  # noqa: E731
    name = await fill(broker, config, 120, codes, NOW)
    ref_name = await fill(broker, reference, 120, codes, NOW)

    report = await run(config, Selection(codes=frozenset({"expired"}), limit=5), "list")
    whole = await run(config, Selection(), "list")

    assert [item.event_id for item in report.selected] == ["e-0", "e-4", "e-8", "e-12", "e-16"]
    assert (report.total, report.done, len(whole.selected)) == (120, 0, 120)
    assert [item.event_id for item in whole.selected] == [f"e-{i}" for i in range(120)]
    assert snapshot(await broker.drain(name)) == snapshot(await broker.drain(ref_name))


async def test_purge_removes_the_selected_and_keeps_the_rest_in_order(
    make_settings: Any, broker: Broker, dead_queue_type: str
) -> None:
    config = make_settings()
    name = await fill(broker, config, 40, code=lambda i: "expired" if i % 2 else "invalid_phone")

    dry = await run(config, Selection(codes=frozenset({"expired"})), "purge", dry_run=True)
    assert (dry.done, len(dry.selected), await count(broker, name)) == (0, 20, 40)

    older = Selection(codes=frozenset({"expired"}), older_than=10.5 * 3600)
    report = await run(config, older, "purge")

    assert (report.total, report.done, report.remaining) == (40, 15, 25)
    left = [orjson.loads(message.body)["n"] for message in await broker.drain(name)]
    assert left == [n for n in range(40) if n % 2 == 0 or n < 11]


async def test_a_missing_queue_is_one_clear_error(make_settings: Any) -> None:
    from service.errors import ConfigError

    config = make_settings(queue="test.no-such-queue-here")
    with pytest.raises(ConfigError) as raised:
        await run(config, Selection(), "list")
    assert raised.value.problems == [
        "test.no-such-queue-here.dead: not found on the broker "
        "(NOT_FOUND - no queue 'test.no-such-queue-here.dead' in vhost '/')"
    ]


async def test_an_unreachable_broker_is_one_clear_error(make_settings: Any) -> None:
    from service.errors import ConfigError

    config = make_settings(
        amqp_url="amqp://guest:secret@127.0.0.1:1/,amqp://guest:secret@127.0.0.1:2/"
    )
    with pytest.raises(ConfigError) as raised:
        await run(config, Selection(), "list")
    [problem] = raised.value.problems
    assert problem.startswith("AUTOCALL_AMQP_URL: cannot reach the broker (")
    assert "secret" not in problem


# Replay through the service


async def test_replay_calls_a_fixed_event_once_and_skips_one_whose_key_was_taken(
    make_settings: Any,
    broker: Broker,
    start_service: StartService,
    sandbox: Sandbox,
    dead_queue_type: str,
) -> None:
    await configure(sandbox, {"balance": 0})
    config = make_settings()
    outcomes = await broker.outcomes(config)
    service = await start_service(config, templates_of(TEMPLATES))
    for code, event_id in (("A", "fixed"), ("B", "taken")):
        body = orjson.dumps({"code": code, "phone": "0912345678"})
        await broker.publish(config, body, "order.created", message_id=event_id)
    failed = await outcomes.wait(2)
    assert {o["error"]["code"] for o in failed} == {"balance_is_not_enough"}
    listed = await run(config, Selection(templates=frozenset({"confirm"})), "list")
    assert {(x.event_id, x.code) for x in listed.selected} == {
        ("fixed", "balance_is_not_enough"),
        ("taken", "balance_is_not_enough"),
    }
    assert all(
        x.when and abs(x.when - datetime.now(UTC)) < timedelta(minutes=1) for x in listed.selected
    )
    await configure(sandbox, {"balance": 1_000_000})
    body = orjson.dumps({"code": "B", "phone": "0912345678"})
    await broker.publish(config, body, "order.created", message_id="other")  # takes order:B
    assert (await outcomes.wait(3))[2]["status"] == "accepted"

    report = await run(config, Selection(codes=frozenset({"balance_is_not_enough"})), "replay")

    assert (report.total, report.done, report.remaining) == (2, 2, 0)
    replayed = {o["event"]["id"]: o for o in (await outcomes.wait(5))[3:]}
    assert replayed["fixed"]["status"] == "accepted"
    assert (replayed["taken"]["status"], replayed["taken"]["reason"]) == ("skipped", "duplicate")
    names = [call.body["phone_number_list"] for call in sandbox.state.calls]
    assert len(names) == 2  # "other", then the fixed event: once
    assert await count(broker, f"{config.queue}.dead") == 0
    # Counted once each replayed event is settled: its outcome may arrive a moment before.
    replays = {"code": "balance_is_not_enough"}
    await wait_for(lambda: metric(service, "autocall_dead_letters_replayed_total", **replays) == 2)


async def test_a_replay_no_queue_takes_stays_and_a_dry_run_changes_nothing(
    make_settings: Any, broker: Broker, dead_queue_type: str
) -> None:
    config = make_settings()
    name = await fill(broker, config, 3)
    await broker.channel.declare_exchange(
        config.input_exchange, aio_pika.ExchangeType.TOPIC, durable=True
    )
    catcher = await broker.channel.declare_queue(exclusive=True)
    exchange = await broker.channel.get_exchange(config.input_exchange)
    await catcher.bind(exchange, routing_key="order.created")

    dry = await run(config, Selection(event_ids=frozenset({"e-1"})), "replay", dry_run=True)
    assert (dry.done, [x.event_id for x in dry.selected], await count(broker, name)) == (
        0,
        ["e-1"],
        3,
    )

    report = await run(config, Selection(event_ids=frozenset({"e-1"})), "replay")
    assert (report.done, report.remaining) == (1, 2)
    got = await catcher.get(timeout=5)
    assert got.routing_key == "order.created"
    assert orjson.loads(got.body)["n"] == 1
    assert (got.message_id, got.correlation_id, got.type) == ("e-1", "c-1", "order.created")
    assert got.headers["x-autocall-replayed"] == "invalid_phone"
    assert got.headers["x-binary"] == bytes([0xFF, 1])
    assert not any(k.startswith(("x-death", "x-first-death")) for k in got.headers)
    assert "x-autocall-reason" not in got.headers

    await catcher.unbind(exchange, routing_key="order.created")
    unrouted = await run(config, Selection(), "replay")
    assert (unrouted.done, len(unrouted.selected), unrouted.remaining) == (0, 2, 2)
    assert [orjson.loads(m.body)["n"] for m in await broker.drain(name)] == [0, 2]


async def count(broker: Broker, queue: str) -> int:
    """Messages ready on `queue` (a channel of its own: the fixture's caches what it declared)."""
    channel = await broker.connection.channel()
    try:
        declared = await channel.declare_queue(queue, passive=True)
        result = declared.declaration_result
        return int(result.message_count or 0) if result else 0
    finally:
        await channel.close()


async def configure(sandbox: Sandbox, changes: dict[str, Any]) -> None:
    async with (
        aiohttp.ClientSession() as session,
        session.post(sandbox.url + "/_sandbox/config", json=changes) as answer,
    ):
        assert answer.status == 200, await answer.text()
