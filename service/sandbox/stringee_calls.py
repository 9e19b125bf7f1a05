"""The Stringee sandbox's account and its calls played out (CONTRACT.md §13): the call events
posted to the project's event URL, the key pressed to the input's own `eventUrl`, every body
signed. Each call by its number's last digit, as the OMICall sandbox's (script.py); no redials."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import secrets
import time
from collections import Counter, deque
from dataclasses import dataclass, field
from typing import Any

from .dialer import Playing
from .poster import Poster
from .script import script_for
from .state import SandboxState

# endCallCause and answerDuration of each result (SIP causes, as Stringee's events name them)
ENDINGS = {
    "answered": ("NORMAL_CLEARING", 12),
    "no_answer": ("NO_ANSWER_480", 0),
    "busy": ("BUSY_HERE_486", 0),
    "failed": ("CALL_REJECTED_603", 0),
}


@dataclass
class StringeeCall:
    """One call the sandbox accepted."""

    call_id: str
    body: dict[str, Any]
    created: float  # epoch seconds
    result: str
    key: str | None
    ended: float = 0.0  # epoch seconds; 0 while the call goes on

    @property
    def number(self) -> str:
        return str(self.body["to"][0]["number"])

    def item(self) -> dict[str, Any]:
        """The call as the call log shows it."""
        cause, answer = ENDINGS[self.result]
        return {
            "id": self.call_id,
            "from_number": self.body["from"]["number"],
            "to_number": self.number,
            "start_time": int(self.created * 1000),
            "stop_time": int(self.ended * 1000),
            "duration": answer + 6,
            "answer_duration": answer,
            "end_call_cause": cause,
            "recorded": 0,
            "from_internal": 1,
        }


@dataclass(eq=False)
class StringeeState:
    """The account, its calls, and the knobs of /_sandbox/config."""

    key_sid: str = "SK.sandbox"
    key_secret: str = "sandbox-stringee-secret-0123456789abcdef"  # noqa: S105  (the sandbox's own)
    signing_secret: str | None = "sandbox-stringee-signing-0123456789"  # noqa: S105
    balance: int = 1_000_000_000
    call_cost: int = 1_000
    call_seconds: float = 2.0
    faults: deque[str] = field(default_factory=deque)  # "503", "429", "hang", "r:<n>"
    calls: list[StringeeCall] = field(default_factory=list)
    requests: Counter[str] = field(default_factory=Counter)
    # the poster's targets and knobs: webhook_url is the project's event URL; each `ended` is
    # posted once (`cdr_posts`), twice while `webhook_duplicate` lasts
    hooks: SandboxState = field(default_factory=lambda: SandboxState(cdr_posts=1))

    def sign(self, body: bytes) -> dict[str, str]:
        """The header that signs `body`, as Stringee sends it."""
        if self.signing_secret is None:
            return {}
        digest = hmac.new(self.signing_secret.encode(), body, hashlib.sha1).digest()
        return {"X-STRINGEE-SIGNATURE": base64.b64encode(digest).decode()}

    def accept(self, body: dict[str, Any]) -> StringeeCall:
        """Charge and record an accepted call."""
        self.balance -= self.call_cost
        number = str(body["to"][0]["number"])
        script = script_for(number)
        call_id = f"call-vn-1-{secrets.token_hex(5).upper()}-{int(time.time() * 1000)}"
        call = StringeeCall(call_id, body, time.time(), script.result, script.key)
        self.calls.append(call)
        return call

    def snapshot(self) -> dict[str, Any]:
        """What GET /_sandbox/state shows."""
        posts = dict(self.hooks.webhook_posts)
        return {
            "balance": self.balance,
            "calls": len(self.calls),
            "requests": dict(self.requests),
            "webhook_posts": posts,
        }


class Player:
    """Plays out each accepted call; `idle()` waits until every one has ended."""

    def __init__(self, state: StringeeState) -> None:
        self.state = state
        self.poster = Poster(state.hooks, sign=state.sign)
        self._playing = Playing()

    def start(self, call: StringeeCall) -> None:
        """Play `call` out in the background."""
        self._playing.start(self._play(call))

    async def idle(self) -> None:
        """Return once no call is being played out."""
        await self._playing.idle()

    async def close(self) -> None:
        """Stop playing calls out and close the webhook client."""
        await self._playing.cancel()
        await self.poster.close()

    async def _play(self, call: StringeeCall) -> None:
        half = self.state.call_seconds / 2
        try:
            await self.poster.live(event(call, "created"))
            if call.result != "failed":
                await self.poster.live(event(call, "ringing"))
            await asyncio.sleep(half)
            if call.result == "answered":
                await self.poster.live(event(call, "answered"))
                await self._press(call)
            await asyncio.sleep(half)
            call.ended = time.time()
            await self.poster.cdr(event(call, "ended"))
        except Exception:  # a receiver's misbehaviour must never stop the sandbox
            self.state.hooks.webhook_posts["error"] += 1

    async def _press(self, call: StringeeCall) -> None:
        """Each input action of the call gets the scripted key (or times out without one)."""
        for action in call.body["actions"]:
            if action.get("action") == "input":
                pressed = {
                    "time": str(int(time.time() * 1000)),
                    "dtmf": call.key or "",
                    "call_id": call.call_id,
                    "customField": action.get("customField", ""),
                    "timeout": call.key is None,
                }
                await self.poster.to(action["eventUrl"], pressed)


def event(call: StringeeCall, status: str) -> dict[str, Any]:
    """A call event as Stringee posts it to the project's event URL."""
    body: dict[str, Any] = {
        "type": "call_event",
        "call_id": call.call_id,
        "call_status": status,
        "from": call.body["from"],
        "to": call.body["to"][0],
        "timestamp_ms": int(time.time() * 1000),
    }
    if status == "ended":
        cause, answer = ENDINGS[call.result]
        body |= {"endCallCause": cause, "answerDuration": answer, "duration": answer + 6}
        body["endedBy"] = "customer" if call.result == "answered" else "system"
    return body
