"""`autocall-bridge render TEMPLATES EVENT`: the dry run, the decision for one event as JSON
(the service's own `decide`, and the shared store's protections when there is one)."""

from __future__ import annotations

import argparse
import asyncio
import sys
from datetime import datetime
from pathlib import Path
from typing import Any

import orjson

from ..errors import AutocallError, ConfigError, StoreUnavailable
from ..events import Message, decode, identity_of
from ..pipeline.guard import guard_of
from ..render import Call, as_json, decide
from ..settings import load_settings
from ..store import Guard, State, open_store
from ..templates import Templates, load
from .args import headers_of, read_input, time_of


def add_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """The `render` command."""
    render = commands.add_parser("render", help="dry run: the decision for one event, as JSON")
    render.add_argument("templates", type=Path)
    render.add_argument("event", help="a file with the message body, or - for standard input")
    render.add_argument("--type", help="the AMQP type property")
    render.add_argument("--routing-key", default="", help="the routing key it arrived with")
    render.add_argument("--header", action="append", default=[], metavar="K=V")
    render.add_argument("--content-type", help="the AMQP content type")
    render.add_argument("--now", help="ISO-8601 time to decide at (default: now)")
    render.set_defaults(command=_render)


def _render(args: argparse.Namespace) -> int:
    templates = load(args.templates)
    message = Message(
        body=read_input(args.event),
        routing_key=args.routing_key,
        content_type=args.content_type,
        type=args.type,
        headers=headers_of(args.header),
    )
    now = time_of(args.now)
    try:
        chosen = decide(templates, decode(message), now)
        decision: dict[str, Any] = as_json(chosen)
        if isinstance(chosen, Call) and (refused := _protections(templates, chosen, now)):
            decision = {"decision": "skip", "reason": refused, "event": decision["event"]}
    except AutocallError as exc:
        error = {"code": exc.code, "message": exc.message}
        decision = {"decision": "fail", "template": None, "error": error}
        decision["event"] = identity_of(message)
    sys.stdout.write(orjson.dumps(decision, option=orjson.OPT_INDENT_2).decode() + "\n")
    return 0


def _protections(templates: Templates, call: Call, now: datetime) -> str | None:
    """`suppressed` or `phone_limit`, when a shared store (AUTOCALL_STORE_URL=redis://…) says
    so; with memory:// the service's own process holds them, so the dry run cannot tell."""
    settings = load_settings()
    url = settings.store_url.get_secret_value()
    guard = guard_of(call, now.timestamp(), templates.longest_phone_window(), 0.0)
    if url.startswith("memory://") or guard is None:
        return None

    async def ask(checked: Guard) -> State | None:
        async with open_store(url, settings.store_prefix, settings.idempotency_ttl) as store:
            return await store.protections(checked)

    try:
        refused = asyncio.run(ask(guard))
    except StoreUnavailable as exc:
        raise ConfigError([f"AUTOCALL_STORE_URL: {exc.message}"]) from None
    return refused.value if refused else None
