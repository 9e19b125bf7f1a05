"""Dead letters: reading `<queue>.dead` without disturbing it, replaying and purging it."""

from __future__ import annotations

from .letters import DeadLetter, Selection
from .passes import Report, run

__all__ = ["DeadLetter", "Report", "Selection", "run"]
