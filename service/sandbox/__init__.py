"""A local stand-in for OMICall's API that enforces the documented rules strictly, and plays out
the calls it accepts (CONTRACT.md §9): webhooks, the call-history search, the webhook API.

rules.py    what an execute_* request must be, and the answers' shapes (pure)
answers.py  the answers of §12: the throttle and account knobs, codes on scripted numbers
state.py    the account, the records and the test knobs of /_sandbox/config
script.py   each call played out by its number's last digit: live events, CDRs (pure)
history.py  the call-history search's query and pages (pure)
dialer.py   the calls in progress; poster.py posts their events to the webhooks, with retries
api.py      the provider's endpoints; control.py the /_sandbox/ test controls
server.py   the aiohttp application, `serve` in-process and `serve_forever` for the command

stringee.py        the sandbox playing Stringee (`--provider stringee`): JWT, callout, call log
stringee_calls.py  its account and calls played out: signed call events and key presses
"""

from .api import STATE_KEY
from .dialer import Dialer
from .rules import tts_chars, validate
from .script import Attempt, Script, script_for
from .server import Sandbox, create_app, serve, serve_forever
from .state import RecordedCall, SandboxState, configure

__all__ = [
    "STATE_KEY",
    "Attempt",
    "Dialer",
    "RecordedCall",
    "Sandbox",
    "SandboxState",
    "Script",
    "configure",
    "create_app",
    "script_for",
    "serve",
    "serve_forever",
    "tts_chars",
    "validate",
]
