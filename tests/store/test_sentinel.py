"""Sentinel store URLs (CONTRACT.md §10): what they name, and what is wrong with a bad one. Its
failover is exercised by the fault suite's cluster rig (tests/faults/test_cluster.py)."""

from __future__ import annotations

import pytest

from service.errors import ConfigError
from service.settings import load_settings
from service.store.sentinel import SentinelURL


def test_a_sentinel_url_names_the_sentinels_the_master_and_the_db() -> None:
    url = "redis+sentinel://:s%40cret@sentinel-0:26379,sentinel-1:26380,sentinel-2/mymaster/3"
    parsed = SentinelURL.parse(url)
    assert parsed.sentinels == [("sentinel-0", 26379), ("sentinel-1", 26380), ("sentinel-2", 26379)]
    assert (parsed.master, parsed.db, parsed.password, parsed.tls) == (
        "mymaster",
        3,
        "s@cret",
        False,
    )


def test_tls_and_the_default_db() -> None:
    parsed = SentinelURL.parse("rediss+sentinel://10.0.0.1:26379/mymaster")
    assert (parsed.master, parsed.db, parsed.password, parsed.tls) == ("mymaster", 0, None, True)


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        ("redis+sentinel://:secret@h:26379/", "names no master: …/<master-name>[/<db>]"),
        ("redis+sentinel://:secret@h/m/x", "the database after the master name must be a number"),
        ("redis+sentinel://:secret@h:2x/m", "sentinel h: the port must be a number"),
        ("redis+sentinel://:secret@h:1,/m", "a sentinel has no host (host:26379,host:26379…)"),
        ("sentinel://:secret@h:1/m", "must be memory://, redis://… (rediss:// for TLS) or redis+sentinel://…"),
    ],
)  # fmt: skip
def test_a_bad_sentinel_url_stops_start_up_naming_the_problem(url: str, problem: str) -> None:
    with pytest.raises(ConfigError) as raised:
        load_settings(store_url=url, api_key="k")
    assert raised.value.problems == [f"AUTOCALL_STORE_URL: {problem}"]
    assert "secret" not in str(raised.value)
