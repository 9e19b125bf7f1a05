"""Customer protections through the running service (CONTRACT.md §11): a number's rolling limit,
shared by replicas through Redis, and the suppression list, both before the idempotency key."""

from __future__ import annotations

import time
from typing import Any

import orjson
import pytest
import yaml

from service.errors import ConfigError
from service.sandbox import Sandbox
from service.store import RedisStore, Suppression
from tests.conftest import REDIS_URL, Broker, StartService, templates_of
from tests.contract.test_schemas import is_valid

pytestmark = pytest.mark.integration

TEMPLATES = """
version: 1
defaults:
  phone_limit: "1/24h"
templates:
  - name: shipped
    event: order.shipped
    phone: "{{ data.phone }}"
    idempotency_key: "ship:{{ data.code }}"
    script:
      - say: "Đơn {{ data.code | spell }} đang giao"
  - name: unlimited
    event: order.paid
    phone_limit: null
    phone: "{{ data.phone }}"
    idempotency_key: "paid:{{ data.code }}"
    script:
      - say: "Đã thanh toán"
"""

TEMPLATE_WITH = """
version: 1
templates:
  - name: t
    event: order.shipped
    phone_limit: "{value}"
    phone: "{{{{ data.phone }}}}"
    script:
      - say: "Xin chào"
"""


def order(code: str, phone: str = "0912345678") -> bytes:
    return orjson.dumps({"code": code, "phone": phone})


async def test_two_replicas_racing_for_a_numbers_last_slot_make_one_call(
    make_settings: Any, broker: Broker, start_service: StartService, sandbox: Sandbox
) -> None:
    config = make_settings(store_url=REDIS_URL)
    outcomes = await broker.outcomes(config)
    for _ in range(2):
        await start_service(config, templates_of(TEMPLATES))
    for i in range(8):  # same number, each its own key; +84 and 0 forms are one number
        phone = "+84912345678" if i % 2 else "0912 345 678"
        await broker.publish(config, order(f"S{i}", phone), "order.shipped", message_id=f"s{i}")

    bodies = await outcomes.wait(8)

    assert (
        sorted((o["status"], o["reason"]) for o in bodies)
        == [("accepted", None)] + [("skipped", "phone_limit")] * 7
    )
    assert len(sandbox.state.calls) == 1
    skipped = next(o for o in bodies if o["status"] == "skipped")
    assert (skipped["template"], skipped["phone"]) == ("shipped", "091****678")


async def test_a_number_over_its_limit_is_skipped_and_its_key_stays_free(
    make_settings: Any, broker: Broker, start_service: StartService, sandbox: Sandbox
) -> None:
    config = make_settings(store_url=REDIS_URL)
    outcomes = await broker.outcomes(config)
    await start_service(config, templates_of(TEMPLATES))
    await broker.publish(config, order("A"), "order.shipped", message_id="a")
    await outcomes.wait(1)
    await broker.publish(config, order("B"), "order.shipped", message_id="b")
    await broker.publish(config, order("P"), "order.paid", message_id="p")  # sets no limit
    await broker.publish(config, order("C", "0987654321"), "order.shipped", message_id="c")

    bodies = {o["event"]["id"]: o for o in await outcomes.wait(4)}

    assert bodies["a"]["status"] == "accepted"
    assert (bodies["b"]["status"], bodies["b"]["reason"]) == ("skipped", "phone_limit")
    assert bodies["p"]["status"] == "accepted"
    assert bodies["c"]["status"] == "accepted"
    assert len(sandbox.state.calls) == 3
    client = RedisStore.from_url(REDIS_URL, f"autocall:{config.queue}:", 60).client
    try:
        assert await client.get(f"autocall:{config.queue}:key:ship:B") is None  # not taken
    finally:
        await client.aclose()


async def test_a_suppressed_number_is_never_called(
    make_settings: Any, broker: Broker, start_service: StartService, sandbox: Sandbox
) -> None:
    config = make_settings(store_url=REDIS_URL)
    outcomes = await broker.outcomes(config)
    service = await start_service(config, templates_of(TEMPLATES))
    async with RedisStore.from_url(REDIS_URL, f"autocall:{config.queue}:", 60) as store:
        await store.suppress(Suppression("+84912345678", "asked", None, time.time()))
    await broker.publish(config, order("P"), "order.paid", message_id="p")
    await broker.publish(config, order("Q", "0987654321"), "order.paid", message_id="q")

    bodies = {o["event"]["id"]: o for o in await outcomes.wait(2)}

    assert (bodies["p"]["status"], bodies["p"]["reason"]) == ("skipped", "suppressed")
    assert bodies["q"]["status"] == "accepted"
    assert [call.body["phone_number_list"] for call in sandbox.state.calls] == [["0987654321"]]
    assert service is not None


# The template key


@pytest.mark.parametrize(
    ("value", "expected"),
    [("2/24h", (2, 86400.0)), ("1 / 90m", (1, 5400.0)), ("10/7d", (10, 604800.0))],
)
def test_phone_limit_reads_n_per_duration(value: str, expected: tuple[int, float]) -> None:
    [template] = templates_of(TEMPLATE_WITH.format(value=value))
    limit = template.options.phone_limit
    assert limit is not None
    assert (limit.calls, limit.window) == expected


@pytest.mark.parametrize("value", ["often", "0/24h", "2/", "/24h", "2/soon", "2 per day"])
def test_check_names_a_bad_phone_limit(value: str) -> None:
    with pytest.raises(ConfigError) as raised:
        templates_of(TEMPLATE_WITH.format(value=value))
    [problem] = raised.value.problems
    assert problem.startswith("t: phone_limit: ")
    assert not is_valid("templates.schema.json", yaml.safe_load(TEMPLATE_WITH.format(value=value)))


def test_a_template_may_unset_the_defaults_limit() -> None:
    templates = templates_of(TEMPLATES)
    assert [t.options.phone_limit is None for t in templates] == [False, True]
    assert templates.longest_phone_window() == 86400.0
    assert is_valid("templates.schema.json", yaml.safe_load(TEMPLATES))
