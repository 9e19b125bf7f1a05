"""The suppression list: numbers never to call, changed by control events and `suppress`.

changes.py   what a change is, read from a control event; numbers as the list holds them
schema.py    the control events' JSON Schema

Applied in the data path by pipeline/control.py; by hand through cli/suppress.py.
"""

from __future__ import annotations

from .changes import ADD, CONTROL_PATTERN, CONTROL_TYPES, REMOVE, Change, change_of, listed_phone

__all__ = [
    "ADD",
    "CONTROL_PATTERN",
    "CONTROL_TYPES",
    "REMOVE",
    "Change",
    "change_of",
    "listed_phone",
]
