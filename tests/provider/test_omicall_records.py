"""The mapping of the provider's records: tolerant, and the classification of §9."""

from __future__ import annotations

from typing import Any

import pytest

from service.provider.omicall.records import CallRecord, Contact, InvalidRecord, LiveEvent, parse

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
        keys="1",
        keys_field="ivr",
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
    assert (bare.phone, bare.started_at, bare.keys, bare.result) == (None, None, None, "failed")
    assert bare.auto_call is True


def test_milliseconds_are_read_as_such() -> None:
    assert cdr(time_start_call=1764480000123).started_at == pytest.approx(1764480000.123)
    assert cdr(time_start_call=1764480000123456).started_at == pytest.approx(1764480000.123)
    assert cdr(time_start_call=1764480000123456789).started_at == pytest.approx(1764480000.123)


@pytest.mark.parametrize(
    "moment", ["NaN", "nan", "Infinity", "-Infinity", 1e20, 1e300, -1764480000, 12, "1e400"]
)
def test_a_time_that_is_no_plausible_moment_is_none(moment: Any) -> None:
    record = cdr(time_start_call=moment, time_end_call=moment)
    assert (record.started_at, record.ended_at) == (None, None)


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


def test_send_num_retry_says_nothing_of_the_attempt() -> None:
    # its meaning is not documented (the one real sample shows 1 on a call never redialled)
    assert cdr(send_num_retry=1) == cdr(send_num_retry=0) == cdr(send_num_retry=...)


@pytest.mark.parametrize(
    ("fields", "keys", "field"),
    [
        (("press_key", "digits", "ivr"), "1", "ivr"),
        (("dtmf", "ivr"), "7", "dtmf"),
        (("dtmf",), "7", "dtmf"),
        (("nothing_here",), None, None),
    ],
)
def test_the_key_fields_are_read_in_the_order_set(
    fields: tuple[str, ...], keys: str | None, field: str | None
) -> None:
    record = parse(CDR | {"dtmf": "7"}, fields)
    assert isinstance(record, CallRecord)
    assert (record.keys, record.keys_field) == (keys, field)


def test_an_older_record_has_no_state_and_a_disposition() -> None:
    older = {
        "transaction_id": "tx-old",
        "destination_number": "0912345678",
        "time_start_call": 1764480000,
        "disposition": "cancelled",
        "recording_file": "https://example.invalid/old.mp3",
        "ivr": "none",
    }
    record = parse(older)
    assert isinstance(record, CallRecord)
    assert (record.transaction_id, record.result, record.keys) == ("tx-old", "no_answer", None)
    assert record.recording_url == "https://example.invalid/old.mp3"
    answered = parse(older | {"disposition": "ANSWERED", "ivr": "2"})
    assert isinstance(answered, CallRecord)
    assert (answered.result, answered.keys) == ("answered", "2")
    by_call_uuid = parse(
        {k: v for k, v in older.items() if k != "transaction_id"} | {"call_uuid": "u"}
    )
    assert isinstance(by_call_uuid, CallRecord) and by_call_uuid.transaction_id == "u"


@pytest.mark.parametrize("never", [0, None, "0"])
def test_a_zero_or_null_answer_start_means_never_answered(never: Any) -> None:
    item = cdr(answer_sec=0, time_answer_start=never, dial_status="answered", hangup_cause=...)
    assert item.result == "failed"
    no_answer = cdr(answer_sec=0, time_answer_start=never, hangup_cause="NO_ANSWER")
    assert no_answer.result == "no_answer"
    assert cdr(answer_sec=0, time_answer_start=1764480006).result == "answered"


def test_history_items_carry_the_autocall_uuid() -> None:
    item = cdr(state=..., autocall_uuid="f5d39f30-fef7-49df-9ef6-697bf5353983")
    assert (item.autocall_id, item.autocall_uuid) == (None, "f5d39f30-fef7-49df-9ef6-697bf5353983")


@pytest.mark.parametrize(
    "document",
    [
        {"action": "update", "data": [{"phone": "0912345678"}], "tenant_id": "t-1"},
        {"type": "contact", "payload": {}},
        {"type": "Contact"},
        {"type": "contact", "state": "ringing"},  # a contact webhook, whatever its state says
        {"action": "update", "data": [], "state": "cdr"},
    ],
)
def test_contact_webhooks(document: dict[str, Any]) -> None:
    assert isinstance(parse(document), Contact)


@pytest.mark.parametrize("document", [{}, {"hello": "world"}, {"action": "x", "data": "y"}])
def test_an_object_that_is_no_record_is_invalid(document: dict[str, Any]) -> None:
    with pytest.raises(InvalidRecord):
        parse(document)


def test_history_items_carry_the_autocall_id_and_the_auto_call_flag() -> None:
    item = cdr(state=..., autocall_id="ac-9", is_auto_call=False)
    assert (item.autocall_id, item.auto_call) == ("ac-9", False)
    assert cdr(is_auto_call="false").auto_call is False


def test_a_phone_that_is_no_valid_number_is_none() -> None:
    assert cdr(destination_number="12", to_number="0987654321").phone == "0987654321"
    assert cdr(destination_number="abc", phone_number=..., to_number=...).phone is None


@pytest.mark.parametrize(
    "state", ["create", "early", "ringing", "answered", "hangup", "RINGING", "bridged"]
)
def test_live_events(state: str) -> None:
    # any state but `cdr` is live, known or not: never a result
    live = {"state": state, "call_uuid": "u", "phone_number": "84912345678", "extension": "101"}
    assert parse(live) == LiveEvent(state.lower(), "u", "0912345678")
    assert parse({"state": state, "to_number": "0912345678"}) == LiveEvent(
        state.lower(), None, "0912345678"
    )


@pytest.mark.parametrize("document", [[], "x", 1, None])
def test_not_an_object(document: Any) -> None:
    with pytest.raises(InvalidRecord):
        parse(document)
