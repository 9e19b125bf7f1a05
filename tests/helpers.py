"""Helpers the integration tests share: templates and events, the sandbox's settings, and
reading the service's metrics and endpoints."""

from __future__ import annotations

import asyncio
import sys
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import orjson

from service.app import Service
from service.events import Message, decode
from service.render import Call, decide
from service.sandbox import Sandbox
from service.templates import parse

TEMPLATES = """
version: 1
defaults:
  voice: banmai
templates:
  - name: confirm
    event: order.created
    when: "data.total | default(0) | float >= 100"
    phone: "{{ data.phone }}"
    campaign: "Đơn {{ data.code }}"
    idempotency_key: "order:{{ data.code }}"
    script:
      - say: "Đơn hàng {{ data.code | spell }}"
      - say: "{{ data.note | default('') }}"
      - say: "tổng {{ data.total | vnd }}"
      - recording: rec-1
  - name: desk
    event: order.flagged
    extension: "101"
    cid: "842899959300"
    script:
      - ivr_menu: ivr-1
  - name: held
    event: shipment.#
    on_exhausted: hold
    phone: "{{ data.phone }}"
    idempotency_key: "ship:{{ data.code }}"
    script:
      - say: "Giao hàng {{ data.code | spell }}"
"""


def order(code: str = "A1", phone: str = "0912345678", total: Any = 455000, **extra: Any) -> bytes:
    """An order event's body."""
    return orjson.dumps({"code": code, "phone": phone, "total": total} | extra)


class Clock:
    """Before the first `calls_before_window` reads it is just before 08:00; then 08:00:01."""

    def __init__(self, start: datetime) -> None:
        self.start = start
        self.calls_before_window = 0

    def __call__(self) -> datetime:
        if self.calls_before_window == 0:
            self.calls_before_window += 1
            return self.start
        return self.start + timedelta(seconds=1)


async def configure(sandbox: Sandbox, changes: dict[str, Any]) -> None:
    """Changes the sandbox provider's behaviour (balance, faults, limits, ...)."""
    await post(sandbox, "/_sandbox/config", changes)


async def post(sandbox: Sandbox, path: str, body: dict[str, Any] | None = None) -> None:
    async with (
        aiohttp.ClientSession() as session,
        session.post(sandbox.url + path, json=body or {}) as answer,
    ):
        assert answer.status == 200, await answer.text()


async def http_status(service: Service, path: str) -> int:
    """The HTTP status of GET `path` on the service's port."""
    async with (
        aiohttp.ClientSession() as session,
        session.get(f"http://127.0.0.1:{service.http_port}{path}") as answer,
    ):
        return answer.status


async def scrape(service: Service) -> dict[str, float]:
    """/metrics as the service serves it: sample name with labels -> value."""
    async with (
        aiohttp.ClientSession() as session,
        session.get(f"http://127.0.0.1:{service.http_port}/metrics") as answer,
    ):
        text = await answer.text()
    samples: dict[str, float] = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, value = line.rsplit(" ", 1)
            samples[name] = float(value)
    return samples


# the metrics labelled by account (CONTRACT.md §13): a test that names none means `default`
BY_ACCOUNT = frozenset(
    {
        "autocall_api_requests_total",
        "autocall_provider_errors_total",
        "autocall_quota_failures_total",
        "autocall_balance_failures_total",
        "autocall_outcomes_total",
        "autocall_call_results_total",
    }
)


def by_account(name: str, labels: dict[str, str]) -> dict[str, str]:
    """`labels`, with `account="default"` for a metric labelled by account."""
    return {"account": "default"} | labels if name in BY_ACCOUNT else labels


def metric(service: Service, name: str, **labels: str) -> float:
    """A sample of the service's registry; NaN while it has none."""
    value = service.metrics.registry.get_sample_value(name, by_account(name, labels))
    return float(value) if value is not None else float("nan")


async def wait_for(condition: Callable[[], bool], timeout: float = 20.0) -> None:
    """Polls a metric-like condition (state the service exposes only by value)."""
    async with asyncio.timeout(timeout):
        while not condition():
            await asyncio.sleep(0.02)


class Ticking:
    """A clock that starts at `start` and runs at real speed."""

    def __init__(self, start: datetime) -> None:
        self._offset = start.timestamp() - time.time()

    def now(self) -> datetime:
        """The clock's time now."""
        return datetime.fromtimestamp(time.time() + self._offset, UTC)

    def __call__(self) -> datetime:
        return self.now()


def call_of(on_exhausted: str = "fail", phone: str = "0912345678") -> Call:
    """A decided call of a one-template file, with no I/O."""
    templates = parse(
        "version: 1\ntemplates:\n"
        "  - name: t\n    event: order.created\n"
        f"    on_exhausted: {on_exhausted}\n"
        '    phone: "{{ data.phone }}"\n    idempotency_key: "order:{{ data.code }}"\n'
        '    script:\n      - say: "Xin chào {{ data.code }}"\n',
        "test",
    )
    body = orjson.dumps({"phone": phone, "code": "A1"})
    event = decode(Message(body, type="order.created", message_id="e-1"))
    decision = decide(templates, event, datetime(2026, 11, 27, 7, 30, tzinfo=UTC))
    assert isinstance(decision, Call), decision
    return decision


@asynccontextmanager
async def sandbox_command(*args: str, lines: int = 2) -> AsyncIterator[list[str]]:
    """`autocall-bridge sandbox --port 0 ARGS` running for the block: its first `lines` lines.
    It must stop cleanly on SIGTERM."""
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        *("-m", "service", "sandbox", "--port", "0", *args),
        cwd=Path(__file__).parents[1],
        stdout=asyncio.subprocess.PIPE,
    )
    assert process.stdout is not None
    try:
        read = [asyncio.wait_for(process.stdout.readline(), 10) for _ in range(lines)]
        yield [(await line).decode() for line in read]
    finally:
        process.terminate()
        assert await asyncio.wait_for(process.wait(), 10) == 0
