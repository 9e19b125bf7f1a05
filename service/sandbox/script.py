"""What happens on the phone: each accepted call played out by its number's last digit, as the
provider's live events, CDRs and call-history items (CONTRACT.md §9, §12). Pure: times come in,
records go out.

Last digit → 1 answered, key 1; 2 answered, key 2; 3 no answer; 4 busy; 5 answered, no key;
6 failed; 0, 7, 8, 9 answered, key 1; but a number ending in 71 is not answered on its first
attempt and answered with key 1 on the redial. An attempt that is not answered is redialled
`num_retry` times, so a number ending in 3 gives `num_retry + 1` CDRs. Live states come before
each CDR: create, early, ringing, answered, hangup (as far as the attempt gets).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import Any

NUMBER_FORMATS = ("as_sent", "national", "digits", "e164")
# "legacy": `disposition` (Asterisk's words) instead of `hangup_cause`; "older": the older
# records of §12, with no `state`, `answer_sec`, `endby_name` nor `send_num_retry`
CDR_STYLES = ("current", "legacy", "older")
DISPOSITIONS = {
    "answered": "ANSWERED",
    "no_answer": "NO ANSWER",
    "busy": "BUSY",
    "failed": "FAILED",
}
OLDER_DISPOSITIONS = {
    "answered": "answered",
    "no_answer": "cancelled",
    "busy": "busy",
    "failed": "failed",
}
OLDER_DROPS = ("state", "answer_sec", "endby_name", "send_num_retry", "hangup_cause")
# what `send_num_retry` counts is undocumented; three readings, the provider's sample first:
# "deliveries" (1 on a record's first post, 2 on its second), "redials" (0 on the first
# attempt), "attempts" (1 on the first attempt)
RETRY_STYLES = ("deliveries", "redials", "attempts")


@dataclass(frozen=True)
class Script:
    """How one attempt goes: its result and the key pressed, if any."""

    result: str  # answered | no_answer | busy | failed
    key: str | None = None
    unanswered_first: bool = False  # the first attempt is not answered, the redial goes so


SCRIPTS = {
    "1": Script("answered", "1"),
    "2": Script("answered", "2"),
    "3": Script("no_answer"),
    "4": Script("busy"),
    "5": Script("answered"),
    "6": Script("failed"),
}
ANSWERED_KEY_1 = Script("answered", "1")
ANSWERED_ON_REDIAL = Script("answered", "1", unanswered_first=True)
NO_ANSWER = SCRIPTS["3"]


@dataclass(frozen=True)
class Shape:
    """The simulated seconds and the provider's labels of one kind of attempt."""

    ring: int
    talk: int
    hangup_cause: str
    dial_status: str
    ended_by: str


SHAPES = {
    "answered": Shape(6, 12, "NORMAL_CLEARING", "answered", "end_call_by_customer"),
    "no_answer": Shape(30, 0, "NO_ANSWER", "no_answer", "end_call_by_timeout"),
    "busy": Shape(2, 0, "USER_BUSY", "busy", "end_call_by_customer"),
    "failed": Shape(0, 0, "CALL_REJECTED", "failed", "end_call_by_system"),
}


@dataclass
class Attempt:
    """One attempt of one call: live events (with their monotonic due times) and its CDR."""

    autocall_id: str
    autocall_uuid: str
    number: str  # as the request sent it, for the history search
    cdr: dict[str, Any]
    history: dict[str, Any]  # what the call-history search adds to the CDR
    live: list[tuple[float, dict[str, Any]]] = field(default_factory=list)
    ends_at: float = 0.0  # monotonic: the CDR exists from then on

    def item(self) -> dict[str, Any]:
        """This attempt as a call-history item."""
        fields = {k: v for k, v in self.cdr.items() if k != "state"}
        return fields | self.history


@dataclass(frozen=True)
class Dial:
    """What the simulator needs of an accepted call to one number."""

    autocall_id: str
    number: str
    hotline: str
    num_retry: int
    accepted_wall: float  # epoch seconds, the sandbox's clock
    accepted_mono: float  # time.monotonic() at acceptance
    seconds: float  # real seconds each attempt takes
    number_format: str = "as_sent"
    cdr_style: str = "current"
    autocall_uuid: str = ""  # the execute answer's uuid for this number
    retry_style: str = "deliveries"


def script_for(number: str) -> Script:
    """The script of a number: by its last digit (71: answered on the redial)."""
    if number.endswith("71"):
        return ANSWERED_ON_REDIAL
    return SCRIPTS.get(number[-1:], ANSWERED_KEY_1)


def plan(dial: Dial) -> list[Attempt]:
    """Every attempt of a call, in order: one if answered, else `num_retry + 1`."""
    script = script_for(dial.number)
    count = 1 if script.result == "answered" else dial.num_retry + 1
    if script.unanswered_first:
        count = min(2, dial.num_retry + 1)
    autocall_uuid = dial.autocall_uuid or str(uuid.uuid4())
    first = NO_ANSWER if script.unanswered_first else script
    return [_attempt(dial, first if k == 0 else script, autocall_uuid, k) for k in range(count)]


def send_num_retry(style: str, attempt: int, post: int) -> int:
    """What a record says in `send_num_retry` on its `post`th post (from 1) of the `attempt`th
    attempt (from 0), in the reading `style`."""
    return {"deliveries": post, "redials": attempt}.get(style, attempt + 1)


def _attempt(dial: Dial, script: Script, autocall_uuid: str, k: int) -> Attempt:
    shape = SHAPES[script.result]
    answered = script.result == "answered"
    start = dial.accepted_wall + k * dial.seconds
    start_mono = dial.accepted_mono + k * dial.seconds
    number = format_number(dial.number, dial.number_format)
    call_uuid = str(uuid.uuid4())
    history = {
        "autocall_id": dial.autocall_id,
        "autocall_uuid": autocall_uuid,
        "time_ringing_start": int(start) if script.result != "failed" else None,
        "time_answer_start": int(start + shape.ring) if answered else None,
        "hangup_cause": shape.hangup_cause,
        "dial_status": shape.dial_status,
    }
    base = {"from_number": dial.hotline, "hotline": dial.hotline, "direction": "outbound"}
    cdr = _cdr(dial, script, call_uuid, number, start)
    cdr["send_num_retry"] = send_num_retry(dial.retry_style, k, 1)
    if dial.cdr_style == "legacy":
        del cdr["hangup_cause"]
        cdr["disposition"] = DISPOSITIONS[script.result]
    elif dial.cdr_style == "older":
        cdr = {name: v for name, v in cdr.items() if name not in OLDER_DROPS}
        cdr["disposition"] = OLDER_DISPOSITIONS[script.result]
        cdr["recording_file"] = cdr.pop("recording_file_url")
    attempt = Attempt(dial.autocall_id, autocall_uuid, dial.number, cdr, history)
    attempt.ends_at = start_mono + dial.seconds
    attempt.live = _lives(dial, script, base | {"call_uuid": call_uuid}, number, k)
    return attempt


def _lives(
    dial: Dial, script: Script, base: dict[str, Any], number: str, k: int
) -> list[tuple[float, dict[str, Any]]]:
    """The live events of the `k`th attempt, with their monotonic due times: create and early
    for every attempt, ringing when it rang, answered when answered, hangup at its end."""
    shape = SHAPES[script.result]
    start = dial.accepted_wall + k * dial.seconds
    start_mono = dial.accepted_mono + k * dial.seconds
    # the first states name the number in `phone_number`, the later ones in `to_number`
    early = base | {"phone_number": number}
    later = base | {"to_number": number}
    steps = [(0.0, "create", early, start), (0.1, "early", early, start)]
    if script.result in ("answered", "no_answer"):
        steps.append((0.2, "ringing", later, start))
    if script.result == "answered":
        steps.append((0.5, "answered", later, start + shape.ring))
    steps.append((1.0, "hangup", later, start + shape.ring + shape.talk))
    return [(start_mono + part * dial.seconds, _live(b, state, at)) for part, state, b, at in steps]


def _cdr(dial: Dial, script: Script, call_uuid: str, number: str, start: float) -> dict[str, Any]:
    """The end-of-call record of one attempt, as the webhook posts it."""
    shape = SHAPES[script.result]
    answered = script.result == "answered"
    return {
        "state": "cdr",
        "transaction_id": call_uuid,
        "direction": "outbound",
        "destination_number": number,
        "to_number": number,
        "phone_number": number,
        "from_number": dial.hotline,
        "hotline": dial.hotline,
        "answer_sec": shape.talk,
        "bill_sec": shape.talk,
        "duration": shape.ring + shape.talk,
        "time_start_call": int(start),
        "time_start_to_answer": int(start + shape.ring) if answered else None,
        "time_end_call": int(start + shape.ring + shape.talk),
        "endby_name": shape.ended_by,
        "is_auto_call": True,
        "ivr": script.key or ("none" if answered else ""),
        "recording_file_url": _recording(call_uuid) if answered else None,
        "hangup_cause": shape.hangup_cause,
    }


def _live(base: dict[str, Any], state: str, at: float) -> dict[str, Any]:
    return {"state": state} | base | {"created_time": int(at), "date_time": int(at * 1000)}


def _recording(call_uuid: str) -> str:
    return f"https://recordings.sandbox.invalid/{call_uuid}.mp3"


def format_number(number: str, style: str) -> str:
    """A Vietnamese number the way the provider's records write it (`style`, NUMBER_FORMATS)."""
    digits = "".join(c for c in number if c.isdigit())
    if style == "as_sent" or not digits:
        return number
    if digits.startswith("0"):
        digits = "84" + digits[1:]
    if style == "national":
        return "0" + digits[2:] if digits.startswith("84") else digits
    return "+" + digits if style == "e164" else digits
