"""The one error tree. Each leaf's `code` is an outcome's `error.code`.

    AutocallError(code, message, retryable=False)
    ├── InvalidEvent            invalid_event        the message is not a usable event
    ├── DeliveryLimit           delivery_limit       redelivered too often: it keeps failing
    ├── TemplateError           template_error       a template expression failed on this event
    ├── InvalidPhone            invalid_phone        the phone is not a valid Vietnamese number
    ├── Expired                 expired              older than the template's `expires_after`
    ├── UnknownAccount          unknown_account      the template's `account:` names no account
    ├── ProviderError           <provider's code>    the provider refused the call (no call made)
    │   ├── QuotaExceeded       limit_service | limit_word | limit_word_session
    │   ├── AccountUnable       <provider's code>    the account cannot call now: hold or fail over
    │   │   ├── BalanceTooLow   balance_is_not_enough | stringee_8
    │   │   └── AccountRefused  tenant_disabled | … (REFUSED_ACCOUNT_CODES)
    │   ├── DoNotCall           do_not_call          on the provider's own do-not-call list
    │   └── NumberRefused       invalid_phone_number | number_call_out_invalid
    ├── Unauthorized            unauthorized         the key or token is refused
    ├── ProviderUnavailable     provider_unavailable 5xx or no connection: retryable
    │   └── Throttled           rate_limit_exceeded  HTTP 429 or the code: retried, never failed
    ├── StoreUnavailable        store_unavailable    the store did not answer: retryable
    └── OutcomeUnknown          outcome_unknown      sent, no answer: never sent again

Quota and balance failures raised by the service itself (before calling) use the same leaves as
the provider's answers, so metrics and holds treat them alike. The provider's codes and what the
service does with each: CONTRACT.md §12, docs/provider-answers.md.
"""

from __future__ import annotations

import asyncio

DAILY_BUDGET_CODE = "limit_word"  # the day's TTS characters are spent
QUOTA_CODES = frozenset({"limit_service", DAILY_BUDGET_CODE, "limit_word_session"})
BALANCE_CODE = "balance_is_not_enough"
STRINGEE_BALANCE_CODE = "stringee_8"  # Stringee's r 8, not enough money (CONTRACT.md §13)
UNAUTHORIZED_CODE = "unauthorized"
# the token lapsed: a new one, the request once more
TOKEN_EXPIRED_CODE = "token_expired"  # noqa: S105  (a code, not a secret)
THROTTLED_CODE = "rate_limit_exceeded"
DO_NOT_CALL_CODE = "do_not_call"
NUMBER_CODES = frozenset({"invalid_phone_number", "number_call_out_invalid"})
# The account cannot call now (besides the quota and balance codes): held or failed account-wide.
REFUSED_ACCOUNT_CODES = frozenset(
    {
        "tenant_disabled",
        "tenant_invalid",
        "individual_package_expired",
        "service_package_customer_limit",
        "permission_denied",
        "api_key_invalid",
        "api_key_is_required",
        "auth_invalid",
    }
)
# The failures `on_exhausted: hold` waits out instead of failing the event (CONTRACT.md §12).
EXHAUSTION_CODES = frozenset(
    {DAILY_BUDGET_CODE, "limit_service", BALANCE_CODE, STRINGEE_BALANCE_CODE, UNAUTHORIZED_CODE}
    | REFUSED_ACCOUNT_CODES
)
# The provider's documented codes: labels of its metrics; others count as `other`.
PROVIDER_CODES = (
    QUOTA_CODES
    | REFUSED_ACCOUNT_CODES
    | NUMBER_CODES
    | {BALANCE_CODE, UNAUTHORIZED_CODE, TOKEN_EXPIRED_CODE, THROTTLED_CODE, DO_NOT_CALL_CODE}
    | {STRINGEE_BALANCE_CODE}
)
# §13: the account codes (each holds the account, and fails over at once with a failover list),
# and the failures that prove no call was made: the reasons an event goes on to the next account.
ACCOUNT_CODES = EXHAUSTION_CODES
UNAVAILABLE_CODE = "provider_unavailable"
FAILOVER_CODES = ACCOUNT_CODES | {UNAVAILABLE_CODE, THROTTLED_CODE}


class AutocallError(Exception):
    """A failure that ends an event as `failed` with `code`, unless it is retryable."""

    code = "internal_error"
    retryable = False

    def __init__(self, message: str, *, code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code

    def __repr__(self) -> str:
        return f"{type(self).__name__}(code={self.code!r}, message={self.message!r})"


class InvalidEvent(AutocallError):
    code = "invalid_event"


class DeliveryLimit(AutocallError):
    code = "delivery_limit"


class TemplateError(AutocallError):
    code = "template_error"


class InvalidPhone(AutocallError):
    code = "invalid_phone"


class Expired(AutocallError):
    code = "expired"


class UnknownAccount(AutocallError):
    code = "unknown_account"


class ProviderError(AutocallError):
    """The provider answered with a failure code; no call was made."""

    code = "provider_error"

    @staticmethod
    def of(code: str, message: str) -> AutocallError:
        """The leaf for a provider's code."""
        leaf = _LEAVES.get(code)
        if leaf is not None:
            return leaf(message)
        if code in QUOTA_CODES:
            return QuotaExceeded(message, code=code)
        if code in REFUSED_ACCOUNT_CODES:
            return AccountRefused(message, code=code)
        if code in NUMBER_CODES:
            return NumberRefused(message, code=code)
        return ProviderError(message, code=code)


class QuotaExceeded(ProviderError):
    code = DAILY_BUDGET_CODE


class AccountUnable(ProviderError):
    """The account cannot call now (balance, disabled, expired): another account may."""


class BalanceTooLow(AccountUnable):
    code = BALANCE_CODE


class AccountRefused(AccountUnable):
    """The account cannot call now: disabled, expired, its key refused (REFUSED_ACCOUNT_CODES)."""

    code = "tenant_disabled"


class DoNotCall(ProviderError):
    """The number is on the provider's own do-not-call list."""

    code = DO_NOT_CALL_CODE


class NumberRefused(ProviderError):
    """The provider refuses the number (NUMBER_CODES): failed, not retried."""

    code = "invalid_phone_number"


class Unauthorized(AutocallError):
    code = UNAUTHORIZED_CODE


class ProviderUnavailable(AutocallError):
    code = "provider_unavailable"
    retryable = True


class Throttled(ProviderUnavailable):
    """Too many requests: retried, and the next requests wait `retry_after` (None: unsaid)."""

    code = THROTTLED_CODE

    def __init__(self, message: str, *, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class StoreUnavailable(AutocallError):
    code = "store_unavailable"
    retryable = True


class OutcomeUnknown(AutocallError):
    code = "outcome_unknown"


# The provider's codes with a leaf of their own; the others by their set, in ProviderError.of.
_LEAVES: dict[str, type[AutocallError]] = {
    BALANCE_CODE: BalanceTooLow,
    DO_NOT_CALL_CODE: DoNotCall,
    UNAUTHORIZED_CODE: Unauthorized,
    THROTTLED_CODE: Throttled,
}

# The codes the service gives itself (the provider's are PROVIDER_CODES), in the tree's order.
SERVICE_CODES = tuple(
    leaf.code
    for leaf in (
        InvalidEvent,
        DeliveryLimit,
        TemplateError,
        InvalidPhone,
        Expired,
        UnknownAccount,
        Unauthorized,
        ProviderUnavailable,
        StoreUnavailable,
        OutcomeUnknown,
    )
)


class ConfigError(Exception):
    """A setting or the templates file is invalid: start-up stops with these lines."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = problems


def cancelled_by_channel(exc: BaseException) -> bool:
    """Whether `exc` is a CancelledError the AMQP client raised into an await because a channel
    closed, rather than a cancellation of the current task (which must propagate)."""
    if not isinstance(exc, asyncio.CancelledError):
        return False
    task = asyncio.current_task()
    return task is None or task.cancelling() == 0
