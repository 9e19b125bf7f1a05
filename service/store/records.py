"""The records RedisStore keeps: a key's claim (pending or done) and a suppression entry."""

from __future__ import annotations

import orjson

from .protocol import Suppression


def key_record(
    state: str,
    event_id: str,
    owner: str = "",
    *,
    outcome: bytes = b"",
    nonce: int = 0,
    via: bytes | None = None,
) -> bytes:
    """A key's record: its state, event, owner, outcome, the owner's claim nonce and `via`."""
    fields: dict[str, str | int] = {"s": state, "e": event_id, "o": owner, "r": outcome.decode()}
    if nonce:
        fields["n"] = nonce  # which claim of its owner wrote it
    if via:
        fields["v"] = via.decode()
    return orjson.dumps(fields)


def suppression_of(phone: bytes, entry_json: bytes) -> Suppression:
    entry = orjson.loads(entry_json)
    return Suppression(phone.decode(), entry["reason"], entry["until"], entry["added"])
