"""The template filters (vnd, words, spell, phone, date) and the sandboxed Jinja2 environment."""

from __future__ import annotations

import functools
import re
import unicodedata
from collections.abc import Callable
from datetime import UTC, datetime
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from typing import Any, Literal
from zoneinfo import ZoneInfo

import phonenumbers
from jinja2 import StrictUndefined, pass_context
from jinja2.runtime import Context
from jinja2.sandbox import SandboxedEnvironment
from num2words import num2words

from ..errors import InvalidPhone, TemplateError

LOCAL_TZ = ZoneInfo("Asia/Ho_Chi_Minh")
PhoneFormat = Literal["national", "e164", "digits"]
PHONE_FORMAT_VAR = "_autocall_phone_format"  # set per template in the render context
_UNKNOWN = phonenumbers.PhoneNumberType.UNKNOWN
_PREFIXED = (
    phonenumbers.PhoneNumberType.MOBILE,
    phonenumbers.PhoneNumberType.FIXED_LINE,
    phonenumbers.PhoneNumberType.FIXED_LINE_OR_MOBILE,
)
_LONG_DIGITS = re.compile(r"\d[\d .-]{5,}\d")
_MAX_AMOUNT = 10**18
_PHONE_TEXT = re.compile(r"^[+\d\s().\-/]{6,40}$")


def _vn_mobile() -> tuple[re.Pattern[str], frozenset[int]]:
    metadata = phonenumbers.PhoneMetadata.metadata_for_region("VN")
    mobile = metadata.mobile if metadata is not None else None
    if mobile is None or mobile.national_number_pattern is None:
        raise RuntimeError("phonenumbers has no VN mobile numbers")
    return re.compile(mobile.national_number_pattern), frozenset(mobile.possible_length or ())


# Most numbers are mobile numbers written 0 + 9 digits: matched against the library's own
# pattern for VN mobiles without its parse and type search (45 µs; tests compare both ways).
_MOBILE_NUMBER, _MOBILE_LENGTHS = _vn_mobile()
_ZERO_AND_NINE = re.compile(r"0(\d{9})")


def number(value: Any) -> Decimal:
    """A number, or a string holding one ("404.95"), as a finite Decimal."""
    if isinstance(value, bool) or not isinstance(value, int | float | Decimal | str):
        raise TemplateError(f"expected a number, got {type(value).__name__}")
    try:
        result = Decimal(value.strip() if isinstance(value, str) else str(value))
    except InvalidOperation:
        raise TemplateError(f"not a number: {mask_digits(str(value))[:40]!r}") from None
    if not result.is_finite():
        raise TemplateError("not a finite number")
    return result


def vnd(value: Any) -> str:
    """455000.0 -> '455.000 đồng': rounded to whole đồng, thousands grouped with '.'."""
    if isinstance(value, int) and not isinstance(value, bool):
        whole = value  # the usual case, without Decimal
    elif isinstance(value, str) and value.isascii() and value.isdigit():
        whole = int(value)
    else:
        amount = number(value)
        if abs(amount) >= _MAX_AMOUNT:
            raise TemplateError("amount too large to read out")
        whole = int(amount.quantize(Decimal(1), rounding=ROUND_HALF_UP))
    if abs(whole) >= _MAX_AMOUNT:
        raise TemplateError("amount too large to read out")
    return f"{whole:,}".replace(",", ".") + " đồng"


def words(value: Any) -> str:
    """900000 -> 'chín trăm nghìn' (num2words, lang='vi')."""
    amount = number(value)
    if abs(amount) >= _MAX_AMOUNT:
        raise TemplateError("number too large to read out")
    if amount < 0:  # num2words' Vietnamese drops the sign
        return "âm " + words(-amount)
    integral = amount == amount.to_integral_value()
    return str(num2words(int(amount) if integral else float(amount), lang="vi"))


def spell(value: Any) -> str:
    """'#CK-02' -> 'C K 0 2': the letters and digits only, one space between each."""
    return " ".join(char for char in str(value) if char.isalnum())


def normalise_phone(value: Any, fmt: PhoneFormat = "national") -> str:
    """A Vietnamese phone number in `fmt`; InvalidPhone when it is not a valid one."""
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
    if not isinstance(value, str) or not value.strip():
        raise InvalidPhone("no phone number")
    return _normalise(value, fmt)


@functools.lru_cache(maxsize=4096)  # 45 µs a number; the same customers get several calls
def _normalise(value: str, fmt: PhoneFormat) -> str:
    value = unicodedata.normalize("NFKC", value).strip()
    # Only what people write in a number: a list's or a dict's text is not a phone number.
    if not _PHONE_TEXT.match(value):
        raise InvalidPhone(f"not a phone number: {mask(value)}")
    national_number = _mobile(value)
    if national_number is not None:
        return {"e164": "+84", "digits": "84"}.get(fmt, "0") + national_number
    return _by_library(value, fmt)


def _by_library(value: str, fmt: PhoneFormat) -> str:
    """What phonenumbers makes of `value`: parsed, typed and formatted."""
    try:
        parsed = phonenumbers.parse(value, "VN")
    except phonenumbers.NumberParseException:
        parsed = None
    # Valid for VN: +84 (VN's only) and a known number type. Mobile and fixed numbers are written
    # 0 + the national number; for the rest (1900, 1800 …) the library's national rules apply.
    kind = phonenumbers.number_type(parsed) if parsed is not None else _UNKNOWN
    if parsed is None or parsed.country_code != 84 or kind == _UNKNOWN:
        raise InvalidPhone(f"not a valid Vietnamese phone number: {mask(value)}")
    national_number = phonenumbers.national_significant_number(parsed)
    if fmt == "e164":
        return "+84" + national_number
    if fmt == "digits":
        return "84" + national_number
    if kind in _PREFIXED:
        return "0" + national_number
    formatted = phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.NATIONAL)
    return "".join(char for char in formatted if char.isdigit())


def _mobile(value: str) -> str | None:
    """The national number of a VN mobile number written 0 + 9 digits; None for anything else."""
    match = _ZERO_AND_NINE.fullmatch(value)
    if match is None or len(match[1]) not in _MOBILE_LENGTHS:
        return None
    return match[1] if _MOBILE_NUMBER.fullmatch(match[1]) else None


@pass_context
def phone(context: Context, value: Any, fmt: PhoneFormat | None = None) -> str:
    """The number in the template's `phone_format` (or `fmt`)."""
    return normalise_phone(value, fmt or context.get(PHONE_FORMAT_VAR, "national"))


def date(value: Any, fmt: str = "%d/%m/%Y") -> str:
    """An ISO-8601 time (or epoch seconds) shown in Asia/Ho_Chi_Minh with `fmt`."""
    if isinstance(value, datetime):
        moment = value
    elif isinstance(value, int | float) and not isinstance(value, bool):
        moment = datetime.fromtimestamp(value, UTC)
    elif isinstance(value, str):
        try:
            moment = datetime.fromisoformat(value.strip())
        except ValueError:
            raise TemplateError(f"not an ISO-8601 time: {value[:40]!r}") from None
    else:
        raise TemplateError(f"expected a time, got {type(value).__name__}")
    # A time without an offset is taken as local: that is how Vietnamese systems write them.
    local = moment.replace(tzinfo=LOCAL_TZ) if moment.tzinfo is None else moment
    return local.astimezone(LOCAL_TZ).strftime(fmt)


def mask(phone: str) -> str:
    """'0912345678' -> '091****678': the first and last three digits, a star for each other one."""
    digits = "".join(char for char in phone if char.isdigit() or char.isalpha())
    if len(digits) <= 6:
        return "*" * len(digits)
    return digits[:3] + "*" * (len(digits) - 6) + digits[-3:]


def mask_digits(text: str) -> str:
    """Masks every run of seven or more digits in free text (error messages, raw answers)."""
    return _LONG_DIGITS.sub(lambda match: mask(match[0]), text)


class Environment(SandboxedEnvironment):
    """Sandboxed, strict about undefined names; `data.items` reads the key before dict methods."""

    def getattr(self, obj: Any, attribute: str) -> Any:
        if isinstance(obj, dict) and attribute in obj:
            return obj[attribute]
        return super().getattr(obj, attribute)


FILTERS: dict[str, Callable[..., str]] = {
    "vnd": vnd,
    "words": words,
    "spell": spell,
    "phone": phone,
    "date": date,
}


def environment() -> Environment:
    """The one Jinja2 environment every template expression is compiled in."""
    env = Environment(undefined=StrictUndefined, autoescape=False, keep_trailing_newline=False)
    env.filters.update(FILTERS)
    return env
