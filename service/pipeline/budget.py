"""The day's TTS budget (Asia/Ho_Chi_Minh), shared through the store."""

from __future__ import annotations

import functools
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from ..accounts import AccountSpec
from ..errors import DAILY_BUDGET_CODE, QuotaExceeded, StoreUnavailable
from ..metrics import Metrics
from ..settings import DEFAULT_ACCOUNT
from ..store import Claim, Reservation, State, Store
from ..templates.filters import LOCAL_TZ


def local_day(now: datetime) -> str:
    """The local date, e.g. '2026-11-27'."""
    return _day_of_hour(int(now.timestamp()) // 3600)


@functools.lru_cache(maxsize=4)  # local days start on the hour (UTC+7, no daylight saving)
def _day_of_hour(hour: int) -> str:
    return datetime.fromtimestamp(hour * 3600, LOCAL_TZ).date().isoformat()


def next_midnight(now: datetime) -> datetime:
    """The next local midnight, when the day's budget starts again."""
    local = now.astimezone(LOCAL_TZ)
    return datetime.combine(local.date() + timedelta(days=1), datetime.min.time(), LOCAL_TZ)


class Budget:
    """Reserves a call's TTS characters before it is made; refunds them if no call was made."""

    def __init__(
        self,
        store: Store,
        limit: int,
        metrics: Metrics,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        *,
        account: str | None = None,
    ) -> None:
        self._store = store
        self._limit = limit
        self._metrics = metrics
        self._clock = clock
        # The store's day key: the account's own, but for the first (or only) account's, which
        # keeps the key it had before there were accounts (and reports in the gauges).
        self._prefix = f"{account}:" if account else ""
        self._seen: tuple[str, int] = ("", 0)  # (day, characters used) as last read
        if account is None:
            metrics.tts_daily_limit.set(limit)
            metrics.tts_used_today.set_function(self._used_today)

    def ask(self, chars: int) -> Reservation | None:
        """What a call of `chars` TTS characters takes from today's budget (nothing for none):
        the store takes it together with the call's idempotency key."""
        if chars == 0:
            return None
        return Reservation(self._day(), chars, self._limit)

    def check(self, reservation: Reservation | None, claim: Claim) -> None:
        """QuotaExceeded('limit_word') when the characters did not fit."""
        if reservation is None or claim.used is None:
            return
        self._seen = (reservation.day, claim.used)
        if claim.state is State.OVER_BUDGET:
            raise QuotaExceeded(
                f"today's TTS budget: {claim.used} of {self._limit} characters used, "
                f"this call needs {reservation.chars}",
                code=DAILY_BUDGET_CODE,
            )

    async def refund(self, reservation: Reservation | None) -> None:
        """Best effort: a refund lost to a store outage only makes the budget stricter."""
        if reservation is None:
            return
        day, chars = reservation.day, reservation.chars
        try:
            await self._store.refund_tts(day, chars)
        except StoreUnavailable:
            return
        if self._seen[0] == day:
            self._seen = (day, max(0, self._seen[1] - chars))

    async def refresh(self) -> None:
        """Read today's count from the store (other replicas spend it too)."""
        day = self._day()
        self._seen = (day, await self._store.tts_used(day))

    async def take(self, chars: int) -> Reservation | None:
        """Reserve `chars` now, outside a claim (a call sent on to this account): the
        reservation, or QuotaExceeded('limit_word') when they do not fit."""
        reservation = self.ask(chars)
        if reservation is None:
            return None
        reserved, used = await self._store.add_tts(reservation.day, chars, self._limit)
        self.check(reservation, Claim(State.NEW if reserved else State.OVER_BUDGET, used=used))
        return reservation

    def _day(self) -> str:
        return self._prefix + local_day(self._clock())

    def _used_today(self) -> float:
        day, used = self._seen
        return float(used) if day == self._day() else 0.0


def budgets(
    store: Store, metrics: Metrics, clock: Callable[[], datetime]
) -> Callable[[AccountSpec], Budget]:
    """Each account's own budget; `default`'s keeps the store key it had before accounts."""

    def of(spec: AccountSpec) -> Budget:
        own = None if spec.name == DEFAULT_ACCOUNT else spec.name
        return Budget(store, spec.tts_daily_limit, metrics, clock, account=own)

    return of
