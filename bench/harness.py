"""Processes under measurement: the sandbox provider and the system under test, each with a
sampler of its CPU time and RSS every 100 ms; CPU readings of the rest of the machine."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

import aiohttp
import psutil

from bench.systems import BIN, ROOT, Names, System

START_TIMEOUT = 30.0
STOP_TIMEOUT = 30.0
SAMPLE_EVERY = 0.1
# The sandbox's account must never be what stops a call.
UNLIMITED = {"daily_limit": 10**12, "balance": 10**15}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def cpu_seconds(process: psutil.Process | None) -> float:
    """User and system CPU seconds of a process so far (0 when there is none)."""
    if process is None:
        return 0.0
    try:
        times = process.cpu_times()
    except psutil.Error:
        return 0.0
    return float(times.user + times.system)


def machine_busy() -> float:
    """CPU seconds every process on the machine has used so far (all but idle and iowait)."""
    times = psutil.cpu_times()
    return float(sum(times) - times.idle - getattr(times, "iowait", 0.0))


def broker() -> psutil.Process | None:
    """The local RabbitMQ node, to show its share of the machine: the largest beam.smp (a
    rabbitmqctl call runs a short-lived one too)."""
    nodes = [
        p for p in psutil.process_iter(["name", "memory_info"]) if p.info["name"] == "beam.smp"
    ]
    return max(nodes, key=lambda p: p.info["memory_info"].rss, default=None)


@dataclass
class Sample:
    at: float  # perf_counter
    rss: int
    cpu: float  # user + system seconds


@dataclass
class Sampler:
    """CPU seconds and RSS of one process every 100 ms."""

    process: psutil.Process
    samples: list[Sample] = field(default_factory=list)
    hwm: int = 0  # VmHWM as last read, kept once the process is gone
    _task: asyncio.Task[None] | None = None

    def sample(self) -> Sample:
        with self.process.oneshot():
            cpu = self.process.cpu_times()
            taken = Sample(
                time.perf_counter(), self.process.memory_info().rss, cpu.user + cpu.system
            )
        self.samples.append(taken)
        return taken

    def peak_rss(self) -> int:
        """The process's high-water mark (VmHWM), or the highest sample."""
        with contextlib.suppress(OSError, ValueError):
            for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
                if line.startswith("VmHWM:"):
                    self.hwm = max(self.hwm, int(line.split()[1]) * 1024)
        return max([self.hwm, *(s.rss for s in self.samples)])

    def rss_at(self, moment: float) -> int:
        """RSS of the last sample taken at or before `moment`."""
        before = [s.rss for s in self.samples if s.at <= moment]
        return before[-1] if before else self.samples[0].rss

    async def _run(self) -> None:
        while True:
            with contextlib.suppress(psutil.Error):
                self.sample()
            await asyncio.sleep(SAMPLE_EVERY)

    def start(self) -> None:
        self._task = asyncio.create_task(self._run())

    async def stop(self) -> None:
        self.peak_rss()  # while /proc still has it
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task


@dataclass
class Running:
    """A started process and its sampler."""

    process: asyncio.subprocess.Process
    sampler: Sampler
    started: float  # perf_counter at spawn

    @property
    def pid(self) -> int:
        return self.process.pid

    def alive(self) -> bool:
        return self.process.returncode is None


@asynccontextmanager
async def sandbox(
    latency: float, log: IO[bytes]
) -> AsyncIterator[tuple[str, Running, Callable[[], Awaitable[None]]]]:
    """The provider stand-in on a free port, answering after `latency` seconds: its URL, its
    process, and `ready()` to await before the first event (it takes most of a second to
    start: the caller starts the system under test meanwhile)."""
    port = free_port()
    command = [
        str(BIN / "autocall-bridge"),
        "sandbox",
        "--port",
        str(port),
        "--latency",
        str(latency),
    ]
    url = f"http://127.0.0.1:{port}"
    async with _process(command, dict(os.environ), log) as running:

        async def ready() -> None:
            async with aiohttp.ClientSession() as http:
                await _until(lambda: _get_ok(http, f"{url}/_sandbox/state"), running, "sandbox")
                async with http.post(f"{url}/_sandbox/config", json=UNLIMITED) as response:
                    response.raise_for_status()

        yield url, running, ready


@asynccontextmanager
async def system(
    spec: System, names: Names, provider: str, log: IO[bytes]
) -> AsyncIterator[Running]:
    """The system under test, ready: the service's /readyz answers 200, or the reference
    printed `ready`."""
    http_port = free_port()
    command = spec.command(names, provider, http_port)
    env = spec.env(names, provider, http_port)
    async with _process(command, env, log, stdout=spec.name != "service") as running:
        if spec.name == "service":
            async with aiohttp.ClientSession() as http:
                ready = f"http://127.0.0.1:{http_port}/readyz"
                await _until(lambda: _get_ok(http, ready), running, "the service")
        else:
            await _until(lambda: _printed_ready(running), running, f"the {spec.name}")
        yield running


@asynccontextmanager
async def _process(
    command: list[str], env: dict[str, str], log: IO[bytes], stdout: bool = False
) -> AsyncIterator[Running]:
    started = time.perf_counter()
    process = await asyncio.create_subprocess_exec(
        *command,
        env=env,
        cwd=ROOT,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE if stdout else log,
        stderr=log,
    )
    sampler = Sampler(psutil.Process(process.pid))
    sampler.start()
    try:
        yield Running(process, sampler, started)
    finally:
        await sampler.stop()
        await _stop(process)


async def _stop(process: asyncio.subprocess.Process) -> None:
    if process.returncode is not None:
        return
    process.send_signal(signal.SIGTERM)
    try:
        await asyncio.wait_for(process.wait(), STOP_TIMEOUT)
    except TimeoutError:
        process.kill()
        await process.wait()


async def _until(ready: Callable[[], Awaitable[bool]], running: Running, what: str) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if running.process.returncode is not None:
            raise RuntimeError(f"{what} exited with {running.process.returncode} while starting")
        if await ready():
            return
        await asyncio.sleep(0.05)
    raise RuntimeError(f"{what} was not ready within {START_TIMEOUT:.0f} s")


async def _get_ok(http: aiohttp.ClientSession, url: str) -> bool:
    try:
        async with http.get(url) as response:
            return response.status == 200
    except aiohttp.ClientError:
        return False


async def _printed_ready(running: Running) -> bool:
    assert running.process.stdout is not None
    try:
        line = await asyncio.wait_for(running.process.stdout.readline(), 0.5)
    except TimeoutError:
        return False
    return line.strip() == b"ready"
