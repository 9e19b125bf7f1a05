"""JSON Schemas of the templates file, events, outcomes and decisions, and the AsyncAPI document."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, TypeAdapter
from pydantic.json_schema import GenerateJsonSchema

from ..accounts.models import NAME_PATTERN as ACCOUNT_NAME
from ..events import Status
from ..suppression.schema import ControlEvent
from ..templates import TemplatesFile
from . import asyncapi
from .decision import Decision
from .identity import EventIdentity, LocalTime

DRAFT = "https://json-schema.org/draft/2020-12/schema"


class CloudEvent(BaseModel):
    """A CloudEvents 1.0 event in structured mode (content type application/cloudevents+json,
    or a JSON body with `specversion`). Binary mode carries the same attributes in AMQP headers
    `cloudEvents_<attr>` (or `cloudEvents:<attr>`) with `data` as the body; plain JSON takes
    them from the AMQP properties `message_id`, `type` (else the routing key) and `timestamp`."""

    model_config = ConfigDict(extra="allow")  # extension attributes are kept and ignored

    specversion: str | None = Field(None, examples=["1.0"], description="CloudEvents version.")
    id: str | None = Field(
        None, description="Unique per event. Default: the AMQP message_id, else a hash."
    )
    type: str = Field(
        min_length=1, max_length=255, description="Event type: what template `event`s match."
    )
    source: str | None = Field(None, description="Where the event happened (a URI-reference).")
    time: datetime | None = Field(
        None, description="RFC 3339; without an offset it is read as UTC."
    )
    datacontenttype: str | None = Field(None, examples=["application/json"])
    data: Any = Field(None, description="The payload: templates see it as `data`.")
    data_base64: str | None = Field(
        None,
        description="Base64 payload, read when `data` is absent; JSON inside is parsed.",
        json_schema_extra={"contentEncoding": "base64"},
    )


class FailoverHop(BaseModel):
    """An account left for the next one, and why (CONTRACT.md §13)."""

    model_config = ConfigDict(extra="forbid")
    account: str = Field(pattern=ACCOUNT_NAME)
    code: str = Field(examples=["balance_is_not_enough", "provider_unavailable"])


class OutcomeError(BaseModel):
    """Why an event failed: the provider's code or the service's (CONTRACT.md §7)."""

    model_config = ConfigDict(extra="forbid")
    code: str = Field(examples=["invalid_phone", "limit_word", "outcome_unknown"])
    message: str = Field(description="Digit runs of seven or more are masked.")
    retryable: bool


def _status_rules() -> dict[str, Any]:
    null: dict[str, Any] = {"type": "null"}
    rules = {
        # null for an applied control event (a change to the suppression list): no call
        "accepted": {"autocall_id": {"type": ["string", "null"]}, "error": null, "reason": null},
        "failed": {"autocall_id": null, "error": {"type": "object"}, "reason": null},
        "skipped": {"autocall_id": null, "error": null, "reason": {"type": "string"}},
    }
    return {
        "allOf": [
            {"if": {"properties": {"status": {"const": status}}}, "then": {"properties": then}}
            for status, then in rules.items()
        ]
    }


class OutcomeEvent(BaseModel):
    """service.pipeline.outcomes.Outcome as published: every key is present, null when unset."""

    model_config = ConfigDict(extra="forbid", json_schema_extra=_status_rules())
    status: Status = Field(description="Also the routing key and AMQP `type`: autocall.<status>.")
    event: EventIdentity
    template: str | None = Field(description="The template that matched, if any.")
    idempotency_key: str | None = Field(description="The call's key; null if none was planned.")
    autocall_id: str | None = Field(description="The provider's id of an accepted call.")
    attempts: int = Field(ge=0, description="Requests made to the provider.")
    phone: str | None = Field(
        examples=["091****678"],
        description="The number, masked: first and last three digits.",
        json_schema_extra={"pattern": r"^([0-9]{3}\*+[0-9]{3}|\*+)$"},
    )
    error: OutcomeError | None
    reason: (
        Literal[
            "no_template",
            "condition_false",
            "suppressed",
            "phone_limit",
            "duplicate",
            "do_not_call",
        ]
        | None
    )
    occurred_at: LocalTime = Field(description="Local time (Asia/Ho_Chi_Minh), to the second.")
    account: str | None = Field(
        None,
        pattern=ACCOUNT_NAME,
        description="The account that took the call (or refused it last); present once an "
        "account was tried (CONTRACT.md §13).",
    )
    provider: Literal["omicall", "stringee"] | None = Field(
        None, description="The provider of `account`; present with it."
    )
    failover: list[FailoverHop] | None = Field(
        None, description="The accounts left on the way to `account`, in order; present with it."
    )


class ResultEvent(BaseModel):
    """service.results.calls.ResultEvent as published: what one attempt of a call came to."""

    model_config = ConfigDict(extra="forbid")
    status: Literal["result"]
    result: Literal["answered", "busy", "no_answer", "failed", "unknown"] = Field(
        description="Routing key autocall.result.<result>.<choice or none>; AMQP type "
        "autocall.result."
    )
    final: bool = Field(description="The call's last result: answered, last attempt, or unknown.")
    choice: str | None = Field(
        pattern=r"^[a-z0-9_]+$",
        description="The template's name for `keys`; `other` for keys it does not name.",
    )
    keys: str | None = Field(examples=["1"], description="The digits pressed, if any.")
    event: EventIdentity
    template: str
    idempotency_key: str
    autocall_id: str | None = Field(description="The provider's id of the call.")
    transaction_id: str | None = Field(description="The attempt's id; null for `unknown`.")
    phone: str = Field(
        examples=["090****909"], json_schema_extra={"pattern": r"^([0-9]{3}\*+[0-9]{3}|\*+)$"}
    )
    attempt: int = Field(ge=1, description="1 for the first call, 2 for the first redial, …")
    answer_seconds: int | None
    billed_seconds: int | None
    ended_by: str | None = Field(examples=["end_call_by_customer"])
    recording_url: str | None
    occurred_at: LocalTime = Field(description="When the attempt started, local time.")
    source: Literal["webhook", "poll"]
    account: str | None = Field(
        None, pattern=ACCOUNT_NAME, description="The account that took the call (§13)."
    )


class _Generator(GenerateJsonSchema):
    def field_title_should_be_set(self, schema: Any) -> bool:
        return False  # "Num Retry" from num_retry says nothing the key does not


def documents() -> dict[str, str]:
    """Every file of schemas/, by name: the exact text `write` puts there."""
    schemas = {
        "templates": (
            TemplatesFile.model_json_schema(schema_generator=_Generator),
            "autocall-bridge templates file",
            "The YAML file of AUTOCALL_TEMPLATES (CONTRACT.md §4); `autocall-bridge check` "
            "validates it further (Jinja2 syntax, unique names, an extension's cid).",
        ),
        "event": (
            CloudEvent.model_json_schema(schema_generator=_Generator),
            "autocall-bridge inbound event",
            CloudEvent.__doc__ or "",
        ),
        "control": (
            ControlEvent.model_json_schema(schema_generator=_Generator),
            "autocall-bridge control event",
            ControlEvent.__doc__ or "",
        ),
        "outcome": (
            OutcomeEvent.model_json_schema(schema_generator=_Generator),
            "autocall-bridge outcome event",
            "The body of each outcome on the outcome exchange (CONTRACT.md §7).",
        ),
        "result": (
            ResultEvent.model_json_schema(schema_generator=_Generator),
            "autocall-bridge result event",
            "The body of each call result on the outcome exchange (CONTRACT.md §9).",
        ),
        "decision": (
            TypeAdapter(Decision).json_schema(schema_generator=_Generator),
            "autocall-bridge render decision",
            "What `autocall-bridge render` prints (CONTRACT.md §6): one of four shapes.",
        ),
    }
    texts = {
        f"{name}.schema.json": _pretty_json(_headed(f"{name}.schema.json", *parts))
        for name, parts in schemas.items()
    }
    return texts | {"asyncapi.yaml": _yaml(asyncapi.document())}


def write(directory: Path) -> list[Path]:
    """Writes `documents()` into `directory`; the paths written."""
    directory.mkdir(parents=True, exist_ok=True)
    paths = []
    for name, text in documents().items():
        path = directory / name
        path.write_text(text, encoding="utf-8")
        paths.append(path)
    return paths


def _headed(name: str, schema: dict[str, Any], title: str, description: str) -> dict[str, Any]:
    head = {"$schema": DRAFT, "$id": f"urn:autocall-bridge:schemas:{name}", "title": title}
    body = {key: value for key, value in schema.items() if key not in ("title", "description")}
    return head | {"description": " ".join(description.split())} | body


def _pretty_json(document: dict[str, Any]) -> str:
    """Indented, non-ASCII kept, newline-terminated: a file people read and diff."""
    return json.dumps(document, indent=2, ensure_ascii=False) + "\n"


class _Dumper(yaml.SafeDumper):
    def ignore_aliases(self, data: Any) -> bool:
        return True  # a shared dict is written out again: anchors would puzzle readers


def _yaml(document: dict[str, Any]) -> str:
    return yaml.dump(document, Dumper=_Dumper, sort_keys=False, allow_unicode=True, width=100)
