"""`autocall-bridge check TEMPLATES`: validate a templates file, naming each problem's place."""

from __future__ import annotations

import argparse
from pathlib import Path

from ..templates import load


def add_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """The `check` command."""
    check = commands.add_parser("check", help="validate a templates file")
    check.add_argument("templates", type=Path)
    check.set_defaults(command=_check)


def _check(args: argparse.Namespace) -> int:
    templates = load(args.templates)
    print(f"{args.templates}: {len(templates)} templates, all valid")
    return 0
