"""What to do with a delivery once processed; settle.Settler carries each out, and only it acks."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ..events import Event
from .outcomes import Outcome


@dataclass(slots=True)
class Publish:
    """Publish the outcome (and dead-letter a failure), then ack."""

    outcome: Outcome


@dataclass(slots=True)
class Delay:
    """Park a copy in a delay queue (a retry tier or a call window), then ack."""

    queue: str
    delay_ms: int
    why: str  # for the log line: "call_window 08:00-21:00" or the retried failure's code
    event: Event
    headers: dict[str, Any] = field(default_factory=dict)
    retry: bool = False


@dataclass(slots=True)
class PutBack:
    """Put a copy at the back of the queue, then ack; `holds`: and hold consuming for `reason`.

    A copy rather than a requeue: long holds must not count towards the delivery limit."""

    reason: str
    holds: bool = False


@dataclass(slots=True)
class Requeue:
    """Give the delivery back to the broker unsettled (stopping, or a bug while processing)."""


Action = Publish | Delay | PutBack | Requeue
