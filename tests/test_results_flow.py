"""Matching, publishing once, history lookups in batches, and the poller, over fakes."""

from __future__ import annotations

import asyncio
from typing import Any

import orjson
import pytest
from prometheus_client import CollectorRegistry

from service.errors import ProviderError, ProviderUnavailable
from service.provider.omicall.history import History
from service.results.calls import result_of
from service.results.metrics import ResultMetrics
from service.results.pipeline import Matcher, Results
from service.results.poller import Poller
from service.results.store import MemoryResults
from tests.fakes import Publisher as FakePublisher
from tests.helpers import by_account
from tests.test_results_store import T0, open_call, record


class FakeApi:
    """The call-history search over `items`; raises `error` while set."""

    def __init__(self, items: list[dict[str, Any]] | None = None) -> None:
        self.items = items or []
        self.requests: list[tuple[str, Any]] = []
        self.error: Exception | None = None

    async def api(self, method: str, path: str, *, json: Any = None) -> Any:
        self.requests.append((path, json))
        if self.error is not None:
            raise self.error
        wanted = set(json.get("transactionIds") or []) | set(json.get("phoneNumbers") or [])
        found = [
            item
            for item in self.items
            if not wanted or {item["transaction_id"], item["destination_number"]} & wanted
        ]
        return {"items": found, "has_next": False}


def item(autocall_id: str, transaction_id: str = "tx-1", **changes: Any) -> dict[str, Any]:
    return {
        "transaction_id": transaction_id,
        "autocall_id": autocall_id,
        "destination_number": "0912345678",
        "time_start_call": T0 + 10,
        "answer_sec": 5,
        "ivr": "2",
        "send_num_retry": 0,
    } | changes


class Rig:
    def __init__(self, items: list[dict[str, Any]] | None = None) -> None:
        self.now = T0 + 30
        self.store = MemoryResults(86400, clock=lambda: self.now)
        self.api = FakeApi(items)
        self.registry = CollectorRegistry()
        self.metrics = ResultMetrics(self.registry, ["cod"])
        self.history = History(self.api, self.metrics, batch_wait=0.01)
        self.publisher = FakePublisher()
        choices = {"cod": {"1": "confirmed", "2": "cancelled"}}
        self.results = Results(
            self.store, Matcher(self.store, self.history), self.publisher, self.metrics, choices
        )
        self.poller = Poller(
            self.results, self.history, interval=60, timeout=3600, clock=lambda: self.now
        )

    def registry_value(self, name: str, labels: dict[str, str]) -> float:
        return self.registry.get_sample_value(name, by_account(name, labels)) or 0.0


async def test_matched_by_phone_and_time_and_published_once() -> None:
    rig = Rig()
    await rig.store.record(open_call(num_retry=0))
    assert await rig.results.take(record(), "webhook") == "accepted"
    assert await rig.results.take(record(), "webhook") == "duplicate"
    [(key, body, event_id)] = rig.publisher.published
    assert (key, event_id, body["final"]) == ("autocall.result.answered.confirmed", "e-ac-1", True)
    assert rig.api.requests == []  # no history lookup was needed
    labels = {"result": "answered", "template": "cod", "final": "true"}
    assert rig.registry_value("autocall_call_results_total", labels) == 1
    labels = {"choice": "confirmed", "template": "cod"}
    assert rig.registry_value("autocall_call_choices_total", labels) == 1


async def test_two_open_calls_to_one_phone_need_the_history() -> None:
    rig = Rig([item("ac-2")])
    await rig.store.record(open_call("ac-1"))
    await rig.store.record(open_call("ac-2"))
    assert await rig.results.take(record(), "webhook") == "accepted"
    assert rig.publisher.published[0][2] == "e-ac-2"
    assert rig.api.requests[0][1] == {"transactionIds": ["tx-1"]}


async def test_lookups_are_batched() -> None:
    rig = Rig([item(f"ac-{n}", f"tx-{n}") for n in range(5)])
    for n in range(5):
        await rig.store.record(open_call(f"ac-{n}", phone=f"090000000{n}", accepted_at=T0 - 9999))
    taken = await asyncio.gather(
        *(rig.results.take(record(transaction_id=f"tx-{n}"), "webhook") for n in range(5))
    )
    assert taken == ["accepted"] * 5
    assert len(rig.api.requests) == 1
    assert sorted(rig.api.requests[0][1]["transactionIds"]) == [f"tx-{n}" for n in range(5)]


async def test_unmatched_and_not_auto_call() -> None:
    rig = Rig()
    assert await rig.results.take(record(), "webhook") == "unmatched"
    await rig.store.record(open_call())
    assert await rig.results.take(record(auto_call=False), "webhook") == "unmatched"
    assert rig.publisher.published == []


async def test_a_failed_publish_gives_the_claim_back() -> None:
    rig = Rig()
    await rig.store.record(open_call(num_retry=0))
    rig.publisher.down = True
    with pytest.raises(ConnectionError):
        await rig.results.take(record(), "webhook")
    rig.publisher.down = False
    assert await rig.results.take(record(), "webhook") == "accepted"


async def test_a_lookup_error_reaches_the_caller() -> None:
    rig = Rig()
    rig.api.error = ProviderUnavailable("HTTP 503")
    with pytest.raises(ProviderUnavailable):
        await rig.results.take(record(phone=None), "webhook")


# the poller


async def test_poll_finds_what_no_webhook_brought() -> None:
    rig = Rig([item("ac-1", answer_sec=0, ivr="none", hangup_cause="NO_ANSWER")])
    await rig.store.record(open_call(num_retry=1))
    assert await rig.poller.tick()
    [(key, body, _)] = rig.publisher.published
    assert (key, body["final"], body["source"]) == ("autocall.result.no_answer.none", False, "poll")
    query = rig.api.requests[0][1]
    assert query["phoneNumbers"] == ["0912345678"]
    assert query["fromDate"] <= T0 * 1000 <= query["toDate"]
    await rig.poller.tick()
    assert len(rig.publisher.published) == 1  # found again: nothing new


async def test_unknown_after_the_timeout_once() -> None:
    rig = Rig()
    call = open_call(num_retry=0)
    await rig.store.record(call)
    rig.now = call.span_end + 3599
    await rig.poller.tick()
    assert rig.publisher.published == []
    rig.now = call.span_end + 3601
    await rig.poller.tick()
    await rig.poller.tick()
    [(key, body, _)] = rig.publisher.published
    assert (key, body["final"]) == ("autocall.result.unknown.none", True)
    assert await rig.store.open_count() == 0


async def test_rate_limits_back_off_exponentially() -> None:
    rig = Rig([item("ac-1")])
    await rig.store.record(open_call())
    rig.api.error = ProviderError.of("limit_request_30_minute", "too many")
    asked = []
    for _ in range(12):  # twelve minutes of ticks, one a minute
        await rig.poller.tick()
        asked.append(len(rig.api.requests))
        rig.now += 60
    assert asked[-1] <= 4  # 1, 2, 4, 8 minutes apart: never every tick
    rig.api.error = None
    rig.now += 3600
    await rig.poller.tick()
    assert len(rig.publisher.published) == 1
    assert await rig.store.backoff() == (0.0, 0)


async def test_only_the_lease_holder_polls() -> None:
    rig = Rig()
    other = Poller(rig.results, rig.history, interval=60, timeout=3600, clock=lambda: rig.now)
    assert await rig.poller.tick()
    assert not await other.tick()


async def test_an_outcome_unknown_call_that_happened_gets_its_result() -> None:
    rig = Rig([item("ac-7", ivr="1")])
    lost = open_call("", idempotency_key="k-lost", num_retry=0)
    await rig.store.record_unknown(lost)
    await rig.poller.tick()
    [(key, body, _)] = rig.publisher.published
    assert (key, body["autocall_id"], body["idempotency_key"]) == (
        "autocall.result.answered.confirmed",
        "ac-7",
        "k-lost",
    )
    assert await rig.store.unknown_calls() == []


async def test_a_published_result_read_back_marks_a_pending_claim_done() -> None:
    from service.results.published import Published

    rig = Rig()
    call = open_call(num_retry=0)
    await rig.store.record(call)
    assert await rig.store.claim(call, "1", final=True)  # then the process died, say
    await rig.results.take(record(), "webhook")
    assert rig.publisher.published == []  # pending: not published again
    rig.now += 31  # the pending mark would have lapsed by now, but the broker has the result:
    body = orjson.loads(result_of(call, record(), {}, "webhook").body())
    await Published(rig.store).mark(body)
    assert await rig.results.take(record(), "webhook") == "duplicate"
    assert await rig.store.open_count() == 0
