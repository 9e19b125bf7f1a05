"""The fast path for mobile numbers written 0 + 9 digits says what phonenumbers says."""

from __future__ import annotations

import random

import pytest

from service.errors import InvalidPhone
from service.templates.filters import _by_library, _mobile

FORMATS = ("national", "e164", "digits")


def library(value: str, fmt: str) -> str | None:
    try:
        return _by_library(value, fmt)  # type: ignore[arg-type]
    except InvalidPhone:
        return None


def test_every_number_the_fast_path_takes_is_the_library_s_mobile_number() -> None:
    rng = random.Random(20261130)
    taken = 0
    for prefix in range(1000):  # 0 + every three-digit start, a few numbers each
        for _ in range(4):
            value = f"0{prefix:03d}{rng.randrange(10**6):06d}"
            fast = _mobile(value)
            if fast is None:
                continue  # the library decides; nothing to compare
            taken += 1
            for fmt in FORMATS:
                expected = {"e164": "+84", "digits": "84"}.get(fmt, "0") + fast
                assert library(value, fmt) == expected, (value, fmt)
    assert taken > 500  # the common prefixes (03x, 05x, 07x, 08x, 09x) are taken


@pytest.mark.parametrize(
    "value", ["0912345678", "0362345678", "0702345678", "0812345678", "0582345678"]
)
def test_common_mobile_numbers_take_the_fast_path(value: str) -> None:
    assert _mobile(value) == value[1:]


@pytest.mark.parametrize(
    "value", ["02838123456", "1900123456", "+84912345678", "091234567", "0012345678"]
)
def test_anything_else_goes_to_the_library(value: str) -> None:
    assert _mobile(value) is None
