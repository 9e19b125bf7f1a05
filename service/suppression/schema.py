"""The control events' JSON Schema: a CloudEvent that changes the suppression list."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from .changes import MAX_REASON


class SuppressionData(BaseModel):
    """What to change: the number, and for `add` why and until when."""

    model_config = ConfigDict(extra="allow")
    phone: str = Field(
        min_length=1,
        examples=["0912345678", "+84912345678"],
        description="A Vietnamese number in any form; it is normalised (E.164) before it is "
        "stored or compared. Not a valid number: the event fails with `invalid_phone`.",
    )
    reason: str | None = Field(None, max_length=MAX_REASON, description="Why (add only).")
    until: str | None = Field(
        None,
        examples=["2027-01-01T00:00:00+07:00"],
        description="ISO-8601 (local time without an offset); after it the number is called "
        "again. null: for good. Add only.",
    )


class ControlEvent(BaseModel):
    """A CloudEvent (structured mode) on the input exchange, routing key = its type; answered
    with an `accepted` outcome once applied, `failed` (`invalid_phone`, `invalid_event`)
    otherwise."""

    model_config = ConfigDict(extra="allow")
    specversion: Literal["1.0"]
    id: str = Field(min_length=1)
    type: Literal["autocall.suppression.add", "autocall.suppression.remove"]
    source: str | None = None
    time: str | None = None
    data: SuppressionData
