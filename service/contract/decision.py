"""The decision `render` prints (CONTRACT.md §6), as models for its JSON Schema."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from .identity import EventIdentity, LocalTime


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
