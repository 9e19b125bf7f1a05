"""Batched acknowledgements: a multiple ack only ever covers deliveries that are settled."""

from __future__ import annotations

import asyncio
from typing import Any

import aio_pika
import pytest

from service.amqp.acks import MAX_SPREAD, Acks
from tests.conftest import AMQP_URL, RUN
from tests.fakes import Channel


async def settled(acks: Acks) -> None:
    await acks.drain()


async def test_a_contiguous_run_is_one_multiple_ack() -> None:
    channel, acks = Channel(), Acks()
    deliveries = [channel.deliver(tag) for tag in range(1, 6)]
    for delivery in reversed(deliveries):
        acks.ack(delivery)  # type: ignore[arg-type]
    assert channel.frames == []  # not before the turn ends
    await settled(acks)
    assert channel.frames == [(5, True)]
    assert channel.unsettled == set()


async def test_a_delivery_in_flight_is_never_covered() -> None:
    channel, acks = Channel(), Acks()
    d = {tag: channel.deliver(tag) for tag in range(1, 7)}
    for tag in (1, 2, 4, 5):  # 3 and 6 still in flight
        acks.ack(d[tag])  # type: ignore[arg-type]
    await settled(acks)
    assert channel.frames == [(2, True), (4, False), (5, False)]
    assert channel.unsettled == {3, 6}
    acks.ack(d[3])  # type: ignore[arg-type]
    await settled(acks)
    # 4 and 5 were acked alone: the next run passes over them, and 3 goes alone as its top
    assert channel.frames[-1] == (3, True)
    acks.ack(d[6])  # type: ignore[arg-type]
    await settled(acks)
    assert channel.frames[-1] == (6, True) and channel.unsettled == set()


async def test_a_nacked_delivery_lets_the_run_pass() -> None:
    channel, acks = Channel(), Acks()
    d = {tag: channel.deliver(tag) for tag in range(1, 5)}
    acks.nack(d[2])  # type: ignore[arg-type]
    for tag in (1, 3, 4):
        acks.ack(d[tag])  # type: ignore[arg-type]
    await settled(acks)
    assert channel.frames == [(2, False), (4, True)] and channel.unsettled == set()


async def test_frames_keep_their_order_when_the_client_makes_them_wait() -> None:
    channel, acks = Channel(slow=True), Acks()
    d = {tag: channel.deliver(tag) for tag in range(1, 9)}
    for tag in (2, 3):
        acks.ack(d[tag])  # type: ignore[arg-type]
    acks.flush()  # 2 and 3 alone: 1 is in flight
    acks.nack(d[1])  # type: ignore[arg-type]
    for tag in (4, 5, 6, 7, 8):
        acks.ack(d[tag])  # type: ignore[arg-type]
    await settled(acks)  # the run 1..8 may be acked as one, but only after the rest
    assert channel.frames[-1] == (8, True)
    assert channel.unsettled == set()


async def test_channels_have_their_own_tags() -> None:
    first, second, acks = Channel(), Channel(), Acks()
    a, b = first.deliver(1), second.deliver(1)
    later = second.deliver(2)
    acks.ack(a)  # type: ignore[arg-type]
    acks.ack(later)  # type: ignore[arg-type]
    await settled(acks)
    assert first.frames == [(1, True)]
    assert second.frames == [(2, False)] and second.unsettled == {1}
    acks.ack(b)  # type: ignore[arg-type]
    await settled(acks)
    assert second.frames[-1] == (1, True) and second.unsettled == set()


async def test_a_closed_channel_is_forgotten() -> None:
    channel, acks = Channel(), Acks()
    acks.ack(channel.deliver(1))  # type: ignore[arg-type]
    channel.is_closed = True
    await settled(acks)
    assert channel.frames == [] and repr(acks) == "Acks(channels=0)"


async def test_a_tag_never_settled_turns_batching_off_for_its_channel() -> None:
    channel, acks = Channel(), Acks()
    channel.deliver(1)  # never finished, never given back
    for tag in range(2, MAX_SPREAD + 3):
        acks.ack(channel.deliver(tag))  # type: ignore[arg-type]
    await settled(acks)
    assert all(not multiple for _, multiple in channel.frames)
    acks.ack(channel.deliver(MAX_SPREAD + 3))  # type: ignore[arg-type]
    await asyncio.sleep(0)
    await settled(acks)
    assert channel.frames[-1] == (MAX_SPREAD + 3, False)
    assert channel.unsettled == {1}


def test_the_fake_channel_refuses_an_ack_of_a_settled_tag() -> None:
    channel = Channel()
    channel.deliver(1)

    async def twice() -> Any:
        await channel.basic_ack(1)
        await channel.basic_ack(1, multiple=True)

    with pytest.raises(AssertionError, match="unknown delivery tag 1"):
        asyncio.run(twice())


@pytest.mark.integration
async def test_the_hook_acks_real_deliveries_on_the_pinned_aio_pika() -> None:
    """Acks writes to the aiormq channel under aio-pika's messages: a multiple ack must settle
    every delivery it covers on the real broker (what is left unacked comes back on close)."""
    async with await aio_pika.connect(AMQP_URL) as connection:
        looking = await connection.channel()
        queue = await looking.declare_queue(f"test.{RUN}.acks", auto_delete=False)
        try:
            for n in range(3):
                await looking.default_exchange.publish(aio_pika.Message(b"%d" % n), queue.name)
            consuming = await connection.channel()
            acks, taken = Acks(), []
            for _ in range(3):
                message = await (await consuming.get_queue(queue.name)).get(timeout=10)
                assert message is not None
                taken.append(message)
            for message in reversed(taken):
                acks.ack(message)
            await acks.drain()
            await consuming.close()  # anything not acked goes back to the queue now
            declared = await looking.declare_queue(queue.name, passive=True)
            assert declared.declaration_result.message_count == 0
        finally:
            await queue.delete(if_unused=False, if_empty=False)
