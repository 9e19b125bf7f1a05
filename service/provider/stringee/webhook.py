"""Stringee's callbacks at `POST /webhooks/stringee/<account>/<token>` (the webhook listener checks
the token and the size, then hands the body here). A signature that does not verify is 403 and
changes nothing; a key press is kept until the call's `ended` event publishes the one, final
result; the input callback is answered with the actions Stringee plays next (`[]`, or a short
`talk` when the template sets `thanks:`)."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Protocol
from urllib.parse import unquote

import orjson

from ...store import Store
from ...templates import Templates
from ..records import CallRecord, InvalidRecord
from .account import StringeeAccount
from .callout import CALLBACK_PATH
from .keys import PressedKeys, pressed_keys
from .records import KeysPressed, parse, signed

log = logging.getLogger("autocall.webhooks")
JSON = "application/json"


@dataclass(frozen=True, slots=True)
class Reply:
    """The answer to one callback, and its `autocall_webhooks_total` outcome."""

    status: int
    body: bytes
    outcome: str
    content_type: str = "text/plain"


class _Call(Protocol):
    @property
    def template(self) -> str: ...


class _Calls(Protocol):
    async def call(self, autocall_id: str) -> _Call | None: ...


class Sink(Protocol):
    """The result side (results.pipeline.Results): the accepted calls, and one final result
    per call record."""

    @property
    def store(self) -> _Calls: ...

    async def final(self, record: CallRecord, source: str) -> str: ...


def split(path: str) -> tuple[str, str] | None:
    """(account, token) of a callback path; None for any other path."""
    prefix = CALLBACK_PATH + "/"
    if not path.startswith(prefix):
        return None
    account, slash, token = path[len(prefix) :].partition("/")
    if not account or not slash or not token or "/" in token:
        return None
    return unquote(account), token


class StringeeWebhook:
    """Reads one Stringee callback for one of the accounts."""

    def __init__(
        self,
        accounts: Mapping[str, StringeeAccount],
        sink: Sink,
        keys: PressedKeys,
        thanks: Mapping[str, str] | None = None,
    ) -> None:
        self._accounts = dict(accounts)
        self._sink = sink
        self._keys = keys
        self._thanks = dict(thanks or {})  # template name -> its `thanks:` text

    def __repr__(self) -> str:
        return f"StringeeWebhook(accounts={sorted(self._accounts)})"

    async def take(self, account_name: str, signature: str | None, body: bytes) -> Reply:
        """The reply to `body`, posted for `account_name` with `signature`. Raises only when
        the store or the broker does not answer (the listener answers 503: Stringee resends)."""
        account = self._accounts.get(account_name)
        if account is None:
            return Reply(404, b"not found\n", "unauthorized")
        secret = account.signing_secret
        if secret is not None and not signed(body, signature, secret.get_secret_value()):
            return Reply(403, b"forbidden\n", "unauthorized")
        try:
            callback = parse(orjson.loads(body))
        except (orjson.JSONDecodeError, InvalidRecord):
            return Reply(400, b"a Stringee callback, please\n", "invalid")
        if isinstance(callback, KeysPressed):
            return await self._pressed(callback, account)
        if not callback.ended:
            return Reply(200, b"ok\n", "live")
        keys = await self._keys.get(callback.call_id) if callback.answer_duration > 0 else None
        taken = await self._sink.final(callback.record(keys), "webhook")
        return Reply(200, b"ok\n", taken)

    async def _pressed(self, pressed: KeysPressed, account: StringeeAccount) -> Reply:
        """Keep the keys for the call's `ended` event; answer with what Stringee says next."""
        if pressed.keys:
            await self._keys.put(pressed.call_id, pressed.keys)
        actions: list[dict[str, object]] = []
        call = await self._sink.store.call(pressed.call_id) if self._thanks else None
        text = self._thanks.get(call.template) if call is not None else None
        if text and pressed.keys:
            talk: dict[str, object] = {"action": "talk", "text": text}
            if (voice := account.voices.get("default")) is not None:
                talk["voice"] = voice
            actions.append(talk)
        return Reply(200, orjson.dumps(actions), "live", JSON)


def stringee_webhook(
    accounts: Mapping[str, StringeeAccount],
    sink: Sink,
    store: Store,
    templates: Templates,
    prefix: str,
) -> StringeeWebhook:
    """The handler the listener takes as `stringee=`: the Stringee accounts by name, the result
    side (`Results`), the store the pressed keys live beside (`prefix` as the result store's),
    and each template's `thanks:`."""
    thanks = {t.name: t.spec.thanks for t in templates if t.spec.thanks}
    return StringeeWebhook(accounts, sink, pressed_keys(store, prefix), thanks)
