"""python -m bench: the service with its defaults against the leanest reference consumer at
its best prefetch, in the same run; medians of interleaved rounds.

Scenarios (one system at a time, never two at once):
  latency-<ms>    N events published as fast as confirms allow, provider latency <ms>;
                  the service, the reference (bench/reference.py) and, with `peer`, a FastStream
                  + httpx consumer (bench/peer.py)
  redis-<ms>      the service with the Redis store (compared with latency-<ms>'s reference)
  replica-<ms>    the same on a Redis of the bench's own with a replica and
                  AUTOCALL_STORE_MIN_REPLICAS=1
  latency-0-info  the service logging one INFO line per event (compared with latency-0)
  latency-0-traced  the service with tracing on at full sampling (`always_on`), its spans
                  exported to an OTLP/HTTP sink in the harness (compared with latency-0); the
                  careful measure of what tracing costs is `python -m bench.tracing`
  p99-half-rate   N events paced at half the service's max rate at --p99-latency
  backlog         --backlog events queued first, then the service started cold
  accounts-<ms>   (optional) the service with 1 account and with 50 in an accounts file, the
                  same template spreading the events over them: CPU per event within 5 %

First the reference's prefetch is swept (--sweep) at each latency; the best is kept for the
reference and the peer. Then --rounds rounds, each running every scenario once with the order
of the systems rotating; each system's figures are the medians of its rounds.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import platform
import statistics
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import orjson
import uvloop

from bench import replicas, report, tracing
from bench.profile import recorder, summary
from bench.scenarios import Result, Run, backlog, throughput
from bench.systems import REDIS_URL, Names, System, wait_for_broker

RESULTS = Path(__file__).resolve().parent / "results"
ALL = ("latency", "peer", "redis", "replica", "info", "traced", "p99", "backlog", "accounts")
DEFAULT = ("latency", "peer", "redis", "replica", "traced", "p99", "backlog")
UNSWEPT = 256  # the reference's prefetch when no sweep ran
ACCOUNTS = (1, 50)  # the accounts scenario: one account, and fifty
MIN_REPLICAS = (("AUTOCALL_STORE_MIN_REPLICAS", "1"),)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add = parser.add_argument
    add("--smoke", action="store_true", help="N=200, latency-0 only: checks the harness")
    add("--n", type=int, default=4_000, help="events per run")
    add("--latency", default="0,50,200", help="provider latencies, ms (0,50,200)")
    add("--rounds", type=int, default=3, help="interleaved rounds; medians count")
    add("--peer-rounds", type=int, default=1, help="rounds the (slow) peer runs in")
    add("--peer-n", type=int, default=1_000, help="events per run of the (slow) peer")
    add("--replica-rounds", type=int, default=1, help="rounds replica-<ms> runs in")
    add("--peer-prefetch", type=int, default=256, help="the peer's prefetch (1024: httpx crawls)")
    add("--sweep", default="64,256,1024", help="the reference's prefetches to try")
    add("--sweep-n", type=int, default=1_500, help="events per sweep run")
    add("--backlog", type=int, default=100_000, help="events in the backlog")
    add("--scenarios", default=",".join(DEFAULT), help=f"of {', '.join(ALL)}")
    add("--prefetch", type=int, help="every system's (default: the service's own; the best swept)")
    add("--concurrency", type=int, help="the service's (default: its own)")
    add("--warmup", type=int, default=200, help="unmeasured events first")
    add("--p99-latency", type=int, default=50, help="provider latency of p99-half-rate, ms")
    add("--p99-rounds", type=int, default=1, help="rounds of p99-half-rate")
    add("--backlog-reference", action="store_true", help="run the backlog for the reference too")
    add("--backlog-store", choices=("memory", "redis"), default="redis", help="for the backlog")
    add("--explore", metavar="P,P,…", help="instead: latency scenarios at each prefetch")
    add("--profile", action="store_true", help="instead: py-spy on both systems at latency-<first>")
    add("--out", type=Path, help="JSON results (default bench/results/latest.json)")
    args = parser.parse_args(argv)
    if args.smoke:
        args.n, args.latency, args.scenarios, args.warmup = 200, "0", "latency", 20
        args.rounds, args.sweep = 1, ""
    args.latencies = [int(ms) for ms in args.latency.split(",")]
    args.sweeps = [int(p) for p in args.sweep.split(",") if p.strip()]
    args.selected = [s.strip() for s in args.scenarios.split(",") if s.strip()]
    unknown = set(args.selected) - set(ALL)
    if unknown:
        parser.error(f"--scenarios: unknown {', '.join(sorted(unknown))}")
    name = "smoke" if args.smoke else "explore" if args.explore else "latest"
    args.out = args.out or RESULTS / f"{'profile' if args.profile else name}.json"
    return args


# One measured run of a round: scenario, provider latency (ms), system, its changes.
Step = tuple[str, int, str, dict[str, Any]]


class Bench:
    """Sweeps the reference, runs the rounds; keeps every run and each system's medians."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.logs = args.out.parent / "logs"
        self.results: list[Result] = []  # each system in each scenario: medians of its rounds
        self.runs: list[Result] = []  # every run
        self.best: dict[int, int] = {}  # the reference's best prefetch, by latency
        self.replica_url: str | None = None
        self.traced: tuple[tuple[str, str], ...] = ()  # the settings of latency-<ms>-traced
        self.phases: dict[str, float] = {}  # wall seconds of each part of the run

    @contextlib.contextmanager
    def phase(self, name: str) -> Iterator[None]:
        """Times a part of the run: `make bench` must fit in 10 minutes, this says where not."""
        began = time.perf_counter()
        try:
            yield
        finally:
            self.phases[name] = self.phases.get(name, 0.0) + time.perf_counter() - began

    def spec(self, name: str, latency_ms: int, **changes: Any) -> System:
        """The service with its defaults (unless told); the others at the best prefetch."""
        args = self.args
        if name == "service":
            system = System(name, args.prefetch, args.concurrency)
        elif name == "peer":
            system = System(name, args.prefetch or args.peer_prefetch)
        else:
            best = self.best.get(latency_ms, args.sweeps[-1] if args.sweeps else UNSWEPT)
            system = System(name, args.prefetch or best)
        return replace(system, **changes)

    async def one(
        self, scenario: str, run: Run, count: int | None = None, **options: Any
    ) -> Result:
        """One run; once more if it broke off (someone restarted the broker, say)."""
        args, error = self.args, ""
        count = count or (args.backlog if scenario == "backlog" else args.n)
        for _ in range(2):
            try:
                if scenario == "backlog":
                    result = await backlog(scenario, run, count)
                else:
                    result = await throughput(scenario, run, count, warmup=args.warmup, **options)
            except Exception as exc:  # a broken-off run is reported, not fatal
                error = f"{type(exc).__name__}: {exc}"
                result = Result.failed(scenario, run, count, error)
            print(_line(result), flush=True)
            self.runs.append(result)
            if result.complete:
                return result
            print(f"  ({error or 'outcomes missing'}: once more)", flush=True)
            await wait_for_broker()
            run = replace(run, names=Names.unique())
        return result

    async def prime(self) -> None:
        """An unmeasured run first: the first run after a quiet spell measured slower."""
        run = Run(System("reference", UNSWEPT), 0.0, self.logs)
        await throughput("prime", run, min(self.args.n, 1_000), warmup=0)

    async def sweep(self) -> None:
        """The reference at each prefetch of --sweep, at each latency: the fastest is kept. From
        the largest down; a prefetch whose ceiling (prefetch ÷ latency) is below the best rate
        found is not run: it cannot win."""
        if self.args.prefetch or not self.args.sweeps:
            return
        for ms in self.args.latencies:
            found: dict[int, Result] = {}
            for prefetch in sorted(self.args.sweeps, reverse=True):
                best = max((r.rate for r in found.values() if r.complete), default=0.0)
                ceiling = prefetch / (ms / 1000) if ms else float("inf")
                if ceiling < best:
                    print(f"  (prefetch {prefetch}: at most {ceiling:.0f} events/s, not run)")
                    continue
                run = Run(System("reference", prefetch), ms / 1000, self.logs)
                found[prefetch] = await self.one(f"sweep latency-{ms}", run, self.args.sweep_n)
            self.best[ms] = max(found, key=lambda p: (found[p].complete, found[p].rate))
            print(f"  reference at {ms} ms: prefetch {self.best[ms]}", flush=True)

    def plan(self) -> list[list[Step]]:
        """Each scenario's runs in one round: its systems, one after the other."""
        selected, first = self.args.selected, self.args.latencies[0]
        plan: list[list[Step]] = []
        if "latency" in selected:
            for ms in self.args.latencies:
                names = ["service", "reference"] + (["peer"] if "peer" in selected else [])
                plan.append([(f"latency-{ms}", ms, name, {}) for name in names])
        if "redis" in selected:
            plan.append([(f"redis-{first}", first, "service", {"store": REDIS_URL})])
        if "replica" in selected and self.replica_url:
            replica = {"store": self.replica_url, "env_extra": MIN_REPLICAS}
            plan.append([(f"replica-{first}", first, "service", replica)])
        if "accounts" in selected:
            scenario = f"accounts-{first}"
            plan.append([(scenario, first, "service", {"accounts": n}) for n in ACCOUNTS])
        if "info" in selected:
            plan.append([(f"latency-{first}-info", first, "service", {"log_level": "INFO"})])
        if self.traced:
            traced = {"env_extra": self.traced}
            plan.append([(f"latency-{first}-traced", first, "service", traced)])
        return plan

    async def rounds(self) -> None:
        """Every scenario once a round, the order of its systems rotating; then the medians."""
        collected: dict[tuple[str, str], list[Result]] = {}
        for index in range(self.args.rounds):
            for steps in self.plan():
                turn = index % len(steps)
                for scenario, ms, name, changes in steps[turn:] + steps[:turn]:
                    if name == "peer" and index >= self.args.peer_rounds:
                        continue
                    if scenario.startswith("replica") and index >= self.args.replica_rounds:
                        continue
                    run = Run(self.spec(name, ms, **changes), ms / 1000, self.logs)
                    count = self.args.peer_n if name == "peer" else None
                    found = await self.one(scenario, run, count)
                    collected.setdefault((scenario, run.spec.label), []).append(found)
        self.results += [median(runs) for runs in collected.values()]

    async def paced(self) -> None:
        """p99-half-rate: half the service's median rate at --p99-latency, both systems."""
        ms = self.args.p99_latency
        fastest = report.find(self.results, f"latency-{ms}", "service")
        rate = fastest.rate / 2 if fastest and fastest.rate else 100.0
        collected: dict[str, list[Result]] = {"service": [], "reference": []}
        for index in range(self.args.p99_rounds):
            for name in list(collected)[:: 1 if index % 2 == 0 else -1]:
                run = Run(self.spec(name, ms), ms / 1000, self.logs)
                collected[name].append(await self.one("p99-half-rate", run, rate=rate))
        self.results += [median(runs, paced=True) for runs in collected.values()]

    async def run(self) -> None:
        args = self.args
        if not args.smoke:
            with self.phase("prime"):
                await self.prime()
        with self.phase("sweep"):
            await self.sweep()
        with self.phase("rounds"):
            async with self.replica(), self.sink():
                await self.rounds()
        if "p99" in args.selected:
            with self.phase("p99"):
                await self.paced()
        if "backlog" in args.selected:
            systems = ("service", "reference") if args.backlog_reference else ("service",)
            store = {"store": REDIS_URL} if args.backlog_store == "redis" else {}
            for name in systems:
                run = Run(self.spec(name, 0, **(store if name == "service" else {})), 0, self.logs)
                with self.phase("backlog"):
                    self.results.append(await self.one("backlog", run))

    @contextlib.asynccontextmanager
    async def replica(self) -> AsyncIterator[None]:
        """A Redis with a replica for `replica-<ms>`, while the rounds run."""
        if "replica" not in self.args.selected or not replicas.available():
            yield
            return
        async with replicas.primary_with_replica() as url:
            self.replica_url = url
            try:
                yield
            finally:
                self.replica_url = None

    @contextlib.asynccontextmanager
    async def sink(self) -> AsyncIterator[None]:
        """An OTLP/HTTP receiver for `latency-<ms>-traced`'s spans, while the rounds run."""
        if "traced" not in self.args.selected:
            yield
            return
        async with tracing.Sink().serving() as sink:
            endpoint = ("OTEL_EXPORTER_OTLP_ENDPOINT", sink.url)
            self.traced = (endpoint, ("OTEL_TRACES_SAMPLER", "always_on"))
            try:
                yield
            finally:
                self.traced = ()

    async def explore(self, prefetches: list[int]) -> None:
        """Prefetch = concurrency for the service, the same prefetch for the reference."""
        for prefetch in prefetches:
            for ms in self.args.latencies:
                scenario = f"latency-{ms} prefetch {prefetch}"
                for name in ("service", "reference"):
                    spec = replace(self.spec(name, ms), prefetch=prefetch)
                    if name == "service":
                        spec = replace(spec, concurrency=self.args.concurrency or prefetch)
                    self.results.append(await self.one(scenario, Run(spec, ms / 1000, self.logs)))

    async def profile(self) -> str:
        """py-spy on both systems during latency-<first>, and on the service with Redis."""
        directory = self.args.out.parent / "profile"
        profiler = recorder(directory)
        ms = self.args.latencies[0]
        steps: list[Step] = [(f"latency-{ms}", ms, name, {}) for name in ("service", "reference")]
        if "redis" in self.args.selected:
            steps.append((f"redis-{ms}", ms, "service", {"store": REDIS_URL}))
        sections = []
        for scenario, latency, name, changes in steps:
            run = Run(self.spec(name, latency, **changes), latency / 1000, self.logs)
            result = await self.one(scenario, run, profiler=profiler)
            self.results.append(result)
            path = directory / f"{result.scenario}-{result.system}.txt"
            title = f"### {result.scenario}, {result.system}: {result.cpu_us:.0f} µs CPU per event"
            sections.append(f"{title}\n\n{summary(path, result.cpu_us)}")
        return "\n\n".join(sections)


def median(runs: list[Result], paced: bool = False) -> Result:
    """One system's figures over its rounds: each the median of the complete runs (the run
    with the median throughput, or p99 when paced, carries the rest)."""
    complete = [r for r in runs if r.complete] or runs
    key = (lambda r: r.p99 or 0.0) if paced else (lambda r: r.rate)
    middle = sorted(complete, key=key)[(len(complete) - 1) // 2]
    if len(complete) < 2:
        return middle
    config = middle.config | {
        "rounds": len(complete),
        "rates": [r.rate for r in runs],
        "cpu_us_each": [r.cpu_us for r in runs],
    }
    return replace(
        middle,
        cpu_us=statistics.median(r.cpu_us for r in complete),
        peak_rss_mb=statistics.median(r.peak_rss_mb for r in complete),
        config=config,
    )


def _line(r: Result) -> str:
    p99 = "" if r.p99 is None else f", p99 {r.p99:.0f} ms"
    return (
        f"  {r.scenario:<22} {r.config.get('label', r.system):<15} {r.outcomes:>6}/{r.events:<6} "
        f"{r.rate:8.0f} events/s, {r.cpu_us:5.0f} µs CPU/event{p99}, "
        f"peak RSS {r.peak_rss_mb:.0f} MB; others {r.extra.get('foreign_cores', 0):.2f} cores"
    )


def write(args: argparse.Namespace, bench: Bench, wall: float, extra: str = "") -> str:
    checks = [] if args.smoke else report.targets(bench.results, args.latencies)
    table = report.table(bench.results, args.latencies)
    swept = report.sweep_lines(bench.runs, bench.best)
    markdown = "\n\n".join(
        part
        for part in (
            f"`python -m bench {' '.join(_argv(args))}`: {wall / 60:.1f} min wall time, "
            f"{os.cpu_count()} cores, Python {platform.python_version()}" + _phases(bench.phases),
            table,
            swept,
            report.notes(bench.results),
            report.backlog_lines(bench.results),
            report.checklist(checks),
            extra,
        )
        if part
    )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    document = {
        "wall_seconds": round(wall, 1),
        "phase_seconds": {name: round(seconds, 1) for name, seconds in bench.phases.items()},
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "args": _argv(args),
        "results": [r.as_json() for r in bench.results],
        "runs": [r.as_json() for r in bench.runs],
        "reference_prefetch": bench.best,
        "targets": [
            {"what": c.what, "measured": c.measured, "limit": c.limit, "passed": c.passed}
            for c in checks
        ],
    }
    args.out.write_bytes(
        orjson.dumps(document, option=orjson.OPT_INDENT_2 | orjson.OPT_NON_STR_KEYS)
    )
    args.out.with_suffix(".md").write_text(markdown + "\n", encoding="utf-8")
    return markdown


def _phases(phases: dict[str, float]) -> str:
    if not phases:
        return ""
    return " (" + ", ".join(f"{name} {seconds:.0f} s" for name, seconds in phases.items()) + ")"


def _argv(args: argparse.Namespace) -> list[str]:
    if args.smoke:
        return ["--smoke"]
    shown = [f"--n {args.n}", f"--latency {args.latency}", f"--rounds {args.rounds}"]
    if args.prefetch:
        shown.append(f"--prefetch {args.prefetch}")
    if args.explore:
        return [*shown, f"--explore {args.explore}"]
    return [*shown, f"--backlog {args.backlog}", f"--scenarios {args.scenarios}"]


async def amain(args: argparse.Namespace) -> str:
    started = time.perf_counter()
    bench = Bench(args)
    extra = ""
    if args.profile:
        extra = await bench.profile()
    elif args.explore:
        await bench.explore([int(p) for p in args.explore.split(",")])
    else:
        await bench.run()
    return write(args, bench, time.perf_counter() - started, extra)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    print(f"bench: {', '.join(args.selected)}; results in {args.out}", flush=True)
    print("\n" + uvloop.run(amain(args)))


if __name__ == "__main__":
    main()
