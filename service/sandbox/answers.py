"""The provider's answers to a call request beyond its documented rules (CONTRACT.md §12): by the
account knobs of /_sandbox/config, and by scripted numbers, so that tests and `make run` meet
every code the service must handle.

Knobs: `throttle` N (the next N requests are throttled: `throttle_style` "429" for HTTP 429,
"message" for `rate_limit_exceeded` in an HTTP 200 body; `retry_after` seconds, 0 for no
header), `account` (a code every call request is answered with while set: the account disabled,
expired, its key refused; "" re-enables it; a key code refuses the token request too), and
`not_found` (path prefixes answered with an HTML 404, e.g. the call history's).

A number's last four digits (the call's script by its last digit still applies once accepted):
    4001 do_not_call           4002 invalid_phone_number     4003 number_call_out_invalid
    4004 data_is_required      4005 token_expired *          4006 a body of status_code 401 *
    4007 rate_limit_exceeded * 4008 HTTP 429, Retry-After 1 * 4009 an HTML 502 from a proxy *
    4010 an HTML 404 page      4011-4022 ACCOUNT_CODES, alphabetical (always): api_key_invalid,
    api_key_is_required, auth_invalid, balance_is_not_enough, individual_package_expired,
    limit_service, limit_word, permission_denied, service_package_customer_limit,
    tenant_disabled, tenant_invalid, unauthorized
* once per number: its next request is answered as usual (a lapsed token is revoked first).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import orjson
from aiohttp import web

from ..errors import (
    DO_NOT_CALL_CODE,
    EXHAUSTION_CODES,
    NUMBER_CODES,
    THROTTLED_CODE,
    TOKEN_EXPIRED_CODE,
)
from .rules import error_body

if TYPE_CHECKING:
    from .state import SandboxState

# The provider's codes as the service's error tree names them: the sandbox answers what the
# service must handle. In order, for the scripted numbers 4011-4022.
ACCOUNT_CODES = tuple(sorted(EXHAUSTION_CODES))
KEY_CODES = frozenset({"api_key_invalid", "api_key_is_required", "auth_invalid"})
THROTTLE_STYLES = ("429", "message")
ONCE = frozenset({TOKEN_EXPIRED_CODE, "status_401", THROTTLED_CODE, "http_429", "html_502"})
SCRIPTED: dict[str, str] = {
    "4001": DO_NOT_CALL_CODE,
    "4002": sorted(NUMBER_CODES)[0],  # invalid_phone_number
    "4003": sorted(NUMBER_CODES)[1],  # number_call_out_invalid
    "4004": "data_is_required",  # any code the service does not know
    "4005": TOKEN_EXPIRED_CODE,
    "4006": "status_401",
    "4007": THROTTLED_CODE,
    "4008": "http_429",
    "4009": "html_502",
    "4010": "html_404",
} | {str(4011 + n): code for n, code in enumerate(ACCOUNT_CODES)}
PROXY_PAGE = (
    b"<html><head><title>%d</title></head><body><center><h1>%d %s</h1></center></body></html>"
)


def scripted_code(number: str) -> str | None:
    """What a number is scripted to be answered with, by its last four digits."""
    return SCRIPTED.get(number[-4:])


def throttled(state: SandboxState) -> web.Response | None:
    """The answer to a request the throttle knob refuses, or None."""
    if state.throttle <= 0:
        return None
    state.throttle -= 1
    state.requests[THROTTLED_CODE] += 1
    code = "http_429" if state.throttle_style == "429" else THROTTLED_CODE
    return _answer(state, code, state.retry_after)


def account_refusal(state: SandboxState) -> web.Response | None:
    """The answer of an account the `account` knob disabled, or None."""
    if not state.account:
        return None
    state.requests[state.account] += 1
    return _answer(state, state.account)


def token_refusal(state: SandboxState) -> web.Response | None:
    """The token request's answer while the `account` knob refuses the key, or None."""
    if state.account not in KEY_CODES:
        return None
    return _json({"status_code": 401, "message": state.account, "payload": None}, 401)


def number_refusal(state: SandboxState, body: dict[str, Any], token: str) -> web.Response | None:
    """The answer a scripted number gets instead of a call, or None."""
    numbers = body.get("phone_number_list") or [""]
    number = str(numbers[0])
    code = scripted_code(number)
    if code is None or (code in ONCE and number in state.answered_once):
        return None
    if code in ONCE:
        state.answered_once.add(number)
    if code in (TOKEN_EXPIRED_CODE, "status_401"):
        state.tokens.pop(token, None)
    state.requests[code] += 1
    return _answer(state, code, 1.0 if code == "http_429" else 0.0)


def _answer(state: SandboxState, code: str, retry_after: float = 0.0) -> web.Response:
    if code == "http_429":
        headers = {"Retry-After": f"{retry_after:g}"} if retry_after else {}
        return web.Response(status=429, text="Too Many Requests", headers=headers)
    if code in ("html_502", "html_404"):
        status = int(code[-3:])
        reason = "Bad Gateway" if status == 502 else "Not Found"
        page = PROXY_PAGE % (status, status, reason.encode())
        return web.Response(status=status, body=page, content_type="text/html")
    if code == "status_401":
        return _json({"status_code": 401, "message": "Unauthorized", "payload": None})
    style = "message" if code == TOKEN_EXPIRED_CODE else state.next_envelope()
    response = _json(error_body(style, code))
    if retry_after:
        response.headers["Retry-After"] = f"{retry_after:g}"
    return response


def not_found(state: SandboxState, path: str) -> web.Response | None:
    """An HTML 404 for a path the `not_found` knob names (a prefix), or None."""
    if any(path.startswith(prefix) for prefix in state.not_found):
        return _answer(state, "html_404")
    return None


def _json(data: object, status: int = 200) -> web.Response:
    return web.Response(body=orjson.dumps(data), status=status, content_type="application/json")
