"""`autocall-bridge run`: the service, with the settings from AUTOCALL_* variables."""

from __future__ import annotations

import argparse
import asyncio
import gc
from collections.abc import Coroutine
from typing import Any

from ..accounts import check as check_accounts
from ..accounts import load as load_accounts
from ..errors import ConfigError
from ..settings import load_settings
from ..templates import load


def add_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """The `run` command."""
    run = commands.add_parser("run", help="run the service (settings: AUTOCALL_* variables)")
    run.set_defaults(command=_run)


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


def _run_loop(main: Coroutine[Any, Any, None]) -> None:
    try:
        import uvloop
    except ImportError:  # optional: the standard loop works, a little slower
        asyncio.run(main)
    else:
        uvloop.run(main)
