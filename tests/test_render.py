"""service/render.py: decide() in the order of CONTRACT.md §4, requests (§5), the JSON of §6."""

from __future__ import annotations

import hashlib
import unicodedata
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest
import yaml

from service.events import Event, Message, decode
from service.render import (
    EXTENSION_PATH,
    PHONE_PATH,
    Call,
    Decision,
    Defer,
    Fail,
    Skip,
    as_json,
    decide,
)
from service.templates import Templates, load, parse
from service.templates.filters import LOCAL_TZ
from tests.conftest import template

ROOT = Path(__file__).parent.parent
SAMPLES = Path(__file__).parent / "samples"
NOW = datetime(2026, 11, 27, 10, 0, tzinfo=LOCAL_TZ)
DATA = {"code": "DH-1", "total": 455000, "phone": "0909090909", "customer": {"name": "An"}}
SAY = {"target_type": "Text_variable"}


def templates(*specs: dict[str, Any], **defaults: Any) -> Templates:
    doc = {"version": 1, "defaults": defaults, "templates": list(specs) or [template()]}
    return parse(yaml.safe_dump(doc, allow_unicode=True, sort_keys=False), "test")


def event(data: Any = DATA, **fields: Any) -> Event:
    values: dict[str, Any] = {
        "id": "e-1",
        "type": "order.created",
        "source": None,
        "time": None,
        "data": data,
        "headers": {},
    }
    return Event(**(values | fields))


def at(hour: int, minute: int = 0) -> datetime:
    """A local time on NOW's day."""
    return NOW.replace(hour=hour, minute=minute)


def call(decision: Decision) -> Call:
    assert isinstance(decision, Call), as_json(decision)
    return decision


def failure(decision: Decision, code: str) -> Fail:
    assert isinstance(decision, Fail), as_json(decision)
    assert decision.error.code == code, decision.error.message
    return decision


def deferral(decision: Decision) -> Defer:
    assert isinstance(decision, Defer), as_json(decision)
    return decision


# route


def test_no_template_matches() -> None:
    decision = decide(templates(template(event="shipment.*")), event(), NOW)

    assert decision == Skip(event(), "no_template")


def test_condition_false_when_no_when_holds() -> None:
    ts = templates(
        template(name="a", when="data.total > 1000000"),
        template(name="b", when="false"),
        template(name="c", event="shipment.#"),  # a template that does not match is not tried
    )

    assert decide(ts, event(), NOW) == Skip(event(), "condition_false")


def test_first_matching_template_whose_when_holds_wins_in_file_order() -> None:
    ts = templates(
        template(name="big", when="data.total >= 1000000"),
        template(name="any"),
        template(name="later"),
    )

    assert call(decide(ts, event(), NOW)).template.name == "any"
    assert call(decide(ts, event({**DATA, "total": 2000000}), NOW)).template.name == "big"


@pytest.mark.parametrize("when", ["data.nope > 1", "data.total > 'x'", "data.total / 0"])
def test_when_that_errors_is_a_template_error(when: str) -> None:
    ts = templates(template(name="broken", when=when), template(name="fine"))

    fail = failure(decide(ts, event(), NOW), "template_error")

    assert fail.template == "broken"
    assert fail.error.message.startswith("when: ")


def test_when_sees_data_event_and_now() -> None:
    when = "data.code == 'DH-1' and event.headers.tenant == 'shop' and now.hour == 10"
    ts = templates(template(when=when))

    assert isinstance(decide(ts, event(headers={"tenant": "shop"}), NOW), Call)
    assert isinstance(decide(ts, event(headers={"tenant": "other"}), NOW), Skip)


# expired


def test_event_older_than_expires_after_is_expired() -> None:
    ts = templates(template(expires_after="6h"))

    fail = failure(decide(ts, event(time=NOW - timedelta(hours=7)), NOW), "expired")

    assert fail.template == "t"
    assert fail.error.message == "the event is 7.0 h old; the template allows 6.0 h"


@pytest.mark.parametrize("age", [timedelta(hours=6), timedelta(minutes=1), -timedelta(hours=1)])
def test_event_within_expires_after_is_called(age: timedelta) -> None:
    ts = templates(template(expires_after="6h"))

    call(decide(ts, event(time=NOW - age), NOW))


def test_event_without_time_never_expires() -> None:
    call(decide(templates(template(expires_after="1s")), event(time=None), NOW))


def test_expires_after_from_the_defaults_applies() -> None:
    ts = templates(template(), expires_after="30m")

    failure(decide(ts, event(time=NOW - timedelta(minutes=31)), NOW), "expired")


def test_route_comes_before_expired_and_expired_before_render() -> None:
    old = event(time=NOW - timedelta(days=1))
    false = templates(template(when="false", expires_after="1h"))
    broken = templates(template(expires_after="1h", script=[{"say": "{{ data.nope }}"}]))

    assert decide(false, old, NOW) == Skip(old, "condition_false")
    failure(decide(broken, old, NOW), "expired")


# render


@pytest.mark.parametrize(
    ("fields", "where"),
    [
        ({"phone": "{{ data.nope }}"}, "phone: "),
        ({"campaign": "{{ data.nope }}"}, "campaign: "),
        ({"idempotency_key": "{{ data.nope }}"}, "idempotency_key: "),
        ({"script": [{"say": "ok"}, {"say": "{{ data.nope }}"}]}, "script[1].say: "),
        ({"script": [{"say": "{{ 'abc' | vnd }}"}]}, "script[0].say: not a number"),
        ({"script": [{"say": "{{ data.code | date }}"}]}, "script[0].say: not an ISO-8601"),
        ({"phone": ..., "extension": "{{ data.nope }}", "cid": "1"}, "extension: "),
        ({"phone": ..., "extension": "{{ '  ' }}", "cid": "1"}, "extension: renders empty"),
        ({"idempotency_key": "{{ '' }}"}, "idempotency_key: renders empty"),
        ({"script": [{"say": "{{ '' }}"}, {"say": " "}]}, "script: every step renders empty"),
    ],
)
def test_render_errors_are_template_errors_naming_the_field(
    fields: dict[str, Any], where: str
) -> None:
    fail = failure(decide(templates(template(**fields)), event(), NOW), "template_error")

    assert fail.template == "t"
    assert fail.error.message.startswith(where)


def test_template_error_messages_mask_phone_numbers() -> None:
    ts = templates(template(script=[{"say": "{{ {}[data.phone] }}"}]))

    fail = failure(decide(ts, event(), NOW), "template_error")

    assert "0909090909" not in fail.error.message
    assert "090****909" in fail.error.message


@pytest.mark.parametrize("field", ["campaign", "idempotency_key"])
def test_every_render_error_comes_before_the_phone_check(field: str) -> None:
    ts = templates(template(**{field: "{{ data.nope }}"}))

    fail = failure(decide(ts, event({**DATA, "phone": "12345"}), NOW), "template_error")

    assert fail.error.message.startswith(f"{field}: ")


def test_render_error_comes_before_the_call_window() -> None:
    ts = templates(template(campaign="{{ data.nope }}", call_window="08:00-21:00"))

    failure(decide(ts, event(), at(22)), "template_error")


# phone


@pytest.mark.parametrize("phone", ["555-555-SHIP", "(555) 555-5555", "12345", None, ""])
def test_invalid_phone_fails_without_a_call(phone: Any) -> None:
    fail = failure(decide(templates(), event({**DATA, "phone": phone}), NOW), "invalid_phone")

    assert fail.template == "t"


def test_invalid_phone_comes_before_the_length_and_the_window() -> None:
    ts = templates(template(script=[{"say": "a" * 400}], call_window="08:00-21:00"))

    failure(decide(ts, event({**DATA, "phone": "12345"}), at(22)), "invalid_phone")


@pytest.mark.parametrize(
    ("own", "expected"),
    [
        ({}, "84909090909"),  # unset in the template: the defaults' digits
        ({"phone_format": "national"}, "0909090909"),
        ({"phone_format": "e164"}, "+84909090909"),
    ],
)
def test_phone_is_sent_in_the_template_format(own: dict[str, str], expected: str) -> None:
    spec = template(script=[{"say": "gọi {{ data.phone | phone }}"}], **own)

    decision = call(decide(templates(spec, phone_format="digits"), event(), NOW))

    assert decision.request.json["phone_number_list"] == [expected]
    assert decision.request.json["variables"] == [f"gọi {expected}"]
    assert decision.phone is not None and decision.phone.endswith("909")


def test_phone_format_built_in_default_is_national() -> None:
    decision = call(decide(templates(), event({**DATA, "phone": "+84 909 090 909"}), NOW))

    assert decision.request.json["phone_number_list"] == ["0909090909"]
    assert decision.phone == "090****909"


# length


def say_text() -> Templates:
    return templates(template(script=[{"say": "{{ data.text }}"}, {"recording": "r1"}]))


def test_300_characters_pass_and_301_fail() -> None:
    ts = say_text()

    assert call(decide(ts, event({**DATA, "text": "a" * 300}), NOW)).tts_chars == 300
    fail = failure(decide(ts, event({**DATA, "text": "a" * 301}), NOW), "limit_word_session")
    assert "301" in fail.error.message
    assert fail.template == "t"


def test_length_is_the_sum_of_all_says() -> None:
    ts = templates(template(script=[{"say": "a" * 150}, {"recording": "r"}, {"say": "b" * 151}]))

    failure(decide(ts, event(), NOW), "limit_word_session")


def test_length_is_counted_after_white_space_collapses() -> None:
    text = "a" * 150 + " \n\t " * 100 + "b" * 149 + "   "

    decision = call(decide(say_text(), event({**DATA, "text": text}), NOW))

    assert decision.tts_chars == 300
    assert decision.request.json["variables"] == ["a" * 150 + " " + "b" * 149]


def test_length_is_counted_in_nfc_code_points() -> None:
    decomposed = unicodedata.normalize("NFD", "ệ")
    assert len(decomposed) == 3

    passes = call(decide(say_text(), event({**DATA, "text": decomposed * 300}), NOW))
    fails = decide(say_text(), event({**DATA, "text": decomposed * 301}), NOW)

    assert passes.tts_chars == 300
    assert passes.request.json["variables"] == ["ệ" * 300]  # sent in NFC too
    failure(fails, "limit_word_session")


def test_length_comes_before_the_call_window() -> None:
    ts = templates(template(script=[{"say": "a" * 301}], call_window="08:00-21:00"))

    failure(decide(ts, event(), at(22)), "limit_word_session")


# call window


@pytest.mark.parametrize(
    ("window", "now", "until"),
    [
        ("08:00-21:00", at(22), "2026-11-28T08:00:00+07:00"),
        ("08:00-21:00", at(21), "2026-11-28T08:00:00+07:00"),
        ("08:00-21:00", at(5, 30), "2026-11-27T08:00:00+07:00"),
        ("08:00-21:00", datetime(2026, 11, 27, 15, 0, tzinfo=UTC), "2026-11-28T08:00:00+07:00"),
        ("08:30-21:00", at(8, 29), "2026-11-27T08:30:00+07:00"),
        ("22:00-06:00", at(12), "2026-11-27T22:00:00+07:00"),
        ("22:00-06:00", at(6), "2026-11-27T22:00:00+07:00"),
        ("22:00-06:00", at(21, 59), "2026-11-27T22:00:00+07:00"),
    ],
)
def test_outside_the_window_the_call_waits_until_it_opens(
    window: str, now: datetime, until: str
) -> None:
    decision = deferral(decide(templates(template(call_window=window)), event(), now))

    assert decision.until.isoformat() == until
    assert decision.reason == "call_window"
    assert str(decision.window) == window
    assert decision.template.name == "t"


@pytest.mark.parametrize(
    ("window", "now"),
    [
        ("08:00-21:00", at(8)),
        ("08:00-21:00", at(20, 59)),
        ("22:00-06:00", at(22)),
        ("22:00-06:00", at(23, 30)),
        ("22:00-06:00", at(0)),
        ("22:00-06:00", at(5, 59)),
        ("22:00-06:00", datetime(2026, 11, 27, 20, 0, tzinfo=UTC)),  # 03:00 local
    ],
)
def test_inside_the_window_the_call_is_made(window: str, now: datetime) -> None:
    call(decide(templates(template(call_window=window)), event(), now))


def test_window_from_the_defaults_and_unset_by_null() -> None:
    ts = templates(
        template(name="waits"),
        template(name="at_once", event="order.flagged", call_window=None),
        call_window="08:00-21:00",
    )

    deferral(decide(ts, event(), at(23)))
    call(decide(ts, event(type="order.flagged"), at(23)))


# the call


def test_phone_request_with_every_option() -> None:
    ts = templates(
        template(
            campaign="Xác nhận   đơn\n{{ data.code }}",
            script=[
                {"say": "Đơn  hàng\n {{ data.code | spell }}"},
                {"recording": "5ed0c6dffb7b390007e5211"},
                {"say": "{{ '' }}"},
                {"ivr_menu": "5e9eac95e44159000710f0aa"},
                {"say": "   tổng {{ data.total | vnd }} "},
            ],
        ),
        voice="banmai",
        speed=0,
        cid="842899959300",
        num_retry=1,
        num_per_call=2,
        distance_per_call=30,
        distance_retry=60,
    )

    decision = call(decide(ts, event(), NOW))

    assert decision.request.path == PHONE_PATH
    assert decision.request.endpoint == "execute_by_phone"
    assert decision.request.json == {
        "name": "Xác nhận đơn DH-1",
        "voice": "banmai",
        "speed": 0,
        "cid": "842899959300",
        "template_dialplans": [
            SAY,
            {"target_type": "Recording", "target": "5ed0c6dffb7b390007e5211"},
            {"target_type": "Ivr_menu", "target": "5e9eac95e44159000710f0aa"},
            SAY,
        ],
        "variables": ["Đơn hàng D H 1", "tổng 455.000 đồng"],
        "phone_number_list": ["0909090909"],
        "num_retry": 1,
        "num_per_call": 2,
        "distance_per_call": 30,
        "distance_retry": 60,
    }
    assert decision.tts_chars == len("Đơn hàng D H 1") + len("tổng 455.000 đồng")


def test_phone_request_leaves_out_what_is_unset() -> None:
    decision = call(decide(templates(), event(), NOW))

    assert decision.request.json == {
        "template_dialplans": [SAY],
        "variables": ["Xin chào"],
        "phone_number_list": ["0909090909"],
    }


def test_template_options_override_defaults_in_the_request() -> None:
    ts = templates(template(voice="leminh", speed=-1, cid=None), voice="banmai", cid="1")

    json = call(decide(ts, event(), NOW)).request.json

    assert (json["voice"], json["speed"]) == ("leminh", -1)
    assert "cid" not in json


def test_recording_only_script_uses_no_tts() -> None:
    ts = templates(template(script=[{"recording": "r1"}, {"ivr_menu": "m1"}]))

    decision = call(decide(ts, event(), NOW))

    assert decision.tts_chars == 0
    assert decision.request.json["variables"] == []
    assert decision.request.json["template_dialplans"] == [
        {"target_type": "Recording", "target": "r1"},
        {"target_type": "Ivr_menu", "target": "m1"},
    ]


def test_extension_request() -> None:
    ts = templates(
        template(
            phone=...,
            extension=" {{ data.ext | default('101') }} ",
            campaign="not sent to this endpoint",
            script=[{"say": "Đơn {{ data.code }} cần duyệt."}, {"recording": "r1"}],
        ),
        voice="banmai",
        cid="842899959300",
        num_retry=1,
    )

    decision = call(decide(ts, event({**DATA, "ext": "102"}), NOW))

    assert decision.request.path == EXTENSION_PATH
    assert decision.request.endpoint == "execute_by_extension"
    assert decision.request.json == {
        "cid": "842899959300",
        "template_dialplans": [SAY, {"target_type": "Recording", "target": "r1"}],
        "variables": ["Đơn DH-1 cần duyệt."],
        "extensions": ["102"],
    }
    assert decision.phone is None
    assert call(decide(ts, event(DATA), NOW)).request.json["extensions"] == ["101"]


def test_templates_see_event_headers_source_time_and_now() -> None:
    say = "{{ event.headers.tenant }} {{ event.id }} {{ event.source }} {{ now | date('%H:%M') }}"
    ts = templates(template(script=[{"say": say}]))
    evt = event(headers={"tenant": "shop-1"}, source="/shop")

    decision = call(decide(ts, evt, datetime(2026, 11, 27, 3, 0, tzinfo=UTC)))

    assert decision.request.json["variables"] == ["shop-1 e-1 /shop 10:00"]


def test_on_exhausted_hold() -> None:
    ts = templates(template(name="holds", on_exhausted="hold"), template(name="fails"))

    assert call(decide(ts, event(), NOW)).holds
    assert not call(decide(templates(), event(), NOW)).holds


# idempotency key


def test_idempotency_key_defaults_to_the_event_id() -> None:
    assert call(decide(templates(), event(id="evt-77"), NOW)).idempotency_key == "evt-77"


def test_idempotency_key_is_rendered_and_trimmed() -> None:
    ts = templates(template(idempotency_key=" {{ event.type }}:{{ data.code }} "))

    assert call(decide(ts, event(), NOW)).idempotency_key == "order.created:DH-1"


def test_long_idempotency_keys_are_hashed() -> None:
    ts = templates(template(idempotency_key="{{ data.key }}"))
    longest, too_long = "k" * 200, "k" * 201

    assert call(decide(ts, event({**DATA, "key": longest}), NOW)).idempotency_key == longest
    hashed = call(decide(ts, event({**DATA, "key": too_long}), NOW)).idempotency_key
    assert hashed == "sha256:" + hashlib.sha256(too_long.encode()).hexdigest()


def test_long_event_ids_are_hashed_as_default_keys() -> None:
    long_id = "e" * 1000

    key = call(decide(templates(), event(id=long_id), NOW)).idempotency_key

    assert key == "sha256:" + hashlib.sha256(long_id.encode()).hexdigest()


# the JSON of §6


def test_as_json_of_a_call() -> None:
    decision = decide(templates(template(campaign="c")), event(source="/s"), NOW)

    assert as_json(decision) == {
        "decision": "call",
        "template": "t",
        "event": {"id": "e-1", "type": "order.created", "source": "/s"},
        "request": {
            "method": "POST",
            "path": "/api/auto_call/execute_by_phone",
            "json": {
                "name": "c",
                "template_dialplans": [SAY],
                "variables": ["Xin chào"],
                "phone_number_list": ["0909090909"],
            },
        },
        "tts_chars": 8,
        "idempotency_key": "e-1",
    }


@pytest.mark.parametrize("reason", ["no_template", "condition_false"])
def test_as_json_of_a_skip(reason: str) -> None:
    ts = templates(template(when="false"))
    evt = event(type="order.created" if reason == "condition_false" else "other")

    assert as_json(decide(ts, evt, NOW)) == {
        "decision": "skip",
        "reason": reason,
        "event": {"id": "e-1", "type": evt.type, "source": None},
    }


def test_as_json_of_a_fail() -> None:
    decision = decide(templates(), event({**DATA, "phone": "12345"}), NOW)

    assert as_json(decision) == {
        "decision": "fail",
        "template": "t",
        "error": {
            "code": "invalid_phone",
            "message": "not a phone number: *****",
        },
        "event": {"id": "e-1", "type": "order.created", "source": None},
    }


def test_as_json_of_a_defer() -> None:
    decision = decide(templates(template(call_window="08:00-21:00")), event(), at(22))

    assert as_json(decision) == {
        "decision": "defer",
        "template": "t",
        "until": "2026-11-28T08:00:00+07:00",
        "reason": "call_window",
        "event": {"id": "e-1", "type": "order.created", "source": None},
    }


# real payloads with the example templates


@pytest.fixture(scope="module")
def examples() -> Templates:
    return load(ROOT / "examples" / "templates.yaml")


def sample(path: Path, event_type: str) -> Event:
    return decode(Message(body=path.read_bytes(), type=event_type))


def test_haravan_order_is_called(examples: Templates) -> None:
    evt = sample(SAMPLES / "haravan_order_create_response.json", "haravan.orders.create")

    decision = call(decide(examples, evt, NOW))

    json = decision.request.json
    assert decision.template.name == "haravan_order_confirmation"
    assert json["phone_number_list"] == ["0909090909"]
    assert json["name"] == "Haravan #100811"
    assert json["variables"] == [
        "Xin chào Nguyễn Văn A.",
        "Đơn hàng 1 0 0 8 1 1 tổng giá trị 455.000 đồng",
        "đặt ngày 10/06/2023.",
    ]
    assert decision.idempotency_key == "haravan:1456389374"
    assert orjson.loads(orjson.dumps(as_json(decision)))["decision"] == "call"


def test_haravan_order_waits_for_the_call_window_at_night(examples: Templates) -> None:
    evt = sample(SAMPLES / "haravan_order_create_response.json", "haravan.orders.create")

    decision = deferral(decide(examples, evt, at(21, 30)))

    assert decision.until.isoformat() == "2026-11-28T08:00:00+07:00"


@pytest.mark.parametrize(
    ("name", "event_type", "template_name"),
    [
        ("shopify_orders-create_webhook", "shopify.orders.create", "shopify_order_confirmation"),
        (
            "shopify_fulfillments-create_webhook",
            "shopify.fulfillments.create",
            "shopify_shipment_created",
        ),
        (
            "woocommerce_rest-v3_order_retrieve-response",
            "woocommerce.order.created",
            "woocommerce_order_confirmation",
        ),
    ],
)
def test_foreign_phones_are_invalid(
    examples: Templates, name: str, event_type: str, template_name: str
) -> None:
    decision = decide(examples, sample(SAMPLES / f"{name}.json", event_type), NOW)

    assert failure(decision, "invalid_phone").template == template_name


def test_shopify_fulfillment_event_in_transit_is_not_called(examples: Templates) -> None:
    evt = sample(
        SAMPLES / "shopify_fulfillment-events-create_webhook.json",
        "shopify.fulfillment_events.create",
    )

    assert decide(examples, evt, NOW) == Skip(evt, "condition_false")


def test_cloudevents_sample_has_no_template(examples: Templates) -> None:
    evt = sample(SAMPLES / "cloudevents_json-format_example-C_json-data.json", "ignored")

    assert evt.type == "com.example.someevent"
    assert decide(examples, evt, NOW) == Skip(evt, "no_template")


@pytest.mark.parametrize(
    ("name", "event_type", "template_name", "path"),
    [
        ("order_created", "order.created", "order_confirmation", PHONE_PATH),
        ("cloudevent_order_created", None, "order_confirmation", PHONE_PATH),
        ("order_flagged", "order.flagged", "review_high_value_order", EXTENSION_PATH),
        ("shipment_delivered", "shipment.delivered", "delivered_thank_you", PHONE_PATH),
        (
            "shipment_out_for_delivery",
            "shipment.out_for_delivery",
            "cod_out_for_delivery",
            PHONE_PATH,
        ),
    ],
)
def test_example_events_are_called(
    examples: Templates, name: str, event_type: str | None, template_name: str, path: str
) -> None:
    raw = (ROOT / "examples" / "events" / f"{name}.json").read_bytes()
    evt = decode(Message(body=raw, type=event_type))

    decision = call(decide(examples, evt, NOW))

    assert decision.template.name == template_name
    assert decision.request.path == path
    assert 0 <= decision.tts_chars <= 300


@pytest.mark.parametrize("extension", ["['101']", "101 102", "{'a': 1}"])
def test_an_extension_that_is_not_one_is_a_template_error(extension: str) -> None:
    templates = parse(
        "version: 1\ntemplates:\n  - name: desk\n    event: e\n    cid: '1'\n"
        "    extension: '{{ data.ext }}'\n    script: [{recording: r}]\n"
    )
    decision = decide(templates, Event("i", "e", None, None, {"ext": extension}, {}), NOW)

    assert isinstance(decision, Fail)
    assert decision.error.code == "template_error"
    assert decision.error.message.startswith("extension: not an extension")
