"""The peer: what a team would otherwise write, on FastStream (RabbitMQ) and httpx. The same
job as the reference: consume, POST the call, publish the outcome (confirmed), ack.

    python -m bench.peer --queue Q --input-exchange IN --outcome-exchange OUT \
        --provider http://127.0.0.1:PORT [--prefetch 64]

It prints `ready` on standard output once it consumes, and stops on SIGTERM or SIGINT.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys

import httpx
import orjson
import uvloop
from faststream.rabbit import (
    Channel,
    ExchangeType,
    QueueType,
    RabbitBroker,
    RabbitExchange,
    RabbitQueue,
)

from bench.reference import PATH, call_body


def build(
    args: argparse.Namespace, http: httpx.AsyncClient, bearer: str
) -> tuple[RabbitBroker, RabbitExchange]:
    """The broker with its one subscriber; FastStream declares the queue and its binding."""
    # No per-message log lines: the service and the reference are measured without them too.
    broker = RabbitBroker(
        args.amqp_url, default_channel=Channel(prefetch_count=args.prefetch), logger=None
    )
    events = RabbitExchange(args.input_exchange, type=ExchangeType.TOPIC, durable=True)
    outcomes = RabbitExchange(args.outcome_exchange, type=ExchangeType.TOPIC, durable=True)
    queue = RabbitQueue(args.queue, QueueType.QUORUM, durable=True, routing_key="order.created")
    url = args.provider + PATH
    headers = {"Authorization": f"Bearer {bearer}"}

    # The events' content type is application/cloudevents+json, which FastStream hands over
    # undecoded: the handler decodes them itself.
    @broker.subscriber(queue, events)
    async def handle(body: bytes) -> None:
        event = orjson.loads(body)
        response = await http.post(url, json=call_body(event["data"]), headers=headers)
        status = "accepted" if response.json().get("status_code") == 9999 else "failed"
        await broker.publish(
            {"status": status, "event": {"id": event["id"]}},
            exchange=outcomes,
            routing_key=f"autocall.{status}",
            persist=True,
            correlation_id=event["id"],
            message_type=f"autocall.{status}",
        )

    return broker, outcomes


async def token(http: httpx.AsyncClient, provider: str, api_key: str) -> str:
    """The bearer token; the sandbox may still be starting (the bench starts both at once)."""
    async with asyncio.timeout(30.0):
        while True:
            try:
                answer = await http.get(f"{provider}/api/auth", params={"apiKey": api_key})
                break
            except httpx.ConnectError:
                await asyncio.sleep(0.05)
    value: str = answer.json()["payload"]["access_token"]
    return value


async def run(args: argparse.Namespace) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    limits = httpx.Limits(max_connections=args.prefetch, max_keepalive_connections=args.prefetch)
    async with httpx.AsyncClient(limits=limits) as http:
        bearer = await token(http, args.provider, args.api_key)
        broker, outcomes = build(args, http, bearer)
        async with broker:
            await broker.start()
            await broker.declare_exchange(outcomes)  # before the first outcome: it is watched
            sys.stdout.write("ready\n")
            sys.stdout.flush()
            await stop.wait()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.peer", description=__doc__)
    parser.add_argument("--amqp-url", default="amqp://guest:guest@127.0.0.1:5672/")
    parser.add_argument("--queue", required=True)
    parser.add_argument("--input-exchange", required=True)
    parser.add_argument("--outcome-exchange", required=True)
    parser.add_argument("--provider", required=True, help="the sandbox's base URL")
    parser.add_argument("--api-key", default="sandbox-key")
    parser.add_argument("--prefetch", type=int, default=64)
    uvloop.run(run(parser.parse_args(argv)))


if __name__ == "__main__":
    main()
