"""service/settings.py: AUTOCALL_* variables, their defaults, one clear line per bad one."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest
from pydantic import SecretStr

from service.errors import ConfigError
from service.settings import Settings, load_settings, parse_duration

Env = Callable[..., None]


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch) -> Env:
    """Sets AUTOCALL_<NAME> variables on an environment cleared of every other AUTOCALL_ one."""
    for name in list(os.environ):
        if name.startswith("AUTOCALL_"):
            monkeypatch.delenv(name)

    def set_env(**variables: str) -> None:
        for name, value in variables.items():
            monkeypatch.setenv(f"AUTOCALL_{name.upper()}", value)

    return set_env


def problems(**variables: str) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        load_settings(**variables)
    return caught.value.problems


def test_defaults(env: Env) -> None:
    env()

    settings = load_settings()

    assert settings.amqp_url.get_secret_value() == "amqp://guest:guest@localhost:5672/"
    assert settings.templates == Path("templates.yaml")
    assert settings.api_base_url == "https://public-v1-stg.omicall.com"
    assert settings.api_key is None and settings.api_token is None
    assert settings.http_port == 8080
    assert settings.store_url.get_secret_value() == "memory://"
    assert settings.input_exchange == "autocall.events"
    assert settings.queue == "autocall.events"
    assert settings.outcome_exchange == "autocall.outcomes"
    assert settings.tts_daily_limit == 3000
    assert settings.retry_delays == [5.0, 30.0, 120.0, 600.0, 1800.0]
    assert settings.log_level == "INFO"
    assert settings.secrets == []


def test_variables_are_read(env: Env) -> None:
    env(
        amqp_url="amqps://u:p@broker:5671/vhost",
        templates="/etc/autocall/templates.yaml",
        api_base_url="https://public-v1.omicall.com/",
        http_port="9090",
        store_url="redis://redis:6379/0",
        input_exchange="shop.events",
        queue="shop.autocall",
        outcome_exchange="shop.outcomes",
        tts_daily_limit="10000",
        log_level="debug",
    )

    settings = load_settings()

    assert settings.amqp_url.get_secret_value() == "amqps://u:p@broker:5671/vhost"
    assert settings.templates == Path("/etc/autocall/templates.yaml")
    assert settings.api_base_url == "https://public-v1.omicall.com"  # trailing slash dropped
    assert settings.http_port == 9090
    assert settings.store_url.get_secret_value() == "redis://redis:6379/0"
    assert (settings.input_exchange, settings.queue, settings.outcome_exchange) == (
        "shop.events",
        "shop.autocall",
        "shop.outcomes",
    )
    assert settings.tts_daily_limit == 10000
    assert settings.log_level == "DEBUG"


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("250ms", 0.25),
        ("30s", 30.0),
        ("5m", 300.0),
        ("6h", 21600.0),
        ("7d", 604800.0),
        ("1.5h", 5400.0),
        ("45", 45.0),
        (" 2 m ", 120.0),
        (12, 12.0),
        (0.5, 0.5),
    ],
)
def test_parse_duration(text: str | float, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "soon", "5 minutes", "-5s", "1h30m", "5x", True, None])
def test_parse_duration_refuses_other_text(text: object) -> None:
    with pytest.raises(ValueError, match="not a duration"):
        parse_duration(text)


def test_durations_from_the_environment(env: Env) -> None:
    env(api_timeout="2s", api_connect_timeout="500ms", idempotency_ttl="1d", shutdown_grace="1m")

    settings = load_settings()

    assert settings.api_timeout == 2.0
    assert settings.api_connect_timeout == 0.5
    assert settings.idempotency_ttl == 86400.0
    assert settings.shutdown_grace == 60.0


@pytest.mark.parametrize(
    ("text", "delays"),
    [("1s,5s", [1.0, 5.0]), ("100ms, 2m ,1h", [0.1, 120.0, 3600.0]), ("1s,,5s,", [1.0, 5.0])],
)
def test_retry_delays(env: Env, text: str, delays: list[float]) -> None:
    env(retry_delays=text)

    settings = load_settings()

    assert settings.retry_delays == delays


def test_no_retry_delays_means_one_attempt(env: Env) -> None:
    env(retry_delays="")

    assert load_settings().retry_delays == []  # no retry tier: the first attempt is the only one


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("http_port", "abc"),
        ("http_port", "70000"),
        ("http_port", "-1"),
        ("amqp_url", "http://broker:5672/"),
        ("store_url", "postgres://db"),
        ("api_base_url", "ftp://host"),
        ("api_base_url", "https://host/api?apiKey=x"),
        ("tts_daily_limit", "-1"),
        ("tts_daily_limit", "lots"),
        ("api_timeout", "soon"),
        ("retry_delays", "1s,later"),
        ("log_level", "loud"),
        ("log_format", "xml"),
        ("queue", ""),
        ("prefetch", "0"),
        ("delivery_limit", "1"),
    ],
)
def test_an_invalid_value_names_its_variable(env: Env, name: str, value: str) -> None:
    env(**{name: value})

    with pytest.raises(ConfigError) as caught:
        load_settings()

    (line,) = caught.value.problems
    assert line.startswith(f"AUTOCALL_{name.upper()}: ")
    assert len(line) > len(f"AUTOCALL_{name.upper()}: ")


def test_every_invalid_value_is_reported(env: Env) -> None:
    env(http_port="abc", amqp_url="http://x", log_level="loud")

    with pytest.raises(ConfigError) as caught:
        load_settings()

    assert sorted(line.split(":")[0] for line in caught.value.problems) == [
        "AUTOCALL_AMQP_URL",
        "AUTOCALL_HTTP_PORT",
        "AUTOCALL_LOG_LEVEL",
    ]


def test_overrides_are_validated_like_variables(env: Env) -> None:
    env()

    assert problems(http_port="abc")[0].startswith("AUTOCALL_HTTP_PORT: ")
    assert load_settings(retry_delays="50ms").retry_delays == [0.05]


@pytest.mark.parametrize("name", ["api_key", "api_token"])
def test_secrets_are_read_from_files(env: Env, tmp_path: Path, name: str) -> None:
    secret = tmp_path / "secret"
    secret.write_text("  s3cret-value\n")
    env(**{f"{name}_file": str(secret)})

    settings = load_settings()

    value = getattr(settings, name)
    assert isinstance(value, SecretStr)
    assert value.get_secret_value() == "s3cret-value"
    assert settings.secrets == ["s3cret-value"]


def test_a_variable_wins_over_its_file(env: Env, tmp_path: Path) -> None:
    secret = tmp_path / "key"
    secret.write_text("from-file")
    env(api_key="from-env", api_key_file=str(secret))

    api_key = load_settings().api_key

    assert api_key is not None and api_key.get_secret_value() == "from-env"


@pytest.mark.parametrize("name", ["api_key", "api_token"])
def test_a_missing_secret_file_is_named(env: Env, tmp_path: Path, name: str) -> None:
    missing = tmp_path / "nope"
    env(**{f"{name}_file": str(missing)})

    with pytest.raises(ConfigError) as caught:
        load_settings()

    (line,) = caught.value.problems
    assert line.startswith(f"AUTOCALL_{name.upper()}_FILE: cannot read {missing}")


def test_require_credentials_accepts_a_key_or_a_token(env: Env) -> None:
    env()

    load_settings(api_key="k-123").require_credentials()
    load_settings(api_token="t-123").require_credentials()


@pytest.mark.parametrize(
    ("variables", "starts"),
    [
        ({}, "AUTOCALL_API_KEY: required"),
        ({"api_key": "k-123", "api_token": "t-123"}, "AUTOCALL_API_TOKEN: set either"),
        ({"api_key": ""}, "AUTOCALL_API_KEY: is empty"),
    ],
)
def test_require_credentials_refuses(env: Env, variables: dict[str, str], starts: str) -> None:
    env(**variables)
    settings = load_settings()

    with pytest.raises(ConfigError) as caught:
        settings.require_credentials()

    (line,) = caught.value.problems
    assert line.startswith(starts)


def test_an_empty_secret_file_is_refused(env: Env, tmp_path: Path) -> None:
    secret = tmp_path / "key"
    secret.write_text("\n")
    env(api_key_file=str(secret))

    with pytest.raises(ConfigError, match="AUTOCALL_API_KEY: is empty"):
        load_settings().require_credentials()


def test_secrets_never_appear_in_repr(env: Env) -> None:
    env(
        api_key="key-0123456789",
        api_token="tok-0123456789",
        amqp_url="amqp://user:brokerpass@broker/",
        store_url="redis://:redispass@redis:6379/0",
    )

    settings = load_settings()
    shown = repr(settings) + str(settings)

    for secret in ("key-0123456789", "tok-0123456789", "brokerpass", "redispass"):
        assert secret not in shown
    assert sorted(settings.secrets) == ["key-0123456789", "tok-0123456789"]


def test_settings_can_be_built_directly(env: Env) -> None:
    env(queue="from-env")

    settings = Settings(queue="q", http_port=0, retry_delays="1s")

    assert (settings.queue, settings.http_port, settings.retry_delays) == ("q", 0, [1.0])
