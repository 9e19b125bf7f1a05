"""One Stringee account's settings: its keys, caller line, and how the templates' voices,
recordings and menus map onto it. Built by the accounts file (secrets already read from their
files); tests build it directly."""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, SecretStr

from ...settings import Duration

DEFAULT_BASE_URL = "https://api.stringee.com"
ACCOUNT_NAME = r"^[a-z0-9_-]{1,40}$"


class Menu(BaseModel):
    """What an OMICall `ivr_menu` id becomes on Stringee: a `talk`, then an `input`."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    say: str = Field(min_length=1, description="Spoken before the keys are read.")
    max_digits: int = Field(1, ge=1, le=32, description="Keys read at most.")
    timeout: Annotated[Duration, Field(gt=0, le=120)] = Field(
        8.0, description="How long the keys are waited for (e.g. 8s)."
    )


class StringeeAccount(BaseModel):
    """A Stringee account (CONTRACT.md §13): `key_sid`/`key_secret` sign the REST token,
    `signing_secret` verifies its callbacks (None: callbacks are not verified)."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    name: str = Field(pattern=ACCOUNT_NAME)
    key_sid: str = Field(min_length=1)
    key_secret: SecretStr
    signing_secret: SecretStr | None = None
    base_url: str = DEFAULT_BASE_URL
    from_number: str = Field(pattern=r"^\+?[0-9]{6,15}$")
    voices: dict[str, str] = Field(default_factory=dict)  # template voice -> Stringee voice
    recordings: dict[str, str] = Field(default_factory=dict)  # recording id -> file URL
    menus: dict[str, Menu] = Field(default_factory=dict)  # ivr_menu id -> Menu

    def __repr__(self) -> str:
        return f"StringeeAccount({self.name!r}, {self.base_url!r})"

    def unmapped(self, recordings: set[str], menus: set[str]) -> list[str]:
        """The recording and menu ids a template uses that this account cannot play."""
        missing = [f"recording {r}" for r in sorted(recordings - self.recordings.keys())]
        return missing + [f"ivr_menu {m}" for m in sorted(menus - self.menus.keys())]
