"""Redis behind Sentinel: `redis+sentinel://[:password@]host:26379[,host:26379…]/<master>[/<db>]`
(`rediss+sentinel://` for TLS). The client asks the sentinels for the master on every new
connection, so it follows a failover; while no master is known its commands fail, and the store
reports `store_unavailable`."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote

import redis.asyncio as redis
from redis.asyncio.sentinel import Sentinel

SCHEMES = ("redis+sentinel://", "rediss+sentinel://")
DEFAULT_PORT = 26379


@dataclass(frozen=True, slots=True)
class SentinelURL:
    """What a sentinel URL names."""

    sentinels: list[tuple[str, int]]
    master: str
    db: int
    password: str | None
    tls: bool

    @classmethod
    def parse(cls, url: str) -> SentinelURL:
        """The parts of `url`; ValueError naming what is wrong (never the password)."""
        scheme = next((s for s in SCHEMES if url.startswith(s)), None)
        if scheme is None:
            raise ValueError("must start with redis+sentinel:// or rediss+sentinel://")
        rest = url[len(scheme) :]
        where, _, path = rest.partition("/")
        userinfo, at, hosts = where.rpartition("@")
        password = unquote(userinfo.partition(":")[2]) if at else None
        sentinels = [_host(part) for part in hosts.split(",")]
        master, _, db = path.strip("/").partition("/")
        if not master:
            raise ValueError("names no master: …/<master-name>[/<db>]")
        if db and not db.isdigit():
            raise ValueError("the database after the master name must be a number")
        return cls(sentinels, master, int(db or 0), password or None, scheme.startswith("rediss"))


def _host(part: str) -> tuple[str, int]:
    host, _, port = part.strip().rpartition(":") if ":" in part else (part.strip(), "", "")
    if not host:
        raise ValueError("a sentinel has no host (host:26379,host:26379…)")
    if port and not port.isdigit():
        raise ValueError(f"sentinel {host}: the port must be a number")
    return host, int(port or DEFAULT_PORT)


def client(url: str, **options: Any) -> redis.Redis:
    """A client of the current master; the same password for the sentinels and the data nodes."""
    parsed = SentinelURL.parse(url)
    auth: dict[str, Any] = {"password": parsed.password, "ssl": parsed.tls}
    sentinel = Sentinel(parsed.sentinels, sentinel_kwargs=auth | options, **options)  # type: ignore[no-untyped-call]
    master: redis.Redis = sentinel.master_for(
        parsed.master, redis_class=redis.Redis, db=parsed.db, **auth
    )
    return master
