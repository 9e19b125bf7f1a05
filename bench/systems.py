"""What runs under measurement (the service or the reference) and the broker names of one run:
`bench.<random>.*`, declared ahead of a backlog and deleted afterwards, Redis keys too."""

from __future__ import annotations

import asyncio
import os
import secrets
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import aio_pika
import redis.asyncio as redis

from bench import reference
from service.amqp.topology import Names as ServiceNames
from service.amqp.topology import declare as declare_service
from service.settings import Settings
from service.templates import load

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
TEMPLATES = ROOT / "bench" / "templates.yaml"
AMQP_URL = os.environ.get("AUTOCALL_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/")
REDIS_URL = "redis://127.0.0.1:6379/15"
DEFAULT_PREFETCH = 64  # the reference's and the peer's when not given


@dataclass(frozen=True)
class Names:
    """A run's queue and exchanges: `bench.<random>.*`."""

    prefix: str

    @classmethod
    def unique(cls) -> Names:
        return cls(f"bench.{secrets.token_hex(4)}")

    @property
    def queue(self) -> str:
        return f"{self.prefix}.events"

    @property
    def input_exchange(self) -> str:
        return f"{self.prefix}.in"

    @property
    def outcome_exchange(self) -> str:
        return f"{self.prefix}.out"


@dataclass(frozen=True)
class System:
    """What runs under measurement, and how."""

    name: str  # "service", "reference" (bench/reference.py) or "peer" (bench/peer.py)
    prefetch: int | None = None  # None: the service's own default (the others need one)
    concurrency: int | None = None  # the service's; None: its default
    store: str = "memory://"
    log_level: str = "WARNING"
    env_extra: tuple[tuple[str, str], ...] = ()  # more of the service's settings
    accounts: int = 0  # an accounts file with this many accounts (bench/accounts.py); 0: none

    @property
    def label(self) -> str:
        """How the table names it: `service`, `reference p256`, `peer p256`."""
        if self.name != "service":
            return f"{self.name} p{self.prefetch or DEFAULT_PREFETCH}"
        if self.accounts:
            return f"service {self.accounts} acc."
        return "service" if self.prefetch is None else f"service p{self.prefetch}"

    def command(self, names: Names, provider: str, http_port: int) -> list[str]:
        if self.name == "service":
            # BENCH_SERVICE_COMMAND runs something else in its place: an A/B of a change
            override = os.environ.get("BENCH_SERVICE_COMMAND")
            return override.split() if override else [str(BIN / "autocall-bridge"), "run"]
        return [
            sys.executable,
            "-m",
            f"bench.{self.name}",
            "--amqp-url",
            AMQP_URL,
            "--queue",
            names.queue,
            "--input-exchange",
            names.input_exchange,
            "--outcome-exchange",
            names.outcome_exchange,
            "--provider",
            provider,
            "--prefetch",
            str(self.prefetch or DEFAULT_PREFETCH),
        ]

    def env(self, names: Names, provider: str, http_port: int) -> dict[str, str]:
        if self.name != "service":
            return dict(os.environ)
        env = os.environ | {
            "AUTOCALL_AMQP_URL": AMQP_URL,
            "AUTOCALL_QUEUE": names.queue,
            "AUTOCALL_INPUT_EXCHANGE": names.input_exchange,
            "AUTOCALL_OUTCOME_EXCHANGE": names.outcome_exchange,
            "AUTOCALL_API_BASE_URL": provider,
            "AUTOCALL_API_KEY": "sandbox-key",
            "AUTOCALL_HTTP_PORT": str(http_port),
            "AUTOCALL_TEMPLATES": str(TEMPLATES),
            "AUTOCALL_LOG_LEVEL": self.log_level,
            "AUTOCALL_LOG_FORMAT": "json",
            "AUTOCALL_STORE_URL": self.store,
            "AUTOCALL_TTS_DAILY_LIMIT": str(10**12),
        }
        # Unset, the service runs with its defaults, as a new user would.
        for name in ("AUTOCALL_PREFETCH", "AUTOCALL_CONCURRENCY"):
            env.pop(name, None)
        if self.prefetch is not None:
            env["AUTOCALL_PREFETCH"] = str(self.prefetch)
        if self.concurrency is not None:
            env["AUTOCALL_CONCURRENCY"] = str(self.concurrency)
        if self.accounts:
            from bench import accounts

            files, templates = accounts.write(self.accounts, provider, names.queue)
            env["AUTOCALL_ACCOUNTS_FILE"], env["AUTOCALL_TEMPLATES"] = str(files), str(templates)
        return env | dict(self.env_extra)

    def settings(self, names: Names) -> Settings:
        """The service's settings for these names (to declare its topology ahead of it)."""
        return Settings(
            amqp_url=AMQP_URL,
            queue=names.queue,
            input_exchange=names.input_exchange,
            outcome_exchange=names.outcome_exchange,
            api_key="sandbox-key",
        )


async def declare(channel: aio_pika.abc.AbstractChannel, spec: System, names: Names) -> None:
    """The system's own topology, declared ahead of it (for a backlog)."""
    if spec.name == "service":
        await declare_service(channel, spec.settings(names), load(TEMPLATES))
    else:
        await reference.declare(channel, names.queue, names.input_exchange, names.outcome_exchange)


async def clean_up(spec: System, names: Names) -> None:
    """Delete the run's queues and exchanges, and its keys in Redis (on a connection of its
    own: the run's may have died with a broker restart)."""
    queues = [names.queue]
    if spec.name == "service":
        queues = ServiceNames.of(spec.settings(names), load(TEMPLATES)).all()
    await wait_for_broker()
    async with await aio_pika.connect(AMQP_URL, timeout=10) as connection:
        channel = await connection.channel()
        for queue in queues:
            await channel.queue_delete(queue)
        for exchange in (names.input_exchange, names.outcome_exchange):
            await channel.exchange_delete(exchange)
    if spec.store.startswith("redis://"):
        client = redis.Redis.from_url(spec.store)
        async with client:
            keys = [key async for key in client.scan_iter(f"autocall:{names.queue}:*", count=1000)]
            for start in range(0, len(keys), 1000):
                await client.delete(*keys[start : start + 1000])


async def wait_for_broker(seconds: float = 120.0) -> bool:
    """Whether the broker accepts a connection within `seconds` (after someone restarted it)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            connection = await aio_pika.connect(AMQP_URL, timeout=5)
        except (OSError, TimeoutError, aio_pika.exceptions.AMQPError):
            await asyncio.sleep(2)
            continue
        await connection.close()
        return True
    return False
