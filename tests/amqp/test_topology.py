"""The topology on the real broker: every queue a quorum queue, delays dead-lettering back at least
once, and a queue left by an earlier version (classic) stopping start-up with what to do."""

from __future__ import annotations

from collections.abc import Callable

import aio_pika
import pytest

from service.amqp.topology import Names, declare
from service.errors import ConfigError
from service.settings import Settings
from service.templates import Templates
from tests.conftest import Broker


async def test_every_queue_is_a_quorum_queue_with_delays_back_at_least_once(
    broker: Broker, make_settings: Callable[..., Settings], example_templates: Templates
) -> None:
    settings = make_settings()
    broker.owns(settings, example_templates)
    channel = await broker.connection.channel()
    await declare(channel, settings, example_templates)
    names = Names.of(settings, example_templates)
    delays = [*names.retries, *names.windows.values()]
    assert delays  # the example templates have call windows; the settings retry delays

    for name in [names.queue, names.dead, *delays]:
        # a classic queue of that name would refuse this redeclaration (PRECONDITION_FAILED)
        probe = await broker.connection.channel()
        args: dict[str, object] = {"x-queue-type": "classic"}
        with pytest.raises(aio_pika.exceptions.ChannelPreconditionFailed):
            await probe.declare_queue(name, durable=True, arguments=args)
    await declare(channel, settings, example_templates)  # idempotent: the same arguments again


async def test_a_delay_message_expires_back_into_the_main_queue(
    broker: Broker, make_settings: Callable[..., Settings], example_templates: Templates
) -> None:
    settings = make_settings()
    broker.owns(settings, example_templates)
    channel = await broker.connection.channel()
    topology = await declare(channel, settings, example_templates)
    await channel.default_exchange.publish(
        aio_pika.Message(b"x", expiration=0.05), routing_key=topology.names.retries[0]
    )
    async with topology.queue.iterator(timeout=10) as messages:
        async for message in messages:
            assert message.body == b"x"
            await message.ack()
            break


async def test_a_classic_queue_from_an_earlier_version_stops_start_up_with_what_to_do(
    broker: Broker, make_settings: Callable[..., Settings], example_templates: Templates
) -> None:
    settings = make_settings()
    broker.owns(settings, example_templates)
    names = Names.of(settings, example_templates)
    channel = await broker.connection.channel()
    await channel.declare_queue(names.dead, durable=True)  # as versions before the cluster did

    with pytest.raises(ConfigError) as raised:
        await declare(await broker.connection.channel(), settings, example_templates)

    [problem] = raised.value.problems
    assert f"queue {names.dead!r}" in problem
    assert "Migrating to quorum queues" in problem
