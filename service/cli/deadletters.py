"""`autocall-bridge dead-letters list | replay | purge`: arguments in, one pass, lines out."""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from collections.abc import Coroutine
from typing import Any

import orjson

from ..deadletters.letters import Selection
from ..deadletters.passes import Report, run
from ..errors import ConfigError
from ..settings import load_settings, parse_duration

PARTIAL = 1  # exit code: some selected dead letters could not be replayed (they stay)


def add_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """The `dead-letters` command and its three actions."""
    parser = commands.add_parser("dead-letters", help="list, replay or purge dead letters")
    actions = parser.add_subparsers(required=True, metavar="ACTION")
    listing = actions.add_parser("list", help="one line per dead letter; changes nothing")
    listing.add_argument("--json", action="store_true", help="one JSON object a line")
    replay = actions.add_parser("replay", help="publish dead letters to the input exchange again")
    purge = actions.add_parser("purge", help="remove dead letters for good")
    purge.add_argument("--yes", action="store_true", help="really remove them")
    for action, command in ((listing, _list), (replay, _replay), (purge, _purge)):
        action.add_argument("--code", action="append", default=[], help="error code (repeatable)")
        action.add_argument("--template", action="append", default=[], help="(repeatable)")
        action.add_argument("--event-id", action="append", default=[], help="(repeatable)")
        action.add_argument("--older-than", metavar="DURATION", help="e.g. 30m, 2h, 7d")
        action.add_argument("--limit", type=int, help="at most this many (the first ones)")
        if action is not listing:
            action.add_argument("--dry-run", action="store_true", help="show; change nothing")
        action.set_defaults(command=command)


def selection_of(args: argparse.Namespace) -> Selection:
    """The filters given on the command line."""
    if args.limit is not None and args.limit < 1:
        raise ConfigError([f"--limit {args.limit}: must be at least 1"])
    older_than = None
    if args.older_than is not None:
        try:
            older_than = parse_duration(args.older_than)
        except ValueError as exc:
            raise ConfigError([f"--older-than: {exc}"]) from None
    return Selection(
        codes=frozenset(args.code),
        templates=frozenset(args.template),
        event_ids=frozenset(args.event_id),
        older_than=older_than,
        limit=args.limit,
    )


def _pass(work: Coroutine[Any, Any, Report]) -> Report:
    # The AMQP client logs each failed connection attempt; the command says it once, briefly.
    for name in ("aiormq", "aio_pika"):
        logging.getLogger(name).setLevel(logging.CRITICAL)
    return asyncio.run(work)


def _list(args: argparse.Namespace) -> int:
    report = _pass(run(load_settings(), selection_of(args), "list"))
    for letter in report.selected:
        print(orjson.dumps(letter.as_json()).decode() if args.json else letter.line())
    print(f"{len(report.selected)} of {report.total} on {report.queue}", file=sys.stderr)
    return 0


def _replay(args: argparse.Namespace) -> int:
    settings = load_settings()
    report = _pass(run(settings, selection_of(args), "replay", dry_run=args.dry_run))
    if args.dry_run:
        _would(report, "replay")
        return 0
    exchange = settings.input_exchange
    print(f"replayed {report.done} to {exchange}; {report.remaining} remain on {report.queue}")
    if report.done < len(report.selected):
        missed = len(report.selected) - report.done
        print(
            f"{missed} not replayed: {exchange} routed them to no queue (is a template's event "
            "bound to their routing key?); they stay on the dead-letter queue",
            file=sys.stderr,
        )
        return PARTIAL
    return 0


def _purge(args: argparse.Namespace) -> int:
    if not (args.yes or args.dry_run):
        raise ConfigError(["dead-letters purge: add --yes to remove them (--dry-run shows which)"])
    report = _pass(run(load_settings(), selection_of(args), "purge", dry_run=args.dry_run))
    if args.dry_run:
        _would(report, "purge")
    else:
        print(f"purged {report.done}; {report.remaining} remain on {report.queue}")
    return 0


def _would(report: Report, verb: str) -> None:
    for letter in report.selected:
        print(letter.line())
    remain = report.total - len(report.selected)
    print(f"would {verb} {len(report.selected)}; {remain} would remain on {report.queue}")
