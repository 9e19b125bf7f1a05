"""The results as a markdown table with the service ÷ reference ratios, checked against the
issue's targets."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from bench.scenarios import BACKLOG_MARKS, DISTURBED, Result

RSS_LIMIT_MB = 150.0
FLAT = 0.10  # RSS may grow this much from 25 % to 100 % of the backlog and still be flat
P99_MARGIN_MS = 50.0
COLUMNS = (
    "scenario",
    "system",
    "events",
    "events/s",
    "p50 ms",
    "p95 ms",
    "p99 ms",
    "CPU µs/event",
    "peak RSS MB",
)


@dataclass(frozen=True)
class Target:
    """One of the issue's targets and what this run measured."""

    what: str
    measured: float | None
    limit: float
    at_least: bool  # measured >= limit passes; otherwise measured <= limit
    unit: str = "×"

    @property
    def passed(self) -> bool:
        if self.measured is None:
            return False
        return self.measured >= self.limit if self.at_least else self.measured <= self.limit

    @property
    def verdict(self) -> str:
        return "PASS" if self.passed else "FAIL"

    def describe(self) -> str:
        sign = "≥" if self.at_least else "≤"
        measured = "n/a" if self.measured is None else f"{self.measured:.2f}{self.unit}"
        return f"{measured} ({sign} {self.limit:g}{self.unit})"


def find(results: Iterable[Result], scenario: str, system: str) -> Result | None:
    return next((r for r in results if r.scenario == scenario and r.system == system), None)


def ratio(numerator: Result | None, denominator: Result | None, field: str) -> float | None:
    if numerator is None or denominator is None:
        return None
    if not (numerator.complete and denominator.complete):
        return None
    below = getattr(denominator, field)
    return getattr(numerator, field) / below if below else None


# The targets: throughput ratios at each latency (memory store, default settings)
THROUGHPUT = 0.95
CPU = 1.25  # CPU per event at the first latency
REDIS = 0.85  # throughput with the Redis store at the first latency
TRACED = 1.15  # CPU per event with tracing on at full sampling, against the service without


def targets(results: list[Result], latencies_ms: list[int]) -> list[Target]:
    """Every target the run has the measurements for."""
    checks: list[Target] = []
    first = latencies_ms[0]
    for ms in latencies_ms:
        service = find(results, f"latency-{ms}", "service")
        reference = find(results, f"latency-{ms}", "reference")
        if service and reference:
            rate = ratio(service, reference, "rate")
            checks.append(Target(f"throughput at {ms} ms", rate, THROUGHPUT, at_least=True))
            if ms == first:
                cpu = ratio(service, reference, "cpu_us")
                checks.append(Target(f"CPU per event at {ms} ms", cpu, CPU, at_least=False))
    redis = find(results, f"redis-{first}", "service")
    if redis:
        reference = find(results, f"latency-{first}", "reference")
        what = f"throughput at {first} ms, Redis store"
        checks.append(Target(what, ratio(redis, reference, "rate"), REDIS, at_least=True))
    if traced := find(results, f"latency-{first}-traced", "service"):
        plain = find(results, f"latency-{first}", "service")
        what = f"CPU per event at {first} ms, tracing on at full sampling"
        checks.append(Target(what, ratio(traced, plain, "cpu_us"), TRACED, at_least=False))
    if backlog := find(results, "backlog", "service"):
        peak = backlog.peak_rss_mb if backlog.complete else None
        checks.append(Target("backlog peak RSS", peak, RSS_LIMIT_MB, at_least=False, unit=" MB"))
        checks.append(
            Target(
                "backlog RSS growth 25 %→100 %",
                growth(backlog),
                FLAT * 100,
                at_least=False,
                unit=" %",
            )
        )
    paced = find(results, "p99-half-rate", "service")
    paced_reference = find(results, "p99-half-rate", "reference")
    if paced and paced_reference:
        gap = None
        if paced.complete and paced_reference.complete and paced.p99 and paced_reference.p99:
            gap = paced.p99 - paced_reference.p99
        what = "p99 at half the max rate, above the reference's"
        checks.append(Target(what, gap, P99_MARGIN_MS, at_least=False, unit=" ms"))
    return checks


def growth(result: Result) -> float | None:
    marks = result.rss_marks_mb
    first, last = marks.get(BACKLOG_MARKS[0]), marks.get(BACKLOG_MARKS[-1])
    if not (first and last and result.complete):
        return None
    return (last - first) / first * 100


def table(results: list[Result], latencies_ms: list[int]) -> str:
    """The markdown table: one row per system, a ratio row for each under every scenario."""
    lines = ["| " + " | ".join(COLUMNS) + " |", "|" + "---|" * 2 + "---:|" * (len(COLUMNS) - 2)]
    scenarios = list(dict.fromkeys(r.scenario for r in results))
    for scenario in scenarios:
        runs = [r for r in results if r.scenario == scenario]
        lines += [_row(r) for r in runs]
        base, label = _baseline(results, scenario, latencies_ms)
        for other in runs:
            if base and other is not base and other.system != "reference":
                name = other.system if label == "÷ reference" else ""
                lines.append(_ratio_row(scenario, f"{name} {label}".strip(), other, base))
    return "\n".join(lines)


def _baseline(
    results: list[Result], scenario: str, latencies_ms: list[int]
) -> tuple[Result | None, str]:
    for store in ("redis-", "replica-"):
        if scenario.startswith(store):
            latency = scenario.removeprefix(store)
            reference = find(results, f"latency-{latency}", "reference")
            return reference, f"÷ reference at latency-{latency}"
    if scenario.endswith("-info"):
        plain = scenario.removesuffix("-info")
        return find(results, plain, "service"), f"÷ service at {plain} (WARNING)"
    if scenario.endswith("-traced"):
        plain = scenario.removesuffix("-traced")
        return find(results, plain, "service"), f"÷ service at {plain} (untraced)"
    return find(results, scenario, "reference"), "÷ reference"


def sweep_lines(runs: list[Result], best: dict[int, int]) -> str:
    """The reference's prefetch sweep: events/s at each prefetch, the kept one in bold."""
    lines = []
    for ms, kept in best.items():
        swept = sorted(
            (r for r in runs if r.scenario == f"sweep latency-{ms}"),
            key=lambda r: int(r.config["prefetch"]),
        )
        cells = [
            f"**{r.config['prefetch']}: {r.rate:,.0f}**"
            if r.config["prefetch"] == kept
            else f"{r.config['prefetch']}: {r.rate:,.0f}"
            for r in swept
        ]
        lines.append(f"- reference prefetch at {ms} ms, events/s: {', '.join(cells)}")
    return "\n".join(lines)


def _row(r: Result) -> str:
    events = f"{r.events:,}" if r.complete else f"**{r.outcomes:,} of {r.events:,}**"
    label = r.config.get("label", r.system)
    system = label + (f" ({r.config['store']})" if r.config["store"] != "memory" else "")
    if r.config.get("rounds"):
        system += f", median of {r.config['rounds']}"
    system += " INFO logs" if r.config["log_level"] == "INFO" else ""
    system += " traced" if r.scenario.endswith("-traced") else ""
    system += " ⚠" if r.disturbed else ""
    cells = [
        r.scenario,
        system,
        events,
        f"{r.rate:,.0f}",
        _ms(r.p50),
        _ms(r.p95),
        _ms(r.p99),
        f"{r.cpu_us:,.0f}",
        f"{r.peak_rss_mb:.0f}",
    ]
    return "| " + " | ".join(cells) + " |"


def _ratio_row(scenario: str, label: str, service: Result, base: Result) -> str:
    rate = ratio(service, base, "rate")
    cpu = ratio(service, base, "cpu_us")
    rss = ratio(service, base, "peak_rss_mb")
    cells = [scenario, f"*{label}*", "", _times(rate), "", "", "", _times(cpu), _times(rss)]
    return "| " + " | ".join(cells) + " |"


def notes(results: list[Result]) -> str:
    """What the marks in the table mean, when it has any."""
    disturbed = [r for r in results if r.disturbed]
    if not disturbed:
        return ""
    worst = max(r.extra["foreign_cores"] for r in disturbed)
    return (
        f"⚠ other processes on the machine kept {DISTURBED:g} cores or more busy during this run "
        f"(up to {worst:.2f}): its figures are lower than a quiet machine's."
    )


def checklist(checks: list[Target]) -> str:
    return "\n".join(f"- {c.verdict} {c.what}: {c.describe()}" for c in checks)


def backlog_lines(results: list[Result]) -> str:
    lines = []
    for r in results:
        if r.scenario == "backlog" and r.rss_marks_mb:
            marks = " / ".join(f"{r.rss_marks_mb.get(m, 0):.0f}" for m in BACKLOG_MARKS)
            lines.append(
                f"- backlog {r.system}: RSS at 25/50/75/100 % consumed {marks} MB; "
                f"queued at {r.extra.get('publish_rate', 0):,.0f} events/s"
            )
    return "\n".join(lines)


def _ms(value: float | None) -> str:
    return "—" if value is None else f"{value:,.1f}"


def _times(value: float | None) -> str:
    return "—" if value is None else f"{value:.2f}×"
