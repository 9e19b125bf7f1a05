"""What the event path tells the result side: a call was accepted, or may have been made."""

from __future__ import annotations

import logging
from collections.abc import Awaitable
from datetime import datetime
from typing import Any

from .. import tracing
from ..errors import InvalidPhone, StoreUnavailable
from ..render import Call
from ..templates.filters import normalise_phone
from .calls import OpenCall
from .store import ResultStore

log = logging.getLogger("autocall.results")


class Recorder:
    """Records accepted calls (and `outcome_unknown` ones) for matching their records later.
    One store step per call; a store that does not answer costs the call its result, never
    its outcome."""

    def __init__(self, store: ResultStore) -> None:
        self._store = store

    def __repr__(self) -> str:
        return f"Recorder({self._store!r})"

    def accepted(
        self,
        call: Call,
        autocall_id: str,
        at: datetime,
        uuids: tuple[str, ...] = (),
        account: str | None = None,
    ) -> Awaitable[None] | None:
        """The provider accepted `call` as `autocall_id` (and `uuids`, when its answer named
        them) on `account`: its record, queued now (see `ResultStore.record`); None when
        nothing to record."""
        opened = open_call(call, autocall_id, at, uuids, account)
        if opened is None or not autocall_id:
            return None
        return self._save(self._store.record(opened), call)

    def unknown(
        self, call: Call, at: datetime, account: str | None = None
    ) -> Awaitable[None] | None:
        """`call` may have been made (on `account`): the poller looks for it by phone and time."""
        opened = open_call(call, "", at, account=account)
        if opened is None:
            return None
        return self._save(self._store.record_unknown(opened), call)

    async def _save(self, step: Awaitable[None], call: Call) -> None:
        try:
            await step
        except StoreUnavailable as exc:
            log.warning(
                "cannot record the call for its result: %s",
                exc.message,
                extra={"event_id": call.event.id},
            )


def open_call(
    call: Call,
    autocall_id: str,
    at: datetime,
    uuids: tuple[str, ...] = (),
    account: str | None = None,
) -> OpenCall | None:
    """The call as the result store keeps it; None for a call to an extension (no records)."""
    body = call.request.json
    phones = body.get("phone_number_list")
    if not isinstance(phones, list) or not phones:
        return None
    return OpenCall(
        autocall_id=autocall_id,
        event=call.event.identity,
        template=call.template.name,
        idempotency_key=call.idempotency_key,
        phone=_national(str(phones[0])),
        accepted_at=at.timestamp(),
        num_retry=_int(body.get("num_retry")),
        distance_retry=_int(body.get("distance_retry")),
        autocall_uuids=uuids,
        traceparent=tracing.traceparent(),
        account=account,
    )


def _national(phone: str) -> str:
    """The number as records are matched: national (the request may use e164 or digits). The
    request's number is valid already: only its form changes (no second parse, ~30 µs)."""
    if phone.startswith("0"):
        return phone
    if phone.startswith(("+84", "84")):
        return "0" + phone.removeprefix("+")[2:]
    try:
        return normalise_phone(phone)
    except InvalidPhone:
        return phone


def _int(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else 0
