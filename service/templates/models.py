"""The templates file as pydantic models: options, steps, templates, call windows."""

from __future__ import annotations

import re
from datetime import time
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StringConstraints,
    WithJsonSchema,
    model_validator,
)

from ..settings import parse_duration
from .filters import PhoneFormat

Voice = Literal["banmai", "leminh", "lannhi"]
_WINDOW = re.compile(r"^([01]\d|2[0-3]):([0-5]\d)-([01]\d|2[0-3]):([0-5]\d)$")
_TOPIC_WORD = re.compile(r"^[^\s]*$")


class CallWindow(BaseModel):
    """Local hours during which calls are made; it may wrap past midnight."""

    model_config = ConfigDict(frozen=True)
    start: time
    end: time

    def opens(self, moment: time) -> bool:
        """Whether a call may be made at local time `moment`."""
        if self.start <= self.end:
            return self.start <= moment < self.end
        return moment >= self.start or moment < self.end

    def __str__(self) -> str:
        return f"{self.start:%H:%M}-{self.end:%H:%M}"


def _window(value: Any) -> Any:
    if not isinstance(value, str):
        return value
    match = _WINDOW.match(value.strip())
    if not match or match.group(1, 2) == match.group(3, 4):
        raise ValueError(f"expected 'HH:MM-HH:MM' with two different times, got {value!r}")
    h1, m1, h2, m2 = (int(part) for part in match.groups())
    return {"start": time(h1, m1), "end": time(h2, m2)}


class PhoneLimit(BaseModel):
    """At most `calls` calls to one number within any rolling `window` seconds."""

    model_config = ConfigDict(frozen=True)
    calls: int = Field(ge=1)
    window: float = Field(gt=0)


def _phone_limit(value: Any) -> Any:
    if not isinstance(value, str):
        return value
    calls, slash, window = value.partition("/")
    if not slash or not calls.strip().isdigit() or int(calls) < 1:
        raise ValueError(f"expected 'N/DURATION' (N at least 1) such as '2/24h', got {value!r}")
    return {"calls": int(calls), "window": parse_duration(window)}


def _duration(value: Any) -> Any:
    return None if value is None else parse_duration(value)


def _one_of(*keys: str) -> dict[str, Any]:
    """JSON Schema for 'exactly one of `keys` is set (not null)', as the validators check."""
    return {
        "oneOf": [
            {"required": [key], "properties": {key: {"not": {"type": "null"}}}} for key in keys
        ]
    }


# JSON Schema only (validation is unchanged): the file's text forms, before the validators convert
# them, so that editors accept what the service accepts.
_TEXT_OR_NUMBER = WithJsonSchema(
    {"anyOf": [{"type": "string", "minLength": 1}, {"type": "integer"}, {"type": "null"}]}
)
_WINDOW_TEXT = WithJsonSchema(
    {"anyOf": [{"type": "string", "pattern": _WINDOW.pattern}, {"type": "null"}]}
)
_PHONE_LIMIT_TEXT = WithJsonSchema(
    {
        "anyOf": [
            {"type": "string", "pattern": r"^\s*[1-9]\d*\s*/\s*\d+(\.\d+)?\s*(ms|s|m|h|d)?\s*$"},
            {"type": "null"},
        ]
    }
)
_DURATION_TEXT = WithJsonSchema(
    {
        "anyOf": [
            {"type": "string", "pattern": r"^\s*\d+(\.\d+)?\s*(ms|s|m|h|d)?\s*$"},
            {"type": "number", "exclusiveMinimum": 0},
            {"type": "null"},
        ]
    }
)


class Options(BaseModel):
    """The keys `defaults` sets for every template and a template may override."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    voice: Voice | None = Field(None, description="TTS voice of the `say` steps.")
    speed: int | None = Field(None, ge=-3, le=3, description="TTS speed, -3 (slow) to 3 (fast).")
    cid: Annotated[str | None, _TEXT_OR_NUMBER] = Field(
        None, min_length=1, description="Caller line shown to the customer; omitted when unset."
    )
    num_retry: int | None = Field(None, ge=0, description="Provider redials when unanswered.")
    num_per_call: int | None = Field(None, ge=1, description="Provider `num_per_call`.")
    distance_per_call: int | None = Field(
        None, ge=0, description="Provider `distance_per_call`, in seconds."
    )
    distance_retry: int | None = Field(
        None, ge=0, description="Seconds between the provider's redials."
    )
    phone_format: PhoneFormat | None = Field(
        None,
        description="How the number is sent and what `| phone` prints: national 0912345678, "
        "e164 +84912345678, digits 84912345678. Built-in default: national.",
    )
    call_window: Annotated[CallWindow | None, BeforeValidator(_window), _WINDOW_TEXT] = Field(
        None,
        description="'HH:MM-HH:MM' local time (Asia/Ho_Chi_Minh), may wrap past midnight; "
        "outside it the call waits. null: no limit.",
    )
    expires_after: Annotated[
        # gt=0 bounds the number only: `expires_after: null` unsets a default.
        Annotated[float, Field(gt=0)] | None, BeforeValidator(_duration), _DURATION_TEXT
    ] = Field(
        None,
        description="An event older than this (250ms, 30s, 5m, 6h, 7d or seconds) is not "
        "called: failed, code `expired`. null: no limit.",
    )
    phone_limit: Annotated[PhoneLimit | None, BeforeValidator(_phone_limit), _PHONE_LIMIT_TEXT] = (
        Field(
            None,
            description="'N/DURATION' (e.g. '2/24h'): at most N calls accepted for one number "
            "within any rolling DURATION, counted across every template that sets a limit; "
            "over it the event is skipped, reason `phone_limit`. null: no limit.",
        )
    )
    on_exhausted: Literal["fail", "hold"] | None = Field(
        None,
        description="When the account cannot call (balance_is_not_enough, limit_word, "
        "limit_service, tenant_disabled, an API key refused, … : the account codes of "
        "docs/provider-answers.md): `fail` the event, or `hold` (stop consuming until a probe "
        "call succeeds). Built-in default: fail.",
    )

    @model_validator(mode="before")
    @classmethod
    def _cid_as_text(cls, values: Any) -> Any:
        # YAML reads an unquoted caller number as an int; it is a string on the wire.
        if isinstance(values, dict) and isinstance(values.get("cid"), int):
            values = {**values, "cid": str(values["cid"])}
        return values


class Step(BaseModel):
    """One step of the call script: exactly one of say, recording, ivr_menu."""

    model_config = ConfigDict(
        extra="forbid", frozen=True, json_schema_extra=_one_of("say", "recording", "ivr_menu")
    )
    say: str | None = Field(
        None,
        description="Jinja2 text spoken by TTS (white space collapsed; dropped if it renders "
        "empty). All `say` texts of a call: 300 characters at most.",
    )
    recording: str | None = Field(None, min_length=1, description="Id of a recording to play.")
    ivr_menu: str | None = Field(None, min_length=1, description="Id of a key-press menu.")

    @model_validator(mode="after")
    def _one_kind(self) -> Step:
        if sum(value is not None for value in (self.say, self.recording, self.ivr_menu)) != 1:
            raise ValueError("a step has exactly one of say, recording, ivr_menu")
        return self


ChoiceKeys = Annotated[str, StringConstraints(pattern=r"^[0-9*#]{1,8}$")]
ChoiceName = Annotated[str, StringConstraints(pattern=r"^[a-z0-9_]{1,64}$")]


class TemplateSpec(Options):
    """One template as written in the file: exactly one of phone and extension."""

    model_config = ConfigDict(json_schema_extra=_one_of("phone", "extension"))

    name: str = Field(
        min_length=1, max_length=100, pattern=r"^[A-Za-z0-9_.:-]+$", description="Unique name."
    )
    event: str = Field(
        min_length=1,
        max_length=255,
        description="AMQP topic pattern of event types: `*` one word, `#` zero or more.",
        json_schema_extra={"pattern": r"^\S+$"},
    )
    when: str | None = Field(
        None, description="Jinja2 expression; the template applies only when it is true."
    )
    phone: str | None = Field(None, description="Jinja2: the customer's number (execute_by_phone).")
    extension: Annotated[str | None, _TEXT_OR_NUMBER] = Field(
        None, description="Jinja2: an extension to ring (execute_by_extension); needs a `cid`."
    )
    campaign: str | None = Field(None, description="Jinja2: the request's `name`.")
    account: str | None = Field(
        None,
        min_length=1,
        description="The account that calls (AUTOCALL_ACCOUNTS_FILE): a name or Jinja2, such as "
        "'{{ data.shop_id }}'. Default: `default`.",
    )
    idempotency_key: str | None = Field(
        None, description="Jinja2: one call per key. Default: the event id."
    )
    script: list[Step] = Field(min_length=1, description="What the call plays, in order.")
    choices: dict[ChoiceKeys, ChoiceName] | None = Field(
        None,
        description='What the keys pressed in an Ivr_menu mean: `{"1": confirmed}`; a result '
        "event's `choice` (`other` for keys no choice names).",
    )
    thanks: str | None = Field(
        None,
        min_length=1,
        max_length=200,
        description="Said once the keys are pressed, on providers whose menus are built from the "
        "script (Stringee); OMICall's own menus say their own.",
    )

    @model_validator(mode="before")
    @classmethod
    def _extension_as_text(cls, values: Any) -> Any:
        if isinstance(values, dict) and isinstance(values.get("extension"), int):
            values = {**values, "extension": str(values["extension"])}
        if isinstance(values, dict) and isinstance(values.get("choices"), dict):
            # YAML reads an unquoted key as an int: `1: confirmed`
            values = {**values, "choices": {str(k): v for k, v in values["choices"].items()}}
        return values

    @model_validator(mode="after")
    def _one_target(self) -> TemplateSpec:
        if (self.phone is None) == (self.extension is None):
            raise ValueError("set exactly one of phone and extension")
        if any(not _TOPIC_WORD.match(word) for word in self.event.split(".")):
            raise ValueError("event: a topic pattern has no white space")
        return self


class TemplatesFile(BaseModel):
    """The whole templates file."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    version: Literal[1] = Field(description="The file format's version: 1.")
    defaults: Options = Field(
        default_factory=Options,
        description="Applied to every template unless the template sets the key.",
    )
    templates: list[TemplateSpec] = Field(
        min_length=1,
        description="Tried in file order: the first that matches and whose `when` holds wins.",
    )
