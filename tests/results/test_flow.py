"""Matching, publishing once, history lookups in batches, and the poller, over fakes."""

from __future__ import annotations

import asyncio
from typing import Any

import orjson
import pytest
from prometheus_client import CollectorRegistry

from service.errors import ProviderError, ProviderUnavailable
from service.provider.omicall.history import History, page_of
from service.results.calls import result_of
from service.results.metrics import ResultMetrics
from service.results.pipeline import Matcher, Results
from service.results.poller import Poller
from service.results.store import MemoryResults
from tests.fakes import Publisher as FakePublisher
from tests.helpers import by_account
from tests.results.test_store import T0, open_call, record


class FakeApi:
    """The call-history search over `items`; raises `error` while set."""

    def __init__(self, items: list[dict[str, Any]] | None = None) -> None:
        self.items = items or []
        self.requests: list[tuple[str, Any]] = []
        self.error: Exception | None = None

    async def api(self, method: str, path: str, *, json: Any = None) -> Any:
        query = json.get("filter", json)  # v3 wraps the filter, v2 does not
        self.requests.append((path, query))
        if self.error is not None:
            raise self.error
        wanted = set(query.get("transactionIds") or []) | set(query.get("phoneNumbers") or [])
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


async def test_an_item_with_an_impossible_time_stops_neither_the_pass_nor_the_unknowns() -> None:
    rig = Rig([item("ac-1", time_start_call=1e20), item("ac-2", "tx-2", time_start_call="NaN")])
    await rig.store.record(open_call("ac-1", num_retry=0))
    await rig.store.record(open_call("ac-2", num_retry=0))
    late = open_call("ac-3", phone="0987654321", num_retry=0)
    await rig.store.record(late)
    rig.now = late.span_end + 3601  # ac-3 never had a record: `unknown` now
    assert await rig.poller.tick()
    assert sorted(rig.publisher.ids) == ["ac-1:1", "ac-2:1", "ac-3:unknown"]


async def test_a_pass_that_fails_still_ends_the_calls_past_their_time() -> None:
    rig = Rig([item("ac-1"), item("ac-2", "tx-2")])
    late = open_call("ac-3", phone="0987654321", num_retry=0)
    for call in (open_call("ac-1", num_retry=0), open_call("ac-2", num_retry=0), late):
        await rig.store.record(call)
    rig.now = late.span_end + 3601
    taking = rig.results.receive

    async def receive(record: Any, source: str, **options: Any) -> Any:
        if record.transaction_id == "tx-1":
            raise ValueError("a record this code cannot read")
        return await taking(record, source, **options)

    rig.results.receive = receive  # type: ignore[method-assign]
    assert await rig.poller.tick()
    assert sorted(rig.publisher.ids) == ["ac-1:unknown", "ac-2:1", "ac-3:unknown"]
    rig.api.error = RuntimeError("the history search broke")
    late = open_call("ac-4", phone="0987654322", num_retry=0, accepted_at=rig.now - 9999)
    await rig.store.record(late)
    with pytest.raises(RuntimeError):
        await rig.poller.tick()
    assert rig.publisher.ids[-1] == "ac-4:unknown"


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


@pytest.mark.parametrize("named_by", ["autocall_id", "autocall_uuid"])
async def test_an_outcome_unknown_call_that_happened_gets_its_result(named_by: str) -> None:
    found = item("", ivr="1") | {named_by: "ac-7"}  # v3 items may name the call either way
    rig = Rig([found])
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
    body = orjson.loads(result_of(call, record(), 1, {}, "webhook").body())
    await Published(rig.store).mark(body)
    assert await rig.results.take(record(), "webhook") == "duplicate"
    assert await rig.store.open_count() == 0


# attempts (CONTRACT.md §12): distinct transactions, never `send_num_retry`


def read(rig: Rig) -> list[tuple[str, int, bool]]:
    return [
        (body["result"], body["attempt"], body["final"]) for _, body, _ in rig.publisher.published
    ]


async def test_attempts_are_the_calls_distinct_transactions() -> None:
    rig = Rig()
    await rig.store.record(open_call(num_retry=1))
    first = record(transaction_id="tx-a", result="no_answer", keys=None)
    assert await rig.results.take(first, "webhook") == "accepted"
    assert await rig.results.take(first, "webhook") == "duplicate"  # posted again
    redial = record(transaction_id="tx-b", started_at=T0 + 40, keys="1")
    assert await rig.results.take(redial, "webhook") == "accepted"
    assert read(rig) == [("no_answer", 1, False), ("answered", 2, True)]
    assert rig.publisher.ids == ["ac-1:1", "ac-1:2"]


async def test_the_last_allowed_transaction_is_final_unanswered_too() -> None:
    rig = Rig()
    await rig.store.record(open_call(num_retry=1))
    for n, tx in enumerate(("tx-a", "tx-b")):
        no_answer = record(transaction_id=tx, started_at=T0 + 40 * n, result="no_answer", keys=None)
        await rig.results.take(no_answer, "webhook")
    assert read(rig) == [("no_answer", 1, False), ("no_answer", 2, True)]
    assert await rig.store.open_count() == 0


async def test_the_span_end_closes_a_call_with_its_last_attempt() -> None:
    rig = Rig([item("ac-1", answer_sec=0, ivr="", hangup_cause="NO_ANSWER")])
    call = open_call(num_retry=2)
    await rig.store.record(call)
    await rig.results.take(record(result="no_answer", keys=None), "webhook")  # not redialled
    await rig.poller.tick()  # the span lasts: nothing more
    assert read(rig) == [("no_answer", 1, False)]
    rig.now = call.span_end + 1
    await rig.poller.tick()
    await rig.poller.tick()
    assert read(rig) == [("no_answer", 1, False), ("no_answer", 1, True)]
    assert rig.publisher.ids == ["ac-1:1", "ac-1:1:final"]  # the attempt's closing
    assert rig.publisher.published[1][1]["source"] == "poll"
    assert await rig.store.open_count() == 0


async def test_found_by_poll_after_the_span_an_attempt_is_final_under_its_own_id() -> None:
    rig = Rig([item("ac-1", answer_sec=0, ivr="", hangup_cause="NO_ANSWER")])
    call = open_call(num_retry=2)
    await rig.store.record(call)
    rig.now = call.span_end + 1
    await rig.poller.tick()
    assert read(rig) == [("no_answer", 1, True)]
    assert rig.publisher.ids == ["ac-1:1"]


async def test_two_open_calls_to_one_number_told_apart_by_autocall_uuid() -> None:
    found = item("ac-2", autocall_uuid="uuid-2")
    del found["autocall_id"]  # the history names the call by its uuid only
    rig = Rig([found])
    await rig.store.record(open_call("ac-1", autocall_uuids=("uuid-1",)))
    await rig.store.record(open_call("ac-2", autocall_uuids=("uuid-2",)))
    assert await rig.results.take(record(), "webhook") == "accepted"
    assert rig.publisher.published[0][2] == "e-ac-2"
    # a history item that carries it is matched by it directly
    other = record(transaction_id="tx-9", autocall_uuid="uuid-1", started_at=T0 + 50)
    assert await rig.results.take(other, "poll") == "accepted"
    assert rig.publisher.published[1][2] == "e-ac-1"


async def test_a_uuid_no_call_was_given_falls_back_to_phone_and_time() -> None:
    rig = Rig()
    await rig.store.record(open_call("ac-1", num_retry=0))  # its execute answer named no uuids
    await rig.store.record(open_call("ac-2", phone="0987654321", autocall_uuids=("uuid-2",)))
    assert await rig.results.take(record(autocall_uuid="uuid-9"), "webhook") == "accepted"
    assert rig.publisher.published[0][2] == "e-ac-1"
    # a call whose answer named its uuids does not take a record that names another one
    other = record(transaction_id="tx-2", phone="0987654321", autocall_uuid="uuid-9")
    assert await rig.results.take(other, "webhook") == "unmatched"


# the call history, v3


@pytest.mark.parametrize(
    ("payload", "items", "more"),
    [
        ({"items": [{"a": 1}], "has_next": True}, [{"a": 1}], True),
        ({"items": [{"a": 1}], "hasNext": False}, [{"a": 1}], False),
        ({"items": [], "page_number": 1, "total_pages": 3}, [], True),
        ({"items": [{"a": 1}], "pageNumber": 3, "totalPages": 3}, [{"a": 1}], False),
        ([{"a": 1}, "junk"], [{"a": 1}], None),
        ({"items": [{"a": 1}]}, [{"a": 1}], None),
        (None, [], False),
    ],
)
def test_pages_in_either_style(
    payload: Any, items: list[dict[str, Any]], more: bool | None
) -> None:
    assert page_of(payload) == (items, more)


async def test_v3_wraps_the_filter_and_pages_a_bare_list_by_its_size() -> None:
    class Pages(FakeApi):
        async def api(self, method: str, path: str, *, json: Any = None) -> Any:
            self.requests.append((path, json))
            return [{"transaction_id": f"tx-{n}"} for n in range(50 if "page=1&" in path else 3)]

    api = Pages()
    history = History(api, ResultMetrics(CollectorRegistry(), []))
    found = [item async for item in history.search({"phoneNumbers": ["0912345678"]})]
    assert len(found) == 53 and len(api.requests) == 2
    path, body = api.requests[0]
    assert path == "/api/v3/call-transaction/search?page=1&size=50"
    assert body == {
        "filter": {"phoneNumbers": ["0912345678"]},
        "sort": {"field": "created_date", "isAsc": False},
    }


async def test_a_version_not_served_is_told_once_and_counted(
    caplog: pytest.LogCaptureFixture,
) -> None:
    rig = Rig()
    rig.api.error = ProviderError("HTTP 404: /api/v3/call-transaction/search", code="not_found")
    for _ in range(3):
        with pytest.raises(ProviderError):
            [found async for found in rig.history.search({})]
    with pytest.raises(ProviderError):
        await rig.history.owner_of("tx-1")
    assert rig.registry_value("autocall_result_lookups_total", {"result": "error"}) == 4
    told = [r.getMessage() for r in caplog.records if "AUTOCALL_HISTORY_API" in r.getMessage()]
    assert told == [
        "the provider has no v3 call history (HTTP 404): results found by polling and lookups "
        "fail; set AUTOCALL_HISTORY_API=v2 if the account serves that one"
    ]


async def test_a_history_that_answers_newest_first_still_ranks_by_start() -> None:
    redial = item("ac-1", "tx-b", time_start_call=T0 + 50, ivr="1")
    first = item("ac-1", "tx-a", answer_sec=0, ivr="", hangup_cause="NO_ANSWER")
    rig = Rig([redial, first])  # as v3 sorts them: created_date, descending
    await rig.store.record(open_call(num_retry=1))
    await rig.poller.tick()
    assert read(rig) == [("no_answer", 1, False), ("answered", 2, True)]


async def test_history_items_that_name_no_call_are_matched_by_phone_and_time() -> None:
    bare = item("ac-1")
    del bare["autocall_id"]  # v3: autocall_id and autocall_uuid may each be absent
    rig = Rig([bare])
    await rig.store.record(open_call(num_retry=0))
    await rig.poller.tick()
    assert read(rig) == [("answered", 1, True)]
    assert len(rig.api.requests) == 1  # the search; no lookup of what it found


async def test_two_calls_to_one_number_each_close_with_their_own_last_attempt() -> None:
    """Items that name no call: the latest transaction is each call's, not the number's."""
    first = item("ac-1", "tx-a", answer_sec=0, ivr="", hangup_cause="NO_ANSWER")
    second = item("ac-2", "tx-b", answer_sec=0, ivr="", hangup_cause="NO_ANSWER")
    second["time_start_call"] = T0 + 1010
    for bare in (first, second):
        del bare["autocall_id"]
    rig = Rig([first, second])
    await rig.store.record(open_call("ac-1", num_retry=1))
    later = open_call("ac-2", num_retry=1, accepted_at=T0 + 1000)
    await rig.store.record(later)
    rig.now = later.span_end + 1  # both spans over: no redial can come for either
    await rig.poller.tick()
    assert sorted(rig.publisher.ids) == ["ac-1:1", "ac-2:1"]
    assert read(rig) == [("no_answer", 1, True), ("no_answer", 1, True)]
    assert await rig.store.open_count() == 0


async def test_a_history_item_that_fits_no_open_call_is_not_looked_up_again() -> None:
    bare = item("ac-1", time_start_call=T0 + 99_999)  # long after the call's span
    del bare["autocall_id"]
    rig = Rig([bare])
    await rig.store.record(open_call(num_retry=0))
    await rig.poller.tick()
    assert read(rig) == [] and len(rig.api.requests) == 1
