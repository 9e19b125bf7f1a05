"""The `accounts` scenario's files: N provider accounts on the one sandbox, and the bench's
template spreading its events over them with `account:` (CONTRACT.md §13). One account and
fifty run the same template, so that only the number of accounts differs."""

from __future__ import annotations

import tempfile
from pathlib import Path

import yaml

from bench.systems import TEMPLATES

BUDGET = 10**12  # the benchmark measures the pipeline, not the budget


def names(count: int) -> list[str]:
    """`default`, then shop-1 … shop-<count - 1>."""
    return ["default", *(f"shop-{n}" for n in range(1, count))]


def write(count: int, provider: str, queue: str) -> tuple[Path, Path]:
    """The accounts file and the templates file of a run: (accounts, templates)."""
    directory = Path(tempfile.gettempdir()) / f"bench-accounts-{queue}"
    directory.mkdir(exist_ok=True)
    accounts = {
        name: {"provider": "omicall", "base_url": provider, "api_key": "sandbox-key"}
        | {"tts_daily_limit": BUDGET}
        for name in names(count)
    }
    accounts_path = directory / "accounts.yaml"
    accounts_path.write_text(yaml.safe_dump({"accounts": accounts}), encoding="utf-8")
    # the order's last digits pick the account: every account gets its share of the events
    chosen = (
        f"{{% set n = data.code[-4:] | int % {count} %}}"
        "{{ 'default' if n == 0 else 'shop-' ~ n }}"
    )
    text = TEMPLATES.read_text(encoding="utf-8").replace(
        "    voice: leminh\n", f"    voice: leminh\n    account: {chosen!r}\n", 1
    )
    templates_path = directory / "templates.yaml"
    templates_path.write_text(text, encoding="utf-8")
    return accounts_path, templates_path
