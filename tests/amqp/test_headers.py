"""Reading an AMQP delivery, without a broker: headers as counts, the first routing key."""

from __future__ import annotations

from typing import Any, cast

import pytest
from aio_pika.abc import AbstractIncomingMessage

from service.amqp.headers import (
    attempts_of,
    check_deliveries,
    int_header,
    message_of,
    retries_of,
    routing_key_of,
)
from service.errors import DeliveryLimit
from tests.fakes import Delivery


def delivery(**headers: Any) -> AbstractIncomingMessage:
    return cast(AbstractIncomingMessage, Delivery(headers=headers))


@pytest.mark.parametrize(
    ("value", "count"), [(3, 3), (None, 0), (True, 0), ("3", 0), (2.5, 0), (0, 0)]
)
def test_int_header_reads_only_integers(value: Any, count: int) -> None:
    assert int_header({"n": value}, "n") == count
    assert int_header(None, "n") == 0


def test_counters_kept_in_headers() -> None:
    message = delivery(**{"x-autocall-attempt": 2, "x-autocall-retries": True})

    assert attempts_of(message) == 2
    assert retries_of(message) == 0  # a bool is not a count


@pytest.mark.parametrize(
    ("header", "key"),
    [(None, "order.created"), ("order.paid", "order.paid"), (b"order.b\xff", "order.b\ufffd")],
)
def test_the_first_routing_key_survives_delays(header: Any, key: str) -> None:
    headers = {} if header is None else {"x-autocall-routing-key": header}
    message = delivery(**headers)

    assert routing_key_of(message) == key
    assert message_of(message).routing_key == key


def test_the_delivery_limit() -> None:
    check_deliveries(delivery(**{"x-delivery-count": 2}), limit=3)

    with pytest.raises(DeliveryLimit, match="delivered 4 times"):
        check_deliveries(delivery(**{"x-delivery-count": 3}), limit=3)
