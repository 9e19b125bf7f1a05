"""`autocall-bridge sandbox`: a local stand-in for the provider's API, until a signal."""

from __future__ import annotations

import argparse


def add_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """The `sandbox` command."""
    sandbox = commands.add_parser("sandbox", help="a local stand-in for the provider's API")
    sandbox.add_argument("--port", type=int, default=8089)
    sandbox.add_argument("--host", default="127.0.0.1")
    sandbox.add_argument("--api-key", action="append", help="accepted API key (repeatable)")
    sandbox.add_argument("--balance", type=int, help="account balance in VND")
    sandbox.add_argument("--latency", type=float, help="seconds before each call's answer")
    sandbox.add_argument("--trial", action="store_true", help="a trial plan: every call refused")
    sandbox.add_argument("--webhook-url", help="post each call's live events and CDRs there")
    sandbox.add_argument("--call-seconds", type=float, help="real seconds a call attempt takes")
    sandbox.add_argument("--provider", choices=("omicall", "stringee"), default="omicall")
    sandbox.add_argument("--key-sid", help="stringee: the API key SID the JWT must name")
    sandbox.add_argument("--key-secret", help="stringee: the key secret that signs the JWT")
    sandbox.add_argument(
        "--signing-secret", help="stringee: the secret its callbacks are signed with"
    )
    sandbox.add_argument("--event-url", help="stringee: the project's event URL (call events)")
    sandbox.set_defaults(command=_sandbox)


def _sandbox(args: argparse.Namespace) -> int:
    from ..sandbox import SandboxState, serve_forever

    if args.provider == "stringee":
        return _stringee(args)
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


def _stringee(args: argparse.Namespace) -> int:
    """The sandbox playing Stringee (CONTRACT.md §13)."""
    from ..sandbox.stringee import serve_forever
    from ..sandbox.stringee_calls import StringeeState

    state = StringeeState()
    for name in ("key_sid", "key_secret", "signing_secret", "balance"):
        if getattr(args, name) is not None:
            setattr(state, name, getattr(args, name))
    state.hooks.webhook_url = args.event_url or ""
    if args.call_seconds is not None:
        state.call_seconds = max(0.0, args.call_seconds)
    serve_forever(args.host, args.port, state)
    return 0
