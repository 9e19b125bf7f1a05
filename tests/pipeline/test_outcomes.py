"""Outcome events, without a broker: what each status carries, masking, and replaying a record."""

from __future__ import annotations

from datetime import UTC, datetime

import orjson

from service.errors import InvalidPhone, OutcomeUnknown
from service.pipeline.outcomes import STATUSES, Outcome
from tests.helpers import call_of

NOW = datetime(2026, 11, 27, 7, 30, 15, 250_000, tzinfo=UTC)


def test_the_statuses() -> None:
    assert STATUSES == ("accepted", "failed", "skipped")


def test_accepted_carries_the_call() -> None:
    call = call_of()

    outcome = Outcome.accepted(call, "ac-1", 2, NOW)

    assert orjson.loads(outcome.body()) == {
        "status": "accepted",
        "event": {"id": "e-1", "type": "order.created", "source": None},
        "template": "t",
        "idempotency_key": "order:A1",
        "autocall_id": "ac-1",
        "attempts": 2,
        "phone": "091****678",
        "error": None,
        "reason": None,
        "occurred_at": "2026-11-27T14:30:15+07:00",  # local time, to the second
    }


def test_failed_masks_digits_and_bounds_the_message() -> None:
    error = InvalidPhone("not a number: 0912345678 " + "x" * 600)

    outcome = Outcome.failed({"id": "e-2", "type": None, "source": None}, error, NOW)

    assert outcome.status == "failed"
    assert outcome.code == "invalid_phone"
    assert outcome.error is not None
    assert "0912345678" not in outcome.error["message"]
    assert len(outcome.error["message"]) == 500
    assert outcome.error["retryable"] is False
    assert (outcome.template, outcome.phone, outcome.attempts) == (None, None, 0)


def test_skipped_says_why() -> None:
    outcome = Outcome.skipped(call_of().event.identity, "duplicate", NOW, call=call_of())

    assert (outcome.status, outcome.reason, outcome.code) == ("skipped", "duplicate", None)
    assert outcome.idempotency_key == "order:A1"


def test_a_record_replays_the_outcome_it_kept() -> None:
    call = call_of()
    original = Outcome.failed(call.event.identity, OutcomeUnknown("no answer"), NOW, call=call)

    replayed = Outcome.replay(original.record(), call)

    assert replayed == original
