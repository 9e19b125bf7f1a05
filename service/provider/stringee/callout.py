"""The callout request built from the rendered call (CONTRACT.md §13). Pure: the script's steps
in order, each mapped through the account's voices, recordings and menus."""

from __future__ import annotations

import hashlib
from typing import Any
from urllib.parse import quote

from ...errors import TemplateError
from ...script import Script, Step
from .account import StringeeAccount

PATH = "/v1/call2/callout"
CALLBACK_PATH = "/webhooks/stringee"


def callback_url(public_url: str, account: str, token: str) -> str:
    """Where Stringee posts this account's callbacks: AUTOCALL_WEBHOOK_PUBLIC_URL +
    /webhooks/stringee/<account>/<token>. It carries the token: never log it."""
    return f"{public_url.rstrip('/')}{CALLBACK_PATH}/{quote(account, safe='')}/{token}"


def custom_field(idempotency_key: str) -> str:
    """The input's `customField`: the idempotency key hashed (known before the request leaves,
    so a key press can be tied to its call even when the answer never came)."""
    return hashlib.sha256(idempotency_key.encode()).hexdigest()


def speed_of(speed: int | None) -> float:
    """The templates' speed, -3 .. 3, as Stringee's rate: 1 + 0.25 x speed."""
    return 1 + 0.25 * (speed or 0)


def body(script: Script, account: StringeeAccount, event_url: str) -> dict[str, Any]:
    """The callout's JSON body; TemplateError when the account cannot play the script."""
    if script.phone is None:
        raise TemplateError(f"account {account.name}: Stringee calls phones, not extensions")
    number = account.from_number.removeprefix("+")
    actions: list[dict[str, Any]] = []
    for step in script.steps:
        actions += _actions(step, script, account, event_url)
    return {
        "from": {"type": "external", "number": number, "alias": number},
        "to": [{"type": "external", "number": script.phone, "alias": script.phone}],
        "actions": actions,
    }


def _actions(
    step: Step, script: Script, account: StringeeAccount, event_url: str
) -> list[dict[str, Any]]:
    if step.kind == "say":
        return [_talk(step.value, script, account)]
    if step.kind == "recording":
        url = account.recordings.get(step.value)
        if url is None:
            raise TemplateError(f"account {account.name}: no recording for {step.value}")
        return [{"action": "play", "fileName": url}]
    menu = account.menus.get(step.value)
    if menu is None:
        raise TemplateError(f"account {account.name}: no menu for {step.value}")
    read = {
        "action": "input",
        "eventUrl": event_url,
        "timeout": max(1, round(menu.timeout)),
        "maxDigits": menu.max_digits,
        "submitOnHash": True,
        "customField": custom_field(script.idempotency_key),
    }
    return [_talk(menu.say, script, account), read]


def _talk(text: str, script: Script, account: StringeeAccount) -> dict[str, Any]:
    talk: dict[str, Any] = {"action": "talk", "text": text}
    voice = account.voices.get(script.voice or "default")
    if voice is not None:  # unmapped: Stringee's own default voice
        talk["voice"] = voice
    talk["speed"] = speed_of(script.speed)
    return talk
