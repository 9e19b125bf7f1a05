"""The sandbox's account, its records and its test knobs (`/_sandbox/config`)."""

from __future__ import annotations

import dataclasses
import secrets
import time
import uuid
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone
from typing import Any

from .answers import ACCOUNT_CODES, THROTTLE_STYLES
from .history import HISTORY_APIS, PAGINGS
from .rules import ENVELOPES
from .script import CDR_STYLES, NUMBER_FORMATS, RETRY_STYLES, Attempt, Dial, plan

# Vietnam has kept UTC+7 without daylight saving since 1975; a fixed offset needs no tzdata.
LOCAL_TZ = timezone(timedelta(hours=7), "Asia/Ho_Chi_Minh")
TOKEN_TTL = 86_400
DEFAULT_HOTLINE = "842899959300"
ACCEPT_FAULTS = frozenset({"accept_then_hang", "accept_then_drop"})
# status, body and content type of the faults that answer without looking at the request
FAULT_ANSWERS: dict[str, tuple[int, bytes, str]] = {
    "503": (503, b"Service Unavailable", "text/plain"),
    "429": (429, b"Too Many Requests", "text/plain"),
    "500": (500, b"<html><body><h1>500 Internal Server Error</h1></body></html>", "text/html"),
    "garbage": (200, b"<html>oops</html>", "text/html"),
    "nocode": (200, b'{"status_code": 1}', "application/json"),
}
FAULTS = frozenset({*FAULT_ANSWERS, "hang", *ACCEPT_FAULTS})
# /_sandbox/config keys with a scalar value, and the exact types each accepts (bool is not an int)
SCALAR_SETTINGS: dict[str, tuple[type, ...]] = {
    "balance": (int,),
    "call_cost": (int,),
    "trial": (bool,),
    "latency": (int, float),
    "daily_limit": (int,),
    "session_limit": (int,),
    "envelope": (str,),
    "outage": (int,),
    "call_seconds": (int, float),
    "number_format": (str,),
    "cdr_style": (str,),
    "webhook_url": (str,),
    "webhooks": (bool,),
    "webhook_drop": (int,),
    "webhook_duplicate": (int,),
    "webhook_delay": (int, float),
    "webhook_retries": (int,),
    "webhook_backoff": (int, float),
    "search_throttle": (int,),
    "throttle": (int,),
    "throttle_style": (str,),
    "retry_after": (int, float),
    "account": (str,),
    "history_api": (str,),
    "history_paging": (str,),
    "history_autocall_id": (bool,),
    "answer_uuids": (bool,),
    "send_num_retry": (str,),
    "cdr_posts": (int,),
}
# settings that may not go below zero
NON_NEGATIVE = frozenset(
    {"call_seconds", "webhook_drop", "webhook_duplicate", "webhook_delay"}
    | {"webhook_retries", "webhook_backoff", "search_throttle", "throttle", "retry_after"}
    | {"cdr_posts"}
)
FLOATS = frozenset({"latency", "call_seconds", "webhook_delay", "webhook_backoff", "retry_after"})
CHOICES = {
    "envelope": ENVELOPES,
    "number_format": NUMBER_FORMATS,
    "cdr_style": CDR_STYLES,
    "throttle_style": THROTTLE_STYLES,
    "account": ("", *ACCOUNT_CODES),
    "history_api": HISTORY_APIS,
    "history_paging": PAGINGS,
    "send_num_retry": RETRY_STYLES,
}
LIST_SETTINGS = frozenset({"api_keys", "fixed_tokens", "faults", "not_found"})
# what /_sandbox/reset leaves alone: who may call, the clock, and where webhooks go
KEPT_ON_RESET = frozenset({"api_keys", "fixed_tokens", "tokens", "clock", "webhook_url"})
SHOWN = (
    *SCALAR_SETTINGS,
    *("calls_by_phone", "requests", "auth_requests", "search_requests", "webhook_posts"),
)


@dataclass
class RecordedCall:
    """One call the sandbox accepted."""

    path: str
    body: dict[str, Any]
    autocall_id: str
    at: datetime
    autocall_uuids: list[str] = field(default_factory=list)  # one per number, in order


@dataclass(eq=False)
class SandboxState:
    """The provider's account and the sandbox's scripted behaviour; tests read and change it."""

    api_keys: set[str] = field(default_factory=lambda: {"sandbox-key"})
    fixed_tokens: set[str] = field(default_factory=set)
    balance: int = 1_000_000_000
    call_cost: int = 1_000
    trial: bool = False
    session_limit: int = 300
    daily_limit: int = 3_000
    latency: float = 0.0
    envelope: str = "alternate"
    outage: int = 0
    faults: deque[str] = field(default_factory=deque)
    clock: Callable[[], float] = time.time
    tokens: dict[str, float] = field(default_factory=dict)
    tts_used: dict[date, int] = field(default_factory=dict)
    calls: list[RecordedCall] = field(default_factory=list)
    calls_by_phone: Counter[str] = field(default_factory=Counter)
    # execute_* requests by result: "ok", an error code, "unauthorized" or a fault (outage: "503")
    requests: Counter[str] = field(default_factory=Counter)
    auth_requests: int = 0
    error_answers: int = 0
    # call results (CONTRACT.md §9): each attempt of each call, finished or still ringing
    call_seconds: float = 2.0
    number_format: str = "as_sent"
    cdr_style: str = "current"
    attempts: list[Attempt] = field(default_factory=list)
    # accepted calls no webhook waits for: played out only when the history is read, since the
    # benchmark makes thousands of calls a second (37 µs and 2.7 kB each when planned)
    pending: list[Dial] = field(default_factory=list)
    # webhooks: the command line's URL and the registered one both receive every post
    webhook_url: str = ""
    hooks: dict[str, dict[str, Any]] = field(default_factory=dict)
    webhooks: bool = True  # False: nothing is posted (poll-only)
    webhook_drop: int = 0  # the next N CDRs are never posted
    webhook_duplicate: int = 0  # the next N CDRs are posted twice
    webhook_delay: float = 0.0  # seconds between a call's end and its CDR's post
    webhook_retries: int = 5  # extra tries of a post answered 503 or not connecting
    webhook_backoff: float = 0.2  # seconds before the first retry; doubles, at most 2 s
    # posts by result: "ok", "http_<status>", "connection_error", "dropped", "retry"
    webhook_posts: Counter[str] = field(default_factory=Counter)
    search_throttle: int = 0  # the next N searches are answered limit_request_30_minute
    search_requests: Counter[str] = field(default_factory=Counter)
    # the answers of CONTRACT.md §12 (answers.py): throttle, account, scripted numbers, 404s
    throttle: int = 0  # the next N call requests are throttled
    throttle_style: str = "429"  # "429": HTTP 429; "message": rate_limit_exceeded in a 200
    retry_after: float = 0.0  # the throttle's Retry-After seconds; 0: no header
    account: str = ""  # a code every call request is answered with; "": the account is fine
    not_found: set[str] = field(default_factory=set)  # path prefixes answered with a 404 page
    answered_once: set[str] = field(default_factory=set)  # numbers whose one-time answer is out
    # the provider as it really is (CONTRACT.md §12)
    history_api: str = "v3"  # the history versions served: v3, v2 or both
    history_paging: str = "snake"  # v3 pages: snake (has_next), camel (hasNext), list
    history_autocall_id: bool = True  # False: items name their call by autocall_uuid only
    answer_uuids: bool = True  # False: execute answers leave out `autocall_uuids` (§12: "may")
    send_num_retry: str = "deliveries"  # what the field counts (script.RETRY_STYLES)
    cdr_posts: int = 2  # each CDR is posted this many times, as the provider does

    def today(self) -> date:
        """The provider's local date."""
        return datetime.fromtimestamp(self.clock(), LOCAL_TZ).date()

    def issue_token(self) -> str:
        """A new access token, valid for 24 hours."""
        token = secrets.token_urlsafe(24)
        self.tokens[token] = self.clock() + TOKEN_TTL
        return token

    def token_valid(self, token: str) -> bool:
        """Whether a bearer token was issued and has not expired, or is a fixed one."""
        expiry = self.tokens.get(token)
        return token in self.fixed_tokens or (expiry is not None and expiry > self.clock())

    def take_fault(self) -> str | None:
        """The fault for this execute_* request: the outage first, then the scripted queue."""
        if self.outage > 0:
            self.outage -= 1
            return "503"
        return self.faults.popleft() if self.faults else None

    def refusal(self, chars: int) -> str | None:
        """The business rule a call of `chars` TTS characters breaks, in the provider's order."""
        if self.trial:
            return "limit_service"
        if chars > self.session_limit:
            return "limit_word_session"
        if self.tts_used.get(self.today(), 0) + chars > self.daily_limit:
            return "limit_word"
        if self.balance < self.call_cost:
            return "balance_is_not_enough"
        return None

    def accept(self, action: str, body: dict[str, Any], chars: int) -> RecordedCall:
        """Charge and record an accepted call."""
        if action == "execute_by_phone":
            autocall_id = str(uuid.uuid4())
            self.calls_by_phone.update(body["phone_number_list"])
        else:
            autocall_id = secrets.token_hex(12)
        now = datetime.fromtimestamp(self.clock(), LOCAL_TZ)
        self.balance -= self.call_cost
        self.tts_used[now.date()] = self.tts_used.get(now.date(), 0) + chars
        numbers = body.get("phone_number_list") or body.get("extensions") or []
        uuids = [str(uuid.uuid4()) for _ in numbers]
        call = RecordedCall(f"/api/auto_call/{action}", body, autocall_id, now, uuids)
        self.calls.append(call)
        return call

    def planned(self) -> list[Attempt]:
        """Every attempt of every accepted call, ended or not, in the order of acceptance."""
        if self.pending:
            self.attempts.extend(a for dial in self.pending for a in plan(dial))
            self.pending.clear()
        return self.attempts

    def webhook_targets(self) -> list[str]:
        """Where call events are posted now: none while webhooks are off."""
        if not self.webhooks:
            return []
        urls = [self.webhook_url, *(hook["url"] for hook in self.hooks.values())]
        return list(dict.fromkeys(url for url in urls if url))

    def take_throttle(self) -> bool:
        """Whether this search is refused for the rate limit."""
        if self.search_throttle > 0:
            self.search_throttle -= 1
            return True
        return False

    def next_envelope(self) -> str:
        """The error envelope style of the next error answer."""
        style = ENVELOPES[self.error_answers % 3]
        self.error_answers += 1
        return style if self.envelope == "alternate" else self.envelope

    def reset(self) -> None:
        """Back to the defaults, keeping the keys, tokens, clock and command-line webhook."""
        for f in dataclasses.fields(self):
            if f.name not in KEPT_ON_RESET:
                factory = f.default_factory
                value = f.default if factory is dataclasses.MISSING else factory()
                setattr(self, f.name, value)

    def snapshot(self) -> dict[str, Any]:
        """What GET /_sandbox/state shows."""
        shown = {name: getattr(self, name) for name in SHOWN}
        shown["tts_used_today"] = self.tts_used.get(self.today(), 0)
        extra = {"calls": len(self.calls), "attempts": len(self.planned())}
        lists = {"faults": list(self.faults), "hooks": list(self.hooks.values())}
        return shown | extra | lists | {"not_found": sorted(self.not_found)}


def configure(state: SandboxState, changes: dict[str, Any]) -> str | None:
    """Apply a /_sandbox/config object all or nothing; the first bad key, or None."""
    bad = next((key for key, value in changes.items() if not _valid_setting(key, value)), None)
    if bad is not None:
        return bad
    for key, value in changes.items():
        if key == "faults":
            state.faults.extend(value)
        elif key in LIST_SETTINGS:
            setattr(state, key, set(value))
        else:
            setattr(state, key, float(value) if key in FLOATS else value)
    return None


def _valid_setting(key: str, value: object) -> bool:
    if key in SCALAR_SETTINGS:
        if type(value) not in SCALAR_SETTINGS[key]:
            return False
        if key in CHOICES:
            return value in CHOICES[key]
        return key not in NON_NEGATIVE or value >= 0  # type: ignore[operator]
    if key in LIST_SETTINGS and isinstance(value, list):
        return all(isinstance(v, str) and (key != "faults" or v in FAULTS) for v in value)
    return False
