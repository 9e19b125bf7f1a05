"""The live accounts: each one's provider client, its budget, and its failover chain."""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, Protocol

import aiohttp

from ..errors import ConfigError
from ..metrics import Metrics
from ..provider.edge import Accepted
from ..provider.omicall.client import Provider
from ..provider.stringee.account import StringeeAccount
from ..provider.stringee.callout import callback_url
from ..provider.stringee.client import StringeeClient
from ..render import Request
from ..settings import DEFAULT_ACCOUNT, Settings
from ..store import Claim, Reservation
from .loading import Accounts, AccountSpec


class CallClient(Protocol):
    """What the event path needs of a provider's client (OMICall's Provider, Stringee's)."""

    @property
    def call_time(self) -> float: ...

    async def execute(self, request: Request) -> Accepted: ...


class Budget(Protocol):
    """An account's daily TTS budget, as the caller spends it (pipeline/budget.py)."""

    def ask(self, chars: int) -> Reservation | None: ...

    def check(self, reservation: Reservation | None, claim: Claim) -> None: ...

    async def take(self, chars: int) -> Reservation | None: ...

    async def refund(self, reservation: Reservation | None) -> None: ...

    async def refresh(self) -> None: ...


@dataclass(slots=True)
class Live:
    """One account, ready to call."""

    spec: AccountSpec
    client: CallClient
    budget: Budget

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def provider(self) -> str:
        return self.spec.provider

    def request(self, request: Request) -> Request:
        """`request` as this account sends it: its caller line when the template sets none."""
        cid = self.spec.cid
        if cid is None or self.provider != "omicall" or "cid" in request.json:
            return request
        return Request(request.path, {**request.json, "cid": cid})


class Registry:
    """Every account by name, and the order to try them in for an event's account."""

    def __init__(self, accounts: Accounts, live: dict[str, Live]) -> None:
        self.accounts = accounts
        self._live = live
        self._chains = {name: [live[n] for n in accounts.chain(name)] for name in live}

    @classmethod
    def single(cls, client: CallClient, budget: Budget) -> Registry:
        """One account, `default`, with this client and budget."""
        spec = AccountSpec(DEFAULT_ACCOUNT, "omicall", "", 0)
        accounts = Accounts({DEFAULT_ACCOUNT: spec}, {}, "")
        return cls(accounts, {DEFAULT_ACCOUNT: Live(spec, client, budget)})

    @property
    def call_time(self) -> float:
        """How long one `execute` may take on the slowest account."""
        return max(account.client.call_time for account in self._live.values())

    def chain_time(self, name: str) -> float:
        """How long an event of account `name` may take to call: every account of its chain
        in turn (the slowest account's time when there is no such account)."""
        return sum(live.client.call_time for live in self.chain(name)) or self.call_time

    @property
    def many(self) -> bool:
        """Whether there is more than one account: holds are then by account."""
        return len(self._live) > 1

    def __repr__(self) -> str:
        return f"Registry({', '.join(self._live)})"

    def __len__(self) -> int:
        return len(self._live)

    def __iter__(self) -> Iterator[Live]:
        return iter(self._live.values())

    def get(self, name: str) -> Live | None:
        return self._live.get(name)

    def chain(self, name: str) -> list[Live]:
        """The account `name`, then those it fails over to; empty when there is no such one."""
        return self._chains.get(name, [])

    def names(self) -> list[str]:
        return list(self._live)

    def clients(self) -> dict[str, Any]:
        """Each account's client (its call history or log), when there are several accounts, or
        one that is not OMICall's."""
        if not self.many and all(live.provider == "omicall" for live in self):
            return {}
        return {live.name: live.client for live in self}

    def omicall(self) -> Any:
        """The client the result side's history lookups use: `default`'s, else the first
        OMICall account's; None when no account uses OMICall."""
        ordered = sorted(self._live.values(), key=lambda live: live.name != DEFAULT_ACCOUNT)
        return next((live.client for live in ordered if live.provider == "omicall"), None)


def open_registry(
    accounts: Accounts,
    settings: Settings,
    *,
    session: aiohttp.ClientSession,
    metrics: Metrics,
    budget: Callable[[AccountSpec], Budget],
) -> Registry:
    """A client and a budget (`budget(spec)`) for every account, over one HTTP session."""
    metrics.accounts(list(accounts.specs))
    chains = [accounts.chain(name) for name in accounts.specs]
    metrics.routes({pair for chain in chains for pair in itertools.pairwise(chain)})
    live = {}
    for spec in accounts:
        client = _client(spec, settings, session, metrics.for_account(spec.name))
        live[spec.name] = Live(spec, client, budget(spec))
    return Registry(accounts, live)


def _client(
    spec: AccountSpec, settings: Settings, session: aiohttp.ClientSession, metrics: Metrics
) -> CallClient:
    if spec.provider == "omicall":
        return Provider(
            session,
            spec.base_url,
            metrics,
            api_key=spec.secret("api_key"),
            token=spec.secret("api_token"),
            timeout=settings.api_timeout,
            connect_timeout=settings.api_connect_timeout,
        )
    return _stringee(spec, settings, session, metrics)


def _stringee(
    spec: AccountSpec, settings: Settings, session: aiohttp.ClientSession, metrics: Metrics
) -> StringeeClient:
    """A Stringee account's client: its callbacks come to the listener's public URL."""
    public, token = settings.webhook_public_url, settings.webhook_token
    if public is None or token is None:
        raise ConfigError(
            [f"accounts.{spec.name}: a Stringee account needs AUTOCALL_WEBHOOK_PUBLIC_URL and "
             "AUTOCALL_WEBHOOK_TOKEN (its key presses come back through the listener)"]
        )  # fmt: skip
    account = stringee_account(spec)
    url = callback_url(public, spec.name, token.get_secret_value())
    return StringeeClient(
        session,
        account,
        metrics,
        event_url=url,
        timeout=settings.api_timeout,
        connect_timeout=settings.api_connect_timeout,
    )


def stringee_account(spec: AccountSpec) -> StringeeAccount:
    """The Stringee client's view of an account of the file."""
    return StringeeAccount(
        name=spec.name,
        key_sid=spec.secret("key_sid") or "",
        key_secret=spec.secrets["key_secret"],
        signing_secret=spec.secrets.get("signing_secret"),
        base_url=spec.base_url,
        from_number=spec.from_number or "",
        voices=spec.voices,
        recordings=spec.recordings,
        menus=spec.menus,
    )
