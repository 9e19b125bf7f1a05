"""What the commands share: the usage exit code, reading an input, K=V headers, a time."""

from __future__ import annotations

import sys
from datetime import UTC, datetime
from pathlib import Path

from ..errors import ConfigError
from ..templates.filters import LOCAL_TZ

USAGE_ERROR = 2  # bad arguments, settings or credentials, or nothing to talk to


def read_input(source: str) -> bytes:
    """A file's bytes, or standard input's for `-`."""
    if source == "-":
        return sys.stdin.buffer.read()
    try:
        return Path(source).read_bytes()
    except OSError as exc:
        raise ConfigError([f"{source}: cannot read: {exc.strerror}"]) from None


def headers_of(pairs: list[str]) -> dict[str, str]:
    """`--header K=V` options as headers."""
    headers = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise ConfigError([f"--header {pair!r}: expected K=V"])
        headers[key] = value
    return headers


def time_of(text: str | None) -> datetime:
    """`--now`: an ISO-8601 time (local time when it has no offset); now when not given."""
    if text is None:
        return datetime.now(UTC)
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise ConfigError([f"--now {text!r}: not an ISO-8601 time"]) from None
    return moment if moment.tzinfo else moment.replace(tzinfo=LOCAL_TZ)
