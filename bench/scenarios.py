"""One measured run: a system under load against the sandbox, from first publish to last outcome."""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import IO, Any

import aio_pika
import psutil
from aio_pika.abc import AbstractConnection, AbstractExchange

from bench import harness, load, systems
from bench.harness import Running
from bench.systems import Names, System

MB = 1024 * 1024
DISTURBED = 0.2  # cores kept busy by other processes: above it, a run's figures are suspect
BACKLOG_MARKS = (25, 50, 75, 100)  # RSS at these percentages of the backlog consumed
# Attaches a profiler to a pid for the measured window (bench.profile.record).
Profiler = Callable[[int, str], AbstractAsyncContextManager[None]]


@dataclass
class Result:
    """One system in one scenario."""

    scenario: str
    system: str
    events: int
    outcomes: int
    statuses: dict[str, int]
    seconds: float
    rate: float
    p50: float | None
    p95: float | None
    p99: float | None
    cpu_us: float  # CPU seconds per event, in µs
    peak_rss_mb: float
    config: dict[str, Any]
    rss_marks_mb: dict[int, float] = field(default_factory=dict)
    extra: dict[str, float] = field(default_factory=dict)

    @property
    def complete(self) -> bool:
        return self.outcomes == self.events

    @property
    def disturbed(self) -> bool:
        """Whether other processes kept a fifth of a core or more busy during the run."""
        return self.extra.get("foreign_cores", 0.0) >= DISTURBED

    def as_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def failed(cls, scenario: str, run: Run, count: int, error: str) -> Result:
        """A run that broke off (the broker went away, a process died)."""
        config = run.config(error=error[:300])
        return cls(scenario, run.spec.name, count, 0, {}, 0.0, 0.0, None, None, None, 0.0, 0.0,
                   config)  # fmt: skip


@dataclass
class Run:
    """What every scenario needs: names, a log file, a broker connection."""

    spec: System
    latency: float
    logs: Path
    names: Names = field(default_factory=Names.unique)

    @property
    def run_id(self) -> str:
        return self.names.prefix.split(".", 1)[1]

    def config(self, **more: Any) -> dict[str, Any]:
        spec = self.spec
        return {
            "latency_ms": self.latency * 1000,
            "label": spec.label,
            "prefetch": spec.prefetch,
            "concurrency": spec.concurrency,
            "store": spec.store.split(":")[0],
            "log_level": spec.log_level,
            "queue": self.names.queue,
        } | more

    @asynccontextmanager
    async def broker(self) -> AsyncIterator[tuple[AbstractConnection, IO[bytes]]]:
        self.logs.mkdir(parents=True, exist_ok=True)
        log_path = self.logs / f"{self.names.prefix}-{self.spec.name}.log"
        connection = await aio_pika.connect(systems.AMQP_URL)
        try:
            with log_path.open("wb") as log:
                yield connection, log
        finally:
            with contextlib.suppress(Exception):
                await connection.close()
            with contextlib.suppress(Exception):
                await systems.clean_up(self.spec, self.names)


async def throughput(
    scenario: str,
    run: Run,
    count: int,
    *,
    rate: float | None = None,
    warmup: int = 200,
    profiler: Profiler | None = None,
) -> Result:
    """`count` events into a running system, as fast as confirms allow (or paced at `rate`)."""
    async with (
        run.broker() as (connection, log),
        # Started together: the service calls the provider only for an event, the reference
        # and the peer retry their first request (the token) until the sandbox answers.
        harness.sandbox(run.latency, log) as (url, sb, ready),
        harness.system(run.spec, run.names, url, log) as sut,
    ):
        await ready()
        exchange = await _input_exchange(connection, run.names)
        collector = load.Collector()
        await collector.start(await connection.channel(), run.names.outcome_exchange)
        if warmup:
            await load.publish(exchange, load.events(run.run_id, 0, warmup))
            await collector.wait(warmup, alive=sut.alive)
        meters = _Meters.start(sut, sb)
        profiling = profiler(sut.pid, f"{scenario}-{run.spec.name}") if profiler else None
        async with profiling or contextlib.nullcontext():
            started = await load.publish(exchange, load.events(run.run_id, warmup, count), rate)
            await collector.wait(warmup + count, alive=sut.alive)
        used = meters.stop()
    return _result(scenario, run, started, collector, used, sut, rate=rate)


async def backlog(scenario: str, run: Run, count: int) -> Result:
    """`count` events queued with nothing consuming, then the system started cold."""
    async with (
        run.broker() as (connection, log),
        harness.sandbox(run.latency, log) as (url, sb, ready),
    ):
        await ready()
        await systems.declare(await connection.channel(), run.spec, run.names)
        exchange = await _input_exchange(connection, run.names)
        publishing = time.perf_counter()
        started = await load.publish(exchange, load.events(run.run_id, 0, count))
        publish_rate = count / (time.perf_counter() - publishing)
        collector = load.Collector()
        await collector.start(await connection.channel(), run.names.outcome_exchange)
        async with harness.system(run.spec, run.names, url, log) as sut:
            meters = _Meters.start(sut, sb)
            meters.before = (0.0, meters.before[1])  # the system's CPU from its start
            await collector.wait(count, alive=sut.alive)
            used = meters.stop()
    cold = dict.fromkeys(started, sut.started)  # latency is not the point of a backlog
    result = _result(scenario, run, cold, collector, used, sut)
    result.p50 = result.p95 = result.p99 = None
    result.extra["publish_rate"] = round(publish_rate)
    arrivals = sorted(collector.arrivals.values())
    for mark in BACKLOG_MARKS:
        if arrivals:
            moment = arrivals[max(0, math.ceil(mark / 100 * len(arrivals)) - 1)]
            result.rss_marks_mb[mark] = round(sut.sampler.rss_at(moment) / MB, 1)
    return result


async def _input_exchange(connection: AbstractConnection, names: Names) -> AbstractExchange:
    channel = await connection.channel(publisher_confirms=True)
    topic = aio_pika.ExchangeType.TOPIC
    return await channel.declare_exchange(names.input_exchange, topic, durable=True)


@dataclass
class _Used:
    """CPU seconds in the measured window: the system's, and the rest of the machine's."""

    system: float
    others: dict[str, float] = field(default_factory=dict)


@dataclass
class _Meters:
    """CPU seconds of the system under test, the harness, the sandbox and the broker."""

    sut: Running
    others: dict[str, Callable[[], float]]
    before: tuple[float, dict[str, float]]

    @classmethod
    def start(cls, sut: Running, sandbox: Running) -> _Meters:
        rabbit = harness.broker()
        others: dict[str, Callable[[], float]] = {
            "harness": lambda: harness.cpu_seconds(psutil.Process()),
            "sandbox": lambda: sandbox.sampler.sample().cpu,
            "broker": lambda: harness.cpu_seconds(rabbit),
            "machine": harness.machine_busy,
        }
        meters = cls(sut, others, (0.0, {}))
        meters.before = meters._read()
        return meters

    def _read(self) -> tuple[float, dict[str, float]]:
        return self.sut.sampler.sample().cpu, {name: read() for name, read in self.others.items()}

    def stop(self) -> _Used:
        system, others = self._read()
        return _Used(
            system - self.before[0], {name: others[name] - self.before[1][name] for name in others}
        )


def _result(
    scenario: str,
    run: Run,
    started: dict[str, float],
    collector: load.Collector,
    used: _Used,
    sut: Running,
    *,
    rate: float | None = None,
) -> Result:
    latencies = load.latencies_ms(started, collector.arrivals)
    outcomes = len(latencies)
    first = min(started.values())
    last = collector.last_arrival(started) or first
    seconds = max(last - first, 1e-9)
    count = len(started)
    config = run.config(paced_rate=round(rate) if rate else None)
    return Result(
        scenario=scenario,
        system=run.spec.name,
        events=count,
        outcomes=outcomes,
        statuses=dict(collector.statuses),
        seconds=round(seconds, 3),
        rate=round(outcomes / seconds, 1),
        p50=_round(load.percentile(latencies, 50)),
        p95=_round(load.percentile(latencies, 95)),
        p99=_round(load.percentile(latencies, 99)),
        cpu_us=round(used.system / count * 1e6, 1),
        peak_rss_mb=round(sut.sampler.peak_rss() / MB, 1),
        config=config,
        extra=_extra(used, count, seconds),
    )


def _extra(used: _Used, count: int, seconds: float) -> dict[str, float]:
    """CPU µs per event of the harness, sandbox and broker; and `foreign_cores`: how many cores
    other processes on the machine kept busy meanwhile (above ~0.2 the run was disturbed)."""
    others = dict(used.others)
    machine = others.pop("machine", 0.0)
    extra = {f"{name}_cpu_us": round(cpu / count * 1e6, 1) for name, cpu in others.items()}
    foreign = machine - used.system - sum(others.values())
    extra["foreign_cores"] = round(max(0.0, foreign) / seconds, 2)
    return extra


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 1)
