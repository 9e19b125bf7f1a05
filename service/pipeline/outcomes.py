"""Outcome events: what became of one consumed event (CONTRACT.md §7); data only."""

from __future__ import annotations

import functools
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson

from ..errors import AutocallError
from ..events import STATUSES, Status
from ..render import Call
from ..templates.filters import LOCAL_TZ, mask_digits

__all__ = ["STATUSES", "Outcome", "Status"]  # the statuses are defined with the events


@dataclass(slots=True)
class Outcome:
    """The outcome event of one consumed event (CONTRACT.md §7)."""

    status: Status
    event: dict[str, Any]
    template: str | None
    idempotency_key: str | None
    autocall_id: str | None
    attempts: int
    phone: str | None
    error: dict[str, Any] | None
    reason: str | None
    occurred_at: str
    # the account that took the call (or refused it last), its provider, and the accounts left
    # on the way there: [{"account", "code"}] (CONTRACT.md §13); None when no account was tried
    account: str | None = None
    provider: str | None = None
    failover: list[dict[str, str]] | None = None

    def via(self, account: str, provider: str, failover: list[dict[str, str]]) -> Outcome:
        """This outcome, naming the account that took (or refused) the call and the way there."""
        self.account, self.provider, self.failover = account, provider, failover
        return self

    @classmethod
    def accepted(cls, call: Call, autocall_id: str, attempts: int, now: datetime) -> Outcome:
        """The provider took the call."""
        return cls._of(
            "accepted", call.event.identity, now, call, autocall_id=autocall_id, attempts=attempts
        )

    @classmethod
    def failed(
        cls,
        event: dict[str, Any],
        error: AutocallError,
        now: datetime,
        *,
        call: Call | None = None,
        template: str | None = None,
        attempts: int = 0,
    ) -> Outcome:
        """The event ends failed with `error` (masked, bounded); it is dead-lettered too."""
        detail = {
            "code": error.code,
            "message": mask_digits(error.message)[:500],
            "retryable": error.retryable,
        }
        return cls._of("failed", event, now, call, template, attempts=attempts, error=detail)

    @classmethod
    def skipped(
        cls,
        event: dict[str, Any],
        reason: str,
        now: datetime,
        *,
        call: Call | None = None,
        attempts: int = 0,
    ) -> Outcome:
        """No call, for `reason` (`attempts`: requests that found it, e.g. do_not_call)."""
        return cls._of("skipped", event, now, call, reason=reason, attempts=attempts)

    @classmethod
    def applied(cls, event: dict[str, Any], phone: str, now: datetime) -> Outcome:
        """A control event applied (a change to the suppression list): `phone` masked."""
        outcome = cls._of("accepted", event, now, None)
        outcome.phone = phone
        return outcome

    @classmethod
    def _of(
        cls,
        status: Status,
        event: dict[str, Any],
        now: datetime,
        call: Call | None,
        template: str | None = None,
        *,
        autocall_id: str | None = None,
        attempts: int = 0,
        error: dict[str, Any] | None = None,
        reason: str | None = None,
    ) -> Outcome:
        """An outcome; the template, key and masked phone come from the call when there is one."""
        return cls(
            status,
            event,
            call.template.name if call else template,
            call.idempotency_key if call else None,
            autocall_id,
            attempts,
            call.phone if call else None,
            error,
            reason,
            _local(now),
        )

    def record(self) -> bytes:
        """What the store keeps of a call's outcome, to replay it to a redelivery of its event:
        the parts the redelivered call cannot know (kept small: there is one per key)."""
        kept: list[Any] = [self.status, self.autocall_id, self.attempts, self.error]
        kept.append(self.occurred_at)
        if self.account is not None:
            kept += [self.account, self.provider, self.failover]
        return orjson.dumps(kept)

    @classmethod
    def replay(cls, record: bytes, call: Call) -> Outcome:
        """The outcome `record` kept for the event of `call`."""
        status, autocall_id, attempts, error, occurred_at, *via = orjson.loads(record)
        outcome = cls._of(
            status,
            call.event.identity,
            datetime.now(LOCAL_TZ),
            call,
            autocall_id=autocall_id,
            attempts=attempts,
            error=error,
        )
        outcome.occurred_at = occurred_at
        if via:  # kept since there are accounts
            outcome.via(*via)
        return outcome

    @property
    def code(self) -> str | None:
        """The error's code, for a failed outcome."""
        return self.error["code"] if self.error else None

    def body(self) -> bytes:
        """The outcome event's JSON body (CONTRACT.md §7, §13)."""
        via = (
            {"account": self.account, "provider": self.provider, "failover": self.failover or []}
            if self.account is not None
            else {}
        )
        return orjson.dumps(
            {
                "status": self.status,
                "event": self.event,
                "template": self.template,
                "idempotency_key": self.idempotency_key,
                "autocall_id": self.autocall_id,
                "attempts": self.attempts,
                "phone": self.phone,
                "error": self.error,
                "reason": self.reason,
                "occurred_at": self.occurred_at,
            }
            | via
        )


def _local(now: datetime) -> str:
    return _local_second(int(now.timestamp()))


@functools.lru_cache(maxsize=4)  # events come in bursts: most share their second
def _local_second(second: int) -> str:
    return datetime.fromtimestamp(second, LOCAL_TZ).isoformat(timespec="seconds")
