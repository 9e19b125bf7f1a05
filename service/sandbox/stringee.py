"""The sandbox playing Stringee (`sandbox --provider stringee`): the callout and the call log
behind the REST JWT it checks (signature, `cty`, `iss`, `exp` within an hour, `rest_api`), the
callout body's rules, the balance (`r` 8), and its calls played out with signed callbacks
(stringee_calls.py). /_sandbox/config sets the balance, the call length and scripted faults."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import jwt
import orjson
from aiohttp import web

from ..http import serve_app
from ..logs import redact_url
from .api import json_response, read_object
from .server import run_until_signalled
from .state import FAULT_ANSWERS
from .stringee_calls import Player, StringeeState

STATE = web.AppKey("stringee_state", StringeeState)
PLAYER = web.AppKey("stringee_player", Player)
CTY = "stringee-api;v=1"
MAX_LIFETIME = 3600
INVALID_BODY_R = 3  # what the sandbox answers a body the rules refuse
BALANCE_R = 8
ACTIONS = {"talk": ("text",), "play": ("fileName",), "input": ("eventUrl",)}
CONFIG = {"balance": int, "call_cost": int, "call_seconds": float, "webhook_duplicate": int}


def token_problem(token: str, state: StringeeState, now: float) -> str | None:
    """Why Stringee would refuse this REST token; None when it is good."""
    try:
        header = jwt.get_unverified_header(token)
        claims = jwt.decode(
            token,
            state.key_secret,
            algorithms=["HS256"],
            options={"require": ["exp", "iss"], "verify_exp": False},  # against `now`, below
        )
    except jwt.PyJWTError as exc:
        return f"invalid token: {type(exc).__name__}"
    if header.get("cty") != CTY or header.get("typ") != "JWT":
        return "the header's cty or typ"
    if claims.get("iss") != state.key_sid:
        return "iss is not the key SID"
    if claims.get("rest_api") is not True or not claims.get("jti"):
        return "rest_api true and a jti are required"
    if not isinstance(claims["exp"], int) or claims["exp"] <= now:
        return "expired"
    return "exp more than an hour ahead" if claims["exp"] > now + MAX_LIFETIME + 5 else None


def body_problem(body: Any) -> str | None:
    """Why the callout body breaks the rules; None when it is good."""
    if not isinstance(body, dict):
        return "not a JSON object"
    party = body.get("from")
    if not _party(party):
        return "from: {type: external, number, alias}"
    to = body.get("to")
    if not isinstance(to, list) or len(to) != 1 or not _party(to[0]):
        return "to: one {type: external, number, alias}"
    if not str(to[0]["number"]).startswith("84"):
        return "to: a number in 84… form"
    actions = body.get("actions")
    if not isinstance(actions, list) or not actions:
        return "actions: a non-empty list"
    return next((p for p in map(_action_problem, actions) if p), None)


def _party(party: Any) -> bool:
    return (
        isinstance(party, dict)
        and party.get("type") == "external"
        and isinstance(party.get("number"), str)
        and party["number"].isdigit()
        and isinstance(party.get("alias"), str)
    )


def _action_problem(action: Any) -> str | None:
    kind = action.get("action") if isinstance(action, dict) else None
    if kind not in ACTIONS:
        return f"unknown action {kind!r}"
    if any(not isinstance(action.get(f), str) or not action[f] for f in ACTIONS[kind]):
        return f"{kind}: needs {', '.join(ACTIONS[kind])}"
    speed = action.get("speed", 1.0)
    if kind == "talk" and (not isinstance(speed, int | float) or not 0.25 <= speed <= 1.75):
        return "talk: speed from 0.25 to 1.75"
    if kind == "input":
        numbers = (action.get("timeout"), action.get("maxDigits"))
        if any(not isinstance(n, int) or isinstance(n, bool) or n < 1 for n in numbers):
            return "input: timeout and maxDigits, whole numbers from 1"
        if action.get("submitOnHash") is not True or not action.get("customField"):
            return "input: submitOnHash true and a customField"
    return None


def _refuse(state: StringeeState, request: web.Request) -> web.Response | None:
    """401 without a good token."""
    problem = token_problem(request.headers.get("X-STRINGEE-AUTH", ""), state, time.time())
    if problem is None:
        return None
    state.requests["unauthorized"] += 1
    return json_response({"r": 401, "message": problem}, status=401)


async def callout(request: web.Request) -> web.Response:
    """POST /v1/call2/callout: scripted faults, the token, the body, the balance; then a call."""
    state = request.app[STATE]
    fault = state.faults.popleft() if state.faults else None
    if fault in FAULT_ANSWERS:
        state.requests[fault] += 1
        status, text, content_type = FAULT_ANSWERS[fault]
        return web.Response(body=text, status=status, content_type=content_type)
    if fault == "hang":
        state.requests["hang"] += 1
        await asyncio.sleep(3600)  # until the client gives up (handler_cancellation)
    if (refused := _refuse(state, request)) is not None:
        return refused
    try:
        body = orjson.loads(await request.read())
    except orjson.JSONDecodeError:
        body = None
    if (problem := body_problem(body)) is not None:
        state.requests["invalid"] += 1
        return json_response({"r": INVALID_BODY_R, "message": problem}, status=400)
    if fault is not None and fault.startswith("r:"):
        state.requests[fault] += 1
        return json_response({"r": int(fault[2:]), "message": "scripted"})
    if state.balance < state.call_cost:
        state.requests["balance"] += 1
        return json_response({"r": BALANCE_R, "message": "Not enough money"})
    call = state.accept(body)
    state.requests["ok"] += 1
    request.app[PLAYER].start(call)
    return json_response({"r": 0, "call_id": call.call_id, "message": "Create call success"})


async def call_log(request: web.Request) -> web.Response:
    """GET /v1/call/log?from_created_time=&to_created_time=&page=&limit=: the ended calls."""
    state = request.app[STATE]
    if (refused := _refuse(state, request)) is not None:
        return refused
    try:
        since = float(request.query.get("from_created_time", 0))
        until = float(request.query.get("to_created_time", time.time() + 1))
        page = max(1, int(request.query.get("page", 1)))
        limit = min(100, max(1, int(request.query.get("limit", 100))))
    except ValueError:
        return json_response({"r": INVALID_BODY_R, "message": "bad query"}, status=400)
    ended = [c.item() for c in state.calls if c.ended and since <= c.created < until]
    pages = max(1, -(-len(ended) // limit))
    calls = ended[(page - 1) * limit : page * limit]
    data = {"calls": calls, "totalCalls": len(ended), "totalPages": pages, "currentPage": page}
    return json_response({"r": 0, "data": data})


async def configure(request: web.Request) -> web.Response:
    """POST /_sandbox/config {"balance": 0, "faults": ["r:2"], …}: the new state."""
    state = request.app[STATE]
    changes = await read_object(request)
    if changes is None:
        return json_response({"error": "invalid_json"}, status=400)
    for key, value in changes.items():
        if key == "faults" and isinstance(value, list):
            state.faults.extend(str(v) for v in value)
        elif key in CONFIG and isinstance(value, int | float) and not isinstance(value, bool):
            target = state.hooks if key.startswith("webhook_") else state
            setattr(target, key, CONFIG[key](value))
        else:
            return json_response({"error": "invalid_setting", "key": key}, status=400)
    return json_response(state.snapshot())


async def snapshot(request: web.Request) -> web.Response:
    """GET /_sandbox/state."""
    return json_response(request.app[STATE].snapshot())


async def calls(request: web.Request) -> web.Response:
    """GET /_sandbox/calls: every accepted call's id, body and result."""
    found = request.app[STATE].calls
    return json_response(
        [{"call_id": c.call_id, "body": c.body, "result": c.result} for c in found]
    )


async def idle(request: web.Request) -> web.Response:
    """GET /_sandbox/idle: answers once every call has ended and its events were posted."""
    await request.app[PLAYER].idle()
    return json_response({"idle": True})


def create_app(state: StringeeState | None = None) -> web.Application:
    """The Stringee sandbox as an aiohttp application; its state is app[STATE]."""
    app = web.Application()
    app[STATE] = StringeeState() if state is None else state
    app.on_startup.append(_start_player)
    app.on_cleanup.append(_stop_player)
    app.router.add_post("/v1/call2/callout", callout)
    app.router.add_get("/v1/call/log", call_log)
    app.router.add_post("/_sandbox/config", configure)
    app.router.add_get("/_sandbox/state", snapshot)
    app.router.add_get("/_sandbox/calls", calls)
    app.router.add_get("/_sandbox/idle", idle)
    return app


async def _start_player(app: web.Application) -> None:
    app[PLAYER] = Player(app[STATE])


async def _stop_player(app: web.Application) -> None:
    await app[PLAYER].close()


@dataclass(frozen=True)
class StringeeSandbox:
    """A running Stringee sandbox."""

    url: str
    port: int
    state: StringeeState
    player: Player


@asynccontextmanager
async def serve(
    state: StringeeState | None = None, host: str = "127.0.0.1", port: int = 0
) -> AsyncIterator[StringeeSandbox]:
    """Run the Stringee sandbox on host:port (0: a free port) for the duration of the block."""
    app = create_app(state)
    async with serve_app(app, host, port, handler_cancellation=True) as bound:
        yield StringeeSandbox(f"http://{host}:{bound}", bound, app[STATE], app[PLAYER])


def serve_forever(host: str, port: int, state: StringeeState) -> None:
    """Run the Stringee sandbox until SIGTERM or SIGINT (`sandbox --provider stringee`)."""

    def banner(sandbox: StringeeSandbox) -> list[str]:
        lines = [f"stringee sandbox listening on {sandbox.url} (key sid: {state.key_sid})"]
        if state.hooks.webhook_url:
            lines.append(
                f"stringee sandbox posts call events to {redact_url(state.hooks.webhook_url)}"
            )
        return lines

    run_until_signalled(serve(state, host, port), banner)
