"""The processes a fault case runs: the sandbox provider and the service, each logging to its own
file, and the broker's command line."""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import os
import shutil
import signal
import socket
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp

ROOT = Path(__file__).resolve().parents[2]
_BESIDE = Path(sys.executable).with_name("autocall-bridge")  # the venv's console script
COMMAND = str(_BESIDE) if _BESIDE.exists() else shutil.which("autocall-bridge") or "autocall-bridge"
START_TIMEOUT = 30.0  # a process must answer its readiness probe within this
STOP_TIMEOUT = 15.0  # a process asked to stop must be gone within this
COMMAND_TIMEOUT = 90.0  # rabbitmqctl
LOG_TAIL = 80  # lines of each process's log attached to a failed case
HTTP_TIMEOUT = 30.0  # any request to the sandbox or the service
RUNNING: set[asyncio.subprocess.Process] = set()  # every child not yet reaped, for kill_all()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


async def until(
    check: Callable[[], Awaitable[bool] | bool], timeout: float, what: str, every: float = 0.05
) -> None:
    """Poll `check` until it holds; TimeoutError naming `what` after `timeout` seconds."""
    try:
        async with asyncio.timeout(timeout):
            while True:
                result = check()
                if result if isinstance(result, bool) else await result:
                    return
                await asyncio.sleep(every)
    except TimeoutError:
        raise TimeoutError(f"{what}: not within {timeout:.0f} s") from None


async def rabbitmqctl(*args: str, timeout: float = COMMAND_TIMEOUT) -> str:
    process = await asyncio.create_subprocess_exec(
        "rabbitmqctl", *args, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    try:
        stdout, stderr = await asyncio.wait_for(process.communicate(), timeout)
    except TimeoutError:
        process.kill()
        await process.wait()
        raise
    if process.returncode != 0:
        raise RuntimeError(f"rabbitmqctl {' '.join(args)}: {stderr.decode().strip()}")
    return stdout.decode()


async def connections(name: str) -> list[str]:
    """The broker's ids of the connections whose client-given name is `name`."""
    listing = await rabbitmqctl("-q", "list_connections", "pid", "client_properties")
    return [line.split("\t")[0] for line in listing.splitlines() if f'"{name}"' in line]


async def close_connection(pid: str) -> None:
    """Closes a connection from the broker's side (rabbitmqctl takes a second to start)."""
    await rabbitmqctl("-q", "close_connection", pid, "fault suite: broker-side close")


class Process:
    """A child process whose output goes to its own log file."""

    def __init__(self, name: str, process: asyncio.subprocess.Process, log: Path) -> None:
        self.name = name
        self.process = process
        self.log = log
        self.started = time.monotonic()

    def __repr__(self) -> str:
        return f"Process({self.name!r}, pid={self.pid}, returncode={self.returncode})"

    @property
    def pid(self) -> int:
        return self.process.pid

    @property
    def returncode(self) -> int | None:
        return self.process.returncode

    async def kill(self) -> None:
        """SIGKILL: no drain, no goodbye."""
        if self.process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                self.process.send_signal(signal.SIGKILL)
        await asyncio.wait_for(self.process.wait(), STOP_TIMEOUT)
        RUNNING.discard(self.process)

    async def terminate(self, timeout: float = STOP_TIMEOUT) -> tuple[int, float]:
        """SIGTERM, then wait: (exit code, seconds it took). SIGKILL if it outlasts `timeout`."""
        signalled = time.monotonic()
        self.process.send_signal(signal.SIGTERM)
        try:
            code = await asyncio.wait_for(self.process.wait(), timeout)
            RUNNING.discard(self.process)
        except TimeoutError:
            await self.kill()
            raise TimeoutError(f"{self.name} still running {timeout:.0f} s after SIGTERM") from None
        return code, time.monotonic() - signalled

    def tail(self, lines: int = LOG_TAIL) -> str:
        try:
            text = self.log.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])


async def spawn(name: str, command: list[str], env: dict[str, str], log: Path) -> Process:
    handle = log.open("ab")
    try:
        process = await asyncio.create_subprocess_exec(
            *command,
            env=env,
            cwd=ROOT,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=handle,
            stderr=handle,
            start_new_session=True,  # a Ctrl-C at the terminal reaches pytest, not the children
            preexec_fn=_die_with_parent,
        )
    finally:
        handle.close()
    RUNNING.add(process)
    return Process(name, process, log)


def _die_with_parent() -> None:
    """In the child: SIGKILL when pytest dies, even by SIGKILL (Linux's PR_SET_PDEATHSIG)."""
    if sys.platform == "linux":
        ctypes.CDLL(None).prctl(1, signal.SIGKILL)


def kill_all() -> list[int]:
    """SIGKILL every child still running (a case that could not clean up); their pids."""
    killed = []
    for process in list(RUNNING):
        if process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
                killed.append(process.pid)
        RUNNING.discard(process)
    return killed


def http_session() -> aiohttp.ClientSession:
    return aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=HTTP_TIMEOUT))


async def _answers(http: aiohttp.ClientSession, url: str) -> bool:
    try:
        async with http.get(url, timeout=aiohttp.ClientTimeout(total=2)) as response:
            return response.status == 200
    except (aiohttp.ClientError, TimeoutError):
        return False


async def wait_ready(http: aiohttp.ClientSession, process: Process, url: str) -> None:
    async def ready() -> bool:
        if process.returncode is not None:
            raise RuntimeError(f"{process.name} exited with {process.returncode} while starting")
        return await _answers(http, url)

    await until(ready, START_TIMEOUT, f"{process.name} ready at {url}")


class Sandbox:
    """The provider stand-in as a process, and its control endpoints."""

    def __init__(self, process: Process, url: str, http: aiohttp.ClientSession) -> None:
        self.process = process
        self.url = url
        self._http = http

    async def configure(self, **changes: Any) -> dict[str, Any]:
        async with self._http.post(f"{self.url}/_sandbox/config", json=changes) as response:
            response.raise_for_status()
            state: dict[str, Any] = await response.json()
            return state

    async def state(self) -> dict[str, Any]:
        async with self._http.get(f"{self.url}/_sandbox/state") as response:
            response.raise_for_status()
            state: dict[str, Any] = await response.json()
            return state

    async def calls(self) -> list[dict[str, Any]]:
        async with self._http.get(f"{self.url}/_sandbox/calls") as response:
            response.raise_for_status()
            calls: list[dict[str, Any]] = await response.json()
            return calls

    async def execute_requests(self) -> int:
        """execute_* requests that reached the sandbox, whatever it answered."""
        return sum((await self.state())["requests"].values())


class Service:
    """One `autocall-bridge run` process."""

    def __init__(self, process: Process, http_port: int, http: aiohttp.ClientSession) -> None:
        self.process = process
        self.http_port = http_port
        self._http = http

    def __repr__(self) -> str:
        return f"Service({self.process.name!r}, pid={self.process.pid}, port={self.http_port})"

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    async def metrics(self) -> str:
        async with self._http.get(f"{self.base}/metrics") as response:
            response.raise_for_status()
            return await response.text()

    async def metric(self, name: str, **labels: str) -> float | None:
        """One sample's value from /metrics, or None if it is not there."""
        wanted = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
        series = f"{name}{{{wanted}}}" if labels else name
        for line in (await self.metrics()).splitlines():
            if line.startswith("#"):
                continue
            key, _, value = line.rpartition(" ")
            if _same_series(key, series):
                return float(value)
        return None

    async def readyz(self) -> tuple[int, str]:
        async with self._http.get(f"{self.base}/readyz") as response:
            return response.status, await response.text()


def _same_series(found: str, wanted: str) -> bool:
    if "{" not in found or "{" not in wanted:
        return found == wanted
    name, _, labels = found.partition("{")
    wanted_name, _, wanted_labels = wanted.partition("{")
    return name == wanted_name and sorted(labels.rstrip("}").split(",")) == sorted(
        wanted_labels.rstrip("}").split(",")
    )


def clean_env() -> dict[str, str]:
    """This environment without AUTOCALL_* variables: a developer's settings must not leak in."""
    return {k: v for k, v in os.environ.items() if not k.startswith("AUTOCALL_")}
