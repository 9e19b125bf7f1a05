"""The call as rendered, provider-neutral: what providers other than OMICall build requests from."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal


@dataclass(slots=True)
class Step:
    """A rendered step: `say` and its text, or `recording` / `ivr_menu` and its id."""

    kind: Literal["say", "recording", "ivr_menu"]
    value: str


@dataclass(slots=True)
class Script:
    """The call provider-neutral, for providers other than OMICall (whose body is `json`)."""

    steps: tuple[Step, ...]
    idempotency_key: str
    template: str
    phone: str | None  # digits, country code first (84912345678); None for an extension
    voice: str | None = None
    speed: int | None = None
