"""The webhook bodies kept for `results recent`: every phone number masked, in any field and any
written form; URLs' query strings removed; nothing else dropped."""

from __future__ import annotations

import time

import orjson
import pytest

from service.cli.results import describe
from service.provider.omicall.records import Contact, LiveEvent, parse
from service.results.kept import entry, fresh, masked, masked_text
from service.results.pipeline import Reading
from service.results.store import KEEP_SECONDS
from tests.results.test_store import open_call


@pytest.mark.parametrize(
    ("written", "shown"),
    [
        ("0987654321", "098****321"),
        ("84987654321", "849*****321"),
        ("+84987654321", "849*****321"),
        ("+84 987 654 321", "849*****321"),
        ("(+84) 987-654-321", "849*****321"),
        ("0987.654.321", "098****321"),
        ("987654321", "987***321"),
        ("02838221234", "028*****234"),  # a landline, 11 digits
        ("842899959300", "842******300"),  # the provider's hotline
        ("0084987654321", "008*******321"),  # dialled from abroad
        ("00 84 987 654 321", "008*******321"),
    ],
)
def test_every_written_form_of_a_number_is_masked(written: str, shown: str) -> None:
    assert masked_text(f"gọi {written}, cảm ơn") == f"gọi {shown}, cảm ơn"
    assert masked(written) == shown


@pytest.mark.parametrize(
    "kept",
    [
        "1764480000",  # a time in seconds
        "1764480000123",  # in milliseconds
        "f5d39f30-fef7-49df-9ef6-697bf5353983",
        "64b8117691447377aecac985",
        "end_call_by_customer",
        "104",  # an extension
    ],
)
def test_what_is_no_number_is_kept_as_it_is(kept: str) -> None:
    assert masked_text(kept) == kept


def test_masked_in_any_field_at_any_depth_and_urls_lose_their_query() -> None:
    body = {
        "phone_number": 84987654321,
        "time_start_call": 1764480000,
        "answer_sec": 12,
        "nested": [{"to": "0987654321"}, {"0987654321": True}],
        "recording_file_url": "https://rec.example/a/b.mp3?token=s3cret&to=0987654321#x",
        "note": "see http://x.example/p?q=1 and https://y.example/",
        "ivr": "none",
        "ok": True,
        "none": None,
    }
    assert masked(body) == {
        "phone_number": "849*****321",
        "time_start_call": 1764480000,
        "answer_sec": 12,
        "nested": [{"to": "098****321"}, {"098****321": True}],
        "recording_file_url": "https://rec.example/a/b.mp3#x",
        "note": "see http://x.example/p and https://y.example/",
        "ivr": "none",
        "ok": True,
        "none": None,
    }


def test_an_entry_says_what_was_read_and_keeps_the_masked_body() -> None:
    cdr = {"state": "cdr", "transaction_id": "tx-1", "phone_number": "0987654321", "dtmf": "1"}
    record = parse(cdr, ("dtmf",))
    call = open_call(phone="0987654321")
    kept = orjson.loads(entry(orjson.dumps(cdr), record, Reading("accepted", call, 2), "accepted"))
    assert kept["kind"] == "record" and kept["outcome"] == "accepted"
    assert (kept["transaction"], kept["keys"], kept["keys_field"], kept["attempt"]) == (
        "tx-1",
        "1",
        "dtmf",
        2,
    )
    assert kept["call"] == {"template": "cod", "phone": "098****321", "autocall_id": "ac-1"}
    assert kept["body"] == cdr | {"phone_number": "098****321"}
    unmatched = orjson.loads(entry(orjson.dumps(cdr), record, Reading("unmatched"), "unmatched"))
    assert unmatched["call"] is None and unmatched["attempt"] is None


def test_entries_of_each_kind() -> None:
    live = orjson.loads(entry(b'{"state": "early"}', LiveEvent("early", "u-1"), None, "live"))
    assert (live["kind"], live["state"], live["transaction"]) == ("live", "early", "u-1")
    contact = orjson.loads(entry(b"{}", Contact("update"), None, "ignored"))
    assert (contact["kind"], contact["action"]) == ("contact", "update")
    text = orjson.loads(entry(b"not json 0987654321", None, None, "invalid"))
    assert (text["kind"], text["body"]) == ("invalid", "not json 098****321")


def test_only_a_day_is_shown() -> None:
    now = time.time()
    old = orjson.dumps({"received_at": now - KEEP_SECONDS - 1, "kind": "live"})
    new = orjson.dumps({"received_at": now - 60, "kind": "record"})
    assert [e["kind"] for e in fresh([new, old, b"garbage"], now)] == ["record"]


def test_results_recent_describes_each_kind() -> None:
    now = time.time()
    record = {"received_at": now, "kind": "record", "outcome": "unmatched", "transaction": "t"}
    record |= {"result": "answered", "keys": "1", "keys_field": "dtmf", "attempt": None}
    record |= {"call": None, "body": {"state": "cdr"}}
    head, shown = describe(record).split("\n")
    read = "record  unmatched  transaction=t  result=answered  keys=1 (from dtmf)  attempt=-"
    assert head.endswith(f"{read}  unmatched")
    assert shown == '    {"state":"cdr"}'
    unavailable = record | {"outcome": "unavailable"}
    assert describe(unavailable).split("\n")[0].endswith("attempt=-  -")  # not read: no verdict
    live = {"received_at": now, "kind": "live", "state": "early", "transaction": None, "body": {}}
    assert "live  state=early  transaction=-" in describe(live)
    text = {"received_at": now, "kind": "invalid", "body": "not json"}
    assert describe(text).endswith("invalid\n    not json")


@pytest.mark.parametrize(
    ("written", "shown"),
    [
        ("phone0987654321", "phone098****321"),  # letters next to it: still a number
        ("0987654321abc", "098****321abc"),
        ("sdt:0987654321;", "sdt:098****321;"),
        ("to_84987654321", "to_849*****321"),
    ],
)
def test_a_number_next_to_letters_is_masked(written: str, shown: str) -> None:
    assert masked_text(written) == shown


def test_a_number_written_as_a_float_is_masked() -> None:
    assert masked({"to": 987654321.0, "phone": 84987654321.0, "answer_sec": 12.0}) == {
        "to": "987***321",
        "phone": "849*****321",
        "answer_sec": 12.0,
    }
    assert masked(0.5) == 0.5 and masked(float("inf")) == float("inf")


def test_what_was_read_from_a_body_is_masked_too() -> None:
    live = LiveEvent("call 0987654321", "tx 0987654321")
    kept = orjson.loads(entry(b"{}", live, None, "live"))
    assert (kept["state"], kept["transaction"]) == ("call 098****321", "tx 098****321")
    contact = orjson.loads(entry(b"{}", Contact("update 0987654321"), None, "ignored"))
    assert contact["action"] == "update 098****321"
    cdr = {"state": "cdr", "transaction_id": "tx-1", "dtmf": "0987654321"}
    kept = orjson.loads(entry(orjson.dumps(cdr), parse(cdr, ("dtmf",)), None, "unmatched"))
    assert kept["keys"] == "098****321"


def test_a_megabyte_of_urls_without_a_query_is_one_pass() -> None:
    """No timing asserted: a search that went back over the text for every `http` (quadratic)
    takes hours on a megabyte and trips pytest-timeout; one pass takes milliseconds."""
    text = "http://" * 150_000  # 1 MB, many URL starts, no `?`
    assert masked_text(text) == text
    body = orjson.dumps({"note": "https://a.example/" * 14_000})  # 256 KB, as a post may be
    assert len(orjson.loads(entry(body, None, None, "invalid"))["body"]["note"]) == 252_000
    assert masked_text("see https://a.example/x?q=1#f, https://b.example/#y?z") == (
        "see https://a.example/x#f, https://b.example/#y?z"
    )
