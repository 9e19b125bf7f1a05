"""The suppression list's control events through the running service, and `suppress` as an
operator runs it, with Redis and with memory:// (CONTRACT.md §11)."""

from __future__ import annotations

import asyncio
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import pytest
import redis.asyncio as redis

from service.errors import InvalidEvent, InvalidPhone
from service.events import Event
from service.pipeline.outcomes import Outcome
from service.sandbox import Sandbox
from service.store import Guard, RedisStore, Suppression
from service.suppression import ADD, REMOVE, change_of
from tests.cli.test_deadletters import cli
from tests.conftest import REDIS_URL, Broker, StartService, templates_of
from tests.helpers import metric, wait_for

TEMPLATES = """
version: 1
templates:
  - name: paid
    event: order.paid
    phone: "{{ data.phone }}"
    script:
      - say: "Đã thanh toán"
"""
NOW = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)


def control(kind: str, event_id: str, **data: Any) -> dict[str, Any]:
    return {"specversion": "1.0", "id": event_id, "type": kind, "source": "crm", "data": data}


def event(kind: str, data: Any) -> Event:
    return Event("e-1", kind, "crm", None, data, {})


# What a change is


def test_a_change_reads_phone_reason_and_until() -> None:
    change = change_of(
        event(ADD, {"phone": "0912 345 678", "reason": "asked", "until": "2027-01-01T00:00:00"}),
        NOW,
    )

    assert change.add is True
    assert change.entry == Suppression(
        "+84912345678",
        "asked",
        datetime(2026, 12, 31, 17, 0, tzinfo=UTC).timestamp(),
        NOW.timestamp(),
    )
    assert change_of(event(REMOVE, {"phone": "+84912345678"}), NOW).add is False
    assert change_of(event(ADD, {"phone": "84912345678", "until": None}), NOW).entry.until is None


@pytest.mark.parametrize(
    ("data", "error"),
    [
        ({"phone": "12345"}, InvalidPhone),
        ({}, InvalidPhone),
        ("0912345678", InvalidEvent),
        ({"phone": "0912345678", "until": "soon"}, InvalidEvent),
        ({"phone": "0912345678", "reason": 7}, InvalidEvent),
    ],
)
def test_a_bad_change_is_refused(data: Any, error: type[Exception]) -> None:
    with pytest.raises(error):
        change_of(event(ADD, data), NOW)


# Control events through the service


async def test_control_events_change_the_list_and_are_answered(
    make_settings: Any, broker: Broker, start_service: StartService, sandbox: Sandbox
) -> None:
    config = make_settings(store_url=REDIS_URL)
    outcomes = await broker.outcomes(config)
    service = await start_service(config, templates_of(TEMPLATES))
    order = orjson.dumps({"phone": "0912345678"})
    for body, key in (
        (control(ADD, "c1", phone="+84 912 345 678", reason="asked"), ADD),
        (order, "order.paid"),
        (control(ADD, "c2", phone="not a phone"), ADD),
        (control(REMOVE, "c3", phone="0912345678"), REMOVE),
        (control(ADD, "c4"), ADD),
    ):
        await broker.publish(config, body, key, message_id=key)
        await outcomes.wait(len(outcomes.received) + 1)
    await broker.publish(config, order, "order.paid", message_id="o2")

    bodies = await outcomes.wait(6)

    statuses = [
        (o["event"]["id"], o["status"], o["reason"] or (o["error"] or {}).get("code"))
        for o in bodies
    ]
    assert statuses == [
        ("c1", "accepted", None),
        (statuses[1][0], "skipped", "suppressed"),
        ("c2", "failed", "invalid_phone"),
        ("c3", "accepted", None),
        ("c4", "failed", "invalid_phone"),
        ("o2", "accepted", None),
    ]
    assert bodies[0]["phone"] == "091****678"
    assert len(sandbox.state.calls) == 1
    async with RedisStore.from_url(REDIS_URL, config.store_prefix, 60) as store:
        await store.suppress(Suppression("+84987654321", "x", None, time.time()))
    service.consumer.control._read_at = float("-inf")  # type: ignore[union-attr]
    metric(service, "autocall_suppressed_phones")  # a scrape: reads the size in the background
    await wait_for(lambda: metric(service, "autocall_suppressed_phones") == 1)


# The command


async def test_suppress_with_redis_writes_the_store(
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    make_settings: Any,
    broker: Broker,
    tmp_path: Path,
) -> None:
    config = make_settings(store_url=REDIS_URL)
    broker.owns(config, templates_of(TEMPLATES))
    monkeypatch.setenv("AUTOCALL_STORE_URL", REDIS_URL)
    monkeypatch.setenv("AUTOCALL_QUEUE", config.queue)

    async def run(*argv: str) -> tuple[int, str, str]:
        return await asyncio.to_thread(cli, capsys, "suppress", *argv)

    assert await run("add", "0912345678", "+84987654321", "--reason", "asked") == (
        0,
        "added 2 to the suppression list\n",
        "",
    )
    listed = tmp_path / "list.csv"
    listed.write_text(
        "name,phone,until\nAn,0901234567,2999-01-01T00:00:00+07:00\nBinh,84 903 456 789,\n"
    )
    assert (await run("import", str(listed)))[:2] == (0, "added 2 to the suppression list\n")

    code, out, _ = await run("list")
    assert code == 0
    assert out.splitlines()[0].startswith("090****567  -  2999-01-01T00:00:00+07:00  20")
    assert [line.split("  ")[:2] for line in out.splitlines()] == [
        ["090****567", "-"],
        ["090****789", "-"],
        ["091****678", "asked"],
        ["098****321", "asked"],
    ]
    code, out, _ = await run("list", "--json", "--unmasked")
    assert [orjson.loads(line)["phone"] for line in out.splitlines()] == [
        "+84901234567",
        "+84903456789",
        "+84912345678",
        "+84987654321",
    ]
    assert await run("remove", "0912345678", "0911111111") == (
        0,
        "removed 1 from the suppression list (1 were not on it)\n",
        "",
    )


def test_suppress_refuses_bad_numbers_with_one_line_each(
    capsys: pytest.CaptureFixture[str],
) -> None:
    code, out, err = cli(capsys, "suppress", "add", "0912345678", "12345", "abc")
    assert (code, out) == (2, "")
    assert len(err.splitlines()) == 2  # one line per bad number, numbers masked
    assert "12345" not in err


def test_listing_needs_a_shared_store(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AUTOCALL_STORE_URL", "memory://")
    code, _, err = cli(capsys, "suppress", "list")
    assert code == 2
    assert err.startswith(
        "AUTOCALL_STORE_URL: with memory:// the list lives in the service's process"
    )


async def test_suppress_with_memory_publishes_control_events_the_service_applies(
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    make_settings: Any,
    broker: Broker,
    start_service: StartService,
    sandbox: Sandbox,
) -> None:
    config = make_settings()
    outcomes = await broker.outcomes(config)
    await start_service(config, templates_of(TEMPLATES))
    for variable in ("queue", "input_exchange"):
        monkeypatch.setenv(f"AUTOCALL_{variable.upper()}", str(getattr(config, variable)))
    monkeypatch.setenv("AUTOCALL_AMQP_URL", config.amqp_url.get_secret_value())
    monkeypatch.setenv("AUTOCALL_STORE_URL", "memory://")

    done = await asyncio.to_thread(
        cli, capsys, "suppress", "add", "0912345678", "--until", "2999-01-01T00:00:00"
    )
    assert done == (0, f"published 1 {ADD} events to {config.input_exchange}\n", "")
    [applied] = await outcomes.wait(1)
    await broker.publish(
        config, orjson.dumps({"phone": "+84912345678"}), "order.paid", message_id="o1"
    )

    _, skipped = await outcomes.wait(2)
    assert (applied["status"], applied["event"]["type"]) == ("accepted", ADD)
    assert (skipped["status"], skipped["reason"]) == ("skipped", "suppressed")
    assert sandbox.state.calls == []


def test_render_says_suppressed_and_phone_limit_only_with_a_store_to_ask(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    templates = tmp_path / "templates.yaml"
    templates.write_text(
        TEMPLATES.replace(
            "    event: order.paid\n", '    event: order.paid\n    phone_limit: "1/1h"\n'
        )
    )
    events = {name: tmp_path / f"{name}.json" for name in ("listed", "limited", "free")}
    events["listed"].write_bytes(orjson.dumps({"phone": "0912345678"}))
    events["limited"].write_bytes(orjson.dumps({"phone": "0987654321"}))
    events["free"].write_bytes(orjson.dumps({"phone": "0901234567"}))
    queue = f"test.render.{uuid.uuid4().hex[:8]}"
    prefix = f"autocall:{queue}:"

    async def prepare() -> None:
        async with RedisStore.from_url(REDIS_URL, prefix, 60) as store:
            await store.suppress(Suppression("+84912345678", "asked", None, time.time()))
            guard = Guard("+84987654321", time.time(), 1, 3600, 3600)
            await store.claim("earlier", "e0", guard=guard)

    async def clean() -> None:
        client = redis.Redis.from_url(REDIS_URL)
        keys = [key async for key in client.scan_iter(match=f"{prefix}*")]
        if keys:
            await client.delete(*keys)
        await client.aclose()

    def render(name: str) -> dict[str, Any]:
        code, out, err = cli(
            capsys, "render", str(templates), str(events[name]), "--type", "order.paid"
        )
        assert code == 0, err
        decision: dict[str, Any] = orjson.loads(out)
        return decision

    asyncio.run(prepare())
    try:
        monkeypatch.setenv("AUTOCALL_QUEUE", queue)
        monkeypatch.setenv("AUTOCALL_STORE_URL", "memory://")
        assert [render(name)["decision"] for name in events] == ["call", "call", "call"]
        monkeypatch.setenv("AUTOCALL_STORE_URL", REDIS_URL)
        assert [(d["decision"], d.get("reason")) for d in map(render, events)] == [
            ("skip", "suppressed"),
            ("skip", "phone_limit"),
            ("call", None),
        ]
    finally:
        asyncio.run(clean())


def test_control_events_and_their_outcomes_fit_their_schemas() -> None:
    from tests.contract.test_schemas import is_valid

    added = control(ADD, "c1", phone="0912345678", reason="asked", until=None)
    assert is_valid("control.schema.json", added)
    assert is_valid("control.schema.json", control(REMOVE, "c2", phone="+84912345678"))
    assert not is_valid(
        "control.schema.json", control("autocall.suppression.clear", "c3", phone="1")
    )
    assert not is_valid("control.schema.json", control(ADD, "c4"))
    applied = Outcome.applied({"id": "c1", "type": ADD, "source": "crm"}, "091****678", NOW)
    assert is_valid("outcome.schema.json", orjson.loads(applied.body()))
    skipped = Outcome.skipped({"id": "e1", "type": "order.paid", "source": None}, "suppressed", NOW)
    assert is_valid("outcome.schema.json", orjson.loads(skipped.body()))
