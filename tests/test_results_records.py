"""The mapping of the provider's records: tolerant, and the classification of §9."""

from __future__ import annotations

from typing import Any

import pytest

from service.provider.omicall.records import CallRecord, InvalidRecord, LiveEvent, parse

CDR: dict[str, Any] = {
    "state": "cdr",
    "transaction_id": "tx-1",
    "direction": "outbound",
    "destination_number": "84912345678",
    "hotline": "842899959300",
    "answer_sec": 12,
    "bill_sec": 14,
    "duration": 20,
    "time_start_call": 1764480000,
    "endby_name": "end_call_by_customer",
    "is_auto_call": True,
    "ivr": "1",
    "recording_file_url": "https://example.invalid/r.mp3",
    "send_num_retry": 0,
}


def cdr(**changes: Any) -> CallRecord:
    fields = {key: value for key, value in (CDR | changes).items() if value is not ...}
    record = parse(fields)
    assert isinstance(record, CallRecord)
    return record


def test_a_full_cdr_maps_every_field() -> None:
    record = cdr()
    assert record == CallRecord(
        transaction_id="tx-1",
        phone="0912345678",
        started_at=1764480000.0,
        result="answered",
        attempt=1,
        keys="1",
        answer_seconds=12,
        billed_seconds=14,
        ended_by="end_call_by_customer",
        recording_url="https://example.invalid/r.mp3",
        autocall_id=None,
        auto_call=True,
    )


def test_numbers_as_strings_unknown_fields_and_missing_optionals_are_fine() -> None:
    record = cdr(answer_sec="7", bill_sec="8", time_start_call="1764480000", surprise={"x": 1})
    assert (record.answer_seconds, record.billed_seconds, record.started_at) == (7, 8, 1764480000)
    bare = parse({"state": "cdr"})
    assert isinstance(bare, CallRecord)
    assert (bare.phone, bare.started_at, bare.attempt, bare.keys, bare.result) == (
        None,
        None,
        None,
        None,
        "failed",
    )
    assert bare.auto_call is True


def test_milliseconds_are_read_as_such() -> None:
    assert cdr(time_start_call=1764480000123).started_at == pytest.approx(1764480000.123)


@pytest.mark.parametrize(
    ("changes", "result"),
    [
        ({"answer_sec": 3}, "answered"),
        ({"answer_sec": 0, "disposition": "ANSWERED"}, "answered"),
        ({"answer_sec": 0, "hangup_cause": "USER_BUSY"}, "busy"),
        ({"answer_sec": 0, "disposition": "busy"}, "busy"),
        ({"answer_sec": 0, "hangup_cause": "NO_ANSWER"}, "no_answer"),
        ({"answer_sec": "0", "dial_status": "no answer"}, "no_answer"),
        ({"answer_sec": 0, "hangup_cause": "CALL_REJECTED"}, "failed"),
        ({"answer_sec": ...}, "failed"),
    ],
)
def test_classification(changes: dict[str, Any], result: str) -> None:
    assert cdr(**changes).result == result


@pytest.mark.parametrize(
    ("changes", "keys"),
    [
        ({"ivr": "none"}, None),
        ({"ivr": ""}, None),
        ({"ivr": ...}, None),
        ({"ivr": 2}, "2"),
        ({"ivr": "none", "press_key": "9"}, "9"),
        ({"ivr": "1", "digits": "3"}, "3"),
    ],
)
def test_keys(changes: dict[str, Any], keys: str | None) -> None:
    assert cdr(**changes).keys == keys


def test_attempt_counts_from_the_retries_made_before() -> None:
    assert cdr(send_num_retry=2).attempt == 3
    assert cdr(send_num_retry="1").attempt == 2
    assert cdr(send_num_retry=...).attempt is None


def test_history_items_carry_the_autocall_id_and_the_auto_call_flag() -> None:
    item = cdr(state=..., autocall_id="ac-9", is_auto_call=False)
    assert (item.autocall_id, item.auto_call) == ("ac-9", False)
    assert cdr(is_auto_call="false").auto_call is False


def test_a_phone_that_is_no_valid_number_is_none() -> None:
    assert cdr(destination_number="12", to_number="0987654321").phone == "0987654321"
    assert cdr(destination_number="abc", phone_number=..., to_number=...).phone is None


@pytest.mark.parametrize("state", ["ringing", "answered", "hangup", "RINGING"])
def test_live_events(state: str) -> None:
    assert parse({"state": state, "call_uuid": "u"}) == LiveEvent(state.lower())


@pytest.mark.parametrize("document", [[], "x", 1, None])
def test_not_an_object(document: Any) -> None:
    with pytest.raises(InvalidRecord):
        parse(document)
