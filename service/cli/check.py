"""`autocall-bridge check TEMPLATES [--accounts FILE]`: validate a templates file (and the
accounts file, with it), naming each problem's place."""

from __future__ import annotations

import argparse
from pathlib import Path

from ..accounts import check as check_accounts
from ..accounts import load as load_accounts
from ..errors import ConfigError
from ..settings import load_settings
from ..templates import load


def add_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """The `check` command."""
    check = commands.add_parser("check", help="validate a templates file (and the accounts)")
    check.add_argument("templates", type=Path)
    check.add_argument(
        "--accounts", type=Path, help="the accounts file (default: AUTOCALL_ACCOUNTS_FILE)"
    )
    check.set_defaults(command=_check)


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
