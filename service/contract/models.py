"""The public messages as pydantic models: events, outcomes, decisions, results (CONTRACT.md)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from ..accounts.models import NAME_PATTERN as ACCOUNT_NAME
from ..events import Status

# `format: date-time` only annotates by default; the pattern makes "with an offset" checkable.
_OFFSET_TIME = r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})$"
LocalTime = Annotated[AwareDatetime, Field(json_schema_extra={"pattern": _OFFSET_TIME})]


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


class EventIdentity(BaseModel):
    """The event an outcome or decision is about; `type` is null if it could not be decoded."""

    model_config = ConfigDict(extra="forbid")
    id: str
    type: str | None
    source: str | None


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


class ProviderRequest(BaseModel):
    """The request the call would send: everything in the JSON body (CONTRACT.md §5)."""

    model_config = ConfigDict(extra="forbid")
    method: Literal["POST"]
    path: Literal["/api/auto_call/execute_by_phone", "/api/auto_call/execute_by_extension"]
    body: dict[str, Any] = Field(
        alias="json",
        description="The JSON body, as sent: template_dialplans, variables, and phone_number_list "
        "(with name, voice, speed, cid, num_retry, … when set) or extensions and cid.",
    )


class DecisionError(BaseModel):
    """Why the event would fail: the outcome's code and message (`render` omits `retryable`)."""

    model_config = ConfigDict(extra="forbid")
    code: str = Field(examples=["invalid_phone", "template_error", "expired"])
    message: str


class CallDecision(BaseModel):
    """Call the provider."""

    model_config = ConfigDict(extra="forbid")
    decision: Literal["call"]
    template: str
    event: EventIdentity
    request: ProviderRequest
    tts_chars: int = Field(ge=0, le=300, description="TTS characters of the `say` texts.")
    idempotency_key: str
    account: str | None = Field(
        None, description="The account that would call, when the template sets `account:`."
    )


class SkipDecision(BaseModel):
    """No call: no template's `event` matched, or no `when` held."""

    model_config = ConfigDict(extra="forbid")
    decision: Literal["skip"]
    reason: Literal["no_template", "condition_false", "suppressed", "phone_limit"] = Field(
        description="`suppressed` and `phone_limit` only when AUTOCALL_STORE_URL names a shared "
        "store to ask (redis://…)."
    )
    event: EventIdentity


class FailDecision(BaseModel):
    """No call: the event fails; `template` is null before one is chosen."""

    model_config = ConfigDict(extra="forbid")
    decision: Literal["fail"]
    template: str | None
    error: DecisionError
    event: EventIdentity


class DeferDecision(BaseModel):
    """Not now: outside the template's call window, the event waits until it opens."""

    model_config = ConfigDict(extra="forbid")
    decision: Literal["defer"]
    template: str
    until: LocalTime
    reason: Literal["call_window"]
    event: EventIdentity


Decision = Annotated[
    CallDecision | SkipDecision | FailDecision | DeferDecision, Field(discriminator="decision")
]


class ResultEvent(BaseModel):
    """service.results.calls.ResultEvent as published: what one attempt of a call came to."""

    model_config = ConfigDict(extra="forbid")
    status: Literal["result"]
    result: Literal["answered", "busy", "no_answer", "failed", "unknown"] = Field(
        description="Routing key autocall.result.<result>.<choice or none>; AMQP type "
        "autocall.result."
    )
    final: bool = Field(
        description="The call's last result: answered, its num_retry + 1st attempt, its latest "
        "attempt once its span has ended, or unknown."
    )
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
    attempt: int = Field(
        ge=1,
        description="The rank of the attempt's transaction among the call's, by start: 1 for "
        "the first call, 2 for the first redial, … (never the record's send_num_retry).",
    )
    answer_seconds: int | None
    billed_seconds: int | None
    ended_by: str | None = Field(examples=["end_call_by_customer"])
    recording_url: str | None
    occurred_at: LocalTime = Field(description="When the attempt started, local time.")
    source: Literal["webhook", "poll"]
    account: str | None = Field(
        None, pattern=ACCOUNT_NAME, description="The account that took the call (§13)."
    )
