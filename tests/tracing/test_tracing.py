"""Traces end to end (CONTRACT.md §14): the real broker, the sandbox posting call results, the
service in-process, and a real OTLP/HTTP receiver decoding what the exporter sends."""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

import orjson
import pytest
from aio_pika.abc import AbstractIncomingMessage

from service.logs import TraceIds
from service.render import PHONE_PATH
from service.sandbox import Sandbox
from service.settings import Settings
from tests.conftest import WAIT, Broker, Outcomes, StartService, templates_of
from tests.helpers import configure
from tests.otlp import Keep, Received, Receiver, new_parent, one, receiver, traceparent_of
from tests.results.test_results import free_port

TOKEN = "traces-" + uuid.uuid4().hex + uuid.uuid4().hex
TEMPLATES = """
version: 1
templates:
  - name: cod
    event: order.created
    phone: "{{ data.phone }}"
    idempotency_key: "order:{{ data.code }}"
    distance_retry: 0
    script: [{say: "Bấm 1 để xác nhận"}]
    choices: {"1": confirmed}
"""
PHONE = "0901234561"  # the sandbox answers it, and the customer presses 1


@dataclass
class Rig:
    broker: Broker
    sandbox: Sandbox
    settings: Settings
    outcomes: Outcomes
    otlp: Receiver

    async def order(self, phone: str = PHONE, **properties: Any) -> str:
        """Publish an order (plain JSON); its event id."""
        event_id = uuid.uuid4().hex
        body = {"phone": phone, "code": event_id}
        properties = {"message_id": event_id, "type": "order.created"} | properties
        await self.broker.publish(self.settings, body, "order.created", **properties)
        return event_id

    async def outcome(self, event_id: str) -> AbstractIncomingMessage:
        await self._wait(lambda m: m.correlation_id == event_id and m.type != "autocall.result")
        return next(m for m in self.outcomes.received if m.correlation_id == event_id)

    async def result(self, event_id: str) -> AbstractIncomingMessage:
        await self._wait(lambda m: m.correlation_id == event_id and m.type == "autocall.result")
        return next(
            m
            for m in self.outcomes.received
            if m.correlation_id == event_id and m.type == "autocall.result"
        )

    async def _wait(self, wanted: Callable[[AbstractIncomingMessage], bool]) -> None:
        async with asyncio.timeout(WAIT), self.outcomes._changed:
            await self.outcomes._changed.wait_for(
                lambda: any(wanted(m) for m in self.outcomes.received)
            )

    def assert_nothing_secret(self, spans: list[Received], *phones: str) -> None:
        """No key, token, webhook token or full phone number in any span's name, attribute or
        status."""
        secret = ["sandbox-key", TOKEN, *self.sandbox.state.tokens, *phones]
        for span in spans:
            texts = [span.name, span.status_message, *map(str, span.attributes.values())]
            leaked = [(s, text) for s in secret for text in texts if s in text]
            assert not leaked, (span.name, leaked)


@pytest.fixture
async def otlp(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Receiver]:
    """Tracing on, exporting to a receiver of the test's own (first up, last down: the service
    exports its last spans as it stops)."""
    async with receiver() as collected:
        for name in ("OTEL_SERVICE_NAME", "OTEL_RESOURCE_ATTRIBUTES", "OTEL_TRACES_SAMPLER"):
            monkeypatch.delenv(name, raising=False)
        monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", collected.url)
        monkeypatch.setenv("OTEL_BSP_SCHEDULE_DELAY", "50")  # ms: spans arrive while we wait
        yield collected


MakeRig = Callable[..., Any]


@pytest.fixture
def make_rig(
    otlp: Receiver,
    broker: Broker,
    sandbox: Sandbox,
    make_settings: Callable[..., Settings],
    start_service: StartService,
) -> MakeRig:
    async def make(**overrides: Any) -> Rig:
        sandbox.state.call_seconds = 0.05
        webhook = {"webhook_token": TOKEN, "webhook_port": free_port(), "result_poll_interval": 0}
        settings = make_settings(**(webhook | overrides))
        outcomes = await broker.outcomes(settings)
        service = await start_service(settings, templates_of(TEMPLATES))
        assert service.results is not None
        port = service.results.webhook_port
        sandbox.state.webhook_url = f"http://127.0.0.1:{port}/webhooks/omicall/{TOKEN}"
        return Rig(broker, sandbox, settings, outcomes, otlp)

    return make


async def test_the_header_s_traceparent_is_the_parent(make_rig: MakeRig) -> None:
    rig = await make_rig()
    trace_id, parent_id = new_parent()
    headers = {"traceparent": f"00-{trace_id}-{parent_id}-01", "tracestate": "shop=1"}
    event_id = await rig.order(headers=headers)
    outcome = await rig.outcome(event_id)
    spans = await rig.otlp.trace(trace_id, 4)  # process, claim, call, publish
    process = one(spans, "autocall.process order.created")
    assert (process.kind, process.parent_id, process.status) == ("CONSUMER", parent_id, "UNSET")
    assert (
        process.attributes
        | {
            "messaging.system": "rabbitmq",
            "messaging.destination.name": rig.settings.input_exchange,
            "messaging.message.id": event_id,
            "autocall.template": "cod",
            "autocall.status": "accepted",
            "autocall.account": "default",  # the account that took the call (§13)
            "autocall.provider": "omicall",
        }
        == process.attributes
    )
    claim = one(spans, "autocall.claim")
    assert (claim.parent_id, claim.attributes["autocall.claim"]) == (process.span_id, "new")
    call = one(spans, f"POST {PHONE_PATH}")
    assert (call.kind, call.parent_id) == ("CLIENT", process.span_id)
    assert call.attributes["http.request.method"] == "POST"
    assert call.attributes["url.full"] == rig.sandbox.url + PHONE_PATH
    assert call.attributes["http.response.status_code"] == 200
    publish = one(spans, "publish autocall.accepted")
    assert (publish.kind, publish.parent_id) == ("PRODUCER", process.span_id)
    assert publish.attributes["messaging.destination.name"] == rig.settings.outcome_exchange
    assert traceparent_of(outcome) == publish.traceparent
    assert process.resource["service.name"] == "autocall-bridge"
    rig.assert_nothing_secret(spans, PHONE)


async def test_a_structured_cloudevent_s_traceparent_is_the_parent(make_rig: MakeRig) -> None:
    rig = await make_rig()
    trace_id, parent_id = new_parent()
    event_id = uuid.uuid4().hex
    event = {
        "specversion": "1.0",
        "id": event_id,
        "type": "order.created",
        "source": "/shop",
        "traceparent": f"00-{trace_id}-{parent_id}-01",
        "data": {"phone": PHONE, "code": event_id},
    }
    content_type = "application/cloudevents+json"
    await rig.broker.publish(rig.settings, event, "order.created", content_type=content_type)
    outcome = await rig.outcome(event_id)
    process = one(await rig.otlp.trace(trace_id, 4), "autocall.process order.created")
    assert process.parent_id == parent_id
    assert process.attributes["messaging.message.id"] == event_id  # no message_id: the body's id
    assert traceparent_of(outcome).split("-")[1] == trace_id


async def test_without_a_parent_a_new_trace_named_by_otel_service_name(
    make_rig: MakeRig, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OTEL_SERVICE_NAME", "shop-calls")
    rig = await make_rig()
    event_id = await rig.order()
    outcome = await rig.outcome(event_id)
    spans = await rig.otlp.wait(
        lambda s: any(x.attributes.get("messaging.message.id") == event_id for x in s)
    )
    process = next(s for s in spans if s.attributes.get("messaging.message.id") == event_id)
    assert process.parent_id == ""
    assert traceparent_of(outcome).split("-")[1] == process.trace_id
    assert process.resource["service.name"] == "shop-calls"


@pytest.mark.parametrize(
    ("phone", "sandbox_config", "code"),
    [("12", {}, "invalid_phone"), (PHONE, {"balance": 0}, "balance_is_not_enough")],
)
async def test_a_failed_outcome_sets_the_span_s_status(
    make_rig: MakeRig, phone: str, sandbox_config: dict[str, Any], code: str
) -> None:
    rig = await make_rig()
    await configure(rig.sandbox, sandbox_config)
    trace_id, _ = new_parent()
    event_id = await rig.order(phone, headers={"traceparent": f"00-{trace_id}-{'1' * 16}-01"})
    outcome = await rig.outcome(event_id)
    assert orjson.loads(outcome.body)["error"]["code"] == code
    spans = await rig.otlp.named(trace_id, "autocall.process order.created")  # the last to end
    process = one(spans, "autocall.process order.created")
    assert (process.status, process.status_message) == ("ERROR", code)
    assert process.attributes["error.type"] == code
    assert process.attributes["autocall.status"] == "failed"
    rig.assert_nothing_secret(spans, PHONE)


@pytest.mark.parametrize("store", ["memory", "redis"])
async def test_the_call_s_result_belongs_to_the_event_s_trace(
    make_rig: MakeRig, store: str
) -> None:
    from tests.conftest import REDIS_URL

    rig = await make_rig(**({"store_url": REDIS_URL} if store == "redis" else {}))
    trace_id, parent_id = new_parent()
    event_id = await rig.order(headers={"traceparent": f"00-{trace_id}-{parent_id}-01"})
    result = await rig.result(event_id)
    published = ("autocall.result answered", "accepted")  # a record posted again: duplicate
    spans = await rig.otlp.wait(
        lambda s: any((x.name, x.attributes.get("autocall.published")) == published for x in s)
    )
    spans = [span for span in spans if span.trace_id == trace_id]
    process = one(spans, "autocall.process order.created")
    [answered] = [s for s in spans if (s.name, s.attributes.get("autocall.published")) == published]
    assert answered.parent_id == process.span_id  # minutes later, in the same trace
    assert (
        answered.attributes
        | {
            "autocall.choice": "confirmed",
            "autocall.attempt": 1,
            "autocall.final": True,
            "autocall.source": "webhook",
            "autocall.published": "accepted",
        }
        == answered.attributes
    )
    publish = one(spans, "publish autocall.result.answered.confirmed")
    assert publish.parent_id == answered.span_id
    assert traceparent_of(result) == publish.traceparent
    rig.assert_nothing_secret(spans, PHONE)


async def test_an_unsampled_parent_is_carried_on_and_nothing_exported(make_rig: MakeRig) -> None:
    rig = await make_rig()
    trace_id, parent_id = new_parent()
    unsampled = f"00-{trace_id}-{parent_id}-00"  # the publisher did not keep its trace
    outcome = await rig.outcome(await rig.order(headers={"traceparent": unsampled}))
    _, trace, _, flags = traceparent_of(outcome).split("-")
    assert (trace, flags) == (trace_id, "00")  # carried on, still not kept
    after = await rig.order()  # then one that is kept: exported after anything of the first
    await rig.otlp.wait(lambda s: any(x.attributes.get("messaging.message.id") == after for x in s))
    assert not [span for span in rig.otlp.spans if span.trace_id == trace_id]


async def test_logs_carry_the_span_s_ids(make_rig: MakeRig) -> None:
    kept: list[logging.LogRecord] = []
    handler = Keep(kept)
    handler.addFilter(TraceIds())
    logger = logging.getLogger("autocall")
    logger.addHandler(handler)
    level = logger.level
    logger.setLevel(logging.INFO)
    try:
        rig = await make_rig()
        trace_id, _ = new_parent()
        event_id = await rig.order(headers={"traceparent": f"00-{trace_id}-{'2' * 16}-01"})
        await rig.outcome(event_id)
        process = one(await rig.otlp.trace(trace_id, 4), "autocall.process order.created")
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)
    [line] = [r for r in kept if r.msg == "event %s" and getattr(r, "event_id", "") == event_id]
    assert (getattr(line, "trace_id", None), getattr(line, "span_id", None)) == (
        trace_id,
        process.span_id,
    )
