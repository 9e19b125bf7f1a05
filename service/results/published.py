"""The results the broker has: a durable queue bound to the result routing keys, read back to
mark each result done. A process killed between the broker's confirm and its own "done" leaves
a pending mark; the copy in this queue marks it done, so the result is not published again when
the mark would have lapsed."""

from __future__ import annotations

import logging
from typing import Any

import orjson
from aio_pika.abc import AbstractChannel, AbstractIncomingMessage, AbstractRobustConnection

from ..errors import StoreUnavailable
from .store import ResultStore

log = logging.getLogger("autocall.results")
BINDING = "autocall.result.#"


class Published:
    """Reads back the results published on the outcome exchange and marks them done."""

    def __init__(self, store: ResultStore) -> None:
        self._store = store
        self._channel: AbstractChannel | None = None

    def __repr__(self) -> str:
        return f"Published({self._store!r})"

    async def start(self, connection: AbstractRobustConnection, queue: str, exchange: str) -> None:
        """Declare `queue` on `exchange`'s results and consume it."""
        self._channel = channel = await connection.channel(publisher_confirms=False)
        await channel.set_qos(prefetch_count=64)
        declared = await channel.declare_queue(
            queue, durable=True, arguments={"x-queue-type": "quorum"}
        )
        await declared.bind(exchange, routing_key=BINDING)
        await declared.consume(self._on_result)

    async def stop(self) -> None:
        if self._channel is not None:
            await self._channel.close()

    async def _on_result(self, message: AbstractIncomingMessage) -> None:
        try:
            await self.mark(orjson.loads(message.body))
        except StoreUnavailable as exc:
            log.warning("cannot mark a published result done: %s", exc.message)
            await message.nack(requeue=True)
            return
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
            pass  # not one of ours: nothing to mark
        await message.ack()

    async def mark(self, body: dict[str, Any]) -> None:
        """Mark the result in `body` done (again: marking is idempotent)."""
        call = await self._store.call(str(body["autocall_id"]))
        if call is None:
            return
        attempt = "unknown" if body["result"] == "unknown" else str(int(body["attempt"]))
        await self._store.done(call, attempt, bool(body["final"]), body["transaction_id"] or "")
