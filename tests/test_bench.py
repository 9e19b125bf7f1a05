"""The benchmark harness: its pure parts directly, and `python -m bench --smoke` end to end
(N = 200 against the real broker; measures nothing, proves the harness works)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import orjson
import pytest

from bench import load, report
from bench.__main__ import median
from bench.profile import Frame, parse, step, summary
from bench.reference import TEXT, call_body
from bench.scenarios import Result
from service.sandbox import tts_chars, validate
from service.sandbox.answers import scripted_code
from service.templates import load as load_templates

ROOT = Path(__file__).parent.parent


def result(scenario: str, system: str, rate: float, cpu_us: float, **changes: object) -> Result:
    values: dict[str, object] = {
        "scenario": scenario,
        "system": system,
        "events": 100,
        "outcomes": 100,
        "statuses": {"accepted": 100},
        "seconds": 1.0,
        "rate": rate,
        "p50": 5.0,
        "p95": 9.0,
        "p99": 12.0,
        "cpu_us": cpu_us,
        "peak_rss_mb": 60.0,
        "config": {"latency_ms": 0, "store": "memory", "log_level": "WARNING"},
    }
    return Result(**(values | changes))  # type: ignore[arg-type]


def test_events_are_valid_cloudevents_with_unique_order_codes() -> None:
    first, second = (orjson.loads(body) for _, body in load.events("abcd1234", 0, 2))
    assert first["specversion"] == "1.0" and first["type"] == "order.created"
    assert first["id"] != second["id"]
    assert first["data"]["code"] != second["data"]["code"]
    assert first["data"]["customer"]["phone"].startswith("0")


def test_the_reference_sends_what_the_sandbox_accepts() -> None:
    _, body = load.event("abcd1234", 7)
    request = call_body(orjson.loads(body)["data"])
    assert validate("execute_by_phone", request) is None
    assert request["template_dialplans"].count(TEXT) == len(request["variables"]) == 3
    assert tts_chars(request) <= 300


def test_the_bench_templates_are_valid() -> None:
    assert load_templates(ROOT / "bench" / "templates.yaml").names() == ["order_confirmation"]


def test_percentile_is_nearest_rank() -> None:
    values = [float(v) for v in range(1, 101)]
    assert load.percentile(values, 50) == 50.0
    assert load.percentile(values, 99) == 99.0
    assert load.percentile([3.0], 99) == 3.0
    assert load.percentile([], 50) is None


def test_table_has_a_ratio_row_and_targets_pass_or_fail() -> None:
    results = [
        result("latency-0", "service", 900, 1200),
        result("latency-0", "reference", 1000, 1000),
        result("redis-0", "service", 600, 1500, config={"latency_ms": 0, "store": "redis",
                                                         "log_level": "WARNING"}),
    ]  # fmt: skip
    table = report.table(results, [0])
    assert "| latency-0 | service | 100 | 900 |" in table
    assert "| latency-0 | *service ÷ reference* |  | 0.90× |  |  |  | 1.20× | 1.00× |" in table
    assert "| redis-0 | service (redis) |" in table
    verdicts = {t.what: t.verdict for t in report.targets(results, [0])}
    assert verdicts == {
        "throughput at 0 ms": "FAIL",  # 0.90× < 0.95×
        "CPU per event at 0 ms": "PASS",  # 1.20× ≤ 1.25×
        "throughput at 0 ms, Redis store": "FAIL",
    }


def test_traced_is_compared_with_the_service_untraced() -> None:
    results = [
        result("latency-0", "service", 1000, 600),
        result("latency-0", "reference", 1100, 500),
        result("latency-0-traced", "service", 900, 702),
    ]
    table = report.table(results, [0])
    assert "| latency-0-traced | service traced |" in table
    assert "| latency-0-traced | *÷ service at latency-0 (untraced)* |  | 0.90× |" in table
    [traced] = [t for t in report.targets(results, [0]) if "tracing" in t.what]
    assert traced.measured == pytest.approx(1.17)
    assert traced.verdict == "FAIL"  # above 1.15×


def test_the_peer_gets_a_ratio_row_and_p99_is_compared_with_the_reference() -> None:
    results = [
        result("latency-50", "service", 900, 1200),
        result("latency-50", "reference", 1000, 1000),
        result("latency-50", "peer", 200, 3000),
        result("p99-half-rate", "service", 450, 1000, p99=130.0),
        result("p99-half-rate", "reference", 450, 900, p99=70.0),
    ]
    table = report.table(results, [50])
    assert "| latency-50 | *peer ÷ reference* |  | 0.20× |  |  |  | 3.00× | 1.00× |" in table
    verdicts = {t.what: t for t in report.targets(results, [50])}
    gap = verdicts["p99 at half the max rate, above the reference's"]
    assert gap.measured == pytest.approx(60.0) and not gap.passed


def test_median_of_rounds_takes_each_figure_s_median() -> None:
    runs = [
        result("latency-0", "service", rate, cpu)
        for rate, cpu in ((900, 1300), (700, 1100), (800, 1200))
    ]
    middle = median(runs)
    assert (middle.rate, middle.cpu_us) == (800, 1200)
    assert middle.config["rates"] == [900, 700, 800]


def test_an_incomplete_run_fails_its_targets() -> None:
    results = [
        result("latency-0", "service", 900, 1000, outcomes=99),
        result("latency-0", "reference", 1000, 1000),
    ]
    assert all(not t.passed for t in report.targets(results, [0]))
    assert "**99 of 100**" in report.table(results, [0])


def test_backlog_growth_and_peak() -> None:
    backlog = result("backlog", "service", 800, 1000, peak_rss_mb=120.0,
                     rss_marks_mb={25: 100.0, 50: 104.0, 75: 106.0, 100: 108.0})  # fmt: skip
    checks = {t.what: t for t in report.targets([backlog], [0])}
    assert checks["backlog peak RSS"].passed
    assert checks["backlog RSS growth 25 %→100 %"].measured == pytest.approx(8.0)


def test_profile_summary_counts_self_and_cumulative_time(tmp_path: Path) -> None:
    raw = tmp_path / "p.txt"
    raw.write_text(
        "main (service/cli.py:1);handle (service/consumer.py:2);post (aiohttp/client.py:3) 3\n"
        "main (service/cli.py:1);handle (service/consumer.py:2) 1\n",
        encoding="utf-8",
    )
    assert sum(parse(raw).values()) == 4
    text = summary(raw, cpu_us=1000)
    assert "| `aiohttp` | 75.0% | 750 |" in text
    assert "| `handle (service/consumer.py)` | 100.0% | 1000 |" in text


def test_profile_steps_know_a_stack_by_its_functions_or_files() -> None:
    loop = Frame("Runner.run", "asyncio/runners.py")
    post = Frame("ClientSession._request", "aiohttp/client.py")
    netrc = Frame("ThreadPoolExecutor.submit", "concurrent/futures/thread.py")
    jinja = Frame("root", "jinja2/runtime.py")  # py-spy lost the outer frames
    assert step((loop, post)) == "HTTP call to the provider"
    assert step((loop, post, netrc)).startswith("aiohttp trust_env")
    assert step((jinja,)) == "decode + decide (templates, phone)"
    assert step((loop,)) == "event loop, task switching"


@pytest.mark.integration
def test_smoke_run_gets_every_outcome(tmp_path: Path) -> None:
    out = tmp_path / "smoke.json"
    finished = subprocess.run(
        [sys.executable, "-m", "bench", "--smoke", "--out", str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=100,
        check=False,
    )
    assert finished.returncode == 0, finished.stdout + finished.stderr
    document = orjson.loads(out.read_bytes())
    runs = {(r["scenario"], r["system"]): r for r in document["results"]}
    assert set(runs) == {("latency-0", "service"), ("latency-0", "reference")}
    for run in runs.values():
        assert run["events"] == run["outcomes"] == 200
        assert run["statuses"] == {"accepted": 220}  # and the 20 warm-up events
    table = out.with_suffix(".md").read_text(encoding="utf-8")
    # a run the rest of the machine disturbed carries a ⚠ after the system's name
    assert re.search(r"\| latency-0 \| service( ⚠)? \| 200 \|", table), table
    assert re.search(r"\| latency-0 \| reference p\d+( ⚠)? \| 200 \|", table), table
    assert "*service ÷ reference*" in table


def test_the_bench_never_dials_a_number_the_sandbox_scripts_to_fail() -> None:
    """A scripted number (a revoked token, a throttle, an account code) would measure the error
    paths: the reference, which never renews its token, lost every event after the first one."""
    numbers = [load.phone(index) for index in range(0, 120_000)]
    assert [n for n in numbers if scripted_code(n) is not None] == []
    assert numbers[4005][-1] == "5"  # moved off the script, its last digit (the call's) kept
