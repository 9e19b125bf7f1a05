"""The console script: the argument parser, and dispatch to the command's module."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from ..errors import ConfigError
from . import (
    check,
    deadletters,
    doctor,
    publish,
    render,
    results,
    run,
    sandbox,
    schemas,
    suppress,
    webhook,
)
from .args import USAGE_ERROR

# in the order `--help` lists them
COMMANDS = (
    run,
    check,
    render,
    sandbox,
    publish,
    webhook,
    deadletters,
    suppress,
    doctor,
    results,
    schemas,
)


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
    for command in COMMANDS:
        command.add_parser(commands)
    return parser
