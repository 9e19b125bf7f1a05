"""`autocall-bridge results recent`: the webhook bodies the listener kept (AUTOCALL_WEBHOOK_KEEP,
CONTRACT.md §12), newest first, each with what the service read from it. This is how an operator
finds where a real account puts the keys pressed. The bodies were masked when kept: no phone
number is printed whole."""

from __future__ import annotations

import argparse
import asyncio
import time
from datetime import datetime
from typing import Any

import orjson

from ..errors import AutocallError, ConfigError
from ..results.kept import fresh
from ..results.runtime import result_store
from ..settings import Settings, load_settings
from ..store import open_store
from ..templates.filters import LOCAL_TZ


def add_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """The `results` command and its action."""
    parser = commands.add_parser("results", help="call results: what the provider sent")
    actions = parser.add_subparsers(required=True, metavar="ACTION")
    recent = actions.add_parser(
        "recent", help="the last webhook bodies, with what was read from each (needs Redis)"
    )
    recent.add_argument("--limit", type=int, default=20, help="how many, newest first")
    recent.add_argument("--json", action="store_true", help="one JSON object a line")
    recent.set_defaults(command=_recent)


def _recent(args: argparse.Namespace) -> int:
    settings = load_settings()
    if args.limit < 1:
        raise ConfigError(["--limit: at least 1"])
    if not settings.store_url.get_secret_value().startswith("redis"):
        raise ConfigError(
            ["AUTOCALL_STORE_URL: with memory:// the bodies live in the service's process; "
             "reading them needs the shared store (redis://…)"]
        )  # fmt: skip
    entries = asyncio.run(_read(settings, args.limit))
    if not entries and not args.json:
        keep = settings.webhook_keep
        print(f"no webhook body kept in the last 24 h (AUTOCALL_WEBHOOK_KEEP={keep})")
    for entry in entries:
        print(orjson.dumps(entry).decode() if args.json else describe(entry))
    return 0


async def _read(settings: Settings, limit: int) -> list[dict[str, Any]]:
    url = settings.store_url.get_secret_value()
    try:
        async with open_store(url, settings.store_prefix, settings.idempotency_ttl) as store:
            kept = result_store(store, settings.store_prefix, settings.result_ttl)
            return fresh(await kept.recent(limit), time.time())
    except AutocallError as exc:  # the store did not answer
        raise ConfigError([f"AUTOCALL_STORE_URL: {exc.message}"]) from None


def describe(entry: dict[str, Any]) -> str:
    """One kept body as two lines: what was read from it, then the body itself."""
    when = datetime.fromtimestamp(float(entry.get("received_at", 0)), LOCAL_TZ)
    kind = entry.get("kind", "?")
    read = [when.isoformat(timespec="seconds"), kind]
    if kind == "live":
        read += [f"state={entry.get('state')}", f"transaction={entry.get('transaction') or '-'}"]
    elif kind == "record":
        keys = entry.get("keys")
        where = f" (from {entry.get('keys_field')})" if keys else ""
        call = entry.get("call")
        matched = f"{call['template']} {call['phone']}" if isinstance(call, dict) else "-"
        matched = "unmatched" if entry.get("outcome") == "unmatched" else matched
        read += [
            str(entry.get("outcome", "-")),  # accepted, duplicate, unmatched, unavailable
            f"transaction={entry.get('transaction') or '-'}",
            f"result={entry.get('result')}",
            f"keys={keys or '-'}{where}",
            f"attempt={entry.get('attempt') or '-'}",
            matched,
        ]
    elif kind == "contact":
        read.append(f"action={entry.get('action') or '-'}")
    body = entry.get("body")
    shown = body if isinstance(body, str) else orjson.dumps(body).decode()
    return "  ".join(read) + "\n    " + shown
