"""Call results against the provider as it really is (CONTRACT.md §12): records as they come,
attempts counted by transactions whatever `send_num_retry` says, the v3 call history, calls
told apart by `autocall_uuid`, and the webhook bodies kept for `results recent`. The real
broker, the sandbox over HTTP, the service in-process."""

from __future__ import annotations

import asyncio
import logging
import os
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pytest

from tests.conftest import REDIS_URL
from tests.results import test_results
from tests.results.test_results import TOKEN, MakeRig, Rig, body

rigs = test_results.make_rig  # the fixture `make_rig` of those tests, as `rigs` here


async def post(rig: Rig, document: Any) -> int:
    async with (
        aiohttp.ClientSession() as session,
        session.post(f"{rig.webhook_url}/{TOKEN}", json=document) as answer,
    ):
        return answer.status


def accepted_ids(rig: Rig) -> dict[str, str]:
    """event id → autocall_id of the accepted outcomes so far."""
    return {
        m.correlation_id or "": orjson.loads(m.body)["autocall_id"]
        for m in rig.outcomes.received
        if m.type == "autocall.accepted"
    }


@pytest.mark.parametrize("reading", ["deliveries", "redials", "attempts"])
async def test_a_redial_answered_on_the_second_attempt(rigs: MakeRig, reading: str) -> None:
    """Whatever `send_num_retry` counts, the same two results."""
    rig = await rigs(num_retry=1)
    rig.sandbox.state.send_num_retry = reading
    event_id = await rig.order("0901234571")  # not answered, then answered with key 1
    messages = await rig.results(2)
    await rig.sandbox.idle()  # every post answered, each record posted twice
    assert len(rig._results()) == 2
    results = sorted((body(m) for m in messages), key=lambda r: r["attempt"])
    read = [(r["result"], r["final"], r["attempt"], r["choice"]) for r in results]
    assert read == [("no_answer", False, 1, None), ("answered", True, 2, "confirmed")]
    assert {r["event"]["id"] for r in results} == {event_id}
    autocall_id = results[0]["autocall_id"]
    assert sorted(m.message_id or "" for m in messages) == [f"{autocall_id}:1", f"{autocall_id}:2"]
    assert results[0]["transaction_id"] != results[1]["transaction_id"]
    assert rig.metric("autocall_webhooks_total", outcome="duplicate") == 2


async def test_older_records_and_every_live_state(rigs: MakeRig) -> None:
    rig = await rigs()
    rig.sandbox.state.cdr_style = "older"  # no state, a disposition, no answer_sec
    ids = {await rig.order("0901234561"): "answered", await rig.order("0901234563"): "no_answer"}
    messages = await rig.results(2)
    by_event = {m.correlation_id: body(m) for m in messages}
    assert {e: r["result"] for e, r in by_event.items()} == ids
    answered = next(r for r in by_event.values() if r["result"] == "answered")
    assert (answered["choice"], answered["final"], answered["keys"]) == ("confirmed", True, "1")
    assert answered["recording_url"].endswith(".mp3")  # from `recording_file`
    no_answer = next(r for r in by_event.values() if r["result"] == "no_answer")
    assert no_answer["final"] is True  # num_retry 0: its one transaction is its last
    await rig.sandbox.idle()
    # create, early, ringing, answered, hangup: 5 live posts answered; create, early, ringing,
    # hangup: 4 for the one not answered; none of them a result
    assert rig.metric("autocall_webhooks_total", outcome="live") == 9
    assert len(rig._results()) == 2


async def test_contact_webhooks_are_ignored(rigs: MakeRig) -> None:
    rig = await rigs()
    contact = {"action": "update", "data": [{"phone": "0901234561"}], "tenant_id": "t-1"}
    assert await post(rig, contact) == 200
    assert await post(rig, {"type": "contact", "id": 7}) == 200
    assert await post(rig, {"hello": "world"}) == 400  # neither a record, live nor contact
    assert rig.metric("autocall_webhooks_total", outcome="ignored") == 2
    assert rig.metric("autocall_webhooks_total", outcome="invalid") == 1
    assert rig._results() == []


@pytest.mark.parametrize("paging", ["snake", "camel", "list", "uuid_only"])
async def test_poll_only_on_a_v3_only_provider(rigs: MakeRig, paging: str) -> None:
    rig = await rigs(webhook=False, result_poll_interval="100ms")
    rig.sandbox.state.webhooks = False
    if paging == "uuid_only":  # §12: answers "may" carry autocall_uuids, items may lack the id
        rig.sandbox.state.answer_uuids = rig.sandbox.state.history_autocall_id = False
    else:
        rig.sandbox.state.history_paging = paging
    assert rig.settings.history_api == "v3"
    ids = {await rig.order("0901234561"), await rig.order("0901234564")}
    messages = await rig.results(2)
    assert {m.correlation_id for m in messages} == ids
    assert {m.routing_key for m in messages} == {
        "autocall.result.answered.confirmed",
        "autocall.result.busy.none",
    }
    searches = rig.sandbox.state.search_requests
    assert searches["ok"] > 0 and searches["v2_not_found"] == 0


@pytest.mark.parametrize("named_by", ["autocall_id", "autocall_uuid"])
async def test_outcome_unknown_resolved_on_a_v3_only_provider(rigs: MakeRig, named_by: str) -> None:
    rig = await rigs(webhook=False, result_poll_interval="100ms")
    rig.sandbox.state.webhooks = False
    rig.sandbox.state.history_autocall_id = named_by == "autocall_id"  # v3 items may lack it
    rig.sandbox.state.faults.append("accept_then_drop")  # the call is made, the answer lost
    event_id = await rig.order("0901234562")
    [outcome] = await rig.outcomes.wait(1)
    assert (outcome["status"], outcome["error"]["code"]) == ("failed", "outcome_unknown")
    [message] = await rig.results(1)
    result = body(message)
    assert message.routing_key == "autocall.result.answered.cancelled"
    assert (result["event"]["id"], result["source"], result["attempt"]) == (event_id, "poll", 1)
    call = rig.sandbox.state.calls[0]
    assert result["autocall_id"] == (
        call.autocall_id if named_by == "autocall_id" else call.autocall_uuids[0]
    )


async def test_a_history_version_the_provider_does_not_serve(
    rigs: MakeRig, caplog: pytest.LogCaptureFixture
) -> None:
    rig = await rigs(webhook=False, result_poll_interval="1h", history_api="v2")
    rig.sandbox.state.webhooks = False
    caplog.set_level(logging.INFO)
    await rig.order("0901234561")
    await rig.outcomes.wait(1)
    side = rig.service.results
    assert side is not None and side.poller is not None
    for _ in range(2):
        await side.results.store.set_backoff(0, 0)  # each pass searches: no back-off between
        assert await side.poller.tick()
    assert rig.sandbox.state.search_requests["v2_not_found"] == 2
    assert rig.metric("autocall_result_lookups_total", result="error") == 2
    told = [r for r in caplog.records if "AUTOCALL_HISTORY_API=v3" in r.getMessage()]
    assert len(told) == 1 and told[0].levelno == logging.ERROR  # once, with the setting
    assert rig._results() == []


async def test_two_open_calls_to_one_number_told_apart_by_autocall_uuid(
    rigs: MakeRig,
) -> None:
    rig = await rigs()
    rig.sandbox.state.history_autocall_id = False  # the history names calls by uuid only
    first, second = await rig.order("0901234561"), await rig.order("0901234561")
    messages = await rig.results(2)
    ids = accepted_ids(rig)
    assert {m.correlation_id: body(m)["autocall_id"] for m in messages} == {
        first: ids[first],
        second: ids[second],
    }
    assert ids[first] != ids[second]
    assert rig.metric("autocall_result_lookups_total", result="found") >= 1


async def recent(rig: Rig, *flags: str) -> str:
    """What `autocall-bridge results recent` prints for the rig's service, checked for numbers."""
    env = os.environ | {"AUTOCALL_STORE_URL": REDIS_URL, "AUTOCALL_QUEUE": rig.settings.queue}
    process = await asyncio.create_subprocess_exec(
        *(sys.executable, "-m", "service", "results", "recent", "--limit", "30", *flags),
        cwd=Path(__file__).parents[2],
        env=env,
        stdout=asyncio.subprocess.PIPE,
    )
    stdout, _ = await asyncio.wait_for(process.communicate(), 30)
    assert process.returncode == 0
    out = stdout.decode()
    for written in ("987654321", "987 654 321", "987.654.321"):
        assert written not in out, flags
    assert "sig=abc" not in out
    return out


async def test_results_recent_shows_where_the_keys_came_from_and_no_number(rigs: MakeRig) -> None:
    rig = await rigs(store_url=REDIS_URL, result_key_fields="dtmf,ivr")
    await rig.order("0987654321")
    [message] = await rig.results(1)
    await rig.sandbox.idle()
    autocall_id = body(message)["autocall_id"]
    # what a real account might send: the key in a field of its own, numbers in every form
    # letters only: a hex id's run of ten digits reads as a phone number and is masked
    transaction = uuid.uuid4().hex.translate(str.maketrans("0123456789", "ghijklmnop"))
    odd = {
        "state": "cdr",
        "transaction_id": transaction,
        "destination_number": "84987654321",
        "phone_number": 987654321,
        "note": "gọi lại cho +84 987 654 321 hoặc 0987.654.321",
        "recording_file_url": "https://rec.example/r.mp3?sig=abc&to=0987654321",
        "autocall_id": autocall_id,
        "answer_sec": 4,
        "dtmf": "2",
        "ivr": "none",
    }
    assert await post(rig, odd) == 200
    assert await post(rig, {"state": "early", "call_uuid": "u-1", "phone_number": "0987654321"})
    entries = [orjson.loads(line) for line in (await recent(rig, "--json")).splitlines()]
    out = await recent(rig)
    [line] = [line for line in out.splitlines() if "keys=2" in line]
    assert "keys=2 (from dtmf)" in line and "attempt=2" in line and "cod 098****321" in line
    newest, odd_entry = entries[0], entries[1]
    assert (newest["kind"], newest["state"], newest["transaction"]) == ("live", "early", "u-1")
    assert newest["body"]["phone_number"] == "098****321"
    read = {k: odd_entry[k] for k in ("kind", "transaction", "keys", "keys_field", "attempt")}
    assert read == {
        "kind": "record",
        "transaction": transaction,
        "keys": "2",
        "keys_field": "dtmf",
        "attempt": 2,  # a second transaction of the call
    }
    call = {"template": "cod", "phone": "098****321", "autocall_id": autocall_id}
    assert odd_entry["call"] == call
    assert odd_entry["body"]["recording_file_url"] == "https://rec.example/r.mp3"
    assert odd_entry["body"]["ivr"] == "none"  # nothing else is dropped
    records = [e for e in entries if e["kind"] == "record"]
    assert any(e["keys_field"] == "ivr" and e["call"] for e in records)  # the sandbox's own
    retries = {e["body"]["send_num_retry"] for e in records if "send_num_retry" in e["body"]}
    assert retries == {1, 2}  # the sandbox's record, posted twice: what the field counts there


@pytest.mark.parametrize(
    ("named_by", "moment"),
    [
        ("autocall_id", "NaN"),
        ("autocall_id", "Infinity"),
        ("autocall_id", 1e20),
        ("autocall_id", 1_764_480_000_123_456_789_000),
        ("autocall_uuid", None),  # None: now
    ],
)
async def test_a_record_posted_by_hand_is_taken(
    rigs: MakeRig, named_by: str, moment: float | str | None
) -> None:
    """A time no clock shows is read as none (never a 503 for ever); a uuid the execute answer
    never gave (§12: answers "may" carry them) leaves the record to phone and time."""
    rig = await rigs()
    rig.sandbox.state.webhooks = False
    rig.sandbox.state.answer_uuids = False
    event_id = await rig.order("0901234561")
    await rig.outcomes.wait(1)
    name = accepted_ids(rig)[event_id] if named_by == "autocall_id" else str(uuid.uuid4())
    at = int(time.time()) if moment is None else moment
    cdr = {
        "state": "cdr",
        "transaction_id": uuid.uuid4().hex,
        "destination_number": "0901234561",
        named_by: name,
        "time_start_call": at,
        "time_end_call": at,
        "answer_sec": 3,
        "ivr": "1",
    }
    assert await post(rig, cdr) == 200
    [message] = await rig.results(1)
    assert (message.correlation_id, message.routing_key) == (
        event_id,
        "autocall.result.answered.confirmed",
    )
    assert rig.metric("autocall_webhooks_total", outcome="accepted") == 1
