"""service/provider/stringee/records.py: Stringee's callbacks read tolerantly, their signatures,
and the keys kept between the key press and the call's end (in memory and in the real Redis)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import uuid
from typing import Any

import pytest
import redis.asyncio as redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from service.errors import StoreUnavailable
from service.provider.omicall.records import InvalidRecord
from service.provider.stringee.keys import MemoryKeys, RedisKeys
from service.provider.stringee.records import (
    CallEvent,
    KeysPressed,
    log_item,
    parse,
    sign,
    signed,
)
from tests.conftest import REDIS_URL


def ended(**fields: Any) -> CallEvent:
    event = parse({"call_id": "c-1", "call_status": "ended"} | fields)
    assert isinstance(event, CallEvent)
    return event


@pytest.mark.parametrize(
    ("fields", "result"),
    [
        ({"answerDuration": 7, "endCallCause": "NORMAL_CLEARING"}, "answered"),
        ({"answerDuration": "7"}, "answered"),  # numbers may come as strings
        ({"answerDuration": 3, "endCallCause": "486 Busy Here"}, "answered"),  # answered first
        ({"answerDuration": 0, "endCallCause": "486 Busy Here"}, "busy"),
        ({"endCallCause": "USER_BUSY"}, "busy"),
        ({"endCallCause": "480 Temporarily Unavailable"}, "no_answer"),
        ({"endCallCause": "REQUEST_TIMEOUT_408"}, "no_answer"),
        ({"endCallCause": "487"}, "no_answer"),
        ({"endCallCause": "NO ANSWER"}, "no_answer"),
        ({"endCallCause": "CALLER_CANCEL"}, "no_answer"),
        ({"endCallCause": "Timeout"}, "no_answer"),
        ({"endCallCause": "CALL_REJECTED_603"}, "failed"),
        ({}, "failed"),  # nothing said: failed
        ({"answerDuration": None, "endCallCause": 486}, "busy"),
    ],
)
def test_how_an_ended_call_maps_to_a_result(fields: dict[str, Any], result: str) -> None:
    assert ended(**fields).result() == result


def test_an_ended_event_becomes_the_call_s_one_record() -> None:
    event = ended(
        answerDuration=12,
        duration=20,
        endedBy="customer",
        to={"type": "external", "number": "84912345678", "alias": "84912345678"},
        timestamp_ms=1_764_480_000_123,
        surprise={"nested": True},
    )
    record = event.record("1")
    assert (record.autocall_id, record.transaction_id) == ("c-1", "c-1")
    assert (record.result, record.keys, record.keys_field) == ("answered", "1", "dtmf")
    assert record.answer_seconds == 12
    assert (record.phone, record.ended_by) == ("0912345678", "customer")
    assert record.started_at == pytest.approx(1_764_480_000.123)
    assert ended(endCallCause="486").record("1").keys is None  # keys only on an answered call


@pytest.mark.parametrize("moment", ["NaN", "Infinity", 1e20, 1e300, 12])
def test_a_time_that_is_no_plausible_moment_is_none(moment: Any) -> None:
    assert ended(timestamp_ms=moment).at is None
    assert ended(timestamp_ms=1_764_480_000_123_456).at == pytest.approx(1_764_480_000.123)


def test_live_events_and_key_presses() -> None:
    ringing = parse({"call_id": "c-1", "call_status": "ringing", "type": "call_event"})
    assert isinstance(ringing, CallEvent) and not ringing.ended
    sample = {
        "time": "1530870073736",
        "dtmf": "0",
        "call_id": "c-1",
        "customField": "",
        "timeout": False,
    }
    assert parse(sample) == KeysPressed("c-1", "0", None, False)
    assert parse({"call_id": "c-1", "dtmf": "", "timeout": True}) == KeysPressed(
        "c-1", None, None, True
    )
    assert parse({"call_id": "c-1", "dtmf": 12}) == KeysPressed("c-1", "12", None, False)
    assert parse({"callId": "c-2", "customField": "h", "dtmf": "1#x"}) == KeysPressed(
        "c-2", "1#", "h", False
    )


@pytest.mark.parametrize("body", [[], "x", None, {}, {"call_status": "ended"}, {"call_id": ""}])
def test_a_body_that_names_no_call_is_invalid(body: Any) -> None:
    with pytest.raises(InvalidRecord):
        parse(body)


def test_call_log_items() -> None:
    item = {"id": "c-9", "to_number": "84912345678", "start_time": 1_764_480_000_000}
    assert log_item(item) is None  # still going: no stop_time
    done = log_item(item | {"stop_time": 1_764_480_030_000, "answer_duration": 9})
    assert done is not None and done.ended
    assert (done.call_id, done.result(), done.phone) == ("c-9", "answered", "0912345678")
    assert log_item("nope") is None


def test_the_signature_is_base64_hmac_sha1_of_the_raw_body() -> None:
    body, secret = b'{"call_id":"c-1"}', "signing-secret"
    expected = base64.b64encode(hmac.new(secret.encode(), body, hashlib.sha1).digest()).decode()
    assert sign(body, secret) == expected
    assert signed(body, expected, secret)
    assert signed(body, f" {expected} ", secret)
    assert not signed(body + b" ", expected, secret)  # the raw body, byte for byte
    assert not signed(body, expected, "another")
    assert not signed(body, None, secret)
    assert not signed(body, "", secret)


async def test_keys_in_memory_expire() -> None:
    now = [0.0]
    keys = MemoryKeys(ttl=10, clock=lambda: now[0])
    await keys.put("c-1", "1")
    assert await keys.get("c-1") == "1"
    assert await keys.get("c-2") is None
    now[0] = 10.0
    assert await keys.get("c-1") is None


async def test_keys_in_redis_are_shared_and_expire() -> None:
    client = redis.Redis.from_url(REDIS_URL)
    prefix = f"test:stringee:{uuid.uuid4().hex}:"
    try:
        keys, other = RedisKeys(client, prefix, ttl=60), RedisKeys(client, prefix)
        await keys.put("c-1", "12")
        assert await other.get("c-1") == "12"  # another replica reads it
        assert 0 < await client.ttl(prefix + "c-1") <= 60
        assert await other.get("c-2") is None
    finally:
        await client.delete(prefix + "c-1")
        await client.aclose()
    nobody = redis.Redis(host="127.0.0.1", port=1, retry=Retry(NoBackoff(), 0))
    down = RedisKeys(nobody, prefix)
    with pytest.raises(StoreUnavailable):
        await down.get("c-1")
    await nobody.aclose()
