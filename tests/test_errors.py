"""The error tree: each leaf's code, and which cancellations belong to a closing channel."""

from __future__ import annotations

import asyncio

import pytest

from service.errors import (
    BalanceTooLow,
    OutcomeUnknown,
    ProviderError,
    ProviderUnavailable,
    QuotaExceeded,
    StoreUnavailable,
    cancelled_by_channel,
)


@pytest.mark.parametrize(
    ("code", "kind"),
    [
        ("limit_service", QuotaExceeded),
        ("limit_word", QuotaExceeded),
        ("limit_word_session", QuotaExceeded),
        ("balance_is_not_enough", BalanceTooLow),
        ("something_new", ProviderError),
    ],
)
def test_a_provider_code_gets_its_leaf(code: str, kind: type[ProviderError]) -> None:
    error = ProviderError.of(code, "raw answer")

    assert type(error) is kind
    assert (error.code, error.message, error.retryable) == (code, "raw answer", False)


def test_only_transient_failures_are_retryable() -> None:
    assert ProviderUnavailable("x").retryable
    assert StoreUnavailable("x").retryable
    assert not OutcomeUnknown("x").retryable  # the call may exist: never sent again


async def test_a_future_cancelled_under_us_is_the_channel_s() -> None:
    waiting = asyncio.get_running_loop().create_future()
    asyncio.get_running_loop().call_soon(waiting.cancel)  # as aiormq does when a channel closes

    with pytest.raises(asyncio.CancelledError) as caught:
        await waiting

    assert cancelled_by_channel(caught.value)


async def test_cancelling_the_task_itself_is_not() -> None:
    seen: list[bool] = []

    async def worker() -> None:
        try:
            await asyncio.sleep(10)
        except asyncio.CancelledError as exc:
            seen.append(cancelled_by_channel(exc))
            raise

    task = asyncio.create_task(worker())
    await asyncio.sleep(0)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task

    assert seen == [False]
    assert not cancelled_by_channel(ValueError())
