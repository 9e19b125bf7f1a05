"""service/templates/filters.py: the filters exactly as CONTRACT.md §4 states them."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import phonenumbers
import pytest
from jinja2.exceptions import SecurityError, UndefinedError
from num2words import num2words

from service.errors import InvalidPhone, TemplateError
from service.templates.filters import (
    LOCAL_TZ,
    PHONE_FORMAT_VAR,
    date,
    environment,
    mask,
    mask_digits,
    normalise_phone,
    spell,
    vnd,
    words,
)


def render(source: str, **context: Any) -> str:
    """`source` rendered in the service's one environment."""
    return environment().from_string(source).render(context)


# vnd


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (455000.0, "455.000 đồng"),
        (455000, "455.000 đồng"),
        ("455000", "455.000 đồng"),
        (" 1290000 ", "1.290.000 đồng"),
        ("404.95", "405 đồng"),
        (Decimal("999.5"), "1.000 đồng"),
        (0.4, "0 đồng"),
        (0, "0 đồng"),
        (999, "999 đồng"),
        (1000, "1.000 đồng"),
        (98000000, "98.000.000 đồng"),
        (-2500, "-2.500 đồng"),
    ],
)
def test_vnd(value: Any, expected: str) -> None:
    assert vnd(value) == expected


@pytest.mark.parametrize("value", ["abc", "", None, True, [1], {"a": 1}, "nan", "inf", "1,000"])
def test_vnd_refuses_what_is_not_a_finite_number(value: Any) -> None:
    with pytest.raises(TemplateError):
        vnd(value)


def test_number_errors_mask_phone_like_digits() -> None:
    with pytest.raises(TemplateError) as caught:
        vnd("0912345678x")

    assert "0912345678" not in caught.value.message
    assert "091****678" in caught.value.message


# words


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (900000, "chín trăm nghìn"),
        ("900000", "chín trăm nghìn"),
        (900000.0, "chín trăm nghìn"),
        (0, num2words(0, lang="vi")),
        (21, num2words(21, lang="vi")),
        (1290000, num2words(1290000, lang="vi")),
        (98000000, num2words(98000000, lang="vi")),
        (1.5, num2words(1.5, lang="vi")),
    ],
)
def test_words_are_num2words_vietnamese(value: Any, expected: str) -> None:
    assert words(value) == expected


def test_words_of_a_negative_number_keep_the_sign() -> None:
    assert words(-5) == "âm " + num2words(5, lang="vi")


@pytest.mark.parametrize("value", [10**18, "x", None])
def test_words_refuse_what_cannot_be_read_out(value: Any) -> None:
    with pytest.raises(TemplateError):
        words(value)


# spell


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("#CK-02", "C K 0 2"),
        ("#100811", "1 0 0 8 1 1"),
        (100811, "1 0 0 8 1 1"),
        ("DH-240915-0043", "D H 2 4 0 9 1 5 0 0 4 3"),
        ("Đơn 1", "Đ ơ n 1"),
        ("  --  ", ""),
    ],
)
def test_spell(value: Any, expected: str) -> None:
    assert spell(value) == expected


# phone


@pytest.mark.parametrize(
    "raw",
    ["0912345678", "+84 912 345 678", "84912345678", "0912.345.678", "(091) 234-5678", 912345678],
)
@pytest.mark.parametrize(
    ("fmt", "expected"),
    [("national", "0912345678"), ("e164", "+84912345678"), ("digits", "84912345678")],
)
def test_phone_formats_for_region_vn(raw: Any, fmt: Any, expected: str) -> None:
    assert normalise_phone(raw, fmt) == expected


def test_phone_format_defaults_to_national() -> None:
    assert normalise_phone("+84909090909") == "0909090909"


@pytest.mark.parametrize(
    "raw",
    ["555-555-SHIP", "(555) 555-5555", "+1 212 555 0100", "12345", "0912", "", "   ", None, True],
)
def test_invalid_phone(raw: Any) -> None:
    with pytest.raises(InvalidPhone) as caught:
        normalise_phone(raw)

    assert caught.value.code == "invalid_phone"


def test_invalid_phone_message_is_masked() -> None:
    with pytest.raises(InvalidPhone) as caught:
        normalise_phone("+1 212 555 0100")

    assert "2125550100" not in caught.value.message.replace(" ", "")
    assert "*" in caught.value.message


def test_phone_filter_uses_the_template_format_then_its_argument() -> None:
    source = "{{ p | phone }}"

    assert render(source, p="0912345678") == "0912345678"
    assert render(source, p="0912345678", **{PHONE_FORMAT_VAR: "e164"}) == "+84912345678"
    assert render("{{ p | phone('digits') }}", p="0912345678") == "84912345678"


# date


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("2023-06-10T12:19:26.027Z", "10/06/2023"),
        ("2026-11-27T20:00:00Z", "28/11/2026"),  # 03:00 the next day in Hồ Chí Minh City
        ("2026-11-27T23:30:00+07:00", "27/11/2026"),
        ("2026-11-27T23:30:00", "27/11/2026"),  # no offset: already local
        (datetime(2026, 11, 27, 18, 0, tzinfo=UTC), "28/11/2026"),
        (0, "01/01/1970"),
    ],
)
def test_date_default_format_in_ho_chi_minh_city(value: Any, expected: str) -> None:
    assert date(value) == expected


def test_date_custom_format() -> None:
    assert date("2026-11-27T20:05:00Z", "%H:%M %d/%m/%Y") == "03:05 28/11/2026"
    assert render("{{ t | date('%H:%M') }}", t="2026-11-27T01:00:00Z") == "08:00"


@pytest.mark.parametrize("value", ["27/11/2026", "soon", None, [2026]])
def test_date_refuses_what_is_not_a_time(value: Any) -> None:
    with pytest.raises(TemplateError):
        date(value)


def test_date_of_now_in_the_render_context() -> None:
    now = datetime(2026, 11, 27, 17, 30, tzinfo=UTC).astimezone(LOCAL_TZ)

    assert render("{{ now | date('%d/%m %H:%M') }}", now=now) == "28/11 00:30"


# mask


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("0912345678", "091****678"),
        ("+84 912 345 678", "849*****678"),
        ("1234567", "123*567"),
        ("123456", "******"),
        ("", ""),
    ],
)
def test_mask(value: str, expected: str) -> None:
    assert mask(value) == expected


def test_mask_digits_masks_only_long_digit_runs() -> None:
    text = "order 12345 for 0912345678, call 0912 345 678"

    assert mask_digits(text) == "order 12345 for 091****678, call 091****678"


# the environment


@pytest.mark.parametrize(
    "source",
    [
        "{{ ().__class__.__bases__ }}",
        "{{ ''.__class__.__mro__ }}",
        "{{ data.__class__ }}",
        "{{ cycler.__init__.__globals__ }}",
        "{{ now.__class__.__init__.__globals__ }}",
    ],
)
def test_sandbox_refuses_unsafe_attribute_access(source: str) -> None:
    with pytest.raises(SecurityError):
        render(source, data={"a": 1}, now=datetime.now(UTC))


def test_attribute_reads_a_key_before_a_dict_method() -> None:
    assert render("{{ data.items }}", data={"items": ["áo", "quần"]}) == "['áo', 'quần']"
    assert render("{{ data.keys }}", data={"keys": "k"}) == "k"
    assert render("{{ data.items() | list }}", data={"a": 1}) == "[('a', 1)]"


def test_undefined_names_are_errors_unless_defaulted() -> None:
    with pytest.raises(UndefinedError):
        render("{{ data.missing }}", data={})
    with pytest.raises(UndefinedError):
        render("{{ nothing }}")

    assert render("{{ data.missing | default('quý khách') }}", data={}) == "quý khách"


def test_output_is_not_html_escaped() -> None:
    assert render("{{ name }}", name="Bún & <Phở>") == "Bún & <Phở>"


def test_every_contract_filter_is_installed() -> None:
    assert {"vnd", "words", "spell", "phone", "date"} <= set(environment().filters)


@pytest.mark.parametrize(
    "number", ["0912345678", "02838221234", "0243 826 4578", "19001234", "1800 1234", "0869123456"]
)
@pytest.mark.parametrize("fmt", ["national", "e164", "digits"])
def test_normalised_numbers_are_what_the_numbering_library_formats(number: str, fmt: str) -> None:
    parsed = phonenumbers.parse(number, "VN")
    style = (
        phonenumbers.PhoneNumberFormat.E164
        if fmt != "national"
        else phonenumbers.PhoneNumberFormat.NATIONAL
    )
    expected = phonenumbers.format_number(parsed, style)
    if fmt != "e164":
        expected = "".join(char for char in expected if char.isdigit())

    assert normalise_phone(number, fmt) == expected  # type: ignore[arg-type]
