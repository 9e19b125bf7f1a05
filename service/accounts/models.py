"""The accounts file as pydantic models (CONTRACT.md §13)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator

from ..provider.stringee.account import Menu
from ..settings import HTTP_URL

NAME_PATTERN = r"^[a-z0-9_-]{1,40}$"
Provider = Literal["omicall", "stringee"]
BASE_URLS: dict[str, str] = {
    "omicall": "https://public-v1-stg.omicall.com",
    "stringee": "https://api.stringee.com",
}
# secrets: each may be given as the value, `<name>_file` (a path) or `<name>_env` (a variable)
SECRETS = ("api_key", "api_token", "key_sid", "key_secret", "signing_secret")
Name = Annotated[str, Field(pattern=NAME_PATTERN)]
__all__ = ["Account", "AccountsFile", "Menu"]  # Menu: Stringee's, as the file writes it


class Account(BaseModel):
    """One provider account."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    provider: Provider
    base_url: str | None = None
    cid: str | None = Field(None, min_length=1)
    tts_daily_limit: int | None = Field(None, ge=0)
    api_key: SecretStr | None = None
    api_key_file: str | None = None
    api_key_env: str | None = None
    api_token: SecretStr | None = None
    api_token_file: str | None = None
    api_token_env: str | None = None
    key_sid: SecretStr | None = None
    key_sid_file: str | None = None
    key_sid_env: str | None = None
    key_secret: SecretStr | None = None
    key_secret_file: str | None = None
    key_secret_env: str | None = None
    signing_secret: SecretStr | None = None
    signing_secret_file: str | None = None
    signing_secret_env: str | None = None
    from_number: str | None = Field(None, pattern=r"^\+?[0-9]{6,15}$")
    voices: dict[str, str] = Field(default_factory=dict)
    recordings: dict[str, str] = Field(default_factory=dict)
    menus: dict[str, Menu] = Field(default_factory=dict)

    @field_validator("cid", "from_number", mode="before")
    @classmethod
    def _number_as_text(cls, value: Any) -> Any:
        # YAML reads an unquoted number as an int; it is a string on the wire.
        return str(value) if isinstance(value, int) and not isinstance(value, bool) else value

    @field_validator("base_url")
    @classmethod
    def _http_url(cls, value: str | None) -> str | None:
        if value is not None and not HTTP_URL.match(value):
            raise ValueError("must be an http(s) URL without query string, e.g. https://host")
        return None if value is None else value.rstrip("/")


class AccountsFile(BaseModel):
    """The whole accounts file."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    accounts: dict[Name, Account] = Field(min_length=1)
    failover: dict[Name, list[Name]] = Field(default_factory=dict)
