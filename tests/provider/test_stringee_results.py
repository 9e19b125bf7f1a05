"""Stringee's results (CONTRACT.md §13): the sandbox places the call and posts its signed events
and key presses to the webhook listener over HTTP; each call's one result is published on the
real broker exactly as OMICall's are."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import aiohttp
import orjson
import pytest
from prometheus_client import CollectorRegistry

from service.amqp.publisher import Publisher
from service.metrics import Metrics
from service.provider.stringee.callout import callback_url
from service.provider.stringee.client import StringeeClient
from service.provider.stringee.records import sign
from service.provider.stringee.webhook import stringee_webhook
from service.results.listener import Listener, serve
from service.results.metrics import ResultMetrics
from service.results.pipeline import Matcher, Results
from service.results.recorder import open_call
from service.results.runtime import choices_of
from service.results.store import MemoryResults
from service.sandbox.state import SandboxState
from service.sandbox.stringee import StringeeSandbox
from service.sandbox.stringee import serve as serve_stringee
from service.sandbox.stringee_calls import StringeeState
from service.store import MemoryStore
from tests import fakes
from tests.conftest import Broker, MakeSettings, Outcomes
from tests.stringee_helpers import NOW, TOKEN, account, rendered, templates


@dataclass
class Flow:
    sandbox: StringeeSandbox
    client: StringeeClient
    store: MemoryResults
    registry: CollectorRegistry
    outcomes: Outcomes
    hook_url: str  # the account's callback URL on the listener
    session: aiohttp.ClientSession

    async def place(self, phone: str, code: str = "DH-1") -> str:
        """Call `phone` through Stringee and record the call as the caller does: its call_id."""
        call = rendered(phone, code)
        accepted = await self.client.execute(call.request)
        opened = open_call(call, accepted.autocall_id, NOW)
        assert opened is not None
        await self.store.record(opened)
        return accepted.autocall_id

    async def post(self, body: dict[str, Any], signature: str | None = "sign") -> tuple[int, bytes]:
        data = orjson.dumps(body)
        headers = {"Content-Type": "application/json"}
        if signature == "sign":
            signature = sign(data, str(self.sandbox.state.signing_secret))
        if signature is not None:
            headers["X-STRINGEE-SIGNATURE"] = signature
        async with self.session.post(self.hook_url, data=data, headers=headers) as answer:
            return answer.status, await answer.read()

    def webhooks(self, outcome: str) -> float:
        labels = {"outcome": outcome}
        return self.registry.get_sample_value("autocall_webhooks_total", labels) or 0.0


@pytest.fixture
async def flow(broker: Broker, make_settings: MakeSettings) -> AsyncIterator[Flow]:
    settings = make_settings()
    collected = await broker.outcomes(settings)
    exchange = await broker.channel.get_exchange(settings.outcome_exchange)
    store = MemoryResults(86400)
    registry = CollectorRegistry()
    metrics = ResultMetrics(registry, ["cod"])
    publisher = Publisher(broker.channel, exchange)
    results = Results(store, Matcher(store, None), publisher, metrics, choices_of(templates()))
    posting = SandboxState(webhook_backoff=0.01, cdr_posts=1)
    state = StringeeState(call_seconds=0.2, hooks=posting)
    accounts = {"shop-b": account(state)}
    hooks = stringee_webhook(accounts, results, MemoryStore(3600), templates(), "autocall:t:")
    listener = Listener(TOKEN, results, metrics, stringee=hooks)
    async with (
        serve(listener, 0, "127.0.0.1") as port,
        serve_stringee(state) as sandbox,
        aiohttp.ClientSession() as session,
    ):
        url = callback_url(f"http://127.0.0.1:{port}", "shop-b", TOKEN)
        state.hooks.webhook_url = url  # the project's event URL
        stringee = account(state, sandbox.url)
        client = StringeeClient(session, stringee, Metrics(), event_url=url, timeout=2.0)
        yield Flow(sandbox, client, store, registry, collected, url, session)


def routing_keys(outcomes: Outcomes) -> list[str]:
    return [message.routing_key or "" for message in outcomes.received]


async def test_answered_with_a_key_and_its_choice(flow: Flow) -> None:
    call_id = await flow.place("0912345671")  # last digit 1: answered, key 1
    [result] = await flow.outcomes.wait(1)
    assert result["status"] == "result"
    assert (result["result"], result["final"], result["keys"]) == ("answered", True, "1")
    assert result["choice"] == "confirmed"
    assert (result["autocall_id"], result["transaction_id"]) == (call_id, call_id)
    assert (result["attempt"], result["answer_seconds"], result["source"]) == (1, 12, "webhook")
    assert result["phone"] == "091****671"
    assert result["template"] == "cod"
    assert result["idempotency_key"] == "cod:DH-1"
    message = flow.outcomes.received[0]
    assert message.routing_key == "autocall.result.answered.confirmed"
    assert message.correlation_id == result["event"]["id"]
    assert message.type == "autocall.result"


async def test_the_second_key_names_the_second_choice(flow: Flow) -> None:
    await flow.place("0912345672")
    [result] = await flow.outcomes.wait(1)
    assert (result["keys"], result["choice"]) == ("2", "cancelled")


@pytest.mark.parametrize(
    ("phone", "expected"), [("0912345674", "busy"), ("0912345673", "no_answer")]
)
async def test_busy_and_no_answer_are_final_without_keys(
    flow: Flow, phone: str, expected: str
) -> None:
    await flow.place(phone)
    [result] = await flow.outcomes.wait(1)
    assert (result["result"], result["final"], result["keys"], result["choice"]) == (
        expected,
        True,
        None,
        None,
    )
    assert routing_keys(flow.outcomes) == [f"autocall.result.{expected}.none"]


async def test_a_duplicated_callback_publishes_one_result(flow: Flow) -> None:
    flow.sandbox.state.hooks.webhook_duplicate = 1  # the next `ended` is posted twice
    await flow.place("0912345671")
    await flow.outcomes.wait(1)
    await flow.sandbox.player.idle()
    # created, ringing, answered, the key, and `ended` twice
    assert flow.sandbox.state.hooks.webhook_posts["ok"] == 6
    assert len(flow.outcomes.received) == 1
    assert (flow.webhooks("accepted"), flow.webhooks("duplicate")) == (1, 1)


def ended(call_id: str, **fields: Any) -> dict[str, Any]:
    body = {"call_id": call_id, "call_status": "ended", "answerDuration": 5, "duration": 9}
    return body | {"endCallCause": "NORMAL_CLEARING"} | fields


async def recorded(flow: Flow, call_id: str) -> None:
    opened = open_call(rendered("0912345679"), call_id, NOW)
    assert opened is not None
    await flow.store.record(opened)


async def test_a_bad_signature_is_403_and_changes_nothing(flow: Flow) -> None:
    await recorded(flow, "call-x")
    assert (await flow.post(ended("call-x"), signature="bm90IGl0"))[0] == 403
    assert (await flow.post(ended("call-x"), signature=None))[0] == 403
    keys = {"call_id": "call-x", "dtmf": "2", "customField": "c", "timeout": False, "time": "1"}
    assert (await flow.post(keys, signature="bm90IGl0"))[0] == 403
    assert flow.webhooks("unauthorized") == 3
    assert flow.outcomes.received == []
    # nothing was taken: the genuine post still publishes, and without the forged key 2
    assert (await flow.post(ended("call-x")))[0] == 200
    [result] = await flow.outcomes.wait(1)
    assert (result["result"], result["keys"], result["autocall_id"]) == ("answered", None, "call-x")
    assert flow.webhooks("accepted") == 1


async def test_the_sandbox_s_posts_signed_with_another_secret_are_refused(flow: Flow) -> None:
    flow.sandbox.state.signing_secret = "someone else's secret, 36 characters"
    await flow.place("0912345671")
    await flow.sandbox.player.idle()
    assert flow.outcomes.received == []
    assert flow.sandbox.state.hooks.webhook_posts["http_403"] == 5
    assert flow.webhooks("accepted") == 0


async def test_the_key_press_is_answered_with_the_template_s_thanks(flow: Flow) -> None:
    await recorded(flow, "call-y")
    pressed = {"call_id": "call-y", "dtmf": "1", "customField": "c", "timeout": False}
    status, answer = await flow.post(pressed | {"time": "1764480000000"})
    assert status == 200
    assert orjson.loads(answer) == [
        {"action": "talk", "text": "Cảm ơn quý khách", "voice": "hn_female_ngochuyen"}
    ]
    status, answer = await flow.post({"call_id": "call-y", "dtmf": "", "timeout": True})
    assert (status, orjson.loads(answer)) == (200, [])
    status, answer = await flow.post(pressed | {"call_id": "call-unknown"})
    assert (status, orjson.loads(answer)) == (200, [])
    # the key kept for call-y comes with its result
    assert (await flow.post(ended("call-y")))[0] == 200
    [result] = await flow.outcomes.wait(1)
    assert (result["keys"], result["choice"]) == ("1", "confirmed")


async def test_live_events_unknown_calls_and_bad_bodies(flow: Flow) -> None:
    assert (await flow.post({"call_id": "c", "call_status": "ringing"}))[0] == 200
    assert (await flow.post(ended("call-nobody-made")))[0] == 200
    assert (await flow.post({"no": "call"}))[0] == 400
    assert (flow.webhooks("live"), flow.webhooks("unmatched"), flow.webhooks("invalid")) == (
        1,
        1,
        1,
    )
    other = flow.hook_url.replace("/shop-b/", "/shop-z/")
    async with flow.session.post(other, data=b"{}") as answer:
        assert answer.status == 404
    wrong = flow.hook_url[: -len(TOKEN)] + "x" * len(TOKEN)
    async with flow.session.post(wrong, data=b"{}") as answer:
        assert answer.status == 404
    assert flow.outcomes.received == []


async def test_a_template_s_redials_never_make_a_stringee_result_non_final(flow: Flow) -> None:
    call = rendered("0912345673", ts=templates(num_retry=2, distance_retry=60))
    assert call.request.json["num_retry"] == 2  # OMICall would redial twice
    accepted = await flow.client.execute(call.request)
    opened = open_call(call, accepted.autocall_id, NOW)
    assert opened is not None
    await flow.store.record(opened)
    [result] = await flow.outcomes.wait(1)
    assert (result["result"], result["final"], result["attempt"]) == ("no_answer", True, 1)
    assert await flow.store.open_count() == 0  # closed: no `unknown` will follow


async def test_without_stringee_accounts_the_path_is_not_found() -> None:
    store, metrics = MemoryResults(60), ResultMetrics(CollectorRegistry(), [])
    results = Results(store, Matcher(store, None), fakes.Publisher(), metrics, {})
    listener = Listener(TOKEN, results, metrics)
    async with serve(listener, 0, "127.0.0.1") as port, aiohttp.ClientSession() as session:
        url = callback_url(f"http://127.0.0.1:{port}", "shop-b", TOKEN)
        async with session.post(url, data=orjson.dumps(ended("c-1"))) as answer:
            assert answer.status == 404
