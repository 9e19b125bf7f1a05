"""The retry policy, without a broker: hold, retry through the tiers, or fail."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from service.amqp.headers import ATTEMPT_HEADER, RETRIES_HEADER
from service.errors import (
    AccountRefused,
    AutocallError,
    BalanceTooLow,
    InvalidPhone,
    ProviderUnavailable,
    QuotaExceeded,
    StoreUnavailable,
    Throttled,
    Unauthorized,
)
from service.pipeline.actions import Delay, Publish, PutBack
from service.pipeline.retry import Retry, jitter
from tests.helpers import call_of

NOW = datetime(2026, 11, 27, 7, 30, tzinfo=UTC)
POLICY = Retry(delays=(0.05, 2.0), queues=("q.retry.1", "q.retry.2"), jitter=lambda: 1.0)


@pytest.mark.parametrize("error", [ProviderUnavailable("503"), StoreUnavailable("down")])
def test_a_retryable_failure_waits_in_the_next_tier(error: AutocallError) -> None:
    action = POLICY.after(error, call_of(), attempts=1, retries=1, now=NOW)

    assert isinstance(action, Delay)
    assert (action.queue, action.delay_ms, action.why) == ("q.retry.2", 2000, error.code)
    assert action.headers == {RETRIES_HEADER: 2, ATTEMPT_HEADER: 1}
    assert action.retry is True
    assert action.event.id == "e-1"


def test_past_the_last_tier_it_fails_with_its_attempts() -> None:
    action = POLICY.after(ProviderUnavailable("503"), call_of(), attempts=3, retries=2, now=NOW)

    assert isinstance(action, Publish)
    outcome = action.outcome
    assert (outcome.status, outcome.code, outcome.attempts) == ("failed", "provider_unavailable", 3)
    assert outcome.error is not None and outcome.error["retryable"] is True
    assert outcome.template == "t"


def test_a_failure_that_is_not_retryable_fails_at_once() -> None:
    action = POLICY.after(InvalidPhone("bad"), call_of(), attempts=0, retries=0, now=NOW)

    assert isinstance(action, Publish)
    assert action.outcome.code == "invalid_phone"


@pytest.mark.parametrize(
    "error", [BalanceTooLow("empty"), QuotaExceeded("spent", code="limit_word")]
)
def test_exhaustion_holds_when_the_template_says_hold(error: AutocallError) -> None:
    held = POLICY.after(error, call_of("hold"), attempts=1, retries=0, now=NOW)
    failed = POLICY.after(error, call_of("fail"), attempts=1, retries=0, now=NOW)

    assert held == PutBack(error.code, holds=True)
    assert isinstance(failed, Publish)
    assert failed.outcome.code == error.code


def test_the_per_call_quota_never_holds() -> None:
    error = QuotaExceeded("300 characters", code="limit_word_session")

    action = POLICY.after(error, call_of("hold"), attempts=1, retries=0, now=NOW)

    assert isinstance(action, Publish)


def test_the_delay_is_jittered_and_never_zero() -> None:
    fast = Retry(delays=(0.0001,), queues=("q.retry.1",), jitter=lambda: 0.8)

    action = fast.after(ProviderUnavailable("503"), call_of(), attempts=1, retries=0, now=NOW)

    assert isinstance(action, Delay)
    assert action.delay_ms == 1
    assert all(0.8 <= jitter() <= 1.2 for _ in range(100))


def test_a_throttle_is_never_failed_past_the_last_tier_it_takes_the_last_again() -> None:
    throttled = Throttled("429")

    first = POLICY.after(throttled, call_of(), attempts=1, retries=0, now=NOW)
    late = POLICY.after(throttled, call_of(), attempts=9, retries=8, now=NOW)

    assert isinstance(first, Delay) and first.queue == "q.retry.1"
    assert isinstance(late, Delay) and late.queue == "q.retry.2"
    assert late.why == "rate_limit_exceeded"


@pytest.mark.parametrize(
    "error",
    [
        AccountRefused("off", code="tenant_disabled"),
        AccountRefused("key", code="auth_invalid"),
        Unauthorized("refused"),
        QuotaExceeded("trial", code="limit_service"),
    ],
)
def test_account_codes_hold_like_the_balance(error: AutocallError) -> None:
    held = POLICY.after(error, call_of("hold"), attempts=1, retries=0, now=NOW)
    failed = POLICY.after(error, call_of("fail"), attempts=1, retries=0, now=NOW)

    assert held == PutBack(error.code, holds=True)
    assert isinstance(failed, Publish) and failed.outcome.code == error.code
