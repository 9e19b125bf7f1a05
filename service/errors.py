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
    │   └── BalanceTooLow       balance_is_not_enough
    ├── Unauthorized            unauthorized         the key or token is refused
    ├── ProviderUnavailable     provider_unavailable 5xx, 429 or no connection: retryable
    ├── StoreUnavailable        store_unavailable    the store did not answer: retryable
    └── OutcomeUnknown          outcome_unknown      sent, no answer: never sent again

Quota and balance failures raised by the service itself (before calling) use the same leaves as
the provider's answers, so metrics and holds treat them alike.
"""

from __future__ import annotations

import asyncio

DAILY_BUDGET_CODE = "limit_word"  # the day's TTS characters are spent
QUOTA_CODES = frozenset({"limit_service", DAILY_BUDGET_CODE, "limit_word_session"})
BALANCE_CODE = "balance_is_not_enough"
PROVIDER_CODES = QUOTA_CODES | {BALANCE_CODE}
# The failures `on_exhausted: hold` waits out instead of failing the event.
EXHAUSTION_CODES = frozenset({DAILY_BUDGET_CODE, BALANCE_CODE})
# §12's account codes: the account cannot call now, whatever the event. With a failover list the
# next account is tried at once (CONTRACT.md §13), as for these two, which prove no call was made:
ACCOUNT_CODES = frozenset(
    {BALANCE_CODE, DAILY_BUDGET_CODE, "limit_service", "tenant_disabled", "tenant_invalid"}
    | {"individual_package_expired", "service_package_customer_limit", "permission_denied"}
    | {"api_key_invalid", "api_key_is_required", "auth_invalid", "unauthorized"}
)
UNAVAILABLE_CODE = "provider_unavailable"
THROTTLED_CODE = "rate_limit_exceeded"
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
    def of(code: str, message: str) -> ProviderError:
        """The leaf for a provider's code."""
        if code in QUOTA_CODES:
            return QuotaExceeded(message, code=code)
        if code == BALANCE_CODE:
            return BalanceTooLow(message)
        return ProviderError(message, code=code)


class QuotaExceeded(ProviderError):
    code = DAILY_BUDGET_CODE


class BalanceTooLow(ProviderError):
    code = BALANCE_CODE


class Unauthorized(AutocallError):
    code = "unauthorized"


class ProviderUnavailable(AutocallError):
    code = "provider_unavailable"
    retryable = True


class StoreUnavailable(AutocallError):
    code = "store_unavailable"
    retryable = True


class OutcomeUnknown(AutocallError):
    code = "outcome_unknown"


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
