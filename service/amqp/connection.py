"""The broker connection over the nodes of a cluster, for the service (`connect`) and for a
command (`connect_once`): the first node that answers. The service's, when lost, tries the next
ones in turn, with backoff; aio-pika's robust connection restores the channels, queues and
consumer on whichever node answers. A command's is plain: it tries each node once."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import Any

import aio_pika
from aio_pika.abc import AbstractConnection, AbstractRobustConnection
from aio_pika.exceptions import CONNECTION_EXCEPTIONS
from aio_pika.robust_connection import RobustConnection
from yarl import URL

from ..errors import ConfigError
from .corked import CorkedTCP

log = logging.getLogger("autocall")
CONNECT_TIMEOUT = 10.0  # one node's TCP and AMQP handshake: a node that hangs is skipped
RECONNECT = (1.0, 30.0)  # first and longest wait between rounds over all the nodes
# aio-pika's one connection attempt, overridden to go round the nodes: a private method,
# name-mangled (the version is pinned, and tests/amqp/test_connection.py fails if it stops
# being what every attempt goes through). Not a speed-up: the cluster's failover
# (docs/speedups.md).
_ATTEMPT = "_RobustConnection__connect_transport"


def where(url: str | URL) -> str:
    """host:port of a URL, for logs: never its password."""
    parsed = URL(str(url))
    return f"{parsed.host}:{parsed.explicit_port or parsed.port or 5672}"


class ClusterConnection(RobustConnection):
    """A robust connection that knows every node: each attempt tries them in turn from the one
    after the node last lost, and rounds that all fail wait longer each time (up to 30 s)."""

    def __init__(self, urls: Sequence[str], **kwargs: Any) -> None:
        self.urls = [URL(url) for url in urls]
        self._node = 0
        self._failed_rounds = 0
        self._interval = RECONNECT[0]
        super().__init__(self.urls[0], **{"reconnect_interval": RECONNECT[0], **kwargs})
        self.kwargs["transport_factory"] = CorkedTCP()  # passed on to aiormq's connection

    @property
    def reconnect_interval(self) -> float:
        """Read by aio-pika after every attempt: the backoff."""
        return min(self._interval * 2.0 ** max(0, self._failed_rounds - 1), RECONNECT[1])

    @reconnect_interval.setter
    def reconnect_interval(self, value: float) -> None:
        self._interval = float(value)

    @property
    def node(self) -> str:
        """host:port of the node in use (or tried last)."""
        return where(self.url)

    async def _RobustConnection__connect_transport(self) -> None:
        attempt = getattr(RobustConnection, _ATTEMPT)
        failure: BaseException | None = None
        start = self._node
        for offset in range(len(self.urls)):
            node = (start + offset) % len(self.urls)
            self.url = self.urls[node]
            try:
                await attempt(self)
            except CONNECTION_EXCEPTIONS as exc:
                failure = exc
                log.warning("broker node %s does not answer (%s)", self.node, type(exc).__name__)
                continue
            self._node, self._failed_rounds = node, 0
            log.info("connected to broker node %s", self.node)
            return
        self._failed_rounds += 1
        assert failure is not None
        raise failure

    async def _on_connection_close(self, closing: asyncio.Future[Any]) -> None:
        if self.connected.is_set() and not self._close_called:
            self._node = (self._node + 1) % len(self.urls)  # a node lost: the next one first
        await super()._on_connection_close(closing)


async def connect(urls: Sequence[str], name: str) -> AbstractRobustConnection:
    """Connected to the first node that answers, retrying all of them with backoff until one
    does."""
    wait = RECONNECT[0]
    while True:
        connection = ClusterConnection(urls, client_properties={"connection_name": name})
        try:
            await connection.connect(timeout=CONNECT_TIMEOUT)
            return connection
        except (TimeoutError, OSError, aio_pika.exceptions.AMQPError) as exc:
            nodes = ", ".join(where(url) for url in urls)
            log.warning(
                "cannot reach the broker at %s (%s); trying again in %.0f s",
                nodes,
                type(exc).__name__,
                wait,
            )
            await asyncio.sleep(wait)
            wait = min(wait * 2, RECONNECT[1])


@asynccontextmanager
async def connect_once(urls: Sequence[str]) -> AsyncIterator[AbstractConnection]:
    """For a command: a connection to the first node that answers within the timeout, closed
    when the block ends; a ConfigError saying why each failed (never its URL) when none does."""
    failures = []
    for url in urls:
        try:
            connection = await asyncio.wait_for(aio_pika.connect(url), CONNECT_TIMEOUT)
        except (OSError, TimeoutError, aio_pika.exceptions.AMQPError) as exc:
            failures.append(_reason(exc))
            continue
        async with connection:
            yield connection
        return
    raise ConfigError([f"AUTOCALL_AMQP_URL: cannot reach the broker ({'; '.join(failures)})"])


def _reason(exc: BaseException) -> str:
    """Why a connection failed, without the URL (it carries the password)."""
    if isinstance(exc, TimeoutError):
        return f"no answer in {CONNECT_TIMEOUT:g} s"
    if isinstance(exc, aio_pika.exceptions.ProbableAuthenticationError):
        return "credentials refused"
    return type(exc).__name__ + (f": {exc.strerror}" if isinstance(exc, OSError) else "")
