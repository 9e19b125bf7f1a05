"""The JWT Stringee's REST API takes in `X-STRINGEE-AUTH`: made locally (HS256 with the key
secret), cached, and made anew before it expires. Nothing here leaves the process but the token."""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable

import jwt

HEADER = {"typ": "JWT", "alg": "HS256", "cty": "stringee-api;v=1"}
LIFETIME = 3600  # Stringee allows at most an hour
MARGIN = 300  # a new token this long before the old one expires


class Tokens:
    """The current REST token of one key."""

    def __init__(
        self,
        key_sid: str,
        key_secret: str,
        *,
        lifetime: int = LIFETIME,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if not 2 * MARGIN <= lifetime <= LIFETIME:
            raise ValueError(f"a token lives {2 * MARGIN} to {LIFETIME} s")
        self._sid = key_sid
        self._secret = key_secret
        self._lifetime = lifetime
        self._clock = clock
        self._token = ""
        self._renew_at = 0.0

    def __repr__(self) -> str:
        return f"Tokens(key_sid={self._sid!r})"

    def current(self) -> str:
        """A token valid for at least MARGIN seconds more."""
        now = self._clock()
        if now >= self._renew_at:
            self._token = self.make(now)
            self._renew_at = now + self._lifetime - MARGIN
        return self._token

    def renew(self) -> str:
        """A new token now (Stringee refused the last one)."""
        self._renew_at = 0.0
        return self.current()

    def make(self, now: float) -> str:
        """A token made at `now`: `jti` unique, `iss` the key SID, `rest_api` true."""
        claims = {
            "jti": f"{self._sid}-{int(now)}-{secrets.token_hex(4)}",
            "iss": self._sid,
            "exp": int(now) + self._lifetime,
            "rest_api": True,
        }
        return jwt.encode(claims, self._secret, algorithm="HS256", headers=HEADER)
