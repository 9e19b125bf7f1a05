"""autocall-bridge's commands, one module each beside the dispatcher.

main.py         the argument parser and run | check | render | sandbox | schemas
publish.py      publish: one event to the input exchange, confirmed
webhook.py      webhook register | list | remove
deadletters.py  dead-letters list | replay | purge
suppress.py     suppress add | remove | list | import
doctor.py       doctor: the account, webhooks, history, templates, broker and store, checked
"""

from __future__ import annotations

from .main import main

__all__ = ["main"]
