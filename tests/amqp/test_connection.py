"""The broker connection over several nodes (CONTRACT.md §10), against the real broker: a node
that does not answer is skipped, a lost connection moves to the next node and restores the
consumer there, and the settings take a list."""

from __future__ import annotations

import asyncio
import socket

import aio_pika
import pytest
from yarl import URL

from service.amqp.connection import (
    ClusterConnection,
    connect,
    where,
)
from service.amqp.corked import CorkedTCP, CorkedWriter
from service.errors import ConfigError
from service.settings import load_settings
from tests.conftest import AMQP_URL, RUN


def _closed_port() -> str:
    """A URL on a local port nothing listens on: connecting is refused at once."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"amqp://guest:guest@127.0.0.1:{port}/"


async def test_connects_to_the_first_node_that_answers() -> None:
    dead = _closed_port()
    connection = await connect([dead, AMQP_URL], f"test {RUN}")
    try:
        assert isinstance(connection, ClusterConnection)
        assert connection.url == URL(AMQP_URL)
        assert connection.node == where(AMQP_URL)
    finally:
        await connection.close()


async def test_a_lost_connection_moves_to_the_next_node_and_restores_the_consumer() -> None:
    # two spellings of the one broker: the node in use tells which one it reached
    other = AMQP_URL.replace("127.0.0.1", "localhost")
    assert other != AMQP_URL
    connection = await connect([AMQP_URL, other], f"test {RUN}")
    assert isinstance(connection, ClusterConnection)
    reconnected = asyncio.Event()
    connection.reconnect_callbacks.add(lambda *_: reconnected.set())
    try:
        channel = await connection.channel()
        queue = await channel.declare_queue(f"test.{RUN}.broker", auto_delete=True)
        received: asyncio.Queue[bytes] = asyncio.Queue()

        async def on_message(message: aio_pika.abc.AbstractIncomingMessage) -> None:
            await message.ack()
            await received.put(message.body)

        await queue.consume(on_message)
        transport = connection.transport
        assert transport is not None
        await transport.connection.close(ConnectionError("node lost"))
        await asyncio.wait_for(reconnected.wait(), 20)

        assert connection.url == URL(other)
        await channel.default_exchange.publish(aio_pika.Message(b"after"), queue.name)
        assert await asyncio.wait_for(received.get(), 10) == b"after"
    finally:
        await connection.close()


async def test_frames_written_in_one_turn_go_out_in_one_write() -> None:
    """What the writer saves: one send() for every frame queued in a turn of the loop."""
    received: asyncio.Queue[bytes] = asyncio.Queue()

    async def sink(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while data := await reader.read(1024):
            received.put_nowait(data)
        writer.close()

    server = await asyncio.start_server(sink, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    async with server:
        _, writer = await CorkedTCP().create(URL(f"amqp://127.0.0.1:{port}/"))
        assert isinstance(writer, CorkedWriter)
        sent: list[bytes] = []
        write = writer.transport.write

        def spy(data: bytes | bytearray | memoryview) -> None:
            sent.append(bytes(data))
            write(data)

        writer.transport.write = spy  # type: ignore[method-assign]

        for frame in (b"ack ", b"publish ", b"ack"):
            writer.write(frame)
        assert sent == []  # held until the loop's next turn
        await asyncio.sleep(0)
        assert sent == [b"ack publish ack"]

        writer.write(b"close-ok")
        await writer.drain()  # a drain does not wait for the next turn
        assert sent[-1] == b"close-ok"
        writer.write(b"last")
        writer.close()  # nor does a close
        await writer.wait_closed()
        assert sent[-1] == b"last"
        got = b""
        while got != b"ack publish ackclose-oklast":
            got += await asyncio.wait_for(received.get(), 5)


async def test_the_service_connection_writes_through_the_corked_writer() -> None:
    connection = await connect([AMQP_URL], f"test {RUN}")
    try:
        assert isinstance(connection.kwargs["transport_factory"], CorkedTCP)
        underlay = connection.transport
        assert underlay is not None
        assert isinstance(getattr(underlay.connection, "_transport_factory", None), CorkedTCP)
        channel = await connection.channel()
        queue = await channel.declare_queue(exclusive=True)
        await channel.default_exchange.publish(aio_pika.Message(b"x"), routing_key=queue.name)
        message = await queue.get(timeout=5)
        assert message.body == b"x"
    finally:
        await connection.close()


def test_the_settings_take_a_list_of_nodes() -> None:
    urls = "amqp://u:p@rmq-0:5672/, amqp://u:p@rmq-1:5672/,amqp://u:p@rmq-2:5672/"
    settings = load_settings(amqp_url=urls, api_key="k")
    nodes = ["amqp://u:p@rmq-0:5672/", "amqp://u:p@rmq-1:5672/", "amqp://u:p@rmq-2:5672/"]
    assert settings.amqp_urls == nodes
    assert [where(url) for url in settings.amqp_urls] == ["rmq-0:5672", "rmq-1:5672", "rmq-2:5672"]


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        ("amqp://u:p@a/,http://u:secret@b/", "node 2 of 2: must start with amqp:// or amqps://"),
        ("amqp://u:p@a/,,amqp://c/", "node 2 of 3: must start with amqp:// or amqps://"),
        ("amqp://u:p@a/,amqp:///", "node 2 of 2: has no host"),
    ],
)
def test_a_bad_node_is_named_by_its_place_never_by_its_password(value: str, problem: str) -> None:
    with pytest.raises(ConfigError) as raised:
        load_settings(amqp_url=value, api_key="k")
    assert raised.value.problems == [f"AUTOCALL_AMQP_URL: {problem}"]
    assert "secret" not in str(raised.value)
