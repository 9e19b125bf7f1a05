"""python -m bench: the service against the leanest reference consumer, in the same run.

Scenarios (each runs the service, then the reference, never both at once):
  latency-<ms>    N events published as fast as confirms allow, provider latency <ms>
  redis-<ms>      the service with the Redis store (compared with latency-<ms>'s reference)
  latency-0-info  the service logging one INFO line per event (compared with latency-0)
  p99-half-rate   N events paced at half the service's max rate at the last latency
  backlog         --backlog events queued first, then each system started cold
"""

from __future__ import annotations

import argparse
import os
import platform
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import orjson
import uvloop

from . import report
from .profile import recorder, summary
from .scenarios import Result, Run, backlog, throughput
from .systems import REDIS_URL, Names, System, wait_for_broker

RESULTS = Path(__file__).resolve().parent / "results"
ALL = ("latency", "redis", "info", "p99", "backlog")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--smoke",
        action="store_true",
        help="N=200, latency-0 only: checks the harness, measures nothing",
    )
    parser.add_argument("--n", type=int, default=5_000, help="events per scenario")
    parser.add_argument("--latency", default="0,50", help="provider latencies, ms (0,50)")
    parser.add_argument("--backlog", type=int, default=100_000, help="events in the backlog")
    parser.add_argument("--scenarios", default=",".join(ALL), help=f"of {', '.join(ALL)}")
    parser.add_argument("--prefetch", type=int, default=64, help="prefetch of both systems")
    parser.add_argument("--concurrency", type=int, help="the service's (default: --prefetch)")
    parser.add_argument("--warmup", type=int, default=200, help="unmeasured events first")
    parser.add_argument("--repeat", type=int, default=1, help="runs of each pair; the best counts")
    parser.add_argument(
        "--backlog-reference", action="store_true", help="run the backlog for the reference too"
    )
    parser.add_argument(
        "--backlog-store", choices=("memory", "redis"), default="memory", help="for the backlog"
    )
    parser.add_argument(
        "--explore",
        metavar="P,P,…",
        help="instead: latency scenarios at each prefetch = concurrency",
    )
    parser.add_argument(
        "--profile",
        action="store_true",
        help="instead: py-spy on both systems at latency-<first> (and redis-<first>, if chosen)",
    )
    parser.add_argument("--out", type=Path, help="JSON results (default bench/results/latest.json)")
    args = parser.parse_args(argv)
    if args.smoke:
        args.n, args.latency, args.scenarios, args.warmup = 200, "0", "latency", 20
    args.latencies = [int(ms) for ms in args.latency.split(",")]
    args.selected = [s.strip() for s in args.scenarios.split(",") if s.strip()]
    unknown = set(args.selected) - set(ALL)
    if unknown:
        parser.error(f"--scenarios: unknown {', '.join(sorted(unknown))}")
    name = "smoke" if args.smoke else "explore" if args.explore else "latest"
    args.out = args.out or RESULTS / f"{'profile' if args.profile else name}.json"
    return args


class Bench:
    """Runs the selected scenarios in order; keeps every run and the best of each repeat."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.logs = args.out.parent / "logs"
        self.results: list[Result] = []  # the best run of each system in each scenario
        self.runs: list[Result] = []  # every run

    def spec(self, name: str, prefetch: int | None = None, **changes: Any) -> System:
        prefetch = prefetch or self.args.prefetch
        concurrency = self.args.concurrency or prefetch
        return replace(System(name, prefetch, concurrency), **changes)

    async def pair(
        self,
        scenario: str,
        latency_ms: int,
        systems: tuple[str, ...] = ("service", "reference"),
        repeat: int | None = None,
        changes: dict[str, Any] | None = None,
        **options: Any,
    ) -> list[Result]:
        """Each system in turn (the order alternating between repeats); the best of each."""
        prefetch = options.pop("prefetch", None)
        runs: dict[str, list[Result]] = {name: [] for name in systems}
        for index in range(repeat or self.args.repeat):
            for name in systems if index % 2 == 0 else systems[::-1]:
                spec = self.spec(name, prefetch, **(changes or {}))
                run = Run(spec, latency_ms / 1000, self.logs)
                runs[name].append(await self.one(scenario, run, **options))
        chosen = [_best(runs[name], paced="rate" in options) for name in systems]
        self.results += chosen
        return chosen

    async def one(self, scenario: str, run: Run, **options: Any) -> Result:
        """One run; once more if it broke off (someone restarted the broker, say)."""
        args, error = self.args, ""
        count = args.backlog if scenario == "backlog" else args.n
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
        run = Run(self.spec("reference"), 0.0, self.logs)
        await throughput("prime", run, min(self.args.n, 2_000), warmup=0)

    async def run(self) -> None:
        args, first, last = self.args, self.args.latencies[0], self.args.latencies[-1]
        if not args.smoke:
            await self.prime()
        if "latency" in args.selected or "p99" in args.selected:
            for ms in args.latencies:
                await self.pair(f"latency-{ms}", ms)
        if "redis" in args.selected:
            changes = {"store": REDIS_URL}
            await self.pair(f"redis-{first}", first, ("service",), changes=changes)
        if "info" in args.selected:
            changes = {"log_level": "INFO"}
            await self.pair(f"latency-{first}-info", first, ("service",), changes=changes)
        if "p99" in args.selected:
            fastest = report.find(self.results, f"latency-{last}", "service")
            rate = fastest.rate / 2 if fastest and fastest.rate else 100.0
            await self.pair("p99-half-rate", last, rate=rate)
        if "backlog" in args.selected:
            systems = ("service", "reference") if args.backlog_reference else ("service",)
            store = {"store": REDIS_URL} if args.backlog_store == "redis" else {}
            await self.pair("backlog", 0, systems, repeat=1, changes=store)

    async def explore(self, prefetches: list[int]) -> None:
        for prefetch in prefetches:
            for ms in self.args.latencies:
                await self.pair(f"latency-{ms} prefetch {prefetch}", ms, prefetch=prefetch)

    async def profile(self) -> str:
        """py-spy on both systems during latency-<first>, and on the service with Redis."""
        directory = self.args.out.parent / "profile"
        profiler = recorder(directory)
        ms = self.args.latencies[0]
        found = await self.pair(f"latency-{ms}", ms, repeat=1, profiler=profiler)
        if "redis" in self.args.selected:
            changes = {"store": REDIS_URL}
            found += await self.pair(f"redis-{ms}", ms, ("service",), 1, changes, profiler=profiler)
        sections = []
        for result in found:
            path = directory / f"{result.scenario}-{result.system}.txt"
            title = f"### {result.scenario}, {result.system}: {result.cpu_us:.0f} µs CPU per event"
            sections.append(f"{title}\n\n{summary(path, result.cpu_us)}")
        return "\n\n".join(sections)


def _best(runs: list[Result], paced: bool) -> Result:
    """The least disturbed: complete first, then the fastest (the lowest p99 when paced)."""
    if paced:
        return min(runs, key=lambda r: (not r.complete, r.p99 or float("inf")))
    return min(runs, key=lambda r: (not r.complete, -r.rate))


def _line(r: Result) -> str:
    p99 = "" if r.p99 is None else f", p99 {r.p99:.0f} ms"
    return (
        f"  {r.scenario:<28} {r.system:<9} {r.outcomes:>6}/{r.events:<6} "
        f"{r.rate:8.0f} events/s, {r.cpu_us:5.0f} µs CPU/event{p99}, "
        f"peak RSS {r.peak_rss_mb:.0f} MB; others {r.extra.get('foreign_cores', 0):.2f} cores"
    )


def write(args: argparse.Namespace, bench: Bench, wall: float, extra: str = "") -> str:
    checks = [] if args.smoke else report.targets(bench.results, args.latencies)
    table = report.table(bench.results, args.latencies)
    markdown = "\n\n".join(
        part
        for part in (
            f"`python -m bench {' '.join(_argv(args))}`: {wall / 60:.1f} min wall time, "
            f"{os.cpu_count()} cores, Python {platform.python_version()}",
            table,
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
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "args": _argv(args),
        "results": [r.as_json() for r in bench.results],
        "runs": [r.as_json() for r in bench.runs],
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


def _argv(args: argparse.Namespace) -> list[str]:
    if args.smoke:
        return ["--smoke"]
    shown = [f"--n {args.n}", f"--latency {args.latency}", f"--prefetch {args.prefetch}"]
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
