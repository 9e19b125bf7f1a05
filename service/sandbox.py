"""A local stand-in for OMICall's auto-call API that enforces the documented rules strictly."""

from __future__ import annotations

import asyncio
import dataclasses
import re
import secrets
import signal
import sys
import time
import unicodedata
import uuid
from collections import Counter, deque
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone
from typing import Any, TypeGuard

import orjson
from aiohttp import web

__all__ = [
    "STATE_KEY",
    "RecordedCall",
    "Sandbox",
    "SandboxState",
    "create_app",
    "serve",
    "serve_forever",
    "tts_chars",
    "validate",
]

# Vietnam has kept UTC+7 without daylight saving since 1975; a fixed offset needs no tzdata.
LOCAL_TZ = timezone(timedelta(hours=7), "Asia/Ho_Chi_Minh")
TOKEN_TTL = 86_400
ENVELOPES = ("message", "payload", "payload_message", "alternate")
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
MESSAGES_VI = {
    "limit_service": "Gói dịch vụ dùng thử không hỗ trợ gọi tự động",
    "limit_word_session": "Vượt quá giới hạn 300 ký tự cho một phiên gọi",
    "limit_word": "Vượt quá giới hạn ký tự trong ngày",
    "balance_is_not_enough": "Số dư tài khoản không đủ",
}
VOICES = frozenset({"banmai", "leminh", "lannhi"})
STEP_TYPES = frozenset({"Text_variable", "Recording", "Ivr_menu"})
COUNT_FIELDS = ("num_retry", "num_per_call", "distance_per_call", "distance_retry")
ALLOWED_FIELDS = {
    "execute_by_phone": frozenset(
        {"name", "voice", "speed", "cid", "template_dialplans", "variables"}
        | {"phone_number_list", *COUNT_FIELDS}
    ),
    "execute_by_extension": frozenset({"cid", "template_dialplans", "variables", "extensions"}),
}
PHONE = re.compile(r"\+?[0-9]{9,15}")
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
}
LIST_SETTINGS = frozenset({"api_keys", "fixed_tokens", "faults"})
# what /_sandbox/reset leaves alone: who may call, and the clock
KEPT_ON_RESET = frozenset({"api_keys", "fixed_tokens", "tokens", "clock"})
SHOWN = (*SCALAR_SETTINGS, "calls_by_phone", "requests", "auth_requests")


@dataclass
class RecordedCall:
    """One call the sandbox accepted."""

    path: str
    body: dict[str, Any]
    autocall_id: str
    at: datetime


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

    def accept(self, action: str, body: dict[str, Any], chars: int) -> str:
        """Charge and record an accepted call; its autocall_id."""
        if action == "execute_by_phone":
            autocall_id = str(uuid.uuid4())
            self.calls_by_phone.update(body["phone_number_list"])
        else:
            autocall_id = secrets.token_hex(12)
        now = datetime.fromtimestamp(self.clock(), LOCAL_TZ)
        self.balance -= self.call_cost
        self.tts_used[now.date()] = self.tts_used.get(now.date(), 0) + chars
        self.calls.append(RecordedCall(f"/api/auto_call/{action}", body, autocall_id, now))
        return autocall_id

    def next_envelope(self) -> str:
        """The error envelope style of the next error answer."""
        style = ENVELOPES[self.error_answers % 3]
        self.error_answers += 1
        return style if self.envelope == "alternate" else self.envelope

    def reset(self) -> None:
        """Back to the defaults, keeping the keys, fixed and issued tokens and the clock."""
        for f in dataclasses.fields(self):
            if f.name not in KEPT_ON_RESET:
                factory = f.default_factory
                value = f.default if factory is dataclasses.MISSING else factory()
                setattr(self, f.name, value)

    def snapshot(self) -> dict[str, Any]:
        """What GET /_sandbox/state shows."""
        shown = {name: getattr(self, name) for name in SHOWN}
        shown["tts_used_today"] = self.tts_used.get(self.today(), 0)
        return shown | {"calls": len(self.calls), "faults": list(self.faults)}


def validate(action: str, body: dict[str, Any]) -> str | None:
    """The error code that rejects an execute_* body, or None."""
    if not body.keys() <= ALLOWED_FIELDS[action]:
        return "unknown_field"
    if action == "execute_by_phone":
        code = _check_phone_fields(body)
    else:
        code = _check_extension_fields(body)
    return code or _check_script(body)


def _check_phone_fields(body: dict[str, Any]) -> str | None:
    numbers = body.get("phone_number_list")
    if not _is_str_list(numbers) or not all(PHONE.fullmatch(n) for n in numbers):
        return "invalid_phone_number_list"
    if "voice" in body and not (isinstance(body["voice"], str) and body["voice"] in VOICES):
        return "invalid_voice"
    if "speed" in body and not (_is_int(body["speed"]) and -3 <= body["speed"] <= 3):
        return "invalid_speed"
    strings_ok = all(isinstance(body.get(name, ""), str) for name in ("name", "cid"))
    counts_ok = all(_is_int(body.get(name, 0)) and body.get(name, 0) >= 0 for name in COUNT_FIELDS)
    return None if strings_ok and counts_ok else "invalid_field"


def _check_extension_fields(body: dict[str, Any]) -> str | None:
    required = ("template_dialplans", "variables", "extensions")
    if not all(name in body for name in required) or not _is_str_list(body["extensions"]):
        return "missing_field"
    return None if isinstance(body.get("cid", ""), str) else "invalid_field"


def _check_script(body: dict[str, Any]) -> str | None:
    steps = body.get("template_dialplans", [])
    if "template_dialplans" in body and not (
        isinstance(steps, list) and steps and all(_is_step(step) for step in steps)
    ):
        return "invalid_template_dialplans"
    texts = sum(step["target_type"] == "Text_variable" for step in steps)
    variables = body.get("variables", [])
    if isinstance(variables, list) and len(variables) == texts:
        return None if all(isinstance(v, str) for v in variables) else "variables_mismatch"
    return "variables_mismatch"


def _is_step(step: object) -> bool:
    if not isinstance(step, dict) or step.get("target_type") not in STEP_TYPES:
        return False
    if step["target_type"] == "Text_variable":
        return step.keys() == {"target_type"}
    target = step.get("target")
    return step.keys() == {"target_type", "target"} and isinstance(target, str) and bool(target)


def _is_str_list(value: object) -> TypeGuard[list[str]]:
    return isinstance(value, list) and bool(value) and all(isinstance(v, str) for v in value)


def _is_int(value: object) -> bool:
    return type(value) is int


def tts_chars(body: dict[str, Any]) -> int:
    """TTS characters of a validated body: NFC code points of all its variables."""
    return sum(len(unicodedata.normalize("NFC", text)) for text in body.get("variables", []))


def error_body(style: str, code: str) -> dict[str, Any]:
    """An error answer carrying `code` the way envelope `style` does."""
    if style == "message":
        return {"status_code": 400, "message": code, "payload": None}
    if style == "payload":
        text = MESSAGES_VI.get(code, "Yêu cầu không hợp lệ")
        return {"status_code": 400, "payload": {"error": code, "message": text}}
    return {"status_code": 400, "payload": {"message": code}}


def success_body(action: str, body: dict[str, Any], autocall_id: str) -> dict[str, Any]:
    """The provider's success answer, in each endpoint's own documented shape."""
    if action == "execute_by_phone":
        payload = {"autocall_id": autocall_id, "name": body.get("name", "")}
        return {"status_code": 9999, "payload": payload}
    return {
        "instance_id": "stg",
        "payload": {"autocall_uuids": [str(uuid.uuid4())], "autocall_id": autocall_id},
        "instance_version": "1.2.164",
        "key_enabled": False,
        "status_code": 9999,
    }


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
            setattr(state, key, float(value) if key == "latency" else value)
    return None


def _valid_setting(key: str, value: object) -> bool:
    if key in SCALAR_SETTINGS:
        return type(value) in SCALAR_SETTINGS[key] and (key != "envelope" or value in ENVELOPES)
    if key in LIST_SETTINGS and isinstance(value, list):
        return all(isinstance(v, str) and (key != "faults" or v in FAULTS) for v in value)
    return False


STATE_KEY = web.AppKey("sandbox_state", SandboxState)
HANGING_KEY: web.AppKey[set[asyncio.Future[None]]] = web.AppKey("sandbox_hanging")


def _json(data: object, status: int = 200) -> web.Response:
    return web.Response(body=orjson.dumps(data), status=status, content_type="application/json")


async def auth(request: web.Request) -> web.Response:
    """GET /api/auth?apiKey=K: an access token for a known key."""
    state = request.app[STATE_KEY]
    state.auth_requests += 1
    if request.query.get("apiKey", "") not in state.api_keys:
        return _json({"status_code": 401, "message": "invalid_api_key"}, status=401)
    token = state.issue_token()
    payload = {"access_token": token, "token_type": "Bearer", "expires_in": TOKEN_TTL}
    return _json({"status_code": 9999, "payload": payload})


async def execute(request: web.Request) -> web.Response:
    """POST /api/auto_call/execute_by_*: scripted faults first, then the provider's rules."""
    state = request.app[STATE_KEY]
    fault = state.take_fault()
    if state.latency:
        await asyncio.sleep(state.latency)
    if fault in FAULT_ANSWERS:
        state.requests[fault] += 1
        status, text, content_type = FAULT_ANSWERS[fault]
        return web.Response(body=text, status=status, content_type=content_type)
    if fault == "hang":
        state.requests[fault] += 1
        return await _never_answer(request)
    result, response = await _answer(request, state, request.match_info["action"])
    state.requests[result] += 1
    if fault == "accept_then_hang":
        return await _never_answer(request)
    return _drop(request) if fault == "accept_then_drop" else response


async def _answer(
    request: web.Request, state: SandboxState, action: str
) -> tuple[str, web.Response]:
    """The provider's own answer: the request's result label and the response."""
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not state.token_valid(token):
        return "unauthorized", web.Response(status=401, text="Unauthorized")
    body = await _read_body(request, action)
    if isinstance(body, str):
        return body, _json(error_body(state.next_envelope(), body), status=400)
    chars = tts_chars(body)
    code = state.refusal(chars)
    if code is not None:
        return code, _json(error_body(state.next_envelope(), code))
    return "ok", _json(success_body(action, body, state.accept(action, body, chars)))


async def _read_body(request: web.Request, action: str) -> dict[str, Any] | str:
    """The valid JSON body of an execute_* request, or the error code that rejects it."""
    if request.query_string:
        return "unexpected_query_string"
    if request.content_type != "application/json":
        return "invalid_json"
    try:
        body = orjson.loads(await request.read())
    except orjson.JSONDecodeError:
        return "invalid_json"
    if not isinstance(body, dict):
        return "invalid_json"
    return validate(action, body) or body


async def _never_answer(request: web.Request) -> web.Response:
    """Hold the request until the client leaves (this task is cancelled) or the server stops."""
    waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    hanging = request.app[HANGING_KEY]
    hanging.add(waiter)
    try:
        await waiter
    finally:
        hanging.discard(waiter)
    return _drop(request)


def _drop(request: web.Request) -> web.Response:
    """Close the connection so that the client sees a disconnect instead of an answer."""
    if request.transport is not None:
        request.transport.close()
    return web.Response(status=204)  # never sent: the transport is already closing


async def _release_hanging(app: web.Application) -> None:
    # Without this, shutdown would wait out its timeout for every request that never answers.
    hanging = app[HANGING_KEY]
    for waiter in list(hanging):
        if not waiter.done():
            waiter.set_result(None)


async def get_state(request: web.Request) -> web.Response:
    """GET /_sandbox/state."""
    return _json(request.app[STATE_KEY].snapshot())


async def get_calls(request: web.Request) -> web.Response:
    """GET /_sandbox/calls: every accepted call, oldest first."""
    return _json(request.app[STATE_KEY].calls)


async def post_config(request: web.Request) -> web.Response:
    """POST /_sandbox/config: change settings or queue faults; the new state."""
    state = request.app[STATE_KEY]
    try:
        changes = orjson.loads(await request.read())
    except orjson.JSONDecodeError:
        changes = None
    if not isinstance(changes, dict):
        return _json({"error": "invalid_json"}, status=400)
    bad = configure(state, changes)
    if bad is not None:
        return _json({"error": "invalid_setting", "key": bad}, status=400)
    return _json(state.snapshot())


async def post_expire_tokens(request: web.Request) -> web.Response:
    """POST /_sandbox/expire-tokens: every issued token stops working."""
    state = request.app[STATE_KEY]
    expired = len(state.tokens)
    state.tokens.clear()
    return _json({"expired": expired})


async def post_reset(request: web.Request) -> web.Response:
    """POST /_sandbox/reset: balance, counters, calls, faults and settings back to defaults."""
    state = request.app[STATE_KEY]
    state.reset()
    return _json(state.snapshot())


def create_app(state: SandboxState | None = None) -> web.Application:
    """The sandbox as an aiohttp application; its state is app[STATE_KEY]."""
    app = web.Application()
    app[STATE_KEY] = SandboxState() if state is None else state
    app[HANGING_KEY] = set()
    app.on_shutdown.append(_release_hanging)
    app.router.add_get("/api/auth", auth)
    app.router.add_post("/api/auto_call/{action:execute_by_phone|execute_by_extension}", execute)
    app.router.add_get("/_sandbox/state", get_state)
    app.router.add_get("/_sandbox/calls", get_calls)
    app.router.add_post("/_sandbox/config", post_config)
    app.router.add_post("/_sandbox/expire-tokens", post_expire_tokens)
    app.router.add_post("/_sandbox/reset", post_reset)
    return app


@dataclass(frozen=True)
class Sandbox:
    """A running sandbox."""

    url: str
    port: int
    state: SandboxState


@asynccontextmanager
async def serve(
    state: SandboxState | None = None, host: str = "127.0.0.1", port: int = 0
) -> AsyncIterator[Sandbox]:
    """Run the sandbox on host:port (0: a free port) for the duration of the block."""
    app = create_app(state)
    # handler_cancellation: a request that never answers ends when its client goes away
    runner = web.AppRunner(app, access_log=None, handler_cancellation=True, shutdown_timeout=5.0)
    await runner.setup()
    try:
        await web.TCPSite(runner, host, port).start()
        bound = runner.addresses[0][1]
        yield Sandbox(f"http://{host}:{bound}", bound, app[STATE_KEY])
    finally:
        await runner.cleanup()


def serve_forever(host: str, port: int, state: SandboxState) -> None:
    """Run the sandbox until SIGTERM or SIGINT (`autocall-bridge sandbox`)."""
    with asyncio.Runner(loop_factory=_new_loop) as runner:
        runner.run(_serve_until_signalled(host, port, state))


async def _serve_until_signalled(host: str, port: int, state: SandboxState) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    async with serve(state, host, port) as sandbox:
        keys = ", ".join(sorted(state.api_keys))
        sys.stdout.write(f"sandbox listening on {sandbox.url} (api key: {keys})\n")
        sys.stdout.flush()
        await stop.wait()


def _new_loop() -> asyncio.AbstractEventLoop:
    try:
        import uvloop
    except ImportError:  # uvloop is not built for Windows
        return asyncio.new_event_loop()
    return uvloop.new_event_loop()
