"""autocall-bridge's commands, one module each beside the dispatcher.

main.py         the argument parser; each command's module adds its own
args.py         what the commands share: reading an input, K=V headers, a time, the usage code
run.py          run: the service
check.py        check: validate a templates file
render.py       render: the dry run, one event's decision as JSON
sandbox.py      sandbox: a local stand-in for the provider's API
publish.py      publish: one event to the input exchange, confirmed
webhook.py      webhook register | list | remove
deadletters.py  dead-letters list | replay | purge
suppress.py     suppress add | remove | list | import
doctor.py       doctor: the account, webhooks, history, templates, broker and store, checked
results.py      results recent: the kept webhook bodies and what was read from each
schemas.py      schemas: write the JSON Schemas and the AsyncAPI document
"""

from __future__ import annotations

from .main import main

__all__ = ["main"]
