"""service/templates/: the templates file read, validated with one line per problem, matched."""

from __future__ import annotations

from datetime import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from service.errors import ConfigError
from service.templates import CallWindow, Templates, load, parse, topic_matches
from service.templates.direct import render_direct
from tests.conftest import template

EXAMPLES = Path(__file__).parents[2] / "examples"


def document(*templates: dict[str, Any], defaults: Any = ..., version: Any = 1) -> str:
    """A templates file as YAML text."""
    doc: dict[str, Any] = {"version": version}
    if defaults is not ...:
        doc["defaults"] = defaults
    doc["templates"] = list(templates) or [template()]
    return yaml.safe_dump(doc, allow_unicode=True, sort_keys=False)


def problems(text: str) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        parse(text, "test.yaml")
    assert str(caught.value) == "\n".join(caught.value.problems)
    return caught.value.problems


def only(**fields: Any) -> dict[str, Any]:
    """The options of the single template in a file that sets `fields`."""
    (compiled,) = parse(document(template(**fields)))
    return compiled.options.model_dump(exclude_none=True)


# the example file


def test_example_templates_load() -> None:
    templates = load(EXAMPLES / "templates.yaml")

    assert templates.names() == [
        "order_confirmation",
        "cod_out_for_delivery",
        "delivered_thank_you",
        "review_high_value_order",
        "haravan_order_confirmation",
        "shopify_order_confirmation",
        "shopify_shipment_created",
        "shopify_out_for_delivery",
        "woocommerce_order_confirmation",
    ]
    assert templates.source == str(EXAMPLES / "templates.yaml")
    assert "order_confirmation" in repr(templates)


def test_example_templates_merge_defaults() -> None:
    by_name = {t.name: t for t in load(EXAMPLES / "templates.yaml")}

    order = by_name["order_confirmation"].options
    assert order.voice == "leminh"  # its own
    assert order.cid == "842899959300"  # the defaults'
    assert order.expires_after == 6 * 3600
    assert order.call_window is None  # `call_window: null` unsets the default
    delivered = by_name["delivered_thank_you"].options
    assert str(delivered.call_window) == "09:00-20:00"
    assert by_name["cod_out_for_delivery"].options.on_exhausted == "hold"
    assert str(by_name["haravan_order_confirmation"].options.call_window) == "08:00-21:00"


def test_load_names_a_missing_file() -> None:
    with pytest.raises(ConfigError) as caught:
        load("/nonexistent/templates.yaml")

    (line,) = caught.value.problems
    assert line.startswith("/nonexistent/templates.yaml: cannot read")


# one line per problem, naming the template and the field


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        ({"colour": "red"}, "t: colour: unknown key"),
        ({"voice": "robot"}, "t: voice: "),
        ({"speed": 4}, "t: speed: "),
        ({"speed": -4}, "t: speed: "),
        ({"speed": "fast"}, "t: speed: "),
        ({"phone_format": "international"}, "t: phone_format: "),
        ({"on_exhausted": "wait"}, "t: on_exhausted: "),
        ({"num_retry": -1}, "t: num_retry: "),
        ({"call_window": "8-21"}, "t: call_window: expected 'HH:MM-HH:MM'"),
        ({"call_window": "24:00-08:00"}, "t: call_window: expected 'HH:MM-HH:MM'"),
        ({"call_window": "08:00-08:00"}, "t: call_window: expected 'HH:MM-HH:MM'"),
        ({"expires_after": "soon"}, "t: expires_after: not a duration"),
        ({"expires_after": "6 hours"}, "t: expires_after: not a duration"),
        ({"expires_after": 0}, "t: expires_after: "),
        ({"script": [{"say": "a", "recording": "r1"}]}, "t: script[0]: a step has exactly one"),
        ({"script": [{"say": "a"}, {}]}, "t: script[1]: a step has exactly one"),
        ({"script": [{"say": "a", "pause": 1}]}, "t: script[0].pause: unknown key"),
        ({"script": []}, "t: script: "),
        ({"extension": "101"}, "t: set exactly one of phone and extension"),
        ({"phone": ...}, "t: set exactly one of phone and extension"),
        ({"phone": ..., "extension": "101"}, "t: cid: an extension template needs one"),
        ({"event": "order created"}, "t: event: a topic pattern has no white space"),
        ({"event": ""}, "t: event: "),
        ({"event": ...}, "t: event: Field required"),
        ({"script": ...}, "t: script: Field required"),
        ({"name": "no spaces please"}, "no spaces please: name: "),
        ({"name": ...}, "templates[0]: name: Field required"),
    ],
)
def test_each_problem_is_one_line_naming_template_and_field(
    fields: dict[str, Any], expected: str
) -> None:
    (line,) = problems(document(template(**fields)))

    assert line.startswith(expected)


@pytest.mark.parametrize(
    ("fields", "where"),
    [
        ({"phone": "{{ data.phone"}, "t: phone: "),
        ({"phone": ..., "extension": "{{ 1 +", "cid": "1"}, "t: extension: "),
        ({"campaign": "{% if %}"}, "t: campaign: "),
        ({"idempotency_key": "{{ x | }}"}, "t: idempotency_key: "),
        ({"script": [{"recording": "r"}, {"say": "{{ x }"}]}, "t: script[1].say: "),
        ({"when": "data.total >"}, "t: when: "),
        ({"when": "{{ data.ok }}"}, "t: when: "),
    ],
)
def test_jinja_syntax_errors_name_the_field(fields: dict[str, Any], where: str) -> None:
    (line,) = problems(document(template(**fields)))

    assert line.startswith(where)
    assert len(line) > len(where)  # and say what is wrong


def test_syntax_errors_give_the_line_in_the_field() -> None:
    (line,) = problems(document(template(script=[{"say": "a\n{{ x }"}])))

    assert line.endswith("(line 2)")


def test_every_problem_of_a_file_is_reported_at_once() -> None:
    text = document(
        template(name="a", voice="robot"),
        template(name="b", script=[{"say": "{{ x"}]),
        template(name="c"),
        template(name="c"),
        defaults={"colour": "red"},
    )

    assert sorted(problems(text)) == sorted(
        [
            "defaults: colour: unknown key",
            "a: voice: Input should be 'banmai', 'leminh' or 'lannhi'",
            "b: script[0].say: unexpected end of template, expected 'end of print statement'."
            " (line 1)",
            "c: name: used by more than one template",
        ]
    )


def test_duplicate_names() -> None:
    text = document(template(name="dup"), template(name="other"), template(name="dup"))

    assert problems(text) == ["dup: name: used by more than one template"]


@pytest.mark.parametrize(
    ("defaults", "expected"),
    [
        ({"voice": "robot"}, "defaults: voice: "),
        ({"call_window": "8h-21h"}, "defaults: call_window: "),
        ({"expires_after": "later"}, "defaults: expires_after: "),
        ({"name": "x"}, "defaults: name: unknown key"),  # a template key, not an option
        ("banmai", "defaults: "),
    ],
)
def test_defaults_problems(defaults: Any, expected: str) -> None:
    (line,) = problems(document(template(), defaults=defaults))

    assert line.startswith(expected)


def test_a_bad_default_does_not_hide_the_good_ones() -> None:
    text = document(
        template(phone=..., extension="101"), defaults={"voice": "robot", "cid": "842899959300"}
    )

    assert problems(text) == ["defaults: voice: Input should be 'banmai', 'leminh' or 'lannhi'"]


def test_yaml_syntax_error_gives_line_and_column() -> None:
    text = "version: 1\ntemplates:\n  - name: a\n    event: [order\n"

    (line,) = problems(text)

    assert line.startswith("test.yaml:5:1: not valid YAML: ")


def test_yaml_tab_indent_error_gives_line_and_column() -> None:
    (line,) = problems("version: 1\ntemplates:\n\t- name: a\n")

    assert line.startswith("test.yaml:3:1: not valid YAML")


@pytest.mark.parametrize(("version", "expected"), [(2, "version: "), ("1", "version: ")])
def test_wrong_version(version: Any, expected: str) -> None:
    (line,) = problems(document(template(), version=version))

    assert line.startswith(expected)


def test_missing_version() -> None:
    assert problems("templates: []\n") == [
        "version: Field required",
        "templates: List should have at least 1 item after validation, not 0",
    ]


@pytest.mark.parametrize("text", ["", "- a\n", "just text\n"])
def test_a_file_that_is_not_a_mapping(text: str) -> None:
    (line,) = problems(text)

    assert line.startswith("file: ")


def test_unknown_top_level_key() -> None:
    text = document(template()) + "extra: 1\n"

    assert problems(text) == ["extra: unknown key"]


# options and defaults


def test_defaults_apply_unless_the_template_overrides_them() -> None:
    text = document(
        template(name="plain"),
        template(name="own", voice="lannhi", speed=-2, num_retry=0),
        defaults={"voice": "banmai", "speed": 1, "num_retry": 3, "cid": "842899959300"},
    )

    plain, own = parse(text)

    assert (plain.options.voice, plain.options.speed, plain.options.num_retry) == ("banmai", 1, 3)
    assert (own.options.voice, own.options.speed, own.options.num_retry) == ("lannhi", -2, 0)
    assert own.options.cid == plain.options.cid == "842899959300"


@pytest.mark.parametrize("key", ["call_window", "expires_after", "voice", "cid"])
def test_null_in_a_template_unsets_a_default(key: str) -> None:
    defaults = {"call_window": "08:00-21:00", "expires_after": "6h", "voice": "leminh", "cid": "1"}
    text = document(template(name="unset", **{key: None}), template(name="kept"), defaults=defaults)

    unset, kept = parse(text)

    assert getattr(unset.options, key) is None
    assert getattr(kept.options, key) is not None


def test_options_left_unset_stay_unset() -> None:
    assert only() == {}


@pytest.mark.parametrize(
    ("value", "seconds"),
    [("6h", 21600.0), ("30m", 1800.0), ("90s", 90.0), ("1d", 86400.0), (120, 120.0)],
)
def test_expires_after_durations(value: Any, seconds: float) -> None:
    assert only(expires_after=value)["expires_after"] == seconds


def test_call_window_is_parsed() -> None:
    window = only(call_window=" 21:30-06:00 ")["call_window"]

    assert window == {"start": time(21, 30), "end": time(6, 0)}


def test_numbers_unquoted_in_yaml_become_text() -> None:
    text = "version: 1\ndefaults:\n  cid: 842899959300\ntemplates:\n"
    text += "  - {name: x, event: a, extension: 101, script: [{say: hi}]}\n"

    (compiled,) = parse(text)

    assert compiled.options.cid == "842899959300"
    assert compiled.spec.extension == "101"


def test_extension_takes_its_cid_from_the_defaults() -> None:
    text = document(template(phone=..., extension="101"), defaults={"cid": "842899959300"})

    (compiled,) = parse(text)

    assert compiled.options.cid == "842899959300"


def test_compiled_fields() -> None:
    spec = template(
        campaign="c",
        idempotency_key="k",
        when="true",
        script=[{"say": "a"}, {"recording": "r"}, {"say": "b"}, {"ivr_menu": "m"}],
    )

    (compiled,) = parse(document(spec))

    assert set(compiled.fields) == {
        "phone",
        "campaign",
        "idempotency_key",
        "script[0].say",
        "script[2].say",
    }
    assert compiled.when is not None
    assert compiled.pattern == ("order", "created")


# topic patterns


@pytest.mark.parametrize(
    ("pattern", "topic", "matches"),
    [
        ("order.created", "order.created", True),
        ("order.created", "order.updated", False),
        ("order.created", "order.created.v2", False),
        ("order.*", "order.created", True),
        ("order.*", "order", False),
        ("order.*", "order.created.v2", False),
        ("*.created", "shipment.created", True),
        ("*", "order", True),
        ("*", "order.created", False),
        ("order.#", "order", True),
        ("order.#", "order.created", True),
        ("order.#", "order.created.v2", True),
        ("order.#", "shipment.created", False),
        ("#", "order", True),
        ("#", "a.b.c.d", True),
        ("a.#.b", "a.b", True),
        ("a.#.b", "a.x.b", True),
        ("a.#.b", "a.x.y.b", True),
        ("a.#.b", "a.b.b", True),
        ("a.#.b", "a", False),
        ("a.#.b", "a.x", False),
        ("a.#.b", "x.a.b", False),
        ("#.#", "a", True),
        ("#.#", "a.b.c", True),
        ("#.b", "b", True),
        ("#.b", "a.b.c", False),
        ("#.*", "a", True),
        ("*.#.*", "a", False),
        ("*.#.*", "a.b", True),
        ("a.*.b", "a..b", True),  # empty words are words
        ("a..b", "a..b", True),
        ("a..b", "a.x.b", False),
        ("a.*", "a.", True),
    ],
)
def test_topic_matches(pattern: str, topic: str, matches: bool) -> None:
    assert topic_matches(tuple(pattern.split(".")), tuple(topic.split("."))) is matches


def test_template_matches_its_event_pattern() -> None:
    (compiled,) = parse(document(template(event="shopify.#")))

    assert compiled.matches("shopify.orders.create")
    assert not compiled.matches("haravan.orders.create")


def test_long_patterns_match_quickly() -> None:
    pattern = ("#", "a") * 50
    words = ("a",) * 49 + ("b",)

    assert not topic_matches(pattern, words)


# bindings and windows


def test_patterns_are_distinct_in_file_order() -> None:
    text = document(
        template(name="a", event="order.*"),
        template(name="b", event="shipment.#"),
        template(name="c", event="order.*"),
    )

    assert parse(text).patterns() == ["order.*", "shipment.#"]


def test_windows_are_distinct_and_only_those_set() -> None:
    text = document(
        template(name="a"),
        template(name="b", call_window="09:00-20:00"),
        template(name="c", call_window=None),
        template(name="d", call_window="22:00-06:00"),
        defaults={"call_window": "09:00-20:00"},
    )

    windows = parse(text).windows()

    assert [str(window) for window in windows] == ["09:00-20:00", "22:00-06:00"]


@pytest.mark.parametrize(
    ("window", "moment", "opens"),
    [
        ("08:00-21:00", time(8, 0), True),
        ("08:00-21:00", time(20, 59), True),
        ("08:00-21:00", time(21, 0), False),
        ("08:00-21:00", time(7, 59), False),
        ("22:00-06:00", time(22, 0), True),
        ("22:00-06:00", time(23, 59), True),
        ("22:00-06:00", time(0, 0), True),
        ("22:00-06:00", time(5, 59), True),
        ("22:00-06:00", time(6, 0), False),
        ("22:00-06:00", time(12, 0), False),
    ],
)
def test_call_window_opens(window: str, moment: time, opens: bool) -> None:
    (compiled,) = parse(document(template(call_window=window)))
    call_window = compiled.options.call_window

    assert isinstance(call_window, CallWindow)
    assert call_window.opens(moment) is opens


def test_templates_iterate_in_file_order() -> None:
    text = document(template(name="first"), template(name="second"))

    templates = parse(text)

    assert isinstance(templates, Templates)
    assert len(templates) == 2
    assert [t.name for t in templates] == ["first", "second"]


def test_the_direct_render_hook_matches_jinja_on_the_pinned_version() -> None:
    """service/templates/direct.py skips Template.render: both must give the same text."""
    say = "{{ data.total | vnd }} {{ range(2) | list }} {{ now }}"
    templates = parse(document(template(script=[{"say": say}])), "test")
    [compiled] = templates
    field = compiled.fields["script[0].say"]
    context = {**templates.globals, "data": {"total": 455000}, "now": "today"}
    assert render_direct(field, context) == field.render(
        {"data": {"total": 455000}, "now": "today"}
    )
