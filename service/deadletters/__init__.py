"""Dead letters: reading `<queue>.dead` without disturbing it, replaying and purging it.

passes.py   one pass of a `dead-letters` command: connect, take, act, settle, report
queue.py    the pass over `<queue>.dead`: what it does not take stays where it was
letters.py  what a dead letter says about itself, and which ones a command selects
"""

from __future__ import annotations

from .letters import DeadLetter, Selection
from .passes import Report, run

__all__ = ["DeadLetter", "Report", "Selection", "run"]
