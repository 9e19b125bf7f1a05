"""Changes to the suppression list: what a control event or the `suppress` command asks for."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from ..errors import InvalidEvent
from ..events import Event
from ..store import Suppression
from ..templates.filters import LOCAL_TZ, mask, normalise_phone

ADD = "autocall.suppression.add"
REMOVE = "autocall.suppression.remove"
CONTROL_TYPES = frozenset({ADD, REMOVE})
CONTROL_PATTERN = "autocall.suppression.*"  # what the service's queue is bound to for them
MAX_REASON = 200


@dataclass(frozen=True, slots=True)
class Change:
    """Put a number on the list (`add`) or take it off."""

    add: bool
    entry: Suppression


def listed_phone(value: Any) -> str:
    """A number as the list holds it: normalised for VN, in E.164 (InvalidPhone otherwise)."""
    return normalise_phone(value, "e164")


def masked(phone: str) -> str:
    """A listed number as logs and outcomes show it: national, masked (091****678)."""
    return mask(normalise_phone(phone))


def change_of(event: Event, now: datetime) -> Change:
    """The change a control event asks for; InvalidEvent or InvalidPhone when it is not one."""
    data = event.data
    if not isinstance(data, Mapping):
        raise InvalidEvent(f"{event.type}: data must be an object with a phone")
    phone = listed_phone(data.get("phone"))
    reason = data.get("reason") or ""
    if not isinstance(reason, str) or len(reason) > MAX_REASON:
        raise InvalidEvent(
            f"{event.type}: reason must be a text of {MAX_REASON} characters at most"
        )
    until = until_of(data.get("until"))
    return Change(event.type == ADD, Suppression(phone, reason, until, now.timestamp()))


def until_of(value: Any) -> float | None:
    """An entry's `until`: an ISO-8601 time (local when it has no offset) or null."""
    if value is None or value == "":
        return None
    try:
        moment = datetime.fromisoformat(value) if isinstance(value, str) else None
    except ValueError:
        moment = None
    if moment is None:
        raise InvalidEvent(f"until: not an ISO-8601 time: {str(value)[:40]!r}")
    return (moment if moment.tzinfo else moment.replace(tzinfo=LOCAL_TZ)).timestamp()
