"""The suppression list: numbers never to call, changed by control events and `suppress`.

changes.py   what a change is, read from a control event; numbers as the list holds them
control.py   control events in the data path, and the list's size gauge
"""

from __future__ import annotations

from .changes import ADD, CONTROL_PATTERN, CONTROL_TYPES, REMOVE, Change, change_of, listed_phone
from .control import Control

__all__ = [
    "ADD",
    "CONTROL_PATTERN",
    "CONTROL_TYPES",
    "REMOVE",
    "Change",
    "Control",
    "change_of",
    "listed_phone",
]
