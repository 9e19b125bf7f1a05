"""Where each account's results come from, besides the webhook: an OMICall account's call history,
a Stringee account's call log; and Stringee's callbacks, for the listener (CONTRACT.md §13)."""

from __future__ import annotations

from collections.abc import Mapping
from contextlib import AsyncExitStack
from typing import Any

from ..provider.omicall.history import History, Version
from ..provider.stringee.account import StringeeAccount
from ..provider.stringee.calllog import CallLog
from ..provider.stringee.client import StringeeClient
from ..provider.stringee.keys import pressed_keys
from ..provider.stringee.webhook import StringeeWebhook, stringee_webhook
from ..store import Store
from ..templates import Templates
from .metrics import ResultMetrics
from .pipeline import Results

Source = History | CallLog
__all__ = ["Source", "StringeeWebhook", "sources", "stringee_callbacks"]


def sources(
    stack: AsyncExitStack,
    clients: Mapping[str, Any],
    metrics: ResultMetrics,
    *,
    version: Version,
    store: Store,
    prefix: str,
) -> dict[str, Source]:
    """Each account's own history (OMICall) or call log (Stringee), by account."""
    found: dict[str, Source] = {}
    keys = pressed_keys(store, prefix)
    for name, client in clients.items():
        if isinstance(client, StringeeClient):
            found[name] = CallLog(client, keys=keys)
        else:
            history = found[name] = History(client, metrics, version=version)
            stack.push_async_callback(history.close)
    return found


def stringee_callbacks(
    clients: Mapping[str, Any], results: Results, store: Store, templates: Templates, prefix: str
) -> StringeeWebhook | None:
    """The listener's handler of Stringee's callbacks; None without a Stringee account."""
    accounts: dict[str, StringeeAccount] = {
        name: client.account
        for name, client in clients.items()
        if isinstance(client, StringeeClient)
    }
    if not accounts:
        return None
    return stringee_webhook(accounts, results, store, templates, prefix)
