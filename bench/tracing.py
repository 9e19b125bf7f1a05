"""python -m bench.tracing: what traces cost per event (CONTRACT.md §14).

The service at latency-0 (the provider answers at once: the largest share tracing can take),
in alternating rounds: tracing off; on at full sampling (`always_on`), exporting to a local
OTLP/HTTP sink in this process that decodes and counts the spans; with `--ratio R`, on with
`traceidratio` sampling a share R of the traces; and, with `--base REF`, the
service as it was at git REF (exported with `git archive`, run from that tree), which shows
what the hooks cost while tracing is off. Medians of the rounds; CPU µs per event is the
service's user + system CPU over the measured window (the exporter's thread included).

  .venv/bin/python -m bench.tracing --n 4000 --rounds 8 [--base REF] [--ratio 0.1] [--parent]
      [--store redis]
  .venv/bin/python -m bench.tracing --profile --rounds 1
  .venv/bin/python -m bench.profile bench/results/profile-tracing/tracing-on-service.txt 2000
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import subprocess
import sys
import tempfile
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
import uvloop
from aiohttp import web
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from bench import load
from bench.profile import recorder
from bench.scenarios import Result, Run, throughput
from bench.systems import REDIS_URL, ROOT, Names, System
from service.http import serve_app

LOGS = Path(__file__).resolve().parent / "results" / "logs"
PROFILES = LOGS.parent / "profile-tracing"
# Runs the service from another tree: its directory first on the path, then `autocall-bridge`.
LAUNCH = "import sys; sys.path.insert(0, sys.argv.pop(1)); from service.cli import main; main()"
PARENT = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"


@dataclass(frozen=True)
class AtRef(System):
    """The service as it was at a git ref, run from an exported tree."""

    tree: str = ""

    def command(self, names: Names, provider: str, http_port: int) -> list[str]:
        return [sys.executable, "-c", LAUNCH, self.tree, "run"]


class Sink:
    """An OTLP/HTTP receiver that counts the spans it is sent."""

    def __init__(self) -> None:
        self.spans = 0
        self.url = ""

    async def _post(self, request: web.Request) -> web.Response:
        export = ExportTraceServiceRequest.FromString(await request.read())
        self.spans += sum(
            len(scope.spans) for spans in export.resource_spans for scope in spans.scope_spans
        )
        return web.Response(content_type="application/x-protobuf")

    @contextlib.asynccontextmanager
    async def serving(self) -> AsyncIterator[Sink]:
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_post("/v1/traces", self._post)
        async with serve_app(app, "127.0.0.1", 0) as port:
            self.url = f"http://127.0.0.1:{port}"
            yield self


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.tracing", description=__doc__)
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.add_argument("--n", type=int, default=2_000, help="events per run")
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds")
    parser.add_argument("--warmup", type=int, default=200, help="unmeasured events first")
    parser.add_argument("--base", metavar="REF", help="also the service at this git ref")
    parser.add_argument("--parent", action="store_true", help="events carry a traceparent")
    parser.add_argument("--ratio", type=float, help="also on, sampling this share of traces")
    parser.add_argument("--only", help="the variants to run, comma-separated (default: all)")
    parser.add_argument("--profile", action="store_true", help="py-spy on each run (--gil)")
    parser.add_argument(
        "--store", choices=("memory", "redis"), default="memory", help="the idempotency store"
    )
    return parser.parse_args(argv)


@contextlib.contextmanager
def exported(ref: str | None) -> Iterator[str | None]:
    """The tree of `ref`, exported into a temporary directory (removed afterwards)."""
    if ref is None:
        yield None
        return
    with tempfile.TemporaryDirectory(prefix="bench-base-") as tree:
        archive = subprocess.run(
            ["git", "-C", str(ROOT), "archive", ref, "service"],
            check=True,
            capture_output=True,
        ).stdout
        subprocess.run(["tar", "-x", "-C", tree], input=archive, check=True)
        yield tree


def with_parent(event: Any) -> Any:
    """load.event, its CloudEvent carrying a traceparent (the distributed-tracing attribute)."""

    def made(run: str, index: int) -> tuple[str, bytes]:
        event_id, body = event(run, index)
        return event_id, orjson.dumps(orjson.loads(body) | {"traceparent": PARENT})

    return made


def systems(sink: Sink, tree: str | None, ratio: float | None, store: str) -> dict[str, System]:
    endpoint = ("OTEL_EXPORTER_OTLP_ENDPOINT", sink.url)
    on = (endpoint, ("OTEL_TRACES_SAMPLER", "always_on"))
    kept = REDIS_URL if store == "redis" else "memory://"
    variants: dict[str, System] = {
        "off": System("service", store=kept),
        "on": System("service", store=kept, env_extra=on),
    }
    if ratio is not None:
        sampler = ("OTEL_TRACES_SAMPLER", "traceidratio")
        sampled = (endpoint, sampler, ("OTEL_TRACES_SAMPLER_ARG", str(ratio)))
        variants[f"on {ratio:g}"] = System("service", store=kept, env_extra=sampled)
    if tree is not None:
        variants["base"] = AtRef("service", store=kept, tree=tree)
    return variants


async def amain(args: argparse.Namespace) -> str:
    if args.parent:
        load.event = with_parent(load.event)
    runs: dict[str, list[Result]] = {}
    spans: list[float] = []
    async with Sink().serving() as sink:
        with exported(args.base) as tree:
            variants = systems(sink, tree, args.ratio, args.store)
            if args.only:
                variants = {k: v for k, v in variants.items() if k in args.only.split(",")}
            names = list(variants)
            for round_ in range(args.rounds):
                for name in names[round_ % len(names) :] + names[: round_ % len(names)]:
                    before = sink.spans
                    run = Run(variants[name], 0.0, LOGS)
                    profiler = recorder(PROFILES) if args.profile else None
                    result = await throughput(
                        f"tracing-{name}", run, args.n, warmup=args.warmup, profiler=profiler
                    )
                    runs.setdefault(name, []).append(result)
                    print(f"round {round_ + 1} {name:>7}: {_line(result)}", flush=True)
                    if name == "on":  # stopped: its last spans were exported as it stopped
                        spans.append((sink.spans - before) / (args.n + args.warmup))
    return report(runs, spans)


def report(runs: dict[str, list[Result]], spans: list[float]) -> str:
    """Medians of the rounds; and the median of each round's own ratio to `off` (the rounds
    alternate, so a disturbance of the machine that lasts a round moves both of its runs)."""
    cpu = {name: statistics.median(r.cpu_us for r in results) for name, results in runs.items()}
    rate = {name: statistics.median(r.rate for r in results) for name, results in runs.items()}
    lines = [
        "| tracing | CPU µs/event | events/s | vs off | vs off, round by round |",
        "|---|---|---|---|---|",
    ]
    for name, results in runs.items():
        change = cpu[name] / cpu["off"] - 1 if "off" in cpu else 0.0
        offs = runs.get("off", [])[: len(results)]  # a round cut short has fewer of one
        paired = [r.cpu_us / o.cpu_us - 1 for r, o in zip(results[: len(offs)], offs, strict=True)]
        by_round = f"{statistics.median(paired):+.1%}" if paired else ""
        lines.append(
            f"| {name} | {cpu[name]:.0f} | {rate[name]:.0f} | {change:+.1%} | {by_round} |"
        )
    if spans:
        lines.append(f"\nspans received per event (on): {', '.join(f'{s:.2f}' for s in spans)}")
    return "\n".join(lines)


def _line(result: Result) -> str:
    complete = "" if result.complete else f"  INCOMPLETE {result.outcomes}/{result.events}"
    return f"{result.rate:7.0f} events/s  {result.cpu_us:6.0f} µs/event{complete}"


def main(argv: list[str] | None = None) -> None:
    print("\n" + uvloop.run(amain(parse_args(argv))))


if __name__ == "__main__":
    main()
