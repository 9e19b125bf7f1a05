"""The reference: the leanest consumer that does the service's job, directly on aio-pika and
aiohttp. Consume, POST the call, publish the outcome with a confirm, ack. No templates,
validation, metrics or store.

    python -m bench.reference --queue Q --input-exchange IN --outcome-exchange OUT \
        --provider http://127.0.0.1:PORT [--prefetch 64]

It prints `ready` on standard output once it consumes, and stops on SIGTERM or SIGINT.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys
from typing import Any

import aio_pika
import aiohttp
import orjson
import uvloop
from aio_pika.abc import AbstractChannel, AbstractExchange, AbstractIncomingMessage, AbstractQueue

PATH = "/api/auto_call/execute_by_phone"
STARTING = 30.0  # seconds the sandbox may take to answer its first request
RECORDING = {"target_type": "Recording", "target": "5ed0c6dffb7b390007e5211"}
TEXT = {"target_type": "Text_variable"}


async def declare(
    channel: AbstractChannel, queue: str, input_exchange: str, outcome_exchange: str
) -> AbstractQueue:
    """The same shape of topology as the service's: a quorum queue bound to a topic exchange."""
    topic = aio_pika.ExchangeType.TOPIC
    events = await channel.declare_exchange(input_exchange, topic, durable=True)
    await channel.declare_exchange(outcome_exchange, topic, durable=True)
    declared = await channel.declare_queue(
        queue, durable=True, arguments={"x-queue-type": "quorum"}
    )
    await declared.bind(events, routing_key="order.created")
    return declared


def call_body(data: dict[str, Any]) -> dict[str, Any]:
    """The provider request the benchmark's template renders, built by hand."""
    code = data["code"]
    amount = f"{round(float(data['total_price'])):,}".replace(",", ".")
    return {
        "name": f"Xác nhận đơn {code}",
        "voice": "leminh",
        "speed": 0,
        "cid": "842899959300",
        "template_dialplans": [TEXT, TEXT, TEXT, RECORDING],
        "variables": [
            f"Xin chào {data['customer']['name']}. Đơn hàng",
            " ".join(char for char in code if char.isalnum()),
            f"tổng giá trị {amount} đồng",
        ],
        "phone_number_list": [data["customer"]["phone"]],
        "num_retry": 1,
        "distance_retry": 60,
    }


class Handler:
    """One delivery: POST, publish the outcome (confirmed), ack."""

    def __init__(
        self, http: aiohttp.ClientSession, url: str, token: str, outcomes: AbstractExchange
    ) -> None:
        self._http = http
        self._url = url
        self._headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
        self._outcomes = outcomes

    async def __call__(self, message: AbstractIncomingMessage) -> None:
        try:
            event = orjson.loads(message.body)
            body = orjson.dumps(call_body(event["data"]))
            async with self._http.post(self._url, data=body, headers=self._headers) as response:
                answer = orjson.loads(await response.read())
            status = "accepted" if answer.get("status_code") == 9999 else "failed"
            outcome = orjson.dumps({"status": status, "event": {"id": event["id"]}})
            await self._outcomes.publish(
                aio_pika.Message(
                    outcome,
                    content_type="application/json",
                    delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
                    correlation_id=event["id"],
                    type=f"autocall.{status}",
                ),
                routing_key=f"autocall.{status}",
            )
        except Exception:
            await message.nack(requeue=True)
            raise
        await message.ack()


async def token(http: aiohttp.ClientSession, provider: str, api_key: str) -> str:
    """The bearer token; the sandbox may still be starting (the bench starts both at once)."""
    async with asyncio.timeout(STARTING):
        while True:
            try:
                async with http.get(f"{provider}/api/auth", params={"apiKey": api_key}) as answer:
                    document = orjson.loads(await answer.read())
                break
            except aiohttp.ClientConnectorError:
                await asyncio.sleep(0.05)
    value: str = document["payload"]["access_token"]
    return value


async def run(args: argparse.Namespace) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    connector = aiohttp.TCPConnector(limit=args.prefetch, keepalive_timeout=10)
    connection = await aio_pika.connect(args.amqp_url)
    async with connection, aiohttp.ClientSession(connector=connector) as http:
        consuming = await connection.channel()
        await consuming.set_qos(prefetch_count=args.prefetch)
        queue = await declare(consuming, args.queue, args.input_exchange, args.outcome_exchange)
        publishing = await connection.channel(publisher_confirms=True)
        outcomes = await publishing.get_exchange(args.outcome_exchange, ensure=False)
        bearer = await token(http, args.provider, args.api_key)
        tag = await queue.consume(Handler(http, args.provider + PATH, bearer, outcomes))
        sys.stdout.write("ready\n")
        sys.stdout.flush()
        await stop.wait()
        await queue.cancel(tag)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.reference", description=__doc__)
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
