"""The day's TTS budget, without Redis: reserved with the key, refunded when no call was made."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from service.errors import QuotaExceeded
from service.metrics import Metrics
from service.pipeline.budget import Budget, local_day, next_midnight
from service.store import MemoryStore, Reservation
from service.templates.filters import LOCAL_TZ

# 23:30 in Ho Chi Minh City is 16:30 UTC: the local day differs from the UTC one before 07:00.
LATE = datetime(2026, 11, 27, 23, 30, tzinfo=LOCAL_TZ)


def used_today(metrics: Metrics) -> float | None:
    return metrics.registry.get_sample_value("autocall_tts_chars_used_today")


def test_the_local_day_and_its_midnight() -> None:
    early_utc = datetime(2026, 11, 27, 18, 0, tzinfo=UTC)  # already 01:00 on the 28th locally

    assert local_day(early_utc) == "2026-11-28"
    assert next_midnight(LATE) == datetime(2026, 11, 28, tzinfo=LOCAL_TZ)


def test_a_call_without_tts_reserves_nothing() -> None:
    budget = Budget(MemoryStore(60), 100, Metrics(), lambda: LATE)

    assert budget.ask(0) is None
    assert budget.ask(12) == Reservation("2026-11-27", 12, 100)


async def test_characters_that_do_not_fit_are_limit_word() -> None:
    store, metrics = MemoryStore(60), Metrics()
    budget = Budget(store, 20, metrics, lambda: LATE)
    first = budget.ask(15)
    budget.check(first, await store.claim("k1", "e1", first))
    second = budget.ask(15)

    with pytest.raises(QuotaExceeded) as raised:
        budget.check(second, await store.claim("k2", "e2", second))

    assert raised.value.code == "limit_word"
    assert "15 of 20" in raised.value.message
    assert used_today(metrics) == 15
    assert metrics.registry.get_sample_value("autocall_tts_daily_limit_chars") == 20


async def test_a_refund_gives_the_characters_back() -> None:
    store, metrics = MemoryStore(60), Metrics()
    budget = Budget(store, 20, metrics, lambda: LATE)
    reservation = budget.ask(15)
    budget.check(reservation, await store.claim("k1", "e1", reservation))

    await budget.refund(reservation)

    assert await store.tts_used("2026-11-27") == 0
    assert used_today(metrics) == 0


async def test_refresh_reads_what_other_replicas_spent_and_a_new_day_starts_at_zero() -> None:
    store, metrics = MemoryStore(60), Metrics()
    now = [LATE]
    budget = Budget(store, 100, metrics, lambda: now[0])
    await store.add_tts("2026-11-27", 40, 100)

    await budget.refresh()
    assert used_today(metrics) == 40
    now[0] = LATE + timedelta(hours=1)
    assert used_today(metrics) == 0
