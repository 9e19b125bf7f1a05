"""The data path against the real broker and the sandbox over HTTP: every outcome status and code
the service produces, duplicates, token expiry, retries, dead letters, defers and holds."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import pytest

from service.sandbox import Sandbox
from service.templates import Templates
from service.templates.filters import LOCAL_TZ
from tests.conftest import EXAMPLES, Broker, MakeSettings, StartService, templates_of
from tests.helpers import (
    TEMPLATES,
    Clock,
    Ticking,
    configure,
    http_status,
    metric,
    order,
    post,
    scrape,
    wait_for,
)

pytestmark = pytest.mark.integration
Event = tuple[bytes, str, dict[str, Any]]  # body, routing key, AMQP properties


async def run(
    make_settings: MakeSettings,
    broker: Broker,
    start_service: StartService,
    events: list[Event],
    templates: Templates | None = None,
    **settings: Any,
) -> list[dict[str, Any]]:
    """Start the service, publish `events`, and return one outcome per event."""
    config = make_settings(**settings)
    outcomes = await broker.outcomes(config)
    await start_service(config, templates or templates_of(TEMPLATES))
    for body, routing_key, properties in events:
        await broker.publish(config, body, routing_key, **properties)
    return await outcomes.wait(len(events))


async def test_accepted_call_and_its_outcome_event(
    make_settings: MakeSettings, broker: Broker, start_service: StartService, sandbox: Sandbox
) -> None:
    config = make_settings()
    outcomes = await broker.outcomes(config)
    await start_service(config, templates_of(TEMPLATES))
    await broker.publish(
        config, order(note="  giao   giờ hành chính "), "order.created", message_id="e-1"
    )

    [body] = await outcomes.wait(1)

    assert body["status"] == "accepted"
    assert body["event"] == {"id": "e-1", "type": "order.created", "source": None}
    assert body["template"] == "confirm"
    assert body["idempotency_key"] == "order:A1"
    assert body["attempts"] == 1
    assert body["phone"] == "091****678"
    assert body["error"] is None
    assert datetime.fromisoformat(body["occurred_at"]).utcoffset() == timedelta(hours=7)
    [call] = sandbox.state.calls
    assert body["autocall_id"] == call.autocall_id
    assert call.path == "/api/auto_call/execute_by_phone"
    assert call.body == {
        "name": "Đơn A1",
        "voice": "banmai",
        "template_dialplans": [
            {"target_type": "Text_variable"},
            {"target_type": "Text_variable"},
            {"target_type": "Text_variable"},
            {"target_type": "Recording", "target": "rec-1"},
        ],
        "variables": ["Đơn hàng A 1", "giao giờ hành chính", "tổng 455.000 đồng"],
        "phone_number_list": ["0912345678"],
    }
    message = outcomes.received[0]
    assert message.routing_key == "autocall.accepted"
    assert message.type == "autocall.accepted"
    assert message.correlation_id == "e-1"
    assert message.content_type == "application/json"
    assert message.delivery_mode == 2  # persistent


async def test_extension_call(
    make_settings: MakeSettings, broker: Broker, start_service: StartService, sandbox: Sandbox
) -> None:
    [body] = await run(make_settings, broker, start_service, [(b"{}", "order.flagged", {})])

    assert body["status"] == "accepted"
    assert len(body["autocall_id"]) == 24
    [call] = sandbox.state.calls
    assert call.path == "/api/auto_call/execute_by_extension"
    assert call.body == {
        "cid": "842899959300",
        "template_dialplans": [{"target_type": "Ivr_menu", "target": "ivr-1"}],
        "variables": [],
        "extensions": ["101"],
    }


async def test_skips_are_outcomes_without_calls(
    make_settings: MakeSettings, broker: Broker, start_service: StartService, sandbox: Sandbox
) -> None:
    events = [
        # routed by its key, but its type (the AMQP type property) matches no template
        (
            order(code="S1"),
            "order.created",
            {"message_id": "no-template", "type": "order.refunded"},
        ),
        (order(code="S2", total="99"), "order.created", {"message_id": "too-small"}),
    ]
    bodies = await run(make_settings, broker, start_service, events)

    reasons = {body["event"]["id"]: (body["status"], body["reason"]) for body in bodies}
    assert reasons == {
        "no-template": ("skipped", "no_template"),
        "too-small": ("skipped", "condition_false"),
    }
    assert sandbox.state.calls == []


@pytest.mark.parametrize(
    ("body", "routing_key", "properties", "code"),
    [
        (b"not json", "order.created", {}, "invalid_event"),
        (b"\xff\xfe{}", "order.created", {}, "invalid_event"),
        (b'{"specversion": "1.0", "id": "x"}', "order.created", {}, "invalid_event"),
        (order(phone="555-555-SHIP"), "order.created", {}, "invalid_phone"),
        (
            orjson.dumps({"phone": "0912345678", "total": 500}),
            "order.created",
            {},
            "template_error",
        ),
        (order(note="rất dài " * 50), "order.created", {}, "limit_word_session"),
        (
            order(),
            "order.created",
            {"timestamp": datetime.now(UTC) - timedelta(hours=7)},
            "expired",
        ),
    ],
    ids=["not-json", "not-utf8", "no-type", "phone", "template", "too-long", "expired"],
)
async def test_failures_before_calling(
    make_settings: MakeSettings,
    broker: Broker,
    start_service: StartService,
    sandbox: Sandbox,
    body: bytes,
    routing_key: str,
    properties: dict[str, Any],
    code: str,
) -> None:
    templates = templates_of(
        TEMPLATES.replace("  voice: banmai", "  voice: banmai\n  expires_after: 6h")
    )
    config = make_settings()
    outcomes = await broker.outcomes(config)
    await start_service(config, templates)
    await broker.publish(config, body, routing_key, message_id="bad-1", **properties)

    [outcome] = await outcomes.wait(1)

    assert outcome["status"] == "failed"
    assert outcome["error"]["code"] == code
    assert outcome["error"]["retryable"] is False
    assert outcome["attempts"] == 0
    assert sandbox.state.calls == []
    [dead] = await broker.drain(f"{config.queue}.dead")
    assert dead.body == body
    assert dead.headers["x-autocall-reason"] == code
    assert dead.headers["x-autocall-event-id"] == "bad-1"
    assert dead.headers["x-autocall-routing-key"] == routing_key


@pytest.mark.parametrize(
    ("sandbox_config", "code"),
    [
        ({"trial": True}, "limit_service"),
        ({"balance": 0}, "balance_is_not_enough"),
        ({"daily_limit": 10}, "limit_word"),
        ({"faults": ["garbage"]}, "provider_error"),
        ({"faults": ["nocode"]}, "provider_error"),
        ({"api_keys": ["another-key"]}, "unauthorized"),
    ],
)
async def test_provider_refusals(
    make_settings: MakeSettings,
    broker: Broker,
    start_service: StartService,
    sandbox: Sandbox,
    sandbox_config: dict[str, Any],
    code: str,
) -> None:
    await configure(sandbox, sandbox_config)

    [outcome] = await run(make_settings, broker, start_service, [(order(), "order.created", {})])

    assert (outcome["status"], outcome["error"]["code"]) == ("failed", code)
    assert outcome["attempts"] == 1
    assert sandbox.state.calls == []
    assert await broker.count(f"{make_settings().queue}.dead") == 1


async def test_refused_call_releases_its_key(
    make_settings: MakeSettings, broker: Broker, start_service: StartService, sandbox: Sandbox
) -> None:
    """A failure in which no call was made gives the key back: the corrected event goes through."""
    await configure(sandbox, {"balance": 0})
    config = make_settings()
    outcomes = await broker.outcomes(config)
    await start_service(config, templates_of(TEMPLATES))
    await broker.publish(config, order(), "order.created", message_id="first")
    [first] = await outcomes.wait(1)
    await configure(sandbox, {"balance": 10_000})
    await broker.publish(config, order(), "order.created", message_id="second")

    _, second = await outcomes.wait(2)

    assert first["error"]["code"] == "balance_is_not_enough"
    assert second["status"] == "accepted"


async def test_duplicate_keys_call_once(
    make_settings: MakeSettings, broker: Broker, start_service: StartService, sandbox: Sandbox
) -> None:
    events = [(order(code="D1"), "order.created", {"message_id": f"d-{i}"}) for i in range(5)]

    bodies = await run(make_settings, broker, start_service, events)

    statuses = sorted((body["status"], body["reason"]) for body in bodies)
    assert statuses == [("accepted", None)] + [("skipped", "duplicate")] * 4
    assert len(sandbox.state.calls) == 1
    assert all(body["idempotency_key"] == "order:D1" for body in bodies)


async def test_expired_token_is_renewed_once(
    make_settings: MakeSettings, broker: Broker, start_service: StartService, sandbox: Sandbox
) -> None:
    config = make_settings()
    outcomes = await broker.outcomes(config)
    await start_service(config, templates_of(TEMPLATES))
    await broker.publish(config, order(code="K1"), "order.created")
    await outcomes.wait(1)
    await post(sandbox, "/_sandbox/expire-tokens")
    await broker.publish(config, order(code="K2"), "order.created")

    _, second = await outcomes.wait(2)

    assert second["status"] == "accepted"
    assert sandbox.state.auth_requests == 2
    assert len(sandbox.state.calls) == 2


async def test_fixed_token(
    make_settings: MakeSettings, broker: Broker, start_service: StartService, sandbox: Sandbox
) -> None:
    await configure(sandbox, {"fixed_tokens": ["fixed-123"]})

    [outcome] = await run(
        make_settings,
        broker,
        start_service,
        [(order(), "order.created", {})],
        api_key=None,
        api_token="fixed-123",
    )

    assert outcome["status"] == "accepted"
    assert sandbox.state.auth_requests == 0


async def test_transient_failures_are_retried_through_delay_queues(
    make_settings: MakeSettings, broker: Broker, start_service: StartService, sandbox: Sandbox
) -> None:
    await configure(sandbox, {"faults": ["503", "429"]})

    [outcome] = await run(make_settings, broker, start_service, [(order(), "order.created", {})])

    assert outcome["status"] == "accepted"
    assert outcome["attempts"] == 3
    assert len(sandbox.state.calls) == 1


async def test_outage_longer_than_the_retries_fails_as_provider_unavailable(
    make_settings: MakeSettings, broker: Broker, start_service: StartService, sandbox: Sandbox
) -> None:
    await configure(sandbox, {"outage": 10})

    [outcome] = await run(make_settings, broker, start_service, [(order(), "order.created", {})])

    assert outcome["error"]["code"] == "provider_unavailable"
    assert outcome["error"]["retryable"] is True
    assert outcome["attempts"] == 3  # the first try and one per retry delay (50ms, 100ms)
    assert sandbox.state.calls == []


async def test_provider_down_is_retried(
    make_settings: MakeSettings, broker: Broker, start_service: StartService
) -> None:
    [outcome] = await run(
        make_settings,
        broker,
        start_service,
        [(order(), "order.created", {})],
        api_base_url="http://127.0.0.1:9",  # nothing listens on the discard port
    )

    assert outcome["error"]["code"] == "provider_unavailable"
    assert "connect" in outcome["error"]["message"]


@pytest.mark.parametrize("fault", ["accept_then_hang", "accept_then_drop"])
async def test_no_answer_after_sending_is_never_sent_again(
    make_settings: MakeSettings,
    broker: Broker,
    start_service: StartService,
    sandbox: Sandbox,
    fault: str,
) -> None:
    await configure(sandbox, {"faults": [fault]})

    [outcome] = await run(
        make_settings,
        broker,
        start_service,
        [(order(), "order.created", {})],
        api_timeout="300ms",
    )

    assert outcome["error"]["code"] == "outcome_unknown"
    assert outcome["attempts"] == 1
    assert len(sandbox.state.calls) == 1  # it did happen: and only once


async def test_outcome_unknown_keeps_the_key(
    make_settings: MakeSettings, broker: Broker, start_service: StartService, sandbox: Sandbox
) -> None:
    await configure(sandbox, {"faults": ["accept_then_drop"]})
    config = make_settings()
    outcomes = await broker.outcomes(config)
    await start_service(config, templates_of(TEMPLATES))
    await broker.publish(config, order(), "order.created", message_id="u-1")
    await outcomes.wait(1)
    await broker.publish(config, order(), "order.created", message_id="u-2")

    _, again = await outcomes.wait(2)

    assert (again["status"], again["reason"]) == ("skipped", "duplicate")
    assert len(sandbox.state.calls) == 1


async def test_local_daily_budget(
    make_settings: MakeSettings, broker: Broker, start_service: StartService, sandbox: Sandbox
) -> None:
    events: list[Event] = [(order(code=f"B{i}"), "order.created", {}) for i in range(3)]

    bodies = await run(
        make_settings, broker, start_service, events, tts_daily_limit=50, concurrency=1
    )

    statuses = [body["status"] for body in bodies]
    assert statuses.count("accepted") == 1  # 29 characters each: two do not fit in 50
    codes = [body["error"]["code"] for body in bodies if body["error"]]
    assert codes == ["limit_word", "limit_word"]
    assert len(sandbox.state.calls) == 1


async def test_call_window_defers_through_a_delay_queue(
    make_settings: MakeSettings, broker: Broker, start_service: StartService, sandbox: Sandbox
) -> None:
    """Outside the window the event waits in `<queue>.defer.HHMM` until the window opens."""
    opens = datetime(2026, 11, 27, 8, 0, tzinfo=LOCAL_TZ)
    clock = Clock(opens - timedelta(milliseconds=300))
    templates = templates_of(
        TEMPLATES.replace("  voice: banmai", '  voice: banmai\n  call_window: "08:00-21:00"')
    )
    config = make_settings()
    outcomes = await broker.outcomes(config)
    await start_service(config, templates, clock=clock)
    await broker.publish(config, order(), "order.created", message_id="w-1")

    [outcome] = await outcomes.wait(1)

    assert outcome["status"] == "accepted"
    assert clock.calls_before_window >= 1  # it was deferred once, then called inside the window
    assert len(sandbox.state.calls) == 1


async def test_hold_waits_for_the_balance_then_resumes(
    make_settings: MakeSettings, broker: Broker, start_service: StartService, sandbox: Sandbox
) -> None:
    await configure(sandbox, {"balance": 0})
    config = make_settings(concurrency=1, prefetch=1)
    outcomes = await broker.outcomes(config)
    service = await start_service(config, templates_of(TEMPLATES))
    for i in range(5):
        await broker.publish(config, order(code=f"H{i}"), "shipment.out_for_delivery")
    await wait_for(
        lambda: metric(service, "autocall_consumer_paused", reason="balance_is_not_enough") == 1
    )

    assert outcomes.received == []
    assert await http_status(service, "/readyz") == 200
    await configure(sandbox, {"balance": 1_000_000})
    bodies = await outcomes.wait(5)

    assert [body["status"] for body in bodies] == ["accepted"] * 5
    assert len(sandbox.state.calls) == 5
    # the hold ends just after the probe's outcome is out
    await wait_for(
        lambda: metric(service, "autocall_consumer_paused", reason="balance_is_not_enough") == 0
    )
    assert metric(service, "autocall_balance_failures_total") >= 1


async def test_delivery_limit_ends_a_poison_message(
    make_settings: MakeSettings, broker: Broker, start_service: StartService, sandbox: Sandbox
) -> None:
    """A message that keeps coming back (as if processing it killed the worker) fails with an
    outcome before the broker would drop it."""
    config = make_settings(delivery_limit=3)
    templates = templates_of(TEMPLATES)
    outcomes = await broker.outcomes(config)
    service = await start_service(config, templates)
    consumer = service.consumer
    assert consumer is not None
    await consumer.pause()  # we play the crashing worker
    await broker.publish(config, order(), "order.created", message_id="poison")
    queue = await broker.channel.declare_queue(config.queue, passive=True)
    for _ in range(3):
        message = await queue.get(fail=True)
        await message.nack(requeue=True)
    await consumer.resume()

    [outcome] = await outcomes.wait(1)

    assert outcome["error"]["code"] == "delivery_limit"
    assert sandbox.state.calls == []
    assert await broker.count(f"{config.queue}.dead") == 1


async def test_example_events_with_example_templates(
    make_settings: MakeSettings, broker: Broker, start_service: StartService, sandbox: Sandbox
) -> None:
    """What the README's `make run` + `publish` shows: example events end accepted."""
    from service.templates import load

    events = [
        ((EXAMPLES / "events/order_created.json").read_bytes(), "order.created", {}),
        ((EXAMPLES / "events/order_flagged.json").read_bytes(), "order.flagged", {}),
        (
            (EXAMPLES / "events/cloudevent_order_created.json").read_bytes(),
            "order.created",
            {"content_type": "application/cloudevents+json"},
        ),
    ]
    bodies = await run(
        make_settings, broker, start_service, events, templates=load(EXAMPLES / "templates.yaml")
    )

    assert [body["status"] for body in bodies] == ["accepted"] * 3


async def test_metrics_count_what_happened(
    make_settings: MakeSettings, broker: Broker, start_service: StartService, sandbox: Sandbox
) -> None:
    await configure(sandbox, {"faults": ["503"]})
    config = make_settings()
    outcomes = await broker.outcomes(config)
    service = await start_service(config, templates_of(TEMPLATES))
    await broker.publish(config, order(code="M1"), "order.created")
    await broker.publish(config, order(code="M2", phone="12"), "order.created")
    await broker.publish(config, order(code="M3"), "order.created", type="order.unknown")
    await outcomes.wait(3)
    await configure(sandbox, {"balance": 0})
    await broker.publish(config, order(code="M4"), "order.created")
    await outcomes.wait(4)

    await wait_for(lambda: metric(service, "autocall_inflight_events") == 0)  # settled, acked
    page = await scrape(service)

    assert page["autocall_events_received_total"] == 5  # M1 twice: once more after its retry
    assert (
        page['autocall_outcomes_total{account="default",status="accepted",template="confirm"}'] == 1
    )
    assert (
        page['autocall_outcomes_total{account="default",status="failed",template="confirm"}'] == 2
    )
    assert page['autocall_outcomes_total{account="default",status="skipped",template=""}'] == 1
    assert (
        page[
            'autocall_api_requests_total{account="default",endpoint="execute_by_phone",result="ok"}'
        ]
        == 1
    )
    assert (
        page[
            'autocall_api_requests_total{account="default",endpoint="execute_by_phone",result="http_5xx"}'
        ]
        == 1
    )
    assert page['autocall_api_requests_total{account="default",endpoint="auth",result="ok"}'] == 1
    assert (
        page['autocall_provider_errors_total{account="default",code="balance_is_not_enough"}'] == 1
    )
    assert page['autocall_provider_errors_total{account="default",code="limit_word"}'] == 0
    assert page['autocall_balance_failures_total{account="default"}'] == 1
    assert page['autocall_quota_failures_total{account="default",code="limit_service"}'] == 0
    assert page["autocall_retries_total"] == 1
    assert page['autocall_dead_lettered_total{reason="invalid_phone"}'] == 1
    assert page['autocall_dead_lettered_total{reason="balance_is_not_enough"}'] == 1
    assert page["autocall_tts_chars_used_today"] == len("Đơn hàng M 1") + len("tổng 455.000 đồng")
    assert page["autocall_tts_daily_limit_chars"] == 3000
    assert page["autocall_inflight_events"] == 0
    assert page['autocall_consumer_paused{reason="limit_word"}'] == 0
    assert page["autocall_last_processed_timestamp_seconds"] > 0
    assert page['autocall_api_request_duration_seconds_count{endpoint="execute_by_phone"}'] == 3


async def test_health_endpoints(
    make_settings: MakeSettings, broker: Broker, start_service: StartService
) -> None:
    service = await start_service(make_settings(), templates_of(TEMPLATES))

    assert await http_status(service, "/healthz") == 200
    assert await http_status(service, "/readyz") == 200


async def test_daily_budget_hold_waits_for_local_midnight(
    make_settings: MakeSettings, broker: Broker, start_service: StartService, sandbox: Sandbox
) -> None:
    """`on_exhausted: hold` and the day's budget spent: held until the local day turns."""
    midnight = datetime(2026, 11, 28, 0, 0, tzinfo=LOCAL_TZ)
    clock = Ticking(midnight - timedelta(milliseconds=500))
    config = make_settings(tts_daily_limit=30, concurrency=1, prefetch=1)  # 13 characters a call
    outcomes = await broker.outcomes(config)
    service = await start_service(config, templates_of(TEMPLATES), clock=clock)
    for i in range(3):
        await broker.publish(config, order(code=f"L{i}"), "shipment.out_for_delivery")

    bodies = await outcomes.wait(3)

    assert [body["status"] for body in bodies] == ["accepted"] * 3
    assert len(sandbox.state.calls) == 3
    assert clock.now() >= midnight  # the third call waited for the new day's budget
    assert metric(service, "autocall_quota_failures_total", code="limit_word") == 1
    # the hold ends just after the probe's outcome is out
    await wait_for(lambda: metric(service, "autocall_consumer_paused", reason="limit_word") == 0)
