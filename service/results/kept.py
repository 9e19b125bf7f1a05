"""The webhook bodies the listener keeps (AUTOCALL_WEBHOOK_KEEP, CONTRACT.md §12), so that an
operator sees what a real account sends (`autocall-bridge results recent`): each body with every
phone number masked (any field, any written form) and the query strings of URLs removed, beside
what the service read from it. Nothing else is dropped."""

from __future__ import annotations

import logging
import re
import time
from typing import Any

import orjson

from ..provider.omicall.records import CallRecord, Contact, LiveEvent, Parsed
from ..templates.filters import mask
from .pipeline import Reading
from .store import KEEP_SECONDS, ResultStore

log = logging.getLogger("autocall.webhooks")
MAX_TEXT = 4096  # of a body that is not JSON, the first characters kept
# Vietnamese numbers as people and systems write them: 0…, 84…, +84…, 0084…, (+84)…, with
# spaces, dots or dashes between digits; or the 9 digits of a mobile without its leading 0. Not
# inside a longer run of digits (a timestamp); letters next to one (`phone0987…`) do not hide it.
_PHONE = re.compile(
    r"(?<!\d)(?:(?:\(?(?:\+|00[ .\-]?)?84\)?|0)[ .\-]?(?:\d[ .\-]?){8,9}\d|[35789]\d{8})(?!\d)"
)
# A URL runs to the first space or quote; nothing follows that could make the search go back,
# so it is one pass over the text, however many `http` it holds and whether or not one has a `?`.
_URL = re.compile(r"https?://[^\s\"']+", re.IGNORECASE)
_DIGIT = re.compile(r"\d")


def masked(value: Any) -> Any:
    """`value` (a JSON value) with every phone number masked and URLs' query strings removed."""
    if isinstance(value, dict):
        return {_masked_key(str(key)): masked(item) for key, item in value.items()}
    if isinstance(value, list):
        return [masked(item) for item in value]
    if isinstance(value, str):
        return masked_text(value)
    if isinstance(value, float) and value.is_integer():  # 987654321.0 is a number too
        text = str(int(value))
        return masked_text(text) if _PHONE.fullmatch(text) else value
    if isinstance(value, int) and not isinstance(value, bool):
        text = str(value)
        return masked_text(text) if _PHONE.fullmatch(text) else value
    return value


def masked_text(text: str) -> str:
    """Free text with every phone number masked and URLs' query strings removed."""
    if "://" in text:  # the test costs 1/50 of the search it spares (most values hold no URL)
        text = _URL.sub(lambda match: _without_query(match[0]), text)
    return _PHONE.sub(lambda match: mask(match[0]), text)


def _without_query(url: str) -> str:
    """`url` without its query string; its fragment kept (a `?` in the fragment is no query)."""
    fragment = url.find("#")
    end = fragment if fragment >= 0 else len(url)
    query = url.find("?", 0, end)
    return url if query < 0 else url[:query] + url[end:]


def _masked_key(key: str) -> str:
    return masked_text(key) if _DIGIT.search(key) else key  # field names seldom hold digits


def entry(body: bytes, parsed: Parsed | None, reading: Reading | None, outcome: str) -> bytes:
    """What is kept of one post: the masked body and what the service read from it."""
    kept: dict[str, Any] = {"received_at": time.time(), "outcome": outcome}
    kept |= _read(parsed, reading)
    try:
        kept["body"] = masked(orjson.loads(body))
    except orjson.JSONDecodeError:
        kept["body"] = masked_text(body[:MAX_TEXT].decode("utf-8", "replace"))
    return orjson.dumps(kept)


def _read(parsed: Parsed | None, reading: Reading | None) -> dict[str, Any]:
    if isinstance(parsed, LiveEvent):
        state, transaction = _read_text(parsed.state), _read_text(parsed.transaction_id)
        return {"kind": "live", "state": state, "transaction": transaction}
    if isinstance(parsed, Contact):
        return {"kind": "contact", "action": _read_text(parsed.action)}
    if not isinstance(parsed, CallRecord):
        return {"kind": "invalid"}
    call = reading.call if reading is not None else None
    return {
        "kind": "record",
        "transaction": _read_text(parsed.transaction_id or None),
        "result": parsed.result,
        "keys": _read_text(parsed.keys),  # a number typed on the keypad is a number
        "keys_field": parsed.keys_field,
        "attempt": reading.attempt if reading is not None else None,
        "call": None
        if call is None
        else {
            "template": call.template,
            "phone": mask(call.phone),
            "autocall_id": call.autocall_id,
        },
    }


def _read_text(value: str | None) -> str | None:
    """A value read from the body: masked as the body is (it holds what the sender wrote)."""
    return masked_text(value) if value else value


def fresh(entries: list[bytes], now: float) -> list[dict[str, Any]]:
    """The kept entries younger than a day, as read."""
    found = []
    for data in entries:
        try:
            kept = orjson.loads(data)
        except orjson.JSONDecodeError:
            continue
        if isinstance(kept, dict) and now - float(kept.get("received_at", 0)) < KEEP_SECONDS:
            found.append(kept)
    return found


class Keeper:
    """Keeps the last `limit` bodies in the store; a store that does not answer costs the copy,
    never the post's answer."""

    def __init__(self, store: ResultStore, limit: int) -> None:
        self._store = store
        self.limit = limit

    def __repr__(self) -> str:
        return f"Keeper(limit={self.limit})"

    async def keep(
        self, body: bytes, parsed: Parsed | None, reading: Reading | None, outcome: str
    ) -> None:
        try:
            await self._store.keep(entry(body, parsed, reading, outcome), self.limit)
        except Exception as exc:
            log.warning("cannot keep a webhook body: %s", type(exc).__name__)
