"""python -m bench.results: what call results cost and how fast the listener takes records.

  listener   the webhook listener in-process with the Redis result store and the real broker:
             N open calls recorded, then N CDRs posted (64 at a time); records/s matched and
             published with confirms (each one's 200 comes after its broker confirm)
  record     CPU µs per accepted call of recording it (Redis, the store's per-turn pipeline)
  cost       the service (Redis store, provider at 0 ms) with results on (the default: each
             accepted call recorded) and off (AUTOCALL_RESULT_POLL_INTERVAL=0, no token), in
             alternating rounds: events/s and CPU µs per event, and the difference

Writes bench/results/results.json and prints a table.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
import uuid
from pathlib import Path
from typing import Any

import aio_pika
import aiohttp
import orjson
import redis.asyncio as redis
import uvloop
from prometheus_client import CollectorRegistry

from bench.scenarios import Run, throughput
from bench.systems import AMQP_URL, REDIS_URL, System
from service.amqp.publisher import Publisher
from service.results.calls import OpenCall
from service.results.listener import Listener, serve
from service.results.metrics import ResultMetrics
from service.results.pipeline import Matcher, Results
from service.results.redis_store import RedisResults
from service.store.batch import Batch

OUT = Path(__file__).resolve().parent / "results"
TOKEN = "bench-" + "x" * 40
OFF = (("AUTOCALL_RESULT_POLL_INTERVAL", "0"),)


async def listener_rate(count: int, concurrency: int = 64) -> dict[str, Any]:
    """Records/s through the listener: matched by phone and time, published with confirms."""
    prefix = f"bench.{uuid.uuid4().hex[:8]}"
    client = redis.Redis.from_url(REDIS_URL)
    connection = await aio_pika.connect(AMQP_URL)
    try:
        channel = await connection.channel(publisher_confirms=True)
        exchange = await channel.declare_exchange(
            f"{prefix}.out", aio_pika.ExchangeType.TOPIC, auto_delete=True
        )
        queue = await channel.declare_queue(exclusive=True)
        await queue.bind(exchange, "#")
        store = RedisResults(client, f"{prefix}:", 3600, Batch(client))
        metrics = ResultMetrics(CollectorRegistry(), ["bench"])
        results = Results(store, Matcher(store, None), Publisher(channel, exchange), metrics, {})
        now = time.time()
        for n in range(count):
            await store.record(_call(n, now))
        cdrs = [orjson.dumps(_cdr(n, now)) for n in range(count)]
        async with serve(Listener(TOKEN, results, metrics), 0, "127.0.0.1") as port:
            seconds = await _post_all(f"http://127.0.0.1:{port}/webhooks/omicall/{TOKEN}", cdrs)
        declared = await channel.declare_queue(queue.name, passive=True)
        in_queue = declared.declaration_result.message_count
        return {
            "records": count,
            "seconds": round(seconds, 3),
            "records_per_s": round(count / seconds),
            "published": in_queue,
            "concurrency": concurrency,
        }
    finally:
        keys = [key async for key in client.scan_iter(match=f"{prefix}:*")]
        if keys:
            await client.delete(*keys)
        await client.aclose()
        await connection.close()


async def _post_all(url: str, bodies: list[bytes], concurrency: int = 64) -> float:
    pending = iter(bodies)
    statuses: dict[int, int] = {}

    async def worker(session: aiohttp.ClientSession) -> None:
        for body in pending:
            async with session.post(url, data=body) as answer:
                statuses[answer.status] = statuses.get(answer.status, 0) + 1

    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector) as session:
        started = time.perf_counter()
        await asyncio.gather(*(worker(session) for _ in range(concurrency)))
        seconds = time.perf_counter() - started
    if set(statuses) != {200}:
        raise RuntimeError(f"answers: {statuses}")
    return seconds


def _call(n: int, now: float) -> OpenCall:
    return OpenCall(
        autocall_id=f"ac-{n}",
        event={"id": f"e-{n}", "type": "order.created", "source": "bench"},
        template="bench",
        idempotency_key=f"k-{n}",
        phone=f"09{n:08d}",
        accepted_at=now,
    )


def _cdr(n: int, now: float) -> dict[str, Any]:
    return {
        "state": "cdr",
        "transaction_id": f"tx-{n}",
        "destination_number": f"09{n:08d}",
        "time_start_call": int(now) + 1,
        "answer_sec": 7,
        "bill_sec": 9,
        "ivr": "1",
        "send_num_retry": 0,
        "is_auto_call": True,
    }


async def record_cost(count: int, concurrency: int = 64) -> dict[str, Any]:
    """CPU per accepted call of what results add to the event path: recording the call (the
    Redis store, its per-turn pipeline shared by `concurrency` events at a time)."""
    prefix = f"bench.{uuid.uuid4().hex[:8]}"
    client = redis.Redis.from_url(REDIS_URL)
    try:
        store = RedisResults(client, f"{prefix}:", 3600, Batch(client))
        now = time.time()
        calls = [_call(n, now) for n in range(count)]
        cpu, wall = time.process_time(), time.perf_counter()
        for first in range(0, count, concurrency):
            await asyncio.gather(*(store.record(c) for c in calls[first : first + concurrency]))
        cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
        return {
            "calls": count,
            "cpu_us_per_call": round(cpu / count * 1e6, 1),
            "wall_us_per_call": round(wall / count * 1e6, 1),
            "concurrency": concurrency,
        }
    finally:
        keys = [key async for key in client.scan_iter(match=f"{prefix}:*")]
        if keys:
            await client.delete(*keys)
        await client.aclose()


async def cost(count: int, rounds: int, logs: Path) -> dict[str, Any]:
    """The event path with results on and off, alternating; medians of the rounds."""
    runs: dict[str, list[dict[str, Any]]] = {"on": [], "off": []}
    for round_ in range(rounds):
        order = ("on", "off") if round_ % 2 == 0 else ("off", "on")
        for state in order:
            spec = System("service", store=REDIS_URL, env_extra=() if state == "on" else OFF)
            result = await throughput(f"results-{state}", Run(spec, 0.0, logs), count)
            figures = result.as_json()
            runs[state].append(figures)
            print(f"  results {state}: {_brief(figures)}", flush=True)
    on, off = _medians(runs["on"]), _medians(runs["off"])
    return {
        "on": on,
        "off": off,
        "throughput_cost_pct": round(100 * (1 - on["rate"] / off["rate"]), 1),
        "cpu_cost_pct": round(100 * (on["cpu_us"] / off["cpu_us"] - 1), 1),
        "rounds": rounds,
        "events": count,
    }


def _brief(figures: dict[str, Any]) -> str:
    return f"{figures['rate']:.0f} events/s, {figures['cpu_us']:.0f} µs CPU/event"


def _medians(found: list[dict[str, Any]]) -> dict[str, float]:
    return {key: statistics.median(float(f[key]) for f in found) for key in ("rate", "cpu_us")}


async def main(args: argparse.Namespace) -> None:
    report: dict[str, Any] = {}
    if "listener" in args.parts:
        report["listener"] = await listener_rate(args.records)
        print(f"listener: {report['listener']}", flush=True)
    if "record" in args.parts:
        report["record"] = await record_cost(args.records)
        print(f"record: {report['record']}", flush=True)
    if "cost" in args.parts:
        report["cost"] = await cost(args.n, args.rounds, OUT / "logs")
        print(f"cost: {report['cost']}", flush=True)
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "results.json").write_bytes(orjson.dumps(report, option=orjson.OPT_INDENT_2))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(prog="python -m bench.results", description=__doc__)
    parser.add_argument("--records", type=int, default=5_000, help="CDRs for the listener")
    parser.add_argument("--n", type=int, default=4_000, help="events per cost run")
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds of the cost")
    parser.add_argument("--parts", default="listener,record,cost", help="listener, record, cost")
    uvloop.run(main(parser.parse_args()))
