"""The Prometheus metrics of CONTRACT.md §8, in one registry per service instance."""

from __future__ import annotations

import contextlib
import copy
import time
from collections.abc import Callable, Iterator
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, disable_created_metrics

from .errors import (
    BALANCE_CODE,
    EXHAUSTION_CODES,
    FAILOVER_CODES,
    PROVIDER_CODES,
    QUOTA_CODES,
    SERVICE_CODES,
    AutocallError,
)
from .events import STATUSES
from .settings import DEFAULT_ACCOUNT, NO_ACCOUNT

disable_created_metrics()  # type: ignore[no-untyped-call]  # *_created series: noise in every scrape
ENDPOINTS = ("execute_by_phone", "execute_by_extension", "auth")
RESULTS = (
    "ok",
    "provider_error",
    "unauthorized",
    "http_5xx",
    "http_other",
    "timeout",
    "connection_error",
)
PAUSE_REASONS = tuple(sorted(EXHAUSTION_CODES))  # what a hold waits out


class Metrics:
    """Every metric the service exports; labelled series start at 0 so dashboards see them."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        self.account = DEFAULT_ACCOUNT  # the `account` label of a provider client's metrics
        self._event_metrics(self.registry)
        self._provider_metrics(self.registry)
        self._budget_and_flow_metrics(self.registry)
        self._account_metrics(self.registry)
        self._children: dict[tuple[Any, tuple[str, ...]], Any] = {}
        self._holding: dict[str, str | None] = {}  # each account's hold reason, as last set
        self._initialise()

    def for_account(self, account: str) -> Metrics:
        """The same metrics, seen by one account's client: its series carry its label."""
        view = copy.copy(self)  # the collectors and the label cache are shared
        view.account = account
        return view

    def accounts(self, names: list[str]) -> None:
        """Start every account's series at 0 (the file bounds the label's values); `default`'s,
        started before the file was read, go when the file has no such account."""
        # an outcome that reached no account (unknown account, store down): `default`'s label
        # while there is such an account, as before accounts existed; else "none"
        self.unrouted = DEFAULT_ACCOUNT if DEFAULT_ACCOUNT in names else NO_ACCOUNT
        if DEFAULT_ACCOUNT not in names:
            for metric, labels in self._account_series(DEFAULT_ACCOUNT):
                with contextlib.suppress(KeyError):  # never started, or gone already
                    metric.remove(*labels)
            self._children = {
                k: c for k, c in self._children.items() if k[1][-1:] != (DEFAULT_ACCOUNT,)
            }
        for account in names:
            for metric, labels in self._account_series(account):
                child = metric.labels(*labels)
                if metric is self.account_held:
                    child.set(0)

    def _account_series(self, account: str) -> Iterator[tuple[Any, tuple[str, ...]]]:
        """The series an account has from the start, as (metric, label values)."""
        for code in (*sorted(PROVIDER_CODES), "other"):
            yield self.provider_errors, (code, account)
        for code in sorted(QUOTA_CODES):
            yield self.quota_failures, (code, account)
        yield self.balance_failures, (account,)
        for endpoint in ENDPOINTS:
            for result in RESULTS:
                yield self.api_requests, (endpoint, result, account)
        for reason in PAUSE_REASONS:
            yield self.account_held, (account, reason)

    def routes(self, pairs: set[tuple[str, str]]) -> None:
        """Start each failover route's series at 0: (the account left, the next one)."""
        for left, to in sorted(pairs):
            for code in sorted(FAILOVER_CODES):
                self.failovers.labels(left, to, code)

    def _account_metrics(self, r: CollectorRegistry) -> None:
        self.account_held = Gauge(
            "autocall_account_held",
            "1 while the account is held (its events wait or fail over)",
            ["account", "reason"],
            registry=r,
        )
        self.failovers = Counter(
            "autocall_failovers",
            "Events sent on to the next account, by the account left, the next one and why",
            ["from", "to", "code"],
            registry=r,
        )

    def _event_metrics(self, r: CollectorRegistry) -> None:
        self.events_received = Counter(
            "autocall_events_received", "Events taken from the queue", registry=r
        )
        self.outcomes = Counter(
            "autocall_outcomes",
            "Outcome events published",
            ["status", "template", "account"],
            registry=r,
        )

    def _provider_metrics(self, r: CollectorRegistry) -> None:
        self.provider_errors = Counter(
            "autocall_provider_errors",
            "Failure answers of the provider (status_code other than 9999), by code and account",
            ["code", "account"],
            registry=r,
        )
        self.api_requests = Counter(
            "autocall_api_requests",
            "Requests to the provider, by endpoint, result and account",
            ["endpoint", "result", "account"],
            registry=r,
        )
        self.quota_failures = Counter(
            "autocall_quota_failures",
            "Quota failures, answered by the provider or caught before calling",
            ["code", "account"],
            registry=r,
        )
        self.throttled = Counter(
            "autocall_provider_throttled",
            "Answers of HTTP 429 or rate_limit_exceeded: the next requests wait",
            registry=r,
        )
        self.balance_failures = Counter(
            "autocall_balance_failures", "balance_is_not_enough answers", ["account"], registry=r
        )
        self.api_duration = Histogram(
            "autocall_api_request_duration_seconds",
            "Provider request latency",
            ["endpoint"],
            buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
            registry=r,
        )

    def _budget_and_flow_metrics(self, r: CollectorRegistry) -> None:
        self.tts_used_today = Gauge(
            "autocall_tts_chars_used_today",
            "TTS characters used this local day (Asia/Ho_Chi_Minh), as last seen in the store",
            registry=r,
        )
        self.tts_daily_limit = Gauge(
            "autocall_tts_daily_limit_chars", "The daily TTS character limit", registry=r
        )
        self.retries = Counter("autocall_retries", "Events sent to a retry delay", registry=r)
        self.dead_lettered = Counter(
            "autocall_dead_lettered",
            "Events kept on the dead-letter queue, by reason",
            ["reason"],
            registry=r,
        )
        self.replays = Counter(
            "autocall_dead_letters_replayed",
            "Replayed dead letters settled again, by the code they had failed with",
            ["code"],
            registry=r,
        )
        self.suppressed = Gauge(
            "autocall_suppressed_phones",
            "Numbers on the suppression list, as last read from the store (every 30 s at most)",
            registry=r,
        )
        self.inflight = Gauge("autocall_inflight_events", "Events being processed", registry=r)
        self.paused = Gauge(
            "autocall_consumer_paused", "1 while consuming is on hold", ["reason"], registry=r
        )
        self.last_processed = Gauge(
            "autocall_last_processed_timestamp_seconds",
            "When the last event was settled (Unix time)",
            registry=r,
        )

    def _initialise(self) -> None:
        self.accounts([DEFAULT_ACCOUNT])
        for endpoint in ENDPOINTS:
            self.api_duration.labels(endpoint)
        for reason in PAUSE_REASONS:
            self.paused.labels(reason).set(0)
        for code in (*sorted(PROVIDER_CODES), *SERVICE_CODES, "other"):
            self.dead_lettered.labels(code)
            self.replays.labels(code)

    def outcome(self, status: str, template: str, account: str = DEFAULT_ACCOUNT) -> None:
        """An outcome published."""
        self._child(self.outcomes, status, template, account).inc()

    def api_request(self, endpoint: str, result: str) -> None:
        """A provider request's result."""
        self._child(self.api_requests, endpoint, result, self.account).inc()

    def api_time(self, endpoint: str, seconds: float) -> None:
        """A provider request's duration."""
        self._child(self.api_duration, endpoint).observe(seconds)

    def _child(self, metric: Any, *labels: str) -> Any:
        """`metric.labels(*labels)`, cached: `labels()` takes a lock and builds a key each time,
        and these run for every event."""
        child = self._children.get((metric, labels))
        if child is None:
            child = self._children[metric, labels] = metric.labels(*labels)
        return child

    def templates(self, names: list[str], accounts: tuple[str, ...] = (DEFAULT_ACCOUNT,)) -> None:
        """Start every template's outcome series at 0."""
        for name in [*names, ""]:
            for status in STATUSES:
                for account in accounts:
                    self.outcomes.labels(status, name, account)

    def provider_answer(self, code: str) -> None:
        """A failure answer from the provider."""
        known = code if code in PROVIDER_CODES else "other"
        self.provider_errors.labels(known, self.account).inc()

    def failure(self, error: AutocallError, account: str = DEFAULT_ACCOUNT) -> None:
        """Quota and balance failures, whoever caught them."""
        if error.code in QUOTA_CODES:
            self.quota_failures.labels(error.code, account).inc()
        elif error.code == BALANCE_CODE:
            self.balance_failures.labels(account).inc()

    def held(self, account: str, reason: str | None) -> None:
        """`account` is held for `reason` (None: no longer held)."""
        # the exhaustion codes' series always exist; another account code's only once seen
        known = {*PAUSE_REASONS, *(r for r in (reason, self._holding.get(account)) if r)}
        for code in known:
            self.account_held.labels(account, code).set(1 if code == reason else 0)
        self._holding[account] = reason

    def failover(self, left: str, to: str, code: str) -> None:
        """An event sent on from `left` to `to` for `code`."""
        self.failovers.labels(left, to, code if code in FAILOVER_CODES else "other").inc()

    def dead_letter(self, code: str) -> None:
        """An event kept on the dead-letter queue, by its outcome's code."""
        self.dead_lettered.labels(_known(code)).inc()

    def replayed(self, code: str) -> None:
        """A replayed dead letter settled, by the code it had failed with."""
        self.replays.labels(_known(code)).inc()

    def settled(self, clock: Callable[[], float] = time.time) -> None:
        """An event settled just now."""
        self.last_processed.set(clock())


def _known(code: str) -> str:
    """`code`, or `other` for a code outside the bounded set a label may take."""
    return code if code in PROVIDER_CODES or code in SERVICE_CODES else "other"
