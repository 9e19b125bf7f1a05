"""The fault suite's fixtures: a Rig per case, its processes' logs on a failed report, and the
session's ledgers printed at the end and written to tests/faults/last-run.md."""

from __future__ import annotations

import os
import time
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from tests.faults.harness import RESULTS, Ledger, Rig
from tests.faults.processes import kill_all

HERE = Path(__file__).parent
LAST_RUN = HERE / "last-run.md"


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Every test here is a fault case, marked or not, so `-m "not faults"` never runs one; and
    one runs only when asked for with `-m faults`: a plain `pytest` must not stop the broker."""
    asked = "faults" in (config.option.markexpr or "")
    for item in items:
        if HERE in Path(str(item.path)).parents:
            item.add_marker(pytest.mark.faults)
            if not asked:
                item.add_marker(pytest.mark.skip(reason="the fault suite: run it with -m faults"))


def pytest_sessionfinish() -> None:
    """A case that could not clean up (a timeout, an interrupt) leaves no process behind."""
    kill_all()


@pytest.fixture
async def rig(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Rig]:
    """The case's sandbox, names, publisher and collector; its processes and names go after."""
    doc = (request.node.function.__doc__ or request.node.name).strip()
    async with Rig(doc.splitlines()[0].rstrip("."), tmp_path) as running:
        yield running


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[Any]) -> Iterator[None]:
    outcome = yield
    report: pytest.TestReport = outcome.get_result()  # type: ignore[attr-defined]
    rig = getattr(item, "funcargs", {}).get("rig")
    if not isinstance(rig, Rig):
        return
    if report.when == "call" and rig.ledger is not None:
        rig.ledger.verdict = "xfailed" if hasattr(report, "wasxfail") else report.outcome
    if report.failed:
        report.sections.append(("fault case", f"{rig!r}, logs in {rig.directory}"))
        for name, text in rig.logs().items():
            report.sections.append((f"log of {name} (last lines)", text))


@pytest.fixture(scope="session", autouse=True)
def last_run() -> Iterator[None]:
    """Writes the session's ledgers as a markdown table for the README's Reliability section."""
    started = time.monotonic()
    yield
    if RESULTS:
        LAST_RUN.write_text(table(RESULTS, time.monotonic() - started), encoding="utf-8")


def table(ledgers: list[Ledger], seconds: float) -> str:
    when = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    lines = [
        "# The fault suite: last run",
        "",
        f"{when}, {os.cpu_count()} cores, {len(ledgers)} cases in {seconds:.0f} s "
        "(`make faults`). Outcomes are counted per event (its first outcome); calls are the "
        "calls the sandbox provider accepted.",
        "",
        "| case | events | outcomes by status | events without outcome | duplicate outcomes "
        "| calls | customers called twice | seconds | result | notes |",
        "|---|---:|---|---:|---:|---:|---:|---:|---|---|",
        *(ledger.row() for ledger in ledgers),
        "",
    ]
    return "\n".join(lines)


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if RESULTS:
        terminalreporter.section("fault suite ledgers")
        for ledger in RESULTS:
            terminalreporter.write_line(f"{ledger.line()}  [{ledger.verdict}]")
