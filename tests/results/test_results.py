"""Call results end to end: the real broker, the sandbox over HTTP posting webhooks and serving
the call history, the service in-process (CONTRACT.md §9)."""

from __future__ import annotations

import asyncio
import logging
import socket
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp
import orjson
import pytest
from aio_pika.abc import AbstractIncomingMessage

from service.app import Service
from service.sandbox import Sandbox
from service.settings import Settings
from tests.conftest import WAIT, Broker, Outcomes, StartService, templates_of

TOKEN = "results-" + uuid.uuid4().hex + uuid.uuid4().hex
TEMPLATES = """
version: 1
templates:
  - name: cod
    event: order.created
    phone: "{{{{ data.phone }}}}"
    num_retry: {num_retry}
    distance_retry: 0
    script: [{{say: "Bấm 1 để xác nhận, 2 để huỷ"}}]
    choices: {{"1": confirmed, "2": cancelled}}
"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Clock:
    """The service's clock: real time, plus what a test moves it on by."""

    def __init__(self) -> None:
        self.offset = timedelta()

    def __call__(self) -> datetime:
        return datetime.now(UTC) + self.offset


@dataclass
class Rig:
    broker: Broker
    sandbox: Sandbox
    settings: Settings
    service: Service
    outcomes: Outcomes
    clock: Clock

    async def order(self, phone: str, code: str | None = None) -> str:
        """Publish an order for `phone`; its event id."""
        event_id = code or uuid.uuid4().hex
        body = {"phone": phone, "code": event_id}
        await self.broker.publish(
            self.settings, body, "order.created", message_id=event_id, type="order.created"
        )
        return event_id

    async def results(self, count: int, timeout: float = WAIT) -> list[AbstractIncomingMessage]:
        """The first `count` result messages, once that many arrived."""
        try:
            async with asyncio.timeout(timeout), self.outcomes._changed:
                await self.outcomes._changed.wait_for(lambda: len(self._results()) >= count)
        except TimeoutError:
            raise AssertionError(self.diagnosis()) from None
        return self._results()[:count]

    def diagnosis(self) -> str:
        """What the sandbox posted and what the listener made of it, for a failing test."""
        webhooks = {
            outcome: self.metric("autocall_webhooks_total", outcome=outcome)
            for outcome in ("accepted", "duplicate", "unmatched", "live", "unavailable")
        }
        posts = dict(self.sandbox.state.webhook_posts)
        searches = dict(self.sandbox.state.search_requests)
        types = [(m.type, orjson.loads(m.body).get("error")) for m in self.outcomes.received]
        return f"posts {posts}, searches {searches}, listener {webhooks}, received {types}"

    def _results(self) -> list[AbstractIncomingMessage]:
        return [m for m in self.outcomes.received if m.type == "autocall.result"]

    def accepted(self) -> int:
        return sum(1 for m in self.outcomes.received if m.type == "autocall.accepted")

    def metric(self, name: str, **labels: str) -> float:
        return self.service.metrics.registry.get_sample_value(name, labels) or 0.0

    @property
    def webhook_port(self) -> int:
        assert self.service.results is not None
        return self.service.results.webhook_port

    @property
    def webhook_url(self) -> str:
        return f"http://127.0.0.1:{self.webhook_port}/webhooks/omicall"


MakeRig = Callable[..., Any]


@pytest.fixture
def make_rig(
    broker: Broker,
    sandbox: Sandbox,
    make_settings: Callable[..., Settings],
    start_service: StartService,
) -> MakeRig:
    async def make(*, num_retry: int = 0, webhook: bool = True, **overrides: Any) -> Rig:
        sandbox.state.call_seconds = 0.05
        values: dict[str, Any] = {"result_poll_interval": 0}
        if webhook:
            values |= {"webhook_token": TOKEN, "webhook_port": free_port()}
        settings = make_settings(**(values | overrides))
        templates = templates_of(TEMPLATES.format(num_retry=num_retry))
        outcomes = await broker.outcomes(settings)
        clock = Clock()
        service = await start_service(settings, templates, clock=clock)
        rig = Rig(broker, sandbox, settings, service, outcomes, clock)
        if webhook:
            sandbox.state.webhook_url = f"{rig.webhook_url}/{TOKEN}"
        return rig

    return make


def body(message: AbstractIncomingMessage) -> dict[str, Any]:
    return dict(orjson.loads(message.body))


async def test_answered_with_each_choice(make_rig: MakeRig) -> None:
    rig = await make_rig()
    phones = {"0901234561": "confirmed", "0901234562": "cancelled", "0901234565": None}
    ids = {await rig.order(phone): choice for phone, choice in phones.items()}
    messages = await rig.results(3)
    by_event = {m.correlation_id: m for m in messages}
    assert set(by_event) == set(ids)
    for event_id, choice in ids.items():
        message = by_event[event_id]
        result = body(message)
        assert message.routing_key == f"autocall.result.answered.{choice or 'none'}"
        assert (message.type, message.delivery_mode.value) == ("autocall.result", 2)
        assert (result["result"], result["final"], result["choice"]) == ("answered", True, choice)
        assert result["keys"] == {"confirmed": "1", "cancelled": "2", None: None}[choice]
        assert result["event"]["id"] == event_id and result["source"] == "webhook"
        assert result["autocall_id"] and result["transaction_id"] and result["attempt"] == 1
        assert message.message_id == f"{result['autocall_id']}:1"
        assert "****" in result["phone"] and result["answer_seconds"] > 0
    await rig.sandbox.idle()  # every post answered: the listener has counted them
    assert rig.metric("autocall_call_choices_total", choice="confirmed", template="cod") == 1
    assert rig.metric("autocall_webhooks_total", outcome="accepted") == 3
    assert rig.metric("autocall_webhooks_total", outcome="live") > 0


async def test_no_answer_redials_final_only_on_the_last(make_rig: MakeRig) -> None:
    rig = await make_rig(num_retry=2)
    await rig.order("0901234563")
    messages = await rig.results(3)
    results = sorted((body(m) for m in messages), key=lambda r: r["attempt"])
    assert [(r["result"], r["attempt"], r["final"]) for r in results] == [
        ("no_answer", 1, False),
        ("no_answer", 2, False),
        ("no_answer", 3, True),
    ]
    assert {m.routing_key for m in messages} == {"autocall.result.no_answer.none"}
    await rig.sandbox.idle()
    assert len(rig._results()) == 3


@pytest.mark.parametrize(("digit", "result"), [("4", "busy"), ("6", "failed")])
async def test_busy_and_failed(make_rig: MakeRig, digit: str, result: str) -> None:
    rig = await make_rig()
    await rig.order(f"090123456{digit}")
    [message] = await rig.results(1)
    assert message.routing_key == f"autocall.result.{result}.none"
    assert body(message)["final"] is True


async def test_duplicated_records_publish_once(make_rig: MakeRig) -> None:
    rig = await make_rig()
    rig.sandbox.state.webhook_duplicate = 3
    for n in range(3):
        await rig.order(f"09012345{n}7")
    await rig.results(3)
    await rig.sandbox.idle()
    assert len(rig._results()) == 3
    # the sandbox posts each record twice, as the provider does; the knob adds a third post
    assert rig.metric("autocall_webhooks_total", outcome="duplicate") == 6


async def test_unmatched_records_are_counted_and_dropped(make_rig: MakeRig) -> None:
    rig = await make_rig()
    cdr = {
        "state": "cdr",
        "transaction_id": uuid.uuid4().hex,
        "destination_number": "0987000111",
        "time_start_call": int(datetime.now(UTC).timestamp()),
        "answer_sec": 3,
        "is_auto_call": True,
    }
    async with aiohttp.ClientSession() as session:
        url = f"{rig.webhook_url}/{TOKEN}"
        async with session.post(url, json=cdr) as answer:
            assert answer.status == 200
        async with session.post(url, json=cdr | {"is_auto_call": False}) as answer:
            assert answer.status == 200
    assert rig.metric("autocall_webhooks_total", outcome="unmatched") == 2
    assert rig._results() == []


async def test_poll_only(make_rig: MakeRig) -> None:
    rig = await make_rig(webhook=False, result_poll_interval="100ms")
    rig.sandbox.state.webhooks = False
    assert rig.webhook_port == 0
    ids = {await rig.order("0901234561"), await rig.order("0901234564")}
    messages = await rig.results(2)
    assert {m.correlation_id for m in messages} == ids
    assert {body(m)["source"] for m in messages} == {"poll"}
    assert {m.routing_key for m in messages} == {
        "autocall.result.answered.confirmed",
        "autocall.result.busy.none",
    }


async def test_poll_finds_what_the_webhook_dropped(make_rig: MakeRig) -> None:
    rig = await make_rig(result_poll_interval="100ms")
    rig.sandbox.state.webhook_drop = 1
    await rig.order("0901234562")
    [message] = await rig.results(1)
    assert body(message)["source"] == "poll"
    assert message.routing_key == "autocall.result.answered.cancelled"


async def test_unknown_after_the_timeout(make_rig: MakeRig) -> None:
    rig = await make_rig(result_poll_interval="100ms", result_timeout="1h")
    rig.sandbox.state.webhook_drop = 1
    rig.sandbox.state.search_throttle = 1_000_000  # the history never answers
    event_id = await rig.order("0901234561")
    [accepted] = await rig.outcomes.wait(1)
    assert accepted["status"] == "accepted"
    rig.clock.offset = timedelta(hours=1, minutes=3)  # past the span (120 s) and the timeout
    [message] = await rig.results(1)
    result = body(message)
    assert message.routing_key == "autocall.result.unknown.none"
    assert (result["final"], result["event"]["id"], result["source"]) == (True, event_id, "poll")


async def test_the_poller_backs_off_a_rate_limit(make_rig: MakeRig) -> None:
    rig = await make_rig(webhook=False, result_poll_interval="100ms")
    rig.sandbox.state.webhooks = False
    rig.sandbox.state.search_throttle = 3
    await rig.order("0901234561")
    [message] = await rig.results(1)
    assert body(message)["source"] == "poll"
    searches = rig.sandbox.state.search_requests
    assert searches["limit_request_30_minute"] == 3
    # backed off 0.1, 0.2, 0.4 s: the rate-limited searches were not one a tick
    assert rig.metric("autocall_result_lookups_total", result="error") == 0  # polls, not lookups


async def test_hostile_posts(make_rig: MakeRig, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    rig = await make_rig()
    url = rig.webhook_url
    big = b'{"a": "' + b"x" * (300 * 1024) + b'"}'
    attempts = [
        ("POST", f"{url}/{TOKEN[:-1]}y", b"{}", 404),
        ("POST", url, b"{}", 404),
        ("POST", f"{url}/{TOKEN}", b"not json", 400),
        ("POST", f"{url}/{TOKEN}", b"[1]", 400),
        ("POST", f"{url}/{TOKEN}", big, 413),
        ("GET", f"{url}/{TOKEN}", b"", 405),
        ("PUT", f"{url}/{TOKEN}", b"{}", 405),
    ]
    statuses: dict[int, int] = {}
    async with aiohttp.ClientSession() as session:
        for n in range(500):
            method, target, data, expected = attempts[n % len(attempts)]
            async with session.request(method, target, data=data) as answer:
                assert answer.status == expected
                statuses[expected] = statuses.get(expected, 0) + 1
            if n % 50 == 0:
                ready = f"http://127.0.0.1:{rig.service.http_port}/readyz"
                async with session.get(ready) as answer:
                    assert answer.status == 200
    assert rig.metric("autocall_webhooks_total", outcome="unauthorized") == statuses[404]
    assert rig.metric("autocall_webhooks_total", outcome="too_large") == statuses[413]
    await rig.order("0901234561")  # still working
    await rig.results(1)
    assert not [r for r in caplog.records if TOKEN in r.getMessage() or TOKEN in str(r.__dict__)]
