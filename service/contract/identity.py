"""What outcomes, results and decisions share: the event's identity, a local time."""

from __future__ import annotations

from typing import Annotated

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

# `format: date-time` only annotates by default; the pattern makes "with an offset" checkable.
_OFFSET_TIME = r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})$"
LocalTime = Annotated[AwareDatetime, Field(json_schema_extra={"pattern": _OFFSET_TIME})]


class EventIdentity(BaseModel):
    """The event an outcome or decision is about; `type` is null if it could not be decoded."""

    model_config = ConfigDict(extra="forbid")
    id: str
    type: str | None
    source: str | None
