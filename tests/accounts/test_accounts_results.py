"""Results by account: each OMICall account's call history searched for its own calls, and the
results labelled with the account that took the call."""

from __future__ import annotations

import orjson

from service.provider.omicall.history import History
from service.provider.omicall.records import CallRecord
from service.provider.stringee.calllog import CallLog
from service.results.pipeline import Matcher, Results
from service.results.poller import Poller
from tests.results.test_flow import FakeApi, Rig, item
from tests.results.test_store import open_call, record


async def test_each_account_s_calls_are_searched_in_its_own_history() -> None:
    rig = Rig([item("ac-a", destination_number="0912345678")])
    other = FakeApi([item("ac-b", transaction_id="tx-b", destination_number="0987654321")])
    poller = Poller(
        rig.results,
        rig.history,
        interval=60,
        timeout=3600,
        clock=lambda: rig.now,
        by_account={"shop-b": History(other, rig.metrics, batch_wait=0.01)},
    )
    await rig.store.record(open_call("ac-a", num_retry=0))  # before accounts: default's history
    await rig.store.record(open_call("ac-b", phone="0987654321", num_retry=0, account="shop-b"))

    assert await poller.tick()

    assert [query["phoneNumbers"] for _, query in rig.api.requests] == [["0912345678"]]
    assert [query["phoneNumbers"] for _, query in other.requests] == [["0987654321"]]
    bodies = {body["autocall_id"]: body for _, body, _ in rig.publisher.published}
    assert set(bodies) == {"ac-a", "ac-b"}
    assert bodies["ac-b"]["account"] == "shop-b" and "account" not in bodies["ac-a"]
    labels = {"result": "answered", "template": "cod", "final": "true"}
    assert rig.registry_value("autocall_call_results_total", labels | {"account": "shop-b"}) == 1
    assert rig.registry_value("autocall_call_results_total", labels) == 1  # default


async def test_a_call_keeps_its_account_in_the_store() -> None:
    call = open_call("ac-b", account="shop-b")

    assert orjson.loads(call.dumps())["account"] == "shop-b"
    assert type(call).loads(call.dumps()) == call


async def test_a_webhook_record_is_looked_up_in_the_history_of_the_account_that_called() -> None:
    rig = Rig()
    other = FakeApi([item("ac-b1", transaction_id="tx-b")])
    own = History(other, rig.metrics, batch_wait=0.01)
    results = Results(
        rig.store, Matcher(rig.store, rig.history, {"shop-b": own}), rig.publisher, rig.metrics, {}
    )
    # two open calls of shop-b to the number: the phone and time do not tell them apart
    await rig.store.record(open_call("ac-b1", num_retry=0, account="shop-b"))
    await rig.store.record(open_call("ac-b2", num_retry=0, account="shop-b"))

    assert await results.take(record(transaction_id="tx-b"), "webhook") == "accepted"

    assert rig.api.requests == []  # default's history was not asked
    assert [query["transactionIds"] for _, query in other.requests] == [["tx-b"]]
    [(_, body, _)] = rig.publisher.published
    assert (body["autocall_id"], body["account"]) == ("ac-b1", "shop-b")


async def test_a_stringee_only_deployment_still_reads_its_call_log() -> None:
    class Log(CallLog):
        def __init__(self) -> None:
            self.searched: list[tuple[float, float]] = []

        async def search(self, since: float, until: float) -> list[CallRecord]:
            self.searched.append((since, until))
            return [record(transaction_id="call-1", autocall_id="call-1")]

    rig = Rig()
    log = Log()
    poller = Poller(
        rig.results, None, interval=60, timeout=3600, clock=lambda: rig.now, by_account={"b": log}
    )
    await rig.store.record(open_call("call-1", num_retry=0, account="b"))

    assert await poller.tick()

    assert len(log.searched) == 1
    [(_, body, _)] = rig.publisher.published
    assert (body["autocall_id"], body["final"], body["account"]) == ("call-1", True, "b")
