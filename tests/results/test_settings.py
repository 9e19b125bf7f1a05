"""The result side's settings: a token long enough (never echoed), CIDRs, durations, switches."""

from __future__ import annotations

from pathlib import Path

import pytest

from service.errors import ConfigError
from service.settings import load_settings

LONG = "w" * 40


def test_defaults() -> None:
    settings = load_settings()
    assert (settings.webhook_port, settings.webhook_token, settings.webhook_on) == (
        8081,
        None,
        False,
    )
    assert settings.result_ttl == 3 * 86400
    assert settings.result_poll_interval == 300
    assert settings.result_timeout == 6 * 3600


def test_a_short_token_stops_start_up_without_showing_it() -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings(webhook_token="short-but-secret-value")
    [line] = caught.value.problems
    assert line.startswith("AUTOCALL_WEBHOOK_TOKEN: must be at least 32 characters")
    assert "short-but-secret" not in line


def test_the_token_from_a_file(tmp_path: Path) -> None:
    path = tmp_path / "token"
    path.write_text(LONG + "\n", encoding="utf-8")
    settings = load_settings(webhook_token_file=path)
    assert settings.webhook_token is not None
    assert settings.webhook_token.get_secret_value() == LONG
    assert LONG in settings.secrets
    path.write_text("tiny", encoding="utf-8")
    with pytest.raises(ConfigError, match="WEBHOOK_TOKEN"):
        load_settings(webhook_token_file=path)


def test_port_0_turns_the_listener_off() -> None:
    assert load_settings(webhook_token=LONG).webhook_on
    assert not load_settings(webhook_token=LONG, webhook_port=0).webhook_on


def test_allow_list_and_durations(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AUTOCALL_WEBHOOK_ALLOW", "10.0.0.0/8, 192.168.1.7")
    monkeypatch.setenv("AUTOCALL_RESULT_POLL_INTERVAL", "0")
    monkeypatch.setenv("AUTOCALL_RESULT_TIMEOUT", "2h")
    settings = load_settings()
    assert settings.webhook_allow == ["10.0.0.0/8", "192.168.1.7"]
    assert (settings.result_poll_interval, settings.result_timeout) == (0, 7200)
    monkeypatch.setenv("AUTOCALL_WEBHOOK_ALLOW", "10.0.0.0/33")
    with pytest.raises(ConfigError, match="AUTOCALL_WEBHOOK_ALLOW: not a CIDR"):
        load_settings()


def test_the_provider_as_it_really_is(monkeypatch: pytest.MonkeyPatch) -> None:
    settings = load_settings()
    assert (settings.history_api, settings.webhook_keep) == ("v3", 50)
    assert settings.result_key_fields == ["press_key", "digits", "ivr"]
    monkeypatch.setenv("AUTOCALL_RESULT_KEY_FIELDS", " dtmf , ivr ")
    monkeypatch.setenv("AUTOCALL_HISTORY_API", "v2")
    monkeypatch.setenv("AUTOCALL_WEBHOOK_KEEP", "0")
    settings = load_settings()
    assert (settings.result_key_fields, settings.history_api) == (["dtmf", "ivr"], "v2")
    assert settings.webhook_keep == 0


@pytest.mark.parametrize(
    ("name", "value", "problem"),
    [
        ("AUTOCALL_RESULT_KEY_FIELDS", " , ", "AUTOCALL_RESULT_KEY_FIELDS: name at least one"),
        ("AUTOCALL_RESULT_KEY_FIELDS", "ivr,a b", "AUTOCALL_RESULT_KEY_FIELDS: not a field name"),
        ("AUTOCALL_HISTORY_API", "v4", "AUTOCALL_HISTORY_API"),
        ("AUTOCALL_WEBHOOK_KEEP", "-1", "AUTOCALL_WEBHOOK_KEEP"),
    ],
)
def test_bad_provider_settings_stop_start_up(
    monkeypatch: pytest.MonkeyPatch, name: str, value: str, problem: str
) -> None:
    monkeypatch.setenv(name, value)
    with pytest.raises(ConfigError) as caught:
        load_settings()
    assert caught.value.problems[0].startswith(problem)
