"""The provider's API as the sandbox serves it: auth, execute_*, the call-history search and the
webhook registration."""

from __future__ import annotations

import asyncio
from typing import Any
from urllib.parse import urlsplit

import orjson
from aiohttp import web

from . import answers
from .dialer import Dialer
from .history import parse_page, parse_query, search
from .rules import error_body, success_body, tts_chars, validate
from .state import FAULT_ANSWERS, TOKEN_TTL, SandboxState

STATE_KEY = web.AppKey("sandbox_state", SandboxState)
DIALER_KEY = web.AppKey("sandbox_dialer", Dialer)
HANGING_KEY: web.AppKey[set[asyncio.Future[None]]] = web.AppKey("sandbox_hanging")
LOOPBACK = frozenset({"127.0.0.1", "localhost", "::1"})


def json_response(data: object, status: int = 200) -> web.Response:
    """A JSON answer."""
    return web.Response(body=orjson.dumps(data), status=status, content_type="application/json")


def _ok(payload: object) -> web.Response:
    return json_response({"status_code": 9999, "payload": payload})


def _refuse(state: SandboxState, code: str, status: int = 200) -> web.Response:
    return json_response(error_body(state.next_envelope(), code), status=status)


def _authorized(request: web.Request) -> bool:
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    return scheme.lower() == "bearer" and request.app[STATE_KEY].token_valid(token)


def _bearer(request: web.Request) -> str:
    return request.headers.get("Authorization", "").partition(" ")[2]


async def _json_body(request: web.Request) -> object:
    """The parsed JSON body, or None when it is not JSON."""
    if request.content_type != "application/json":
        return None
    try:
        return orjson.loads(await request.read())
    except orjson.JSONDecodeError:
        return None


async def read_object(request: web.Request) -> dict[str, Any] | None:
    """The body's JSON object, whatever its content type; None when it is not one."""
    try:
        document = orjson.loads(await request.read())
    except orjson.JSONDecodeError:
        return None
    return document if isinstance(document, dict) else None


async def auth(request: web.Request) -> web.Response:
    """GET /api/auth?apiKey=K: an access token for a known key."""
    state = request.app[STATE_KEY]
    state.auth_requests += 1
    if request.query.get("apiKey", "") not in state.api_keys:
        return json_response({"status_code": 401, "message": "invalid_api_key"}, status=401)
    if (refused := answers.token_refusal(state)) is not None:
        return refused
    token = state.issue_token()
    payload = {"access_token": token, "token_type": "Bearer", "expires_in": TOKEN_TTL}
    return _ok(payload)


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
    if (throttled := answers.throttled(state)) is not None:
        return throttled
    result, response = await _answer(request, state, request.match_info["action"])
    if result:  # the scripted answers count themselves, by code
        state.requests[result] += 1
    if fault == "accept_then_hang":
        return await _never_answer(request)
    return _drop(request) if fault == "accept_then_drop" else response


async def _answer(
    request: web.Request, state: SandboxState, action: str
) -> tuple[str, web.Response]:
    """The provider's own answer: the request's result label and the response."""
    if not _authorized(request):
        return "unauthorized", web.Response(status=401, text="Unauthorized")
    if (disabled := answers.account_refusal(state)) is not None:
        return "", disabled
    body = await _read_body(request, action)
    if isinstance(body, str):
        return body, _refuse(state, body, status=400)
    if (scripted := answers.number_refusal(state, body, _bearer(request))) is not None:
        return "", scripted
    chars = tts_chars(body)
    code = state.refusal(chars)
    if code is not None:
        return code, _refuse(state, code)
    call = state.accept(action, body, chars)
    request.app[DIALER_KEY].start(call)
    uuids = call.autocall_uuids if state.answer_uuids else []
    return "ok", json_response(success_body(action, body, call.autocall_id, uuids))


async def _read_body(request: web.Request, action: str) -> dict[str, Any] | str:
    """The valid JSON body of an execute_* request, or the error code that rejects it."""
    if request.query_string:
        return "unexpected_query_string"
    body = await _json_body(request)
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


async def search_calls(request: web.Request) -> web.Response:
    """POST /api/v3/call-transaction/search?page=P&size=N (with the bearer token and, when
    sent, a known x-api-key) or /api/v2/callTransaction/search: finished attempts, 50 a page at
    most; a version the sandbox is set not to serve answers 404, as a provider without it."""
    state = request.app[STATE_KEY]
    version = "v3" if request.path.startswith("/api/v3/") else "v2"
    if state.history_api not in (version, "both"):
        state.search_requests[f"{version}_not_found"] += 1
        raise web.HTTPNotFound()
    key = request.headers.get("x-api-key")
    if not _authorized(request) or (key is not None and key not in state.api_keys):
        state.search_requests["unauthorized"] += 1
        return web.Response(status=401, text="Unauthorized")
    if state.take_throttle():
        state.search_requests["limit_request_30_minute"] += 1
        return _refuse(state, "limit_request_30_minute")
    page = parse_page(dict(request.query))
    query = parse_query(await _json_body(request), version)
    if isinstance(page, str) or isinstance(query, str):
        code = page if isinstance(page, str) else str(query)
        state.search_requests[code] += 1
        return _refuse(state, code, status=400)
    state.search_requests["ok"] += 1
    paging = state.history_paging if version == "v3" else "snake"
    found = request.app[DIALER_KEY].finished()
    return _ok(search(found, query, *page, paging=paging, with_id=state.history_autocall_id))


async def register_webhook(request: web.Request) -> web.Response:
    """POST /api/webhooks/register {"webhook": {"type": "call", "url": …, "events": null}}."""
    state = request.app[STATE_KEY]
    if not _authorized(request):
        return web.Response(status=401, text="Unauthorized")
    body = await _json_body(request)
    hook = body.get("webhook") if isinstance(body, dict) else None
    if not isinstance(hook, dict):
        return _refuse(state, "invalid_json", status=400)
    if hook.get("type") != "call":
        return _refuse(state, "invalid_webhook_type", status=400)
    if not _acceptable_url(hook.get("url")):
        return _refuse(state, "invalid_url", status=400)
    events = hook.get("events")
    state.hooks["call"] = {"type": "call", "url": hook["url"], "events": events}
    return _ok(state.hooks["call"])


async def list_webhooks(request: web.Request) -> web.Response:
    """GET /api/webhooks/list: the registered webhooks."""
    if not _authorized(request):
        return web.Response(status=401, text="Unauthorized")
    return _ok(list(request.app[STATE_KEY].hooks.values()))


async def destroy_webhook(request: web.Request) -> web.Response:
    """POST /api/webhooks/destroy?hook_type=call: forget the webhook of that type."""
    state = request.app[STATE_KEY]
    if not _authorized(request):
        return web.Response(status=401, text="Unauthorized")
    hook_type = request.query.get("hook_type", "")
    if hook_type != "call":
        return _refuse(state, "invalid_webhook_type", status=400)
    if state.hooks.pop(hook_type, None) is None:
        return _refuse(state, "webhook_not_found")
    return _ok(None)


def _acceptable_url(url: object) -> bool:
    """An https URL; plain http only to this machine, where the sandbox's tests listen."""
    if not isinstance(url, str):
        return False
    try:
        parts = urlsplit(url)
        host = parts.hostname
    except ValueError:
        return False
    if not host:
        return False
    return parts.scheme == "https" or (parts.scheme == "http" and host in LOOPBACK)


def add_routes(app: web.Application) -> None:
    """The provider's endpoints."""
    app.router.add_get("/api/auth", auth)
    app.router.add_post("/api/auto_call/{action:execute_by_phone|execute_by_extension}", execute)
    app.router.add_post("/api/v2/callTransaction/search", search_calls)
    app.router.add_post("/api/v3/call-transaction/search", search_calls)
    app.router.add_post("/api/webhooks/register", register_webhook)
    app.router.add_get("/api/webhooks/list", list_webhooks)
    app.router.add_post("/api/webhooks/destroy", destroy_webhook)
