"""py-spy attached to the system under test for the measured window, and a summary of where
its CPU went: self and cumulative time per function, and self time per package.

Samples are taken only from the thread holding the GIL (`--gil`), so shares are shares of the
Python CPU time; native time that releases the GIL (the event loop's poll) is not counted."""

from __future__ import annotations

import asyncio
import re
import shutil
import signal
import sys
from collections import Counter
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

RATE = 250  # samples a second
_FRAME = re.compile(r"^(?P<function>.*?) \((?P<file>[^()]*?)(?::(?P<line>\d+))?\)$")


def py_spy() -> str:
    found = shutil.which("py-spy", path=str(Path(sys.executable).parent)) or shutil.which("py-spy")
    if found is None:
        raise SystemExit("--profile needs py-spy: .venv/bin/pip install py-spy==0.4.3")
    return found


def recorder(directory: Path) -> Callable[[int, str], AbstractAsyncContextManager[None]]:
    """A profiler for scenarios.throughput: writes DIRECTORY/<label>.txt (collapsed stacks)."""
    executable = py_spy()
    directory.mkdir(parents=True, exist_ok=True)

    @asynccontextmanager
    async def record(pid: int, label: str) -> AsyncIterator[None]:
        out = directory / f"{label}.txt"
        process = await asyncio.create_subprocess_exec(
            executable,
            "record",
            "--pid",
            str(pid),
            "--rate",
            str(RATE),
            "--nonblocking",
            "--gil",
            "--format",
            "raw",
            "--output",
            str(out),
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.DEVNULL,
        )
        await asyncio.sleep(0.5)  # attached before the load starts
        try:
            yield
        finally:
            process.send_signal(signal.SIGINT)
            await process.wait()

    return record


@dataclass(frozen=True)
class Frame:
    function: str
    file: str

    @property
    def package(self) -> str:
        """aio_pika/queue.py -> aio_pika; service/pipeline/consumer.py -> service.consumer;
        netrc.py -> netrc (py-spy shows paths from the import root)."""
        parts = self.file.replace("\\", "/").split("/")
        if parts[0] in ("service", "bench"):
            return f"{parts[0]}.{parts[-1].removesuffix('.py')}"
        return parts[0].removesuffix(".py")

    def __str__(self) -> str:
        short = "/".join(self.file.replace("\\", "/").split("/")[-2:])
        return f"{self.function} ({short})"


def parse(path: Path) -> Counter[tuple[Frame, ...]]:
    """Collapsed stacks `a (f.py:1);b (g.py:2) COUNT`, root first, line numbers dropped."""
    stacks: Counter[tuple[Frame, ...]] = Counter()
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        frames = []
        for text in stack.split(";"):
            match = _FRAME.match(text.strip())
            if match:
                frames.append(Frame(match["function"], match["file"]))
            elif text.strip():
                frames.append(Frame(text.strip(), ""))
        stacks[tuple(frames)] += int(count)
    return stacks


# Steps of one event, each recognised by a function (or a file) on the stack; the first step
# that matches wins. py-spy loses the outer frames of some coroutine stacks, so a step is also
# known by the files only it runs. What matches nothing is the event loop and task switching.
STEPS: tuple[tuple[str, tuple[str, ...], tuple[str, ...]], ...] = (
    ("aiohttp trust_env: netrc read in a thread, proxy lookup",
     ("_worker", "ThreadPoolExecutor.submit", "to_thread", "wrap_future", "run_in_executor",
      "getproxies_environment", "get_env_proxy_for_url", "netrc", "_Environ."), ("netrc",)),
    ("HTTP call to the provider",
     ("ClientSession.", "ClientRequest.", "ClientResponse.", "_BaseRequestContextManager.",
      "ResponseHandler.", "Provider."), ("aiohttp/",)),
    ("decode + decide (templates, phone)", ("decode", "decide", "message_of"),
     ("service/render", "service/templates/", "service/events", "jinja2/", "phonenumbers/")),
    ("outcome: build + publish, confirmed",
     ("Settler._publish", "Exchange.publish", "Publisher.", "Outcome."),
     ("service/pipeline/outcomes", "service/amqp/publisher")),
    ("ack", ("IncomingMessage.ack",), ()),
    ("store, budget, metrics, log",
     ("MemoryStore.", "RedisStore.", "Budget.", "Caller._complete", "log_event", "Metrics.",
      "MetricWrapperBase."), ("service/store", "service/pipeline/budget", "redis/",
                              "prometheus_client/", "logging/", "service/logs")),
    ("AMQP frames out (socket writes)", ("Connection.__writer", "CorkedWriter."), ()),
    ("AMQP frames in (deliveries, confirms)", ("Connection.__reader", "Channel._reader"), ()),
    ("service: handle, process, settle", (),
     ("service/pipeline/", "service/amqp/headers")),
    ("aio-pika consumer, message objects (reference: its handler)", (),
     ("aio_pika/", "bench/reference")),
)  # fmt: skip


def step(frames: tuple[Frame, ...]) -> str:
    """The step of one event a stack belongs to."""
    for label, functions, files in STEPS:
        for frame in frames:
            if frame.function.startswith(functions) or (files and frame.file.startswith(files)):
                return label
    return "event loop, task switching"


def summary(path: Path, cpu_us: float | None = None, top: int = 20) -> str:
    """Markdown: the top functions by self and cumulative samples, and self time by package.
    With `cpu_us` (CPU per event), each share is also shown as µs per event."""
    stacks = parse(path)
    total = sum(stacks.values()) or 1
    own: Counter[str] = Counter()
    cumulative: Counter[str] = Counter()
    packages: Counter[str] = Counter()
    steps: Counter[str] = Counter()
    for frames, count in stacks.items():
        if not frames:
            continue
        steps[step(frames)] += count
        own[str(frames[-1])] += count
        packages[frames[-1].package] += count
        for name in {str(frame) for frame in frames}:
            cumulative[name] += count

    def table(title: str, counts: Counter[str], rows: int) -> list[str]:
        lines = [f"| {title} | share | µs/event |", "|---|---:|---:|"]
        for name, count in counts.most_common(rows):
            share = count / total
            per_event = f"{share * cpu_us:.0f}" if cpu_us else ""
            lines.append(f"| `{name}` | {share:.1%} | {per_event} |")
        return lines

    return "\n".join(
        [
            f"{path.name}: {total} samples at {RATE}/s",
            "",
            *table("step of the event", steps, len(STEPS) + 3),
            "",
            *table("self time by package", packages, 15),
            "",
            *table("self time by function", own, top),
            "",
            *table("cumulative time by function", cumulative, top),
        ]
    )


def main(argv: list[str]) -> None:
    """python -m bench.profile FILE.txt [CPU_US_PER_EVENT]"""
    cpu = float(argv[1]) if len(argv) > 1 else None
    print(summary(Path(argv[0]), cpu))


if __name__ == "__main__":
    main(sys.argv[1:])
