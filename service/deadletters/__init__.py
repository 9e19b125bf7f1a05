"""Dead letters: reading `<queue>.dead` without disturbing it, replaying and purging it."""

from __future__ import annotations

from .command import add_parser
from .letters import DeadLetter, Selection
from .passes import Report, run

__all__ = ["DeadLetter", "Report", "Selection", "add_parser", "run"]
