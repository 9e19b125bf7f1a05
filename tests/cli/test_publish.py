"""service/cli/publish.py: what `autocall-bridge publish` puts on the input exchange."""

from __future__ import annotations

import asyncio
import os
import socket
import sys
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import aio_pika
import orjson
import pytest
from aio_pika.abc import AbstractIncomingMessage, AbstractQueue
from pydantic import SecretStr

from service.cli.publish import send_event
from service.errors import ConfigError
from service.settings import Settings
from tests.conftest import AMQP_URL

WAIT = 20.0
CLOUDEVENT = orjson.dumps(
    {
        "specversion": "1.0",
        "id": "evt-1",
        "type": "order.created",
        "source": "/shop",
        "data": {"order": "A1"},
    }
)
PLAIN = orjson.dumps({"order": "A1", "phone": "0912345678"})


@dataclass
class Input:
    """An input exchange of this test's own, and a queue that receives all it is sent."""

    settings: Settings
    queue: AbstractQueue

    async def received(self) -> AbstractIncomingMessage:
        async with self.queue.iterator(timeout=WAIT) as messages:
            async for message in messages:
                await message.ack()
                return message
        raise AssertionError("nothing arrived")


@pytest.fixture
async def input_exchange() -> AsyncIterator[Input]:
    name = f"test.send.{uuid.uuid4().hex}"
    async with await aio_pika.connect(AMQP_URL) as connection:
        channel = await connection.channel()
        exchange = await channel.declare_exchange(name, aio_pika.ExchangeType.TOPIC, durable=True)
        queue = await channel.declare_queue(exclusive=True)
        await queue.bind(exchange, "#")
        try:
            yield Input(Settings(amqp_url=AMQP_URL, input_exchange=name), queue)
        finally:
            await queue.delete(if_unused=False, if_empty=False)
            await exchange.delete()


async def test_a_cloudevent_goes_with_its_own_type_and_id(input_exchange: Input) -> None:
    said = await send_event(input_exchange.settings, CLOUDEVENT, None, {"tenant": "t1"})

    message = await input_exchange.received()
    assert (message.routing_key, message.type, message.message_id) == (
        "order.created",
        "order.created",
        "evt-1",
    )
    assert message.content_type == "application/cloudevents+json"
    assert message.delivery_mode is aio_pika.DeliveryMode.PERSISTENT
    assert message.headers == {"tenant": "t1"}
    assert message.body == CLOUDEVENT
    exchange = input_exchange.settings.input_exchange
    assert said == f"published evt-1 to {exchange} with routing key order.created"


async def test_a_plain_event_goes_with_the_type_given(input_exchange: Input) -> None:
    await send_event(input_exchange.settings, PLAIN, "order.paid", {})

    message = await input_exchange.received()
    assert (message.routing_key, message.type) == ("order.paid", "order.paid")
    assert message.content_type == "application/json"
    assert message.message_id  # a fresh id: the service needs one to name the event
    assert message.body == PLAIN


async def test_a_given_type_overrides_a_cloudevents_own(input_exchange: Input) -> None:
    await send_event(input_exchange.settings, CLOUDEVENT, "order.cancelled", {})

    message = await input_exchange.received()
    assert message.routing_key == "order.cancelled"


async def test_a_plain_event_without_a_type_is_refused() -> None:
    with pytest.raises(ConfigError, match="--type: required"):
        await send_event(Settings(amqp_url=AMQP_URL), PLAIN, None, {})


@pytest.mark.parametrize("body", [b"{not json", b"", "đơn".encode()])
async def test_a_body_that_is_not_json_is_refused(body: bytes) -> None:
    with pytest.raises(ConfigError, match="EVENT: not a JSON document"):
        await send_event(Settings(amqp_url=AMQP_URL), body, "order.created", {})


async def test_publish_reaches_a_cluster_whose_first_node_is_down(input_exchange: Input) -> None:
    with socket.socket() as sock:  # a port nothing listens on: that node refuses at once
        sock.bind(("127.0.0.1", 0))
        down = f"amqp://guest:guest@127.0.0.1:{sock.getsockname()[1]}/"
    settings = input_exchange.settings.model_copy(
        update={"amqp_url": SecretStr(f"{down},{AMQP_URL}")}
    )
    assert len(settings.amqp_urls) == 2

    said = await send_event(settings, CLOUDEVENT, None, {})

    assert said.startswith("published evt-1")
    message = await input_exchange.received()
    assert message.message_id == "evt-1"


async def test_an_unreachable_broker_is_named_without_its_password() -> None:
    settings = Settings(amqp_url="amqp://guest:s3cret-pass@127.0.0.1:1/")

    with pytest.raises(ConfigError, match="AUTOCALL_AMQP_URL: cannot reach the broker") as caught:
        await send_event(settings, CLOUDEVENT, None, {})

    assert "s3cret-pass" not in str(caught.value)


async def test_the_publish_command_sends_a_file(input_exchange: Input, tmp_path: Path) -> None:
    event = tmp_path / "event.json"
    event.write_bytes(PLAIN)
    env = os.environ | {
        "AUTOCALL_AMQP_URL": AMQP_URL,
        "AUTOCALL_INPUT_EXCHANGE": input_exchange.settings.input_exchange,
    }
    command = [sys.executable, "-m", "service", "publish", str(event), "--type", "order.paid"]
    process = await asyncio.create_subprocess_exec(
        *command, "--header", "tenant=t1", env=env, stdout=asyncio.subprocess.PIPE
    )
    out, _ = await asyncio.wait_for(process.communicate(), WAIT)

    assert process.returncode == 0
    assert out.decode().startswith("published ")
    message = await input_exchange.received()
    assert (message.routing_key, message.headers, message.body) == (
        "order.paid",
        {"tenant": "t1"},
        PLAIN,
    )
