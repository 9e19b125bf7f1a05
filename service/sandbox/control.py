"""The test controls under /_sandbox/: read the state, change the knobs, wait for the calls."""

from __future__ import annotations

from aiohttp import web

from .api import DIALER_KEY, STATE_KEY, json_response, read_object
from .state import configure


async def get_state(request: web.Request) -> web.Response:
    """GET /_sandbox/state."""
    return json_response(request.app[STATE_KEY].snapshot())


async def get_calls(request: web.Request) -> web.Response:
    """GET /_sandbox/calls: every accepted call, oldest first."""
    return json_response(request.app[STATE_KEY].calls)


async def get_cdrs(request: web.Request) -> web.Response:
    """GET /_sandbox/cdrs: every attempt planned so far, ended or not, as call-history items."""
    return json_response([attempt.item() for attempt in request.app[STATE_KEY].planned()])


async def get_idle(request: web.Request) -> web.Response:
    """GET /_sandbox/idle: answers once every call with a webhook has been played out."""
    await request.app[DIALER_KEY].idle()
    return json_response({"idle": True})


async def post_config(request: web.Request) -> web.Response:
    """POST /_sandbox/config: change settings or queue faults; the new state."""
    state = request.app[STATE_KEY]
    changes = await read_object(request)
    if changes is None:
        return json_response({"error": "invalid_json"}, status=400)
    bad = configure(state, changes)
    if bad is not None:
        return json_response({"error": "invalid_setting", "key": bad}, status=400)
    return json_response(state.snapshot())


async def post_expire_tokens(request: web.Request) -> web.Response:
    """POST /_sandbox/expire-tokens: every issued token stops working."""
    state = request.app[STATE_KEY]
    expired = len(state.tokens)
    state.tokens.clear()
    return json_response({"expired": expired})


async def post_reset(request: web.Request) -> web.Response:
    """POST /_sandbox/reset: balance, counters, calls, faults and settings back to defaults."""
    state = request.app[STATE_KEY]
    state.reset()
    return json_response(state.snapshot())


def add_routes(app: web.Application) -> None:
    """The test controls."""
    app.router.add_get("/_sandbox/state", get_state)
    app.router.add_get("/_sandbox/calls", get_calls)
    app.router.add_get("/_sandbox/cdrs", get_cdrs)
    app.router.add_get("/_sandbox/idle", get_idle)
    app.router.add_post("/_sandbox/config", post_config)
    app.router.add_post("/_sandbox/expire-tokens", post_expire_tokens)
    app.router.add_post("/_sandbox/reset", post_reset)
