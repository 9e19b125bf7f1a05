"""The caller over fake provider clients, one per account, and the memory store: what the
failover and per-account tests share."""

from __future__ import annotations

import asyncio
import dataclasses
from datetime import UTC, datetime

import orjson

from service.accounts import Accounts, AccountSpec
from service.accounts.registry import Live, Registry
from service.errors import AutocallError
from service.events import Message, decode
from service.metrics import Metrics
from service.pipeline.budget import Budget
from service.pipeline.caller import Caller
from service.pipeline.failover import NotCalled
from service.pipeline.holds import AccountHolds
from service.pipeline.outcomes import Outcome
from service.provider.edge import Accepted
from service.render import Call, Request, decide
from service.store import MemoryStore
from service.templates import parse

NOW = datetime(2026, 11, 27, 7, 30, tzinfo=UTC)


class Client:
    """A provider's client that answers from a script: an error to raise, or accept."""

    call_time = 1.0

    def __init__(self, name: str, *answers: AutocallError | None, delay: float = 0.0) -> None:
        self.name = name
        self.answers = list(answers)
        self.requests: list[Request] = []
        self.delay = delay  # seconds each answer takes
        self.sent = asyncio.Event()  # a request came

    async def execute(self, request: Request) -> Accepted:
        self.requests.append(request)
        self.sent.set()
        if self.delay:
            await asyncio.sleep(self.delay)
        answer = self.answers.pop(0) if self.answers else None
        if answer is not None:
            raise answer
        return Accepted(f"{self.name}-{len(self.requests)}")


class Clock:
    def __init__(self) -> None:
        self.seconds = 1000.0

    def __call__(self) -> float:
        return self.seconds


@dataclasses.dataclass
class Rig:
    caller: Caller
    clients: dict[str, Client]
    metrics: Metrics
    store: MemoryStore
    monotonic: Clock

    async def call(self, call: Call) -> Outcome | NotCalled:
        return await self.caller.call(call, 0)

    def failovers(self, left: str, to: str, code: str) -> float:
        labels = {"from": left, "to": to, "code": code}
        return self.metrics.registry.get_sample_value("autocall_failovers_total", labels) or 0.0


def rig(
    *clients: Client, failover: dict[str, tuple[str, ...]] | None = None, limit: int = 3000
) -> Rig:
    store, metrics, monotonic = MemoryStore(60), Metrics(), Clock()
    specs = {c.name: AccountSpec(c.name, "omicall", "http://x", limit) for c in clients}
    chain = {clients[0].name: tuple(c.name for c in clients[1:])} if failover is None else failover
    accounts = Accounts(specs, chain, "test")
    live = {
        c.name: Live(specs[c.name], c, Budget(store, limit, metrics, lambda: NOW, account=c.name))
        for c in clients
    }
    holds = AccountHolds(60.0, metrics, lambda: NOW, monotonic)
    registry = Registry(accounts, live)
    caller = Caller(
        store,
        None,
        None,
        lambda: NOW,
        registry=registry,
        holds=holds,
        metrics=metrics,
        monotonic=monotonic,
    )
    return Rig(caller, {c.name: c for c in clients}, metrics, store, monotonic)


def call_to(
    account: str = "shop-a", code: str = "A1", on_exhausted: str = "fail", event_id: str = "e-1"
) -> Call:
    templates = parse(
        "version: 1\ntemplates:\n"
        "  - name: t\n    event: order.created\n"
        f"    on_exhausted: {on_exhausted}\n"
        '    account: "{{ data.shop }}"\n'
        '    phone: "0912345678"\n    idempotency_key: "order:{{ data.code }}"\n'
        '    script:\n      - say: "Xin chào {{ data.code }}"\n',
        "test",
    )
    body = orjson.dumps({"shop": account, "code": code})
    decision = decide(
        templates, decode(Message(body, type="order.created", message_id=event_id)), NOW
    )
    assert isinstance(decision, Call), decision
    return decision
