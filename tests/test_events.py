"""service/events.py: decode() in the order of CONTRACT.md §3, and every invalid_event path."""

from __future__ import annotations

import base64
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest

from service.errors import InvalidEvent
from service.events import MAX_TYPE_LENGTH, Event, Message, decode, fallback_id, identity_of

SAMPLES = Path(__file__).parent / "samples"
ORDER = {"code": "DH-1", "total_price": 455000, "customer": {"phone": "0909090909"}}


def message(body: Any = ORDER, **properties: Any) -> Message:
    """A message as the consumer builds one; `body` is encoded as JSON unless it is bytes."""
    raw = body if isinstance(body, bytes) else orjson.dumps(body)
    properties.setdefault("routing_key", "order.created")
    return Message(body=raw, **properties)


def cloudevent(**attributes: Any) -> dict[str, Any]:
    """A structured-mode CloudEvent; an attribute set to None is left out."""
    event = {
        "specversion": "1.0",
        "id": "ce-1",
        "type": "order.created",
        "source": "/shop/checkout",
        "time": "2026-11-27T03:00:00Z",
        "data": ORDER,
    } | attributes
    return {key: value for key, value in event.items() if value is not None}


def invalid(msg: Message, **kwargs: Any) -> str:
    with pytest.raises(InvalidEvent) as caught:
        decode(msg, **kwargs)
    assert caught.value.code == "invalid_event"
    return caught.value.message


# structured mode


@pytest.mark.parametrize(
    ("content_type", "body"),
    [
        ("application/cloudevents+json", cloudevent()),
        ("application/cloudevents+json; charset=utf-8", cloudevent()),
        ("Application/CloudEvents+JSON", cloudevent()),
        ("application/cloudevents+json", cloudevent(specversion=None)),  # by content type alone
        ("application/json", cloudevent()),  # by the body's specversion
        (None, cloudevent()),
    ],
)
def test_structured_mode_reads_the_envelope(content_type: str | None, body: dict[str, Any]) -> None:
    event = decode(message(body, content_type=content_type, type="amqp.type", message_id="m-1"))

    assert event.id == "ce-1"
    assert event.type == "order.created"
    assert event.source == "/shop/checkout"
    assert event.time == datetime(2026, 11, 27, 3, 0, tzinfo=UTC)
    assert event.data == ORDER


def test_structured_mode_reads_the_real_cloudevents_sample() -> None:
    body = (SAMPLES / "cloudevents_json-format_example-C_json-data.json").read_bytes()

    event = decode(Message(body=body, routing_key="anything"))

    assert (event.id, event.type, event.source) == (
        "C234-1234-1234",
        "com.example.someevent",
        "/mycontext",
    )
    assert event.time == datetime(2018, 4, 5, 17, 31, tzinfo=UTC)
    assert event.data == {"appinfoA": "abc", "appinfoB": 123, "appinfoC": True}


def test_structured_mode_without_id_falls_back_to_message_id_then_hash() -> None:
    body = cloudevent(id=None)

    assert decode(message(body, message_id="m-7")).id == "m-7"
    assert decode(message(body)).id == fallback_id(message(body))


def test_structured_time_keeps_its_offset_and_a_bare_time_is_utc() -> None:
    with_offset = decode(message(cloudevent(time="2026-11-27T10:00:00+07:00")))
    bare = decode(message(cloudevent(time="2026-11-27T03:00:00")))

    assert with_offset.time is not None and bare.time is not None
    assert with_offset.time.utcoffset() == timedelta(hours=7)
    assert with_offset.time == bare.time == datetime(2026, 11, 27, 3, 0, tzinfo=UTC)


def test_structured_event_without_time_has_none() -> None:
    assert decode(message(cloudevent(time=None))).time is None


@pytest.mark.parametrize(
    ("payload", "expected"),
    [
        (orjson.dumps({"code": "DH-9"}), {"code": "DH-9"}),
        ("xin chào".encode(), "xin chào"),  # not JSON: kept as text
    ],
)
def test_data_base64_is_decoded(payload: bytes, expected: Any) -> None:
    body = cloudevent(data=None, data_base64=base64.b64encode(payload).decode())

    assert decode(message(body)).data == expected


def test_data_wins_over_data_base64() -> None:
    body = cloudevent(data={"a": 1}, data_base64=base64.b64encode(b'{"b": 2}').decode())

    assert decode(message(body)).data == {"a": 1}


def test_data_base64_that_is_not_base64_is_invalid() -> None:
    body = cloudevent(data=None, data_base64="not base64!")

    assert "data_base64" in invalid(message(body))


def test_structured_content_type_with_a_non_object_body_is_invalid() -> None:
    msg = message([1, 2], content_type="application/cloudevents+json")

    assert "JSON object" in invalid(msg)


# binary mode


@pytest.mark.parametrize("prefix", ["cloudEvents_", "cloudEvents:"])
def test_binary_mode_reads_attributes_from_headers(prefix: str) -> None:
    headers = {
        f"{prefix}id": "bin-1",
        f"{prefix}type": "shipment.delivered",
        f"{prefix}source": "/carrier",
        f"{prefix}time": "2026-11-27T10:00:00+07:00",
        f"{prefix}specversion": "1.0",
        "x-tenant": "shop-1",
    }

    event = decode(message(ORDER, headers=headers, type="amqp.type", message_id="m-1"))

    assert (event.id, event.type, event.source) == ("bin-1", "shipment.delivered", "/carrier")
    assert event.time == datetime(2026, 11, 27, 3, 0, tzinfo=UTC)
    assert event.data == ORDER  # the body is the data, not an envelope
    assert event.headers["x-tenant"] == "shop-1"


def test_binary_mode_reads_byte_header_values_as_text() -> None:
    headers = {"cloudEvents_type": b"order.created", "cloudEvents_id": b"bin-2"}

    event = decode(message(ORDER, headers=headers))

    assert (event.id, event.type) == ("bin-2", "order.created")


def test_binary_mode_without_id_falls_back_to_message_id() -> None:
    event = decode(message(ORDER, headers={"cloudEvents_type": "t"}, message_id="m-3"))

    assert event.id == "m-3"


# plain JSON


def test_plain_type_comes_from_the_amqp_type_property_first() -> None:
    event = decode(message(ORDER, routing_key="rk.word", type="order.created"))

    assert event.type == "order.created"
    assert event.source is None
    assert event.data == ORDER


def test_plain_type_falls_back_to_the_routing_key() -> None:
    assert decode(message(ORDER, routing_key="order.created")).type == "order.created"


def test_plain_id_is_the_message_id() -> None:
    assert decode(message(ORDER, message_id="m-42")).id == "m-42"


def test_plain_id_without_message_id_is_a_stable_hash_of_routing_key_and_body() -> None:
    first = decode(message(ORDER, routing_key="order.created"))
    again = decode(message(ORDER, routing_key="order.created"))
    other_body = decode(message({**ORDER, "code": "DH-2"}, routing_key="order.created"))
    other_key = decode(message(ORDER, routing_key="order.updated"))

    assert first.id == again.id
    assert len({first.id, other_body.id, other_key.id}) == 3
    assert len(first.id) == 32


def test_plain_time_is_the_amqp_timestamp() -> None:
    stamp = datetime(2026, 11, 27, 3, 0, tzinfo=UTC)

    assert decode(message(ORDER, timestamp=stamp)).time == stamp
    assert decode(message(ORDER)).time is None


def test_plain_naive_timestamp_is_read_as_utc() -> None:
    event = decode(message(ORDER, timestamp=datetime(2026, 11, 27, 3, 0)))

    assert event.time == datetime(2026, 11, 27, 3, 0, tzinfo=UTC)


def test_plain_json_may_be_any_json_value() -> None:
    assert decode(message([1, "a"])).data == [1, "a"]
    assert decode(message(b'"text"')).data == "text"


# headers


def test_headers_become_json_like_values() -> None:
    stamp = datetime(2026, 11, 27, 3, 0, tzinfo=UTC)
    headers = {
        "x-bytes": "Nguyễn".encode(),
        "x-bad-bytes": b"\xff",
        "x-list": [b"a", 1],
        "x-table": {"inner": b"b"},
        "x-time": stamp,
        "x-int": 3,
        "x-none": None,
        "x-other": object,
    }

    event = decode(message(ORDER, headers=headers))

    assert event.headers["x-bytes"] == "Nguyễn"
    assert event.headers["x-bad-bytes"] == "\ufffd"
    assert event.headers["x-list"] == ["a", 1]
    assert event.headers["x-table"] == {"inner": "b"}
    assert event.headers["x-time"] == "2026-11-27T03:00:00+00:00"
    assert event.headers["x-int"] == 3
    assert event.headers["x-none"] is None
    assert event.headers["x-other"] == repr(object)
    orjson.dumps(dict(event.headers))  # every value serialises


# invalid events


def test_empty_body_is_invalid() -> None:
    assert invalid(message(b"")) == "empty body"


@pytest.mark.parametrize("body", [b"{", b"not json", b"{'a': 1}", b"   "])
def test_body_that_is_not_json_is_invalid(body: bytes) -> None:
    assert "not UTF-8 JSON" in invalid(message(body))


@pytest.mark.parametrize("body", [b'{"a": "\xff"}', b"\xfe\xff{}", '{"a": "ệ"}'.encode("utf-16")])
def test_body_that_is_not_utf8_is_invalid(body: bytes) -> None:
    assert "not UTF-8 JSON" in invalid(message(body))


@pytest.mark.parametrize(
    "msg",
    [
        message(ORDER, routing_key=""),
        message(ORDER, routing_key="", type="  "),
        message(cloudevent(type=None)),
        message(cloudevent(type="")),
        message(ORDER, headers={"cloudEvents_id": "x"}),
    ],
    ids=["plain", "plain-blank", "structured", "structured-empty", "binary"],
)
def test_event_without_type_is_invalid(msg: Message) -> None:
    assert invalid(msg) == "the event has no type"


def test_type_longer_than_an_amqp_routing_key_is_invalid() -> None:
    longest = "a" * MAX_TYPE_LENGTH

    assert decode(message(ORDER, type=longest)).type == longest
    assert "longer than 255" in invalid(message(ORDER, type=longest + "a"))
    assert "longer than 255" in invalid(message(cloudevent(type=longest + "a")))


@pytest.mark.parametrize("bad_id", [[1], {"a": 1}, True, 1.5])
def test_non_string_id_is_invalid(bad_id: Any) -> None:
    assert invalid(message(cloudevent(id=bad_id))) == "id must be a string"


def test_integer_id_is_read_as_text() -> None:
    # Not a string in the CloudEvents sense, but unambiguous: the code accepts it.
    assert decode(message(cloudevent(id=17))).id == "17"


@pytest.mark.parametrize("bad_source", [[1], False])
def test_non_string_source_is_invalid(bad_source: Any) -> None:
    assert invalid(message(cloudevent(source=bad_source))) == "source must be a string"


@pytest.mark.parametrize("bad_time", ["yesterday", "27/11/2026 10:00", "2026-13-01T00:00:00Z"])
def test_time_that_is_not_rfc3339_is_invalid(bad_time: str) -> None:
    assert "time is not RFC 3339" in invalid(message(cloudevent(time=bad_time)))


@pytest.mark.parametrize("bad_time", [1764212400, ["2026-11-27"]])
def test_time_that_is_not_a_string_is_invalid(bad_time: Any) -> None:
    assert "time must be" in invalid(message(cloudevent(time=bad_time)))


def test_binary_bad_time_is_invalid() -> None:
    headers = {"cloudEvents_type": "t", "cloudEvents_time": "soon"}

    assert "time is not RFC 3339" in invalid(message(ORDER, headers=headers))


def test_oversize_body_is_invalid_before_it_is_parsed() -> None:
    body = b'{"a": "' + b"x" * 100 + b'"}'

    assert decode(message(body), max_bytes=len(body)).data == {"a": "x" * 100}
    assert f"limit is {len(body)}" in invalid(message(body + b" "), max_bytes=len(body))
    assert "bytes" in invalid(message(b"{" * 2000), max_bytes=1024)  # not JSON, too big first


# identity


def test_identity_is_the_event_object_of_decisions() -> None:
    event = decode(message(cloudevent()))

    assert isinstance(event, Event)
    assert event.identity == {"id": "ce-1", "type": "order.created", "source": "/shop/checkout"}


def test_identity_of_an_undecodable_message() -> None:
    assert identity_of(message(b"", message_id="m-9")) == {
        "id": "m-9",
        "type": None,
        "source": None,
    }
    broken = message(b"{", routing_key="rk")
    assert identity_of(broken)["id"] == fallback_id(broken)
