"""`autocall-bridge publish`: send one event to the input exchange, confirmed by the broker."""

from __future__ import annotations

import argparse
import asyncio
import uuid
from datetime import UTC, datetime
from typing import Any

import aio_pika
import orjson

from ..amqp.connection import connect_once
from ..errors import ConfigError
from ..settings import Settings, load_settings
from .args import headers_of, read_input


def add_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """The `publish` command."""
    publish = commands.add_parser("publish", help="publish an event to the input exchange")
    publish.add_argument("event", help="a JSON file, or - for standard input")
    publish.add_argument("--type", help="event type: routing key and AMQP type property")
    publish.add_argument("--header", action="append", default=[], metavar="K=V")
    publish.set_defaults(command=_publish)


def _publish(args: argparse.Namespace) -> int:
    settings = load_settings()
    body = read_input(args.event)
    result = asyncio.run(send_event(settings, body, args.type, headers_of(args.header)))
    print(result)
    return 0


async def send_event(
    settings: Settings, body: bytes, event_type: str | None, headers: dict[str, Any]
) -> str:
    """Send `body` with routing key and type `event_type` (a CloudEvent's own by default)."""
    cloudevent = _cloudevent(body)
    routing_key = event_type or (cloudevent or {}).get("type")
    if not isinstance(routing_key, str) or not routing_key:
        raise ConfigError(["--type: required for an event that is not a CloudEvent"])
    message_id = str((cloudevent or {}).get("id") or uuid.uuid4())
    message = aio_pika.Message(
        body,
        headers=headers,
        content_type="application/cloudevents+json" if cloudevent else "application/json",
        delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
        message_id=message_id,
        type=routing_key,
        timestamp=datetime.now(UTC),
    )
    async with connect_once(settings.amqp_urls) as connection:
        channel = await connection.channel(publisher_confirms=True)
        exchange = await channel.declare_exchange(
            settings.input_exchange, aio_pika.ExchangeType.TOPIC, durable=True
        )
        await exchange.publish(message, routing_key=routing_key)
    return f"published {message_id} to {settings.input_exchange} with routing key {routing_key}"


def _cloudevent(body: bytes) -> dict[str, Any] | None:
    try:
        document = orjson.loads(body)
    except orjson.JSONDecodeError:
        raise ConfigError(["EVENT: not a JSON document"]) from None
    return document if isinstance(document, dict) and "specversion" in document else None
