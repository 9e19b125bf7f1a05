"""autocall-bridge run | check | render | sandbox | publish | webhook | doctor | schemas."""

from __future__ import annotations

import argparse
import asyncio
import gc
import sys
from collections.abc import Coroutine, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson

from ..accounts import check as check_accounts
from ..accounts import load as load_accounts
from ..errors import AutocallError, ConfigError, StoreUnavailable
from ..events import Message, decode, identity_of
from ..pipeline.caller import guard_of
from ..render import Call, as_json, decide
from ..settings import load_settings
from ..store import Guard, State, open_store
from ..templates import Templates, load
from ..templates.filters import LOCAL_TZ
from . import deadletters, doctor, suppress
from .webhook import add_commands as add_webhook_commands

USAGE_ERROR = 2


def main(argv: Sequence[str] | None = None) -> None:
    """The console script."""
    args = _parser().parse_args(argv)
    try:
        code = args.command(args)
    except ConfigError as exc:
        for problem in exc.problems:
            print(problem, file=sys.stderr)
        code = USAGE_ERROR
    sys.exit(code)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="autocall-bridge",
        description="E-commerce events from RabbitMQ in, OMICall automated voice calls out.",
    )
    commands = parser.add_subparsers(required=True, metavar="COMMAND")

    run = commands.add_parser("run", help="run the service (settings: AUTOCALL_* variables)")
    run.set_defaults(command=_run)

    check = commands.add_parser("check", help="validate a templates file (and the accounts)")
    check.add_argument("templates", type=Path)
    check.add_argument(
        "--accounts", type=Path, help="the accounts file (default: AUTOCALL_ACCOUNTS_FILE)"
    )
    check.set_defaults(command=_check)

    render = commands.add_parser("render", help="dry run: the decision for one event, as JSON")
    render.add_argument("templates", type=Path)
    render.add_argument("event", help="a file with the message body, or - for standard input")
    render.add_argument("--type", help="the AMQP type property")
    render.add_argument("--routing-key", default="", help="the routing key it arrived with")
    render.add_argument("--header", action="append", default=[], metavar="K=V")
    render.add_argument("--content-type", help="the AMQP content type")
    render.add_argument("--now", help="ISO-8601 time to decide at (default: now)")
    render.set_defaults(command=_render)

    sandbox = commands.add_parser("sandbox", help="a local stand-in for the provider's API")
    sandbox.add_argument("--port", type=int, default=8089)
    sandbox.add_argument("--host", default="127.0.0.1")
    sandbox.add_argument("--api-key", action="append", help="accepted API key (repeatable)")
    sandbox.add_argument("--balance", type=int, help="account balance in VND")
    sandbox.add_argument("--latency", type=float, help="seconds before each call's answer")
    sandbox.add_argument("--trial", action="store_true", help="a trial plan: every call refused")
    sandbox.add_argument("--webhook-url", help="post each call's live events and CDRs there")
    sandbox.add_argument("--call-seconds", type=float, help="real seconds a call attempt takes")
    sandbox.set_defaults(command=_sandbox)

    publish = commands.add_parser("publish", help="publish an event to the input exchange")
    publish.add_argument("event", help="a JSON file, or - for standard input")
    publish.add_argument("--type", help="event type: routing key and AMQP type property")
    publish.add_argument("--header", action="append", default=[], metavar="K=V")
    publish.set_defaults(command=_send_event)

    add_webhook_commands(commands)

    for module in (deadletters, suppress, doctor):
        module.add_parser(commands)

    schemas = commands.add_parser("schemas", help="write the JSON Schemas and AsyncAPI document")
    schemas.add_argument("directory", type=Path)
    schemas.set_defaults(command=_schemas)
    return parser


def _run(args: argparse.Namespace) -> int:
    from .. import logs
    from ..app import run

    settings = load_settings()
    settings.require_credentials()
    templates = load(settings.templates)
    accounts = load_accounts(settings)
    if problems := check_accounts(accounts, templates):
        raise ConfigError(problems)
    logs.configure(settings.log_level, settings.log_format, settings.secrets + accounts.secrets)
    # What is loaded now lives as long as the process: keep it out of every collection. Each
    # event makes many short-lived objects; collect the young generation less often.
    gc.freeze()
    gc.set_threshold(50_000, 20, 20)
    _run_loop(run(settings, templates))
    return 0


def _check(args: argparse.Namespace) -> int:
    templates = load(args.templates)
    settings = load_settings(**({"accounts_file": args.accounts} if args.accounts else {}))
    if settings.accounts_file is not None:
        accounts = load_accounts(settings)
        if problems := check_accounts(accounts, templates):
            raise ConfigError(problems)
        print(f"{settings.accounts_file}: {len(accounts)} accounts, all valid")
    print(f"{args.templates}: {len(templates)} templates, all valid")
    return 0


def _render(args: argparse.Namespace) -> int:
    templates = load(args.templates)
    message = Message(
        body=_read(args.event),
        routing_key=args.routing_key,
        content_type=args.content_type,
        type=args.type,
        headers=_headers(args.header),
    )
    now = _now(args.now)
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


def _sandbox(args: argparse.Namespace) -> int:
    from ..sandbox import SandboxState, serve_forever

    state = SandboxState()
    if args.api_key:
        state.api_keys = set(args.api_key)
    if args.balance is not None:
        state.balance = args.balance
    if args.latency is not None:
        state.latency = args.latency
    state.trial = args.trial
    state.webhook_url = args.webhook_url or ""
    if args.call_seconds is not None:
        state.call_seconds = max(0.0, args.call_seconds)
    serve_forever(args.host, args.port, state)
    return 0


def _send_event(args: argparse.Namespace) -> int:
    from .publish import send_event

    settings = load_settings()
    body = _read(args.event)
    result = asyncio.run(send_event(settings, body, args.type, _headers(args.header)))
    print(result)
    return 0


def _schemas(args: argparse.Namespace) -> int:
    from ..contract.schemas import write

    for path in write(args.directory):
        print(path)
    return 0


def _read(source: str) -> bytes:
    if source == "-":
        return sys.stdin.buffer.read()
    try:
        return Path(source).read_bytes()
    except OSError as exc:
        raise ConfigError([f"{source}: cannot read: {exc.strerror}"]) from None


def _headers(pairs: list[str]) -> dict[str, str]:
    headers = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise ConfigError([f"--header {pair!r}: expected K=V"])
        headers[key] = value
    return headers


def _now(text: str | None) -> datetime:
    if text is None:
        return datetime.now(UTC)
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise ConfigError([f"--now {text!r}: not an ISO-8601 time"]) from None
    return moment if moment.tzinfo else moment.replace(tzinfo=LOCAL_TZ)


def _run_loop(main: Coroutine[Any, Any, None]) -> None:
    try:
        import uvloop
    except ImportError:  # optional: the standard loop works, a little slower
        asyncio.run(main)
    else:
        uvloop.run(main)
