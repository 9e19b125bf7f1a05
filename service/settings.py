"""Settings: environment variables prefixed `AUTOCALL_`, read once at start-up and passed down."""

from __future__ import annotations

import ipaddress
import re
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from pydantic import (
    BeforeValidator,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from .errors import ConfigError
from .store.sentinel import SCHEMES as SENTINEL_SCHEMES
from .store.sentinel import SentinelURL

MIN_TOKEN = 32
DEFAULT_ACCOUNT = "default"  # the one account without an accounts file (CONTRACT.md §13)
NO_ACCOUNT = "none"  # the `account` label of an outcome that reached no account
HTTP_URL = re.compile(r"^https?://[^/\s?#]+(/[^\s?#]*)?$")
_UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400}
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?\s*$")


def parse_duration(value: Any) -> float:
    """'250ms', '30s', '5m', '6h', '7d' or a number of seconds -> seconds."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        seconds = float(value)
    elif isinstance(value, str) and (match := _DURATION.match(value)):
        seconds = float(match[1]) * _UNITS[match[2] or "s"]
    else:
        raise ValueError(f"not a duration: {value!r} (use e.g. 30s, 5m, 6h, 7d)")
    return seconds


Duration = Annotated[float, BeforeValidator(parse_duration), Field(ge=0)]


def _split(value: Any) -> Any:
    return [part for part in value.split(",") if part.strip()] if isinstance(value, str) else value


class Settings(BaseSettings):
    """Everything the service reads from its environment (CONTRACT.md §2)."""

    model_config = SettingsConfigDict(env_prefix="AUTOCALL_", extra="ignore", frozen=True)

    amqp_url: SecretStr = SecretStr("amqp://guest:guest@localhost:5672/")
    amqp_url_file: Path | None = None
    templates: Path = Path("templates.yaml")
    api_base_url: str = "https://public-v1-stg.omicall.com"
    api_key: SecretStr | None = None
    api_key_file: Path | None = None
    api_token: SecretStr | None = None
    api_token_file: Path | None = None
    http_port: int = Field(8080, ge=0, le=65535)
    store_url: SecretStr = SecretStr("memory://")
    store_url_file: Path | None = None
    store_min_replicas: int = Field(0, ge=0, le=100)
    store_wait_timeout: Duration = 0.25
    input_exchange: str = Field("autocall.events", min_length=1, max_length=200)
    queue: str = Field("autocall.events", min_length=1, max_length=200)
    outcome_exchange: str = Field("autocall.outcomes", min_length=1, max_length=200)
    tts_daily_limit: int = Field(3000, ge=0)
    accounts_file: Path | None = None  # CONTRACT.md §13; None: one account, `default`
    webhook_public_url: str | None = None  # the listener's public base URL (Stringee's callbacks)

    # Throughput is at most concurrency ÷ the provider's latency: 256 keeps a 200 ms provider
    # at 1,280 calls/s, above what one replica's CPU does (bench/README.md).
    prefetch: int = Field(256, ge=1, le=65535)
    concurrency: int = Field(256, ge=1)
    rate_limit: float = Field(0.0, ge=0)  # provider calls a second, all replicas together; 0: none
    api_timeout: Duration = 15.0
    api_connect_timeout: Duration = 5.0
    retry_delays: Annotated[list[Duration], NoDecode, BeforeValidator(_split)] = [
        5.0,
        30.0,
        120.0,
        600.0,
        1800.0,
    ]
    idempotency_ttl: Duration = 7 * 86400.0
    hold_probe_interval: Duration = 60.0
    shutdown_grace: Duration = 25.0
    delivery_limit: int = Field(10, ge=2, le=1000)
    max_event_bytes: int = Field(1024 * 1024, ge=1024)
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    log_format: Literal["auto", "json", "text"] = "auto"
    watchdog_timeout: Duration = 120.0

    webhook_token: SecretStr | None = None
    webhook_token_file: Path | None = None
    webhook_port: int = Field(8081, ge=0, le=65535)
    webhook_allow: Annotated[list[str], NoDecode, BeforeValidator(_split)] = []
    result_ttl: Duration = 3 * 86400.0
    result_poll_interval: Duration = 300.0
    result_timeout: Duration = 6 * 3600.0
    # CONTRACT.md §12: the call history's version, where the keys pressed are, bodies kept
    history_api: Literal["v2", "v3"] = "v3"
    result_key_fields: Annotated[list[str], NoDecode, BeforeValidator(_split)] = [
        "press_key",
        "digits",
        "ivr",
    ]
    webhook_keep: int = Field(50, ge=0, le=10_000)

    @field_validator("log_level", mode="before")
    @classmethod
    def _upper(cls, value: Any) -> Any:
        return value.upper() if isinstance(value, str) else value

    @field_validator("amqp_url")
    @classmethod
    def _amqp_scheme(cls, value: SecretStr) -> SecretStr:
        urls = value.get_secret_value().split(",")
        for n, url in enumerate(urls, 1):
            node = f"node {n} of {len(urls)}: " if len(urls) > 1 else ""
            if not url.strip().startswith(("amqp://", "amqps://")):
                raise ValueError(f"{node}must start with amqp:// or amqps://")
            if not urlsplit(url.strip()).hostname:
                raise ValueError(f"{node}has no host")
        return value

    @field_validator("store_url")
    @classmethod
    def _store_scheme(cls, value: SecretStr) -> SecretStr:
        url = value.get_secret_value()
        if url.startswith(SENTINEL_SCHEMES):
            SentinelURL.parse(url)
        elif not url.startswith(("memory://", "redis://", "rediss://")):
            raise ValueError(
                "must be memory://, redis://… (rediss:// for TLS) or redis+sentinel://…"
            )
        return value

    @field_validator("webhook_token")
    @classmethod
    def _long_token(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and len(value.get_secret_value()) < MIN_TOKEN:
            raise ValueError(f"must be at least {MIN_TOKEN} characters (the value is not shown)")
        return value

    @field_validator("result_key_fields")
    @classmethod
    def _field_names(cls, value: list[str]) -> list[str]:
        names = [part.strip() for part in value if part.strip()]
        if not names:
            raise ValueError("name at least one field, e.g. press_key,digits,ivr")
        if bad := next((n for n in names if not re.fullmatch(r"[A-Za-z0-9_.-]{1,64}", n)), None):
            raise ValueError(f"not a field name: {bad[:64]!r}")
        if dotted := next((n for n in names if "." in n), None):  # records are read flat
            raise ValueError(
                f"{dotted!r} is not a top-level field name: only a record's own fields are "
                "read, not paths into them"
            )
        return names

    @field_validator("webhook_allow")
    @classmethod
    def _cidrs(cls, value: list[str]) -> list[str]:
        for part in value:
            try:
                ipaddress.ip_network(part.strip(), strict=False)
            except ValueError:
                raise ValueError(f"not a CIDR: {part.strip()!r}") from None
        return [part.strip() for part in value]

    @field_validator("api_base_url", "webhook_public_url")
    @classmethod
    def _http_url(cls, value: str | None) -> str | None:
        if value is not None and not HTTP_URL.match(value):
            raise ValueError("must be an http(s) URL without query string, e.g. https://host")
        return None if value is None else value.rstrip("/")

    @model_validator(mode="after")
    def _read_secret_files(self) -> Settings:
        checks: dict[str, Any] = {
            "amqp_url": self._amqp_scheme,
            "store_url": self._store_scheme,
            "webhook_token": self._long_token,
        }
        for name in ("api_key", "api_token", "amqp_url", "store_url", "webhook_token"):
            path: Path | None = getattr(self, f"{name}_file")
            if path is None or name in self.model_fields_set:  # the variable itself wins
                continue
            try:
                secret = SecretStr(path.read_text(encoding="utf-8").strip())
            except OSError as exc:
                raise ValueError(f"{name}_file: cannot read {path}: {exc.strerror}") from None
            try:
                secret = checks[name](secret) if name in checks else secret
            except ValueError as exc:
                raise ValueError(f"{name}_file: {exc}") from None
            object.__setattr__(self, name, secret)
        return self

    def require_credentials(self) -> None:
        """The provider needs exactly one of the key and the fixed token (an accounts file
        names each account's own)."""
        if self.accounts_file is not None:
            return
        key, token = self.api_key, self.api_token
        if key is None and token is None:
            raise ConfigError(
                ["AUTOCALL_API_KEY: required (or AUTOCALL_API_TOKEN, or their _FILE variants)"]
            )
        if key is not None and token is not None:
            raise ConfigError(["AUTOCALL_API_TOKEN: set either the API key or the token, not both"])
        if not (key or token or SecretStr("")).get_secret_value():
            raise ConfigError(["AUTOCALL_API_KEY: is empty"])

    @property
    def secrets(self) -> list[str]:
        """Values no log line may show."""
        values = [self.api_key, self.api_token, self.webhook_token]
        return [v.get_secret_value() for v in values if v is not None and v.get_secret_value()]

    @property
    def webhook_on(self) -> bool:
        """Whether the webhook listener runs: a token and a port."""
        return self.webhook_token is not None and self.webhook_port != 0

    @property
    def store_prefix(self) -> str:
        """Where the service's state lives in the store: per queue, shared by its replicas."""
        return f"autocall:{self.queue}:"

    @property
    def amqp_urls(self) -> list[str]:
        """The broker's nodes, in the order to try them."""
        return [url.strip() for url in self.amqp_url.get_secret_value().split(",")]


def load_settings(**overrides: Any) -> Settings:
    """Settings from the environment; a ConfigError naming each bad variable otherwise."""
    try:
        return Settings(**overrides)
    except ValidationError as exc:
        raise ConfigError([_describe(error) for error in exc.errors()]) from None


def _describe(error: Any) -> str:
    field = ".".join(str(part) for part in error["loc"]) or "settings"
    message = str(error["msg"]).removeprefix("Value error, ")
    if field == "settings" and ": " in message:  # raised by a model validator: "field: problem"
        field, message = message.split(": ", 1)
    name = field.split(".")[0]
    return f"AUTOCALL_{name.upper()}: {message}"
