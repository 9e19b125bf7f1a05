"""The call-result metrics of CONTRACT.md §9, on the service's registry."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from ..provider.records import RESULTS
from ..settings import DEFAULT_ACCOUNT

WEBHOOK_OUTCOMES = (
    "accepted",
    "duplicate",
    "unmatched",
    "live",
    "ignored",
    "unauthorized",
    "invalid",
    "too_large",
    "unavailable",
)
LOOKUP_RESULTS = ("found", "not_found", "error")


class ResultMetrics:
    """Results, choices, webhook posts, history lookups, open calls, answer times."""

    def __init__(self, registry: CollectorRegistry, templates: list[str]) -> None:
        r = registry
        self.results = Counter(
            "autocall_call_results",
            "Result events published, by result, template, whether final, and account",
            ["result", "template", "final", "account"],
            registry=r,
        )
        self.choices = Counter(
            "autocall_call_choices",
            "Answered calls by the choice the keys pressed name",
            ["choice", "template"],
            registry=r,
        )
        self.webhooks = Counter(
            "autocall_webhooks",
            "Posts to the webhook listener, by outcome",
            ["outcome"],
            registry=r,
        )
        self.lookups = Counter(
            "autocall_result_lookups",
            "Call-history lookups, by result",
            ["result"],
            registry=r,
        )
        self.open_calls = Gauge(
            "autocall_open_calls", "Accepted calls with no final result yet", registry=r
        )
        self.answer_seconds = Histogram(
            "autocall_call_answer_seconds",
            "answer_sec of answered calls",
            buckets=(1, 2, 5, 10, 20, 30, 60, 120, 300, 600),
            registry=r,
        )
        self._templates = set(templates)
        for outcome in WEBHOOK_OUTCOMES:
            self.webhooks.labels(outcome)
        for result in LOOKUP_RESULTS:
            self.lookups.labels(result)
        for template in templates:
            for result in RESULTS:
                self.results.labels(result, template, "true", DEFAULT_ACCOUNT)
            self.choices.labels("none", template)  # so the dashboard's panel has its series

    def webhook(self, outcome: str) -> None:
        self.webhooks.labels(outcome).inc()

    def lookup(self, result: str, count: int = 1) -> None:
        self.lookups.labels(result).inc(count)

    def result(
        self,
        result: str,
        template: str,
        final: bool,
        choice: str | None,
        account: str = DEFAULT_ACCOUNT,
    ) -> None:
        """One result event published."""
        template = template if template in self._templates else "other"
        self.results.labels(result, template, "true" if final else "false", account).inc()
        if result == "answered":
            self.choices.labels(choice or "none", template).inc()
