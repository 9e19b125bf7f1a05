"""What the provider's answers mean (CONTRACT.md §5, §12): the one place that maps an answer to a
success, a lapsed token, or a leaf of the error tree. Pure: the client sends, this reads."""

from __future__ import annotations

import re
from typing import Any

from ...errors import (
    EXHAUSTION_CODES,
    PROVIDER_CODES,
    THROTTLED_CODE,
    TOKEN_EXPIRED_CODE,
    ProviderError,
    ProviderUnavailable,
    Throttled,
    Unauthorized,
)
from ..edge import Answer, Failure, trim

SUCCESS = 9999
_CODE_LIKE = re.compile(r"^[A-Za-z][A-Za-z0-9_.:-]{0,63}$")


def succeeded(answer: Answer) -> bool:
    """`status_code` 9999."""
    document = answer.document
    return type(document) is dict and document.get("status_code") == SUCCESS


def token_lapsed(answer: Answer) -> bool:
    """HTTP 401, a body whose `status_code` is 401, or the code `token_expired`: a new token
    and the request once more."""
    if answer.status == 401:
        return True
    document = answer.document
    if type(document) is not dict or document.get("status_code") == SUCCESS:
        return False
    return document.get("status_code") == 401 or error_code(document) == TOKEN_EXPIRED_CODE


def lapse(answer: Answer) -> str:
    """How the token's lapse was said, for a message."""
    if answer.status == 401:
        return "HTTP 401"
    if type(answer.document) is dict and answer.document.get("status_code") == 401:
        return "status_code 401"
    return TOKEN_EXPIRED_CODE


def failure_of(answer: Answer) -> Failure:
    """What a failure answer to a request with a valid token means (CONTRACT.md §12's table)."""
    document = answer.document
    status = answer.status
    if status == 429:
        return Failure("http_other", None, _throttled(answer))
    if document is None:  # an HTML page from a proxy, say
        shown = f"HTTP {status}: {trim(answer.body, 120)}"
        if status >= 500:
            return Failure("http_5xx", None, ProviderUnavailable(shown, status=status))
        result = "http_other" if status >= 400 else "provider_error"
        return Failure(result, "provider_error", _plain(shown))
    code = error_code(document)
    if status >= 500 and code not in PROVIDER_CODES:
        shown = f"HTTP {status}: {trim(answer.body)}"
        return Failure("http_5xx", None, ProviderUnavailable(shown, status=status))
    if code == THROTTLED_CODE or _status_code(document) == 429:
        return Failure("provider_error", THROTTLED_CODE, _throttled(answer))
    error = ProviderError.of(code or "provider_error", trim(answer.body, 500) or f"HTTP {status}")
    result = "unauthorized" if isinstance(error, Unauthorized) else "provider_error"
    return Failure(result, code or "provider_error", error)


def token_failure_of(answer: Answer) -> Failure:
    """What an answer without an access token to the token request means."""
    document = answer.document
    code = error_code(document)
    if answer.status == 429 or code == THROTTLED_CODE:
        return Failure(
            "http_other" if answer.status == 429 else "provider_error", code, _throttled(answer)
        )
    if code in EXHAUSTION_CODES:  # auth_invalid, api_key_invalid, tenant_disabled, …
        message = f"the provider refused the token request: {code}"
        return Failure("unauthorized", code, ProviderError.of(code, message))
    if answer.status in (401, 403):
        message = f"the provider refused the API key (HTTP {answer.status})"
        return Failure("unauthorized", code, Unauthorized(message))
    if answer.status >= 500:
        message = f"token request: HTTP {answer.status}"
        return Failure("http_5xx", None, ProviderUnavailable(message, status=answer.status))
    message = f"no access token in the answer ({code or 'provider_error'})"
    return Failure("provider_error", code, Unauthorized(message))


def _throttled(answer: Answer) -> Throttled:
    wait = "" if answer.retry_after is None else f"; Retry-After {answer.retry_after:g} s"
    return Throttled(
        f"the provider is throttling requests (HTTP {answer.status}{wait})",
        retry_after=answer.retry_after,
    )


def _plain(message: str) -> ProviderError:
    return ProviderError(message, code="provider_error")


def _status_code(document: dict[str, Any]) -> object:
    return document.get("status_code")


def error_code(document: Any) -> str | None:
    """The error code of a failure answer: a documented code wherever it is, else the first
    code-like string of payload.error, message, payload.message."""
    if not isinstance(document, dict):
        return None
    payload = document.get("payload")
    payload = payload if isinstance(payload, dict) else {"": payload}
    ordered = [payload.get("error"), document.get("message"), payload.get("message")]
    anywhere = [*ordered, document.get("error"), document.get("key"), payload.get("")]
    for value in anywhere:
        if isinstance(value, str) and value.strip() in PROVIDER_CODES:
            return value.strip()
    for value in ordered:
        if isinstance(value, str) and _CODE_LIKE.match(value.strip()):
            return value.strip()
    return None
