"""A Redis of the benchmark's own with one replica, on free ports (never 6379), for the store's
`AUTOCALL_STORE_MIN_REPLICAS=1` (WAIT after each write). Stopped by PID, its files deleted."""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import tempfile
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import redis.asyncio as redis

from bench.harness import free_port

START_TIMEOUT = 20.0


def available() -> bool:
    return shutil.which("redis-server") is not None


@asynccontextmanager
async def primary_with_replica() -> AsyncIterator[str]:
    """The primary's URL once its replica is in sync."""
    directory = Path(tempfile.mkdtemp(prefix="bench-redis-"))
    primary, replica = free_port(), free_port()
    processes: list[asyncio.subprocess.Process] = []
    try:
        processes.append(await _server(directory, primary))
        follow = ("--replicaof", "127.0.0.1", str(primary))
        processes.append(await _server(directory, replica, *follow))
        url = f"redis://127.0.0.1:{primary}/0"
        await _until_replicated(url)
        yield url
    finally:
        for process in processes:
            if process.returncode is None:
                process.terminate()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(process.wait(), 10)
            if process.returncode is None:
                process.kill()
                await process.wait()
        shutil.rmtree(directory, ignore_errors=True)


async def _server(directory: Path, port: int, *more: str) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        "redis-server",
        "--port", str(port),
        "--bind", "127.0.0.1",
        "--save", "",
        "--appendonly", "no",
        "--dir", str(directory),
        "--dbfilename", f"{port}.rdb",
        *more,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
    )  # fmt: skip


async def _until_replicated(url: str) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    client = redis.Redis.from_url(url)
    async with client:
        while time.monotonic() < deadline:
            with contextlib.suppress(OSError, redis.RedisError):
                info = await client.info("replication")
                if info.get("slave0", {}).get("state") == "online":
                    return
            await asyncio.sleep(0.1)
    raise RuntimeError("the benchmark's Redis replica did not come up")
