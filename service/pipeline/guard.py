"""The customer protections a claim checks with the key (the suppression list, `phone_limit`),
and the provider's do-not-call list, which adds to ours."""

from __future__ import annotations

import logging
from datetime import datetime

from ..errors import DO_NOT_CALL_CODE, StoreUnavailable
from ..render import Call
from ..store import Guard, Store, Suppression
from .outcomes import Outcome

log = logging.getLogger("autocall")
PROVIDER_DO_NOT_CALL = "provider_do_not_call"  # the suppression list's reason (CONTRACT.md §12)


def guard_of(call: Call, now: float, keep: float, margin: float) -> Guard | None:
    """The protections of the call's number: the suppression list, and its template's
    `phone_limit` (a slot counts until `window` after `margin`, when the provider may still
    accept the call; slots are kept `keep` seconds, the longest window of any template)."""
    if call.customer is None:
        return None
    limit = call.template.options.phone_limit
    if limit is None:
        return Guard(call.customer, now)
    return Guard(call.customer, now, limit.calls, limit.window, keep, margin)


async def do_not_call(store: Store, call: Call, now: datetime, attempts: int) -> Outcome:
    """On the provider's do-not-call list: skipped, and on ours, so that the number's next
    events are skipped without a request."""
    if call.customer is not None:
        entry = Suppression(call.customer, PROVIDER_DO_NOT_CALL, None, now.timestamp())
        try:
            await store.suppress(entry)
        except StoreUnavailable as exc:
            log.warning("cannot add %s to the suppression list: %s", call.phone, exc.message)
    return Outcome.skipped(call.event.identity, DO_NOT_CALL_CODE, now, call=call, attempts=attempts)
