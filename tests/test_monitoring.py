"""The alerts and the dashboard use only metrics the service exports (CONTRACT.md §8).

Every `autocall_*` name in helm/autocall-bridge/files/alerts.yaml and files/dashboard.json (the
one copy of each: the chart and the compose stack embed them) must be a series of the service's
/metrics; label matchers with `=` must name labels the metric has and, for labels whose series
start at 0, values it exports.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from service.templates import Templates
from tests.conftest import StartService

pytestmark = pytest.mark.integration

FILES = Path(__file__).resolve().parents[1] / "helm" / "autocall-bridge" / "files"
NAME = re.compile(r"\b(autocall_[a-z0-9_]+)\b(\{[^}]*\})?")
MATCHER = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)\s*(=~|!~|!=|=)\s*"((?:[^"\\]|\\.)*)"')
HISTOGRAM_SUFFIXES = ("_bucket", "_sum", "_count")
# Labels that Prometheus adds at scrape time, not the service. (Not `endpoint`: the service's
# own label, which the chart's ServiceMonitor keeps by dropping the operator's target label.)
TARGET_LABELS = {"job", "namespace", "instance", "pod", "service", "container"}


Series = dict[str, dict[str, set[str]]]


@pytest.fixture
async def series(
    make_settings: Any, start_service: StartService, example_templates: Templates
) -> Series:
    """Each sample name a running service's /metrics exports -> its labels -> values seen."""
    service = await start_service(make_settings(), example_templates)
    url = f"http://127.0.0.1:{service.http_port}/metrics"
    async with aiohttp.ClientSession() as session, session.get(url) as answer:
        assert answer.status == 200
        text = await answer.text()
    found: Series = {}
    for family in text_string_to_metric_families(text):
        names = {family.name} if family.type == "histogram" else set()
        for sample in family.samples:
            names.add(sample.name)
            labels = found.setdefault(sample.name, {})
            for key, value in sample.labels.items():
                labels.setdefault(key, set()).add(value)
        for name in names:
            found.setdefault(name, {})
    return found


def alert_expressions() -> Iterator[tuple[str, str]]:
    rules = yaml.safe_load((FILES / "alerts.yaml").read_text(encoding="utf-8"))
    for group in rules["groups"]:
        for rule in group["rules"]:
            yield f"alerts.yaml {rule['alert']}", rule["expr"]


def dashboard_expressions() -> Iterator[tuple[str, str]]:
    dashboard = json.loads((FILES / "dashboard.json").read_text(encoding="utf-8"))

    def walk(node: object, where: str) -> Iterator[tuple[str, str]]:
        if isinstance(node, dict):
            where = str(node.get("title") or node.get("name") or where)
            for key, value in node.items():
                if key in ("expr", "query", "definition") and isinstance(value, str):
                    yield f"dashboard.json {where!r}", value
                else:
                    yield from walk(value, where)
        elif isinstance(node, list):
            for item in node:
                yield from walk(item, where)

    yield from walk(dashboard, "dashboard")


def used(series: Series) -> list[tuple[str, str, str]]:
    """(where, metric name without histogram suffix, selector) for every autocall_* use."""
    uses = []
    for where, expr in [*alert_expressions(), *dashboard_expressions()]:
        for match in NAME.finditer(expr):
            name = match[1]
            for suffix in HISTOGRAM_SUFFIXES:
                if name.endswith(suffix) and name.removesuffix(suffix) in series:
                    name = name.removesuffix(suffix)
            uses.append((where, name, match[2] or ""))
    return uses


def test_the_files_use_metrics_at_all(series: Series) -> None:
    names = {name for _, name, _ in used(series)}
    assert len(names) >= 12, names


# Exported once an accounts file lists a failover (docs/accounts.md): this service has none.
CONFIGURED = frozenset({"autocall_failovers_total"})


def test_every_metric_used_is_exported(series: Series) -> None:
    uses = [(where, name) for where, name, _ in used(series) if name not in CONFIGURED]
    missing = sorted({f"{where}: {name}" for where, name in uses if name not in series})
    assert not missing, "not exported by the service:\n" + "\n".join(missing)


def test_label_matchers_name_exported_labels_and_values(series: Series) -> None:
    problems = []
    for where, name, selector in used(series):
        labels = series.get(name.removesuffix("_bucket"), {}) or series.get(f"{name}_bucket", {})
        for label, op, value in MATCHER.findall(selector):
            if label in TARGET_LABELS or "$" in value:
                continue
            values = labels.get(label)
            if values is None:
                problems.append(f"{where}: {name} has no label {label!r}")
            elif op == "=" and value not in values:
                problems.append(f"{where}: {name}{{{label}={value!r}}} is never exported")
    assert not problems, "\n".join(sorted(set(problems)))


def test_no_exported_label_collides_with_a_target_label(series: Series) -> None:
    """Prometheus would rename such a label exported_<name>, and the queries would miss it."""
    collisions = sorted(
        f"{name}{{{label}}}"
        for name, labels in series.items()
        for label in labels
        if label in TARGET_LABELS
    )
    assert not collisions, collisions


@pytest.mark.parametrize(
    ("source", "required"),
    [
        (
            "alerts",
            {
                "autocall_balance_failures_total",
                "autocall_quota_failures_total",
                "autocall_consumer_paused",
                "autocall_dead_lettered_total",
                "autocall_last_processed_timestamp_seconds",
            },
        ),
        (
            "dashboard",
            {
                "autocall_outcomes_total",
                "autocall_provider_errors_total",
                "autocall_api_request_duration_seconds",
                "autocall_tts_chars_used_today",
                "autocall_tts_daily_limit_chars",
                "autocall_inflight_events",
                "autocall_consumer_paused",
                "autocall_dead_lettered_total",
            },
        ),
    ],
)
def test_the_issue_s_signals_are_covered(series: Series, source: str, required: set[str]) -> None:
    names = {name for where, name, _ in used(series) if where.startswith(source)}
    assert required <= names, f"{source} lacks {sorted(required - names)}"
