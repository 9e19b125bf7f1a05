"""decide(templates, event, now): what to do with an event. Pure: no I/O, no clock of its own."""

from __future__ import annotations

import hashlib
import re
import unicodedata
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal

from jinja2 import Template as Jinja

from .errors import AutocallError, Expired, InvalidPhone, QuotaExceeded, TemplateError
from .events import Event
from .script import Script, Step
from .settings import DEFAULT_ACCOUNT
from .templates import CallWindow, Template, Templates
from .templates.direct import render_direct
from .templates.filters import LOCAL_TZ, PHONE_FORMAT_VAR, mask, mask_digits, normalise_phone

SESSION_LIMIT = 300  # TTS characters per call (the provider's rule)
MAX_KEY_LENGTH = 200
PHONE_PATH = "/api/auto_call/execute_by_phone"
EXTENSION_PATH = "/api/auto_call/execute_by_extension"
_OPTIONAL = ("num_retry", "num_per_call", "distance_per_call", "distance_retry")
_FIELDS = ("phone", "extension", "campaign", "idempotency_key", "account")
_EXTENSION = re.compile(r"^[0-9A-Za-z_.-]{1,32}$")  # an internal line's number or name


@dataclass(slots=True)
class Request:
    """One request to the provider: everything in the JSON body."""

    path: str
    json: dict[str, Any]
    script: Script | None = None  # the same call, provider-neutral (script.py)

    @property
    def endpoint(self) -> str:
        return self.path.rsplit("/", 1)[-1]


@dataclass(slots=True)
class Call:
    """Call the provider with `request`, once per `idempotency_key`."""

    event: Event
    template: Template
    request: Request
    idempotency_key: str
    tts_chars: int
    phone: str | None  # masked
    customer: str | None = None  # the number in E.164: the suppression list's and limit's key
    account: str = DEFAULT_ACCOUNT  # the account that calls first (CONTRACT.md §13)

    @property
    def holds(self) -> bool:
        """Whether exhausting the balance or the day's budget holds events instead of failing."""
        return self.template.options.on_exhausted == "hold"


@dataclass(slots=True)
class Skip:
    """No call: no template's `event` matched, or no `when` held."""

    event: Event
    reason: Literal["no_template", "condition_false"]


@dataclass(slots=True)
class Fail:
    """No call: the event cannot be called."""

    event: Event
    error: AutocallError
    template: str | None = None


@dataclass(slots=True)
class Defer:
    """Not now: outside the template's call window."""

    event: Event
    template: Template
    until: datetime
    window: CallWindow
    reason: str = "call_window"


Decision = Call | Skip | Fail | Defer


def decide(templates: Templates, event: Event, now: datetime) -> Decision:
    """The decision for `event` at `now`, in the order of CONTRACT.md §4."""
    matching = [template for template in templates if template.matches(event.type)]
    if not matching:
        return Skip(event, "no_template")
    context = _context(templates, event, now)
    for template in matching:
        try:
            if _holds(template, context):
                return _plan(template, event, context, now)
        except AutocallError as exc:
            return Fail(event, exc, template.name)
    return Skip(event, "condition_false")


def as_json(decision: Decision) -> dict[str, Any]:
    """The decision as `render` prints it (CONTRACT.md §6)."""
    event = decision.event.identity
    if isinstance(decision, Call):
        request = {"method": "POST", "path": decision.request.path, "json": decision.request.json}
        chosen = {"account": decision.account} if "account" in decision.template.fields else {}
        return {
            "decision": "call",
            "template": decision.template.name,
            "event": event,
            "request": request,
            "tts_chars": decision.tts_chars,
            "idempotency_key": decision.idempotency_key,
        } | chosen
    if isinstance(decision, Skip):
        return {"decision": "skip", "reason": decision.reason, "event": event}
    if isinstance(decision, Fail):
        error = {"code": decision.error.code, "message": decision.error.message}
        return {"decision": "fail", "template": decision.template, "error": error, "event": event}
    return {
        "decision": "defer",
        "template": decision.template.name,
        "until": decision.until.isoformat(),
        "reason": decision.reason,
        "event": event,
    }


def _holds(template: Template, context: dict[str, Any]) -> bool:
    return template.when is None or _run(template.when, "when", context) == "1"


def _plan(template: Template, event: Event, context: dict[str, Any], now: datetime) -> Decision:
    options = template.options
    if options.expires_after is not None and event.time is not None:
        age = now - event.time
        if age > timedelta(seconds=options.expires_after):
            raise Expired(
                f"the event is {_hours(age)} old; the template allows "
                f"{_hours(options.expires_after)}"
            )
    context = {**context, PHONE_FORMAT_VAR: options.phone_format or "national"}
    # Every field renders before the phone is checked: a template_error comes first (§4).
    says = {
        i: _say(template, i, context) for i, step in enumerate(template.spec.script) if step.say
    }
    dialplans, variables, steps = _script(template, says)
    texts = _texts(template, context)
    key = _key(event, texts)
    phone = _phone(template, texts)
    tts_chars = sum(len(text) for text in says.values())
    if tts_chars > SESSION_LIMIT:
        raise QuotaExceeded(
            f"the script has {tts_chars} TTS characters; a call allows {SESSION_LIMIT}",
            code="limit_word_session",
        )
    if options.call_window and not options.call_window.opens(now.astimezone(LOCAL_TZ).time()):
        until = _next_opening(options.call_window, now)
        return Defer(event, template, until, options.call_window)
    request = _request(template, texts, (dialplans, variables), phone)
    masked, customer = (mask(phone), normalise_phone(phone, "e164")) if phone else (None, None)
    digits = customer[1:] if customer else None
    request.script = Script(steps, key, template.name, digits, options.voice, options.speed)
    account = texts.get("account") or DEFAULT_ACCOUNT
    return Call(event, template, request, key, tts_chars, masked, customer, account)


def _request(
    template: Template,
    texts: dict[str, str],
    script: tuple[list[dict[str, str]], list[str]],
    phone: str | None,
) -> Request:
    options = template.options
    dialplans, variables = script
    if phone is None:
        extension = texts["extension"]
        body = {"cid": options.cid, "template_dialplans": dialplans, "variables": variables}
        return Request(EXTENSION_PATH, body | {"extensions": [extension]})
    json: dict[str, Any] = {}
    if "campaign" in texts:
        json["name"] = " ".join(texts["campaign"].split())
    for name in ("voice", "speed", "cid"):
        if (value := getattr(options, name)) is not None:
            json[name] = value
    json |= {"template_dialplans": dialplans, "variables": variables, "phone_number_list": [phone]}
    json |= {name: value for name in _OPTIONAL if (value := getattr(options, name)) is not None}
    return Request(PHONE_PATH, json)


def _script(
    template: Template, says: dict[int, str]
) -> tuple[list[Any], list[str], tuple[Step, ...]]:
    """`template_dialplans`, `variables` and the neutral steps; a say rendered empty is dropped."""
    dialplans: list[dict[str, str]] = []
    variables: list[str] = []
    steps: list[Step] = []
    for index, step in enumerate(template.spec.script):
        if step.recording:
            dialplans.append({"target_type": "Recording", "target": step.recording})
            steps.append(Step("recording", step.recording))
        elif step.ivr_menu:
            dialplans.append({"target_type": "Ivr_menu", "target": step.ivr_menu})
            steps.append(Step("ivr_menu", step.ivr_menu))
        elif text := says.get(index):
            dialplans.append({"target_type": "Text_variable"})
            variables.append(text)
            steps.append(Step("say", text))
    if not dialplans:
        raise TemplateError("script: every step renders empty")
    return dialplans, variables, tuple(steps)


def _say(template: Template, index: int, context: dict[str, Any]) -> str:
    text = _render(template, f"script[{index}].say", context)
    return unicodedata.normalize("NFC", " ".join(text.split()))


def _texts(template: Template, context: dict[str, Any]) -> dict[str, str]:
    """The phone, extension, campaign and idempotency_key the template sets, rendered."""
    texts = {
        field: _render(template, field, context).strip()
        for field in _FIELDS
        if field in template.fields
    }
    for field in ("extension", "idempotency_key"):
        if field in texts and not texts[field]:
            raise TemplateError(f"{field}: renders empty")
    if "extension" in texts and not _EXTENSION.match(texts["extension"]):
        raise TemplateError(f"extension: not an extension: {texts['extension'][:40]!r}")
    return texts


def _phone(template: Template, texts: dict[str, str]) -> str | None:
    if "phone" not in texts:
        return None
    return normalise_phone(texts["phone"], template.options.phone_format or "national")


def _key(event: Event, texts: dict[str, str]) -> str:
    key = texts.get("idempotency_key") or event.id
    if len(key) > MAX_KEY_LENGTH:  # hostile data must not make unbounded store keys
        return "sha256:" + hashlib.sha256(key.encode()).hexdigest()
    return key


def _render(template: Template, field: str, context: dict[str, Any]) -> str:
    return _run(template.fields[field], field, context)


def _run(compiled: Jinja, field: str, context: dict[str, Any]) -> str:
    """The field rendered in `context` (which holds the globals: templates.direct)."""
    try:
        return render_direct(compiled, context)
    except InvalidPhone:
        raise
    except Exception as exc:  # a template is the operator's code: its failures are its own
        raise TemplateError(f"{field}: {_describe(exc)}") from exc


def _context(templates: Templates, event: Event, now: datetime) -> dict[str, Any]:
    return {
        **templates.globals,
        "data": event.data,
        "event": {
            "id": event.id,
            "type": event.type,
            "source": event.source,
            "time": event.time,
            "headers": event.headers,
        },
        "now": now.astimezone(LOCAL_TZ),
    }


def _next_opening(window: CallWindow, now: datetime) -> datetime:
    local = now.astimezone(LOCAL_TZ)
    opening = local.replace(
        hour=window.start.hour, minute=window.start.minute, second=0, microsecond=0
    )
    return opening if opening > local else opening + timedelta(days=1)


def _describe(exc: Exception) -> str:
    message = exc.message if isinstance(exc, AutocallError) else str(exc)
    return mask_digits(message or type(exc).__name__)[:300]


def _hours(value: timedelta | float) -> str:
    seconds = value.total_seconds() if isinstance(value, timedelta) else value
    return f"{seconds / 3600:.1f} h" if seconds >= 3600 else f"{seconds / 60:.0f} min"
