"""The templates file: YAML read into pydantic models, compiled once, matched to events."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import time
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from jinja2 import Template as Jinja
from jinja2 import TemplateSyntaxError
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    WithJsonSchema,
    model_validator,
)

from .errors import ConfigError
from .filters import Environment, PhoneFormat, environment
from .settings import parse_duration

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
    on_exhausted: Literal["fail", "hold"] | None = Field(
        None,
        description="On balance_is_not_enough or limit_word: `fail` the event, or `hold` "
        "(stop consuming until a probe call succeeds). Built-in default: fail.",
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
    idempotency_key: str | None = Field(
        None, description="Jinja2: one call per key. Default: the event id."
    )
    script: list[Step] = Field(min_length=1, description="What the call plays, in order.")

    @model_validator(mode="before")
    @classmethod
    def _extension_as_text(cls, values: Any) -> Any:
        if isinstance(values, dict) and isinstance(values.get("extension"), int):
            values = {**values, "extension": str(values["extension"])}
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


@dataclass(frozen=True, slots=True)
class Template:
    """A template compiled for rendering: its options merged with the defaults."""

    spec: TemplateSpec
    options: Options
    pattern: tuple[str, ...]
    fields: dict[str, Jinja]  # phone | extension | campaign | idempotency_key | script[i].say
    when: Jinja | None  # renders "1" when the condition holds

    @property
    def name(self) -> str:
        return self.spec.name

    def matches(self, event_type: str) -> bool:
        """Whether the AMQP topic pattern `event` matches the event's type."""
        return topic_matches(self.pattern, tuple(event_type.split(".")))


class Templates:
    """The compiled templates, in file order."""

    def __init__(
        self, templates: list[Template], source: str = "", env_globals: dict[str, Any] | None = None
    ) -> None:
        self._templates = templates
        self.source = source
        # Jinja's globals (range, dict, …), flattened once: a Template's own are a ChainMap that
        # every render would otherwise copy.
        self.globals = env_globals if env_globals is not None else dict(environment().globals)

    def __iter__(self) -> Iterator[Template]:
        return iter(self._templates)

    def __len__(self) -> int:
        return len(self._templates)

    def names(self) -> list[str]:
        return [template.name for template in self._templates]

    def patterns(self) -> list[str]:
        """The distinct `event` patterns: the queue's bindings."""
        return list(dict.fromkeys(template.spec.event for template in self._templates))

    def windows(self) -> list[CallWindow]:
        """The distinct call windows: each gets a delay queue."""
        windows = (t.options.call_window for t in self._templates if t.options.call_window)
        return list(dict.fromkeys(windows))

    def __repr__(self) -> str:
        return f"Templates({self.names()!r}, source={self.source!r})"


def topic_matches(pattern: tuple[str, ...], words: tuple[str, ...]) -> bool:
    """AMQP topic matching: `*` is one word, `#` zero or more. Linear in both lengths."""
    # reachable[j]: the pattern so far can match the first j words
    reachable = [True] + [False] * len(words)
    for word in pattern:
        if word == "#":
            for j in range(1, len(words) + 1):
                reachable[j] = reachable[j] or reachable[j - 1]
        else:
            for j in range(len(words), 0, -1):
                reachable[j] = reachable[j - 1] and word in ("*", words[j - 1])
            reachable[0] = False
    return reachable[-1]


def load(path: Path | str) -> Templates:
    """The compiled templates of a file; ConfigError with one line per problem otherwise."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError([f"{path}: cannot read: {exc}"]) from None
    return parse(text, str(path))


def parse(text: str, source: str = "templates") -> Templates:
    """The compiled templates of a YAML text."""
    try:
        document = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{source}:{mark.line + 1}:{mark.column + 1}" if mark else source
        raise ConfigError([f"{where}: not valid YAML: {getattr(exc, 'problem', exc)}"]) from None
    problems: list[str] = []
    specs: list[TemplateSpec] = []
    try:
        model = TemplatesFile.model_validate(document)
        specs = list(model.templates)
    except ValidationError as exc:
        problems += [_where(document, error) for error in exc.errors()]
        model = None
        specs = _valid_templates(document)  # still check those that parse, for a full report
    defaults = model.defaults if model else _valid_defaults(document)
    env = environment()
    compiled = [_compile(env, spec, defaults, problems) for spec in specs]
    problems += _duplicate_names(specs)
    if problems:
        raise ConfigError(list(dict.fromkeys(problems)))
    return Templates(compiled, source, dict(env.globals))


def _valid_templates(document: Any) -> list[TemplateSpec]:
    entries = document.get("templates") if isinstance(document, dict) else None
    specs = []
    for entry in entries if isinstance(entries, list) else []:
        try:
            specs.append(TemplateSpec.model_validate(entry))
        except ValidationError:
            continue  # already reported
    return specs


def _valid_defaults(document: Any) -> Options:
    """The defaults' valid keys (the others are already reported), so as not to report more."""
    raw = document.get("defaults") if isinstance(document, dict) else None
    if not isinstance(raw, dict):
        return Options()
    try:
        return Options.model_validate(raw)
    except ValidationError as exc:
        bad = {error["loc"][0] for error in exc.errors() if error["loc"]}
    try:
        return Options.model_validate({k: v for k, v in raw.items() if k not in bad})
    except ValidationError:
        return Options()


def _compile(
    env: Environment, spec: TemplateSpec, defaults: Options, problems: list[str]
) -> Template:
    # A key the template sets, even to null, overrides the default: `call_window: null` unsets it.
    merged = {**defaults.model_dump(exclude_none=True), **spec.model_dump(exclude_unset=True)}
    options = Options.model_validate({k: v for k, v in merged.items() if k in Options.model_fields})
    if spec.extension is not None and options.cid is None:
        problems.append(f"{spec.name}: cid: an extension template needs one (its own or defaults')")
    sources = {
        name: getattr(spec, name)
        for name in ("phone", "extension", "campaign", "idempotency_key")
        if getattr(spec, name) is not None
    }
    sources |= {f"script[{i}].say": step.say for i, step in enumerate(spec.script) if step.say}
    fields: dict[str, Jinja] = {}
    for field, source in sources.items():
        try:
            fields[field] = env.from_string(source)
        except TemplateSyntaxError as exc:
            problems.append(f"{spec.name}: {field}: {exc.message} (line {exc.lineno})")
    when = None
    if spec.when is not None:
        try:
            env.compile_expression(spec.when)  # one expression, or its syntax error
            # Rendered like the other fields, with one shared context (see render._render).
            when = env.from_string("{% if " + spec.when + " %}1{% endif %}")
        except TemplateSyntaxError as exc:
            problems.append(f"{spec.name}: when: {exc.message}")
    pattern = tuple(spec.event.split("."))
    return Template(spec=spec, options=options, pattern=pattern, fields=fields, when=when)


def _duplicate_names(specs: list[TemplateSpec]) -> list[str]:
    seen: set[str] = set()
    problems = []
    for spec in specs:
        if spec.name in seen:
            problems.append(f"{spec.name}: name: used by more than one template")
        seen.add(spec.name)
    return problems


def _where(document: Any, error: Any) -> str:
    """'order_confirmation: script[2].say: …' from a pydantic error location."""
    loc = list(error["loc"])
    where = "file"
    if len(loc) >= 2 and loc[0] == "templates" and isinstance(loc[1], int):
        where = _template_name(document, loc[1])
        loc = loc[2:]
    elif loc:
        where, loc = str(loc[0]), loc[1:]
    path = "".join(f"[{part}]" if isinstance(part, int) else f".{part}" for part in loc)
    path = path.lstrip(".")
    message = str(error["msg"]).removeprefix("Value error, ")
    if error["type"] == "extra_forbidden":
        message = "unknown key"
    return f"{where}: {path}: {message}" if path else f"{where}: {message}"


def _template_name(document: Any, index: int) -> str:
    try:
        name = document["templates"][index].get("name")
    except (TypeError, KeyError, IndexError, AttributeError):
        name = None
    return str(name) if isinstance(name, str) and name else f"templates[{index}]"
