"""`autocall-bridge webhook register URL | list | remove`: the provider's webhook API with the
configured credentials (CONTRACT.md §9). The URL carries the service's webhook token, so it is
printed without its last path segment, credentials and query (logs.redact_url)."""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Callable, Coroutine
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from ..errors import ConfigError, ProviderError, ProviderUnavailable, Unauthorized
from ..logs import redact_url as redact
from ..settings import Settings, load_settings
from .args import USAGE_ERROR

if TYPE_CHECKING:
    from ..provider.omicall.client import Provider

HOOK_TYPE = "call"
REFUSED = 1  # the provider answered, and said no
NOT_FOUND = "webhook_not_found"

Command = Callable[["Provider", argparse.Namespace], Coroutine[Any, Any, str]]


def add_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """The `webhook` command and its subcommands, on the CLI's subparsers."""
    webhook = commands.add_parser("webhook", help="the provider's webhook for call results")
    actions = webhook.add_subparsers(required=True, metavar="ACTION")
    register = actions.add_parser("register", help="post call events to URL (https://…)")
    register.add_argument("url", help="e.g. https://calls.example.com/webhooks/omicall/<token>")
    register.set_defaults(command=_command(_register))
    listing = actions.add_parser("list", help="the registered webhooks")
    listing.set_defaults(command=_command(_list))
    remove = actions.add_parser("remove", help="stop the provider posting call events")
    remove.set_defaults(command=_command(_remove))


def _command(action: Command) -> Callable[[argparse.Namespace], int]:
    def run(args: argparse.Namespace) -> int:
        settings = load_settings()
        settings.require_credentials()
        if hasattr(args, "url"):
            check_url(args.url)
        try:
            sys.stdout.write(asyncio.run(_with_provider(settings, action, args)) + "\n")
        except ProviderError as exc:
            sys.stderr.write(f"webhook: the provider refused: {exc.code}\n")
            return REFUSED
        except (Unauthorized, ProviderUnavailable) as exc:
            sys.stderr.write(f"webhook: {exc.message}\n")
            return USAGE_ERROR
        return 0

    return run


async def _with_provider(settings: Settings, action: Command, args: argparse.Namespace) -> str:
    import aiohttp  # here: the other commands start faster without it

    from ..metrics import Metrics
    from ..provider.omicall.client import Provider

    async with aiohttp.ClientSession(trust_env=True) as session:
        return await action(Provider.configured(session, settings, Metrics()), args)


async def _register(provider: Provider, args: argparse.Namespace) -> str:
    hook = {"type": HOOK_TYPE, "url": args.url, "events": None}
    await provider.api("POST", "/api/webhooks/register", json={"webhook": hook})
    return f"registered the call webhook: {redact(args.url)}"


async def _list(provider: Provider, args: argparse.Namespace) -> str:
    payload = await provider.api("GET", "/api/webhooks/list")
    hooks = payload if isinstance(payload, list) else [payload] if payload else []
    lines = [_describe(hook) for hook in hooks if isinstance(hook, dict)]
    return "\n".join(lines) or "no webhook registered"


async def _remove(provider: Provider, args: argparse.Namespace) -> str:
    try:
        await provider.api("POST", f"/api/webhooks/destroy?hook_type={HOOK_TYPE}")
    except ProviderError as exc:
        if exc.code != NOT_FOUND:
            raise
        return "no call webhook was registered"
    return "removed the call webhook"


def _describe(hook: dict[str, Any]) -> str:
    events = hook.get("events")
    shown = "all events" if not events else ", ".join(str(event) for event in events)
    return f"{hook.get('type', '?')}\t{redact(str(hook.get('url', '')))}\t{shown}"


def check_url(url: str) -> None:
    """An absolute http(s) URL with a host, or a ConfigError saying what is wrong."""
    try:
        parts = urlsplit(url)
        scheme, host = parts.scheme, parts.hostname
    except ValueError:
        scheme, host = "", None
    if scheme not in ("https", "http") or not host:
        raise ConfigError([f"webhook register: {redact(url)!r} is not an https:// URL"])
