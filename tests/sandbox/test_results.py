"""The sandbox's call results (CONTRACT.md §9): scripted calls, webhook posts, the call-history
search and the webhook API, over real HTTP."""

from __future__ import annotations

import asyncio
import re
from collections import deque
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import orjson
import pytest
from aiohttp import web

from service.http import serve_app
from service.sandbox import Sandbox, SandboxState, script_for, serve
from service.sandbox.script import Dial, format_number, plan
from tests.helpers import sandbox_command
from tests.sandbox.test_sandbox import Api, code_of, extension_body, phone_body

SEARCH = "/api/v2/callTransaction/search"
CDR_FIELDS = {
    "state",
    "transaction_id",
    "direction",
    "destination_number",
    "to_number",
    "phone_number",
    "hotline",
    "answer_sec",
    "bill_sec",
    "duration",
    "time_start_call",
    "time_start_to_answer",
    "time_end_call",
    "endby_name",
    "is_auto_call",
    "ivr",
    "recording_file_url",
    "send_num_retry",
}
LIVE_FIELDS = {"state", "call_uuid", "from_number", "hotline", "direction"}
LIVE_FIELDS |= {"created_time", "date_time"}  # and the number: phone_number or to_number
HISTORY_FIELDS = {"autocall_id", "autocall_uuid", "time_answer_start", "time_ringing_start"}
HISTORY_FIELDS |= {"hangup_cause", "dial_status"}
# last digit → (result, ivr of each CDR, number of CDRs with num_retry 1)
EXPECTED = {
    "1": ("answered", "1", 1),
    "2": ("answered", "2", 1),
    "3": ("no_answer", "", 2),
    "4": ("busy", "", 2),
    "5": ("answered", "none", 1),
    "6": ("failed", "", 2),
    "0": ("answered", "1", 1),
    "7": ("answered", "1", 1),
    "8": ("answered", "1", 1),
    "9": ("answered", "1", 1),
}


class Receiver:
    """A webhook endpoint: records every post; answers with the scripted statuses, then 200."""

    def __init__(self) -> None:
        self.posts: list[dict[str, Any]] = []
        self.statuses: deque[int] = deque()
        self.url = ""
        self._changed = asyncio.Condition()

    async def handle(self, request: web.Request) -> web.Response:
        status = self.statuses.popleft() if self.statuses else 200
        async with self._changed:
            self.posts.append({"status": status, "body": orjson.loads(await request.read())})
            self._changed.notify_all()
        return web.Response(status=status, text="ok")

    def delivered(self) -> list[dict[str, Any]]:
        """Bodies of the posts answered 200, in order."""
        return [post["body"] for post in self.posts if post["status"] == 200]

    def cdrs(self) -> list[dict[str, Any]]:
        """The end-of-call records: `state` cdr, or (older records) no state and a transaction."""
        return [
            body
            for body in self.delivered()
            if body.get("state", "cdr" if "transaction_id" in body else None) == "cdr"
        ]


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    hook = Receiver()
    app = web.Application()
    app.router.add_post("/webhooks/omicall/{token}", hook.handle)
    async with serve_app(app, "127.0.0.1", 0) as port:
        hook.url = f"http://127.0.0.1:{port}/webhooks/omicall/dev-token"
        yield hook


@pytest.fixture
async def sandbox() -> AsyncIterator[Sandbox]:
    # one post a CDR and both history versions, as these tests were written; the provider's
    # own habits (two posts, v3 only) are tested on their own below
    state = SandboxState(call_seconds=0.02, webhook_backoff=0.01, cdr_posts=1, history_api="both")
    async with serve(state) as running:
        yield running


async def call(api: Api, number: str, **fields: Any) -> str:
    status, answer = await api.call(phone_body(phone_number_list=[number], **fields))
    assert status == 200, answer
    return str(answer["payload"]["autocall_id"])


async def search(api: Api, body: Any, query: str = "page=1&size=50") -> tuple[int, Any]:
    return await api.call(body, f"{SEARCH}?{query}")


# --- the script, pure ----------------------------------------------------------------------


@pytest.mark.parametrize("digit", sorted(EXPECTED))
def test_the_last_digit_picks_the_script(digit: str) -> None:
    result, ivr, _ = EXPECTED[digit]
    script = script_for(f"090123456{digit}")
    assert script.result == result
    assert (script.key or ("none" if result == "answered" else "")) == ivr


def test_an_unanswered_call_is_redialled_num_retry_times() -> None:
    dial = Dial("a1", "0901234563", "842899959300", 2, 1_800_000_000.0, 100.0, 0.5)
    attempts = plan(dial)
    assert [a.cdr["send_num_retry"] for a in attempts] == [1, 1, 1]  # as the provider's sample
    assert [a.ends_at for a in attempts] == [100.5, 101.0, 101.5]
    assert [a.cdr["time_start_call"] for a in attempts] == [
        1_800_000_000,
        1_800_000_000,
        1_800_000_001,
    ]
    assert len({a.cdr["transaction_id"] for a in attempts}) == 3
    assert {a.autocall_uuid for a in attempts} == {attempts[0].autocall_uuid}
    states = [["create", "early", "ringing", "hangup"]] * 3
    assert [[e["state"] for _, e in a.live] for a in attempts] == states
    assert all(
        a.cdr["answer_sec"] == 0 and a.history["dial_status"] == "no_answer" for a in attempts
    )


def test_an_answered_call_has_one_attempt_with_its_key() -> None:
    (attempt,) = plan(Dial("a1", "0901234562", "842899959300", 3, 1_800_000_000.0, 0.0, 1.0))
    assert attempt.cdr.keys() >= CDR_FIELDS
    assert (attempt.cdr["ivr"], attempt.cdr["answer_sec"] > 0) == ("2", True)
    states = ["create", "early", "ringing", "answered", "hangup"]
    assert [e["state"] for _, e in attempt.live] == states
    numbers = [event.keys() - LIVE_FIELDS for _, event in attempt.live]
    assert numbers == [{"phone_number"}] * 2 + [{"to_number"}] * 3
    assert {event["call_uuid"] for _, event in attempt.live} == {attempt.cdr["transaction_id"]}
    assert [due for due, _ in attempt.live] == [0.0, 0.1, 0.2, 0.5, 1.0]
    assert attempt.item().keys() == (CDR_FIELDS - {"state"}) | HISTORY_FIELDS | {"from_number"}


@pytest.mark.parametrize(
    ("style", "expected"),
    [
        ("as_sent", "0912345678"),
        ("national", "0912345678"),
        ("digits", "84912345678"),
        ("e164", "+84912345678"),
    ],
)
def test_numbers_are_written_in_the_chosen_format(style: str, expected: str) -> None:
    for sent in ("0912345678", "+84912345678", "84912345678"):
        assert format_number(sent, style) == (sent if style == "as_sent" else expected)


# --- webhook posts ---------------------------------------------------------------------------


async def test_each_script_posts_live_events_and_a_cdr_per_attempt(
    sandbox: Sandbox, api: Api, receiver: Receiver
) -> None:
    await api.config(webhook_url=receiver.url)
    ids = {digit: await call(api, f"090123456{digit}", cid="842471001234") for digit in EXPECTED}
    await sandbox.idle()
    for digit, (result, ivr, count) in EXPECTED.items():
        number = f"090123456{digit}"
        cdrs = [cdr for cdr in receiver.cdrs() if cdr["to_number"] == number]
        assert [cdr["send_num_retry"] for cdr in cdrs] == [1] * count, digit
        assert {cdr["ivr"] for cdr in cdrs} == {ivr}
        assert all(cdr.keys() >= CDR_FIELDS and cdr["hotline"] == "842471001234" for cdr in cdrs)
        assert all((cdr["answer_sec"] > 0) == (result == "answered") for cdr in cdrs)
        assert all(cdr["is_auto_call"] is True for cdr in cdrs)
        assert "autocall_id" not in cdrs[0] and ids[digit] not in str(cdrs)
    states = [
        body["state"]
        for body in receiver.delivered()
        if "0901234561" in (body.get("to_number"), body.get("phone_number"))
    ]
    assert states == ["create", "early", "ringing", "answered", "hangup", "cdr"]
    assert len(receiver.cdrs()) == sum(count for _, _, count in EXPECTED.values())
    assert (await api.state())["webhook_posts"] == {"ok": len(receiver.posts)}


async def test_an_extension_call_is_played_out_too(
    sandbox: Sandbox, api: Api, receiver: Receiver
) -> None:
    await api.config(webhook_url=receiver.url)
    assert (
        await api.call(extension_body(extensions=["104"]), "/api/auto_call/execute_by_extension")
    )[0] == 200
    await sandbox.idle()
    assert [cdr["to_number"] for cdr in receiver.cdrs()] == ["104"]  # busy, no redial field


async def test_the_number_format_knob_rewrites_the_records(
    sandbox: Sandbox, api: Api, receiver: Receiver
) -> None:
    await api.config(webhook_url=receiver.url, number_format="digits")
    await call(api, "0901234561")
    await sandbox.idle()
    (cdr,) = receiver.cdrs()
    assert cdr["destination_number"] == cdr["phone_number"] == "84901234561"


async def test_legacy_records_carry_a_disposition_instead_of_a_hangup_cause(
    sandbox: Sandbox, api: Api, receiver: Receiver
) -> None:
    await api.config(webhook_url=receiver.url, cdr_style="legacy")
    for digit in "1346":
        await call(api, f"090123456{digit}", num_retry=0)
    await sandbox.idle()
    cdrs = {cdr["to_number"][-1]: cdr for cdr in receiver.cdrs()}
    assert {d: cdr["disposition"] for d, cdr in cdrs.items()} == {
        "1": "ANSWERED",
        "3": "NO ANSWER",
        "4": "BUSY",
        "6": "FAILED",
    }
    assert not any("hangup_cause" in cdr for cdr in cdrs.values())


async def test_without_a_webhook_nothing_is_posted_but_the_history_has_it(
    sandbox: Sandbox, api: Api, receiver: Receiver
) -> None:
    await api.config(webhook_url=receiver.url, webhooks=False)
    await call(api, "0901234561")
    await sandbox.idle()  # no call is played out: answers at once
    assert receiver.posts == []
    async with api.session.get(f"{api.url}/_sandbox/cdrs") as resp:
        (item,) = await resp.json()
    assert item["ivr"] == "1"


async def test_drop_duplicate_and_delay_knobs(
    sandbox: Sandbox, api: Api, receiver: Receiver
) -> None:
    await api.config(webhook_url=receiver.url, webhook_drop=1, webhook_duplicate=1)
    await api.config(webhook_delay=0.01)
    first, second, third = [await call(api, f"090000000{d}") for d in "125"]
    await sandbox.idle()
    cdrs = receiver.cdrs()
    # which call's CDR comes first is up to timing: one is dropped, one sent twice, one once
    counts = sorted(sum(c["to_number"] == f"090000000{d}" for c in cdrs) for d in "125")
    assert counts == [0, 1, 2]
    assert len({c["transaction_id"] for c in cdrs}) == 2
    state = await api.state()
    assert (state["webhook_drop"], state["webhook_duplicate"]) == (0, 0)
    assert state["webhook_posts"]["dropped"] == 1
    assert len(await history(api, {})) == 3  # the history still has the dropped one
    assert {first, second, third} == {item["autocall_id"] for item in await history(api, {})}


async def test_a_503_or_a_refused_connection_is_retried(
    sandbox: Sandbox, api: Api, receiver: Receiver
) -> None:
    receiver.statuses.extend([503, 503])
    await api.config(webhook_url=receiver.url, webhook_retries=2)
    await call(api, "0901234566")  # failed: create, early, hangup and a CDR; 2 attempts
    await sandbox.idle()
    assert [post["status"] for post in receiver.posts] == [503, 503] + [200] * 8
    assert (await api.state())["webhook_posts"] == {"retry": 2, "ok": 8}


async def test_a_receiver_that_is_down_or_answers_500_never_stops_the_sandbox(
    sandbox: Sandbox, api: Api, receiver: Receiver
) -> None:
    receiver.statuses.extend([500])
    await api.config(webhook_url=receiver.url, webhook_retries=1, webhooks=True)
    await call(api, "0901234566", num_retry=0)
    await sandbox.idle()
    assert [post["status"] for post in receiver.posts] == [500, 200, 200, 200]  # not retried
    for url in ("http://127.0.0.1:1/webhooks/omicall/x", "not a url at all"):
        await api.config(webhook_url=url)
        await call(api, "0901234566", num_retry=0)
        await sandbox.idle()
    posts = (await api.state())["webhook_posts"]
    assert posts == {"http_500": 1, "ok": 3, "connection_error": 8, "retry": 8}
    assert (await api.call())[0] == 200


# --- call-history search ----------------------------------------------------------------------


async def history(api: Api, body: dict[str, Any]) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    for page in range(1, 100):
        status, answer = await search(api, body, f"page={page}&size=50")
        assert (status, answer["status_code"]) == (200, 9999), answer
        items += answer["payload"]["items"]
        if not answer["payload"]["has_next"]:
            return items
    raise AssertionError("too many pages")


async def test_the_history_finds_attempts_by_transaction_phone_and_time(
    sandbox: Sandbox, api: Api, receiver: Receiver
) -> None:
    await api.config(webhook_url=receiver.url)
    one = await call(api, "0901234561")
    three = await call(api, "+84901234563", num_retry=2)
    await sandbox.idle()
    (answered,) = [cdr for cdr in receiver.cdrs() if cdr["to_number"] == "0901234561"]
    transaction = answered["transaction_id"]
    (item,) = await history(api, {"transactionIds": [transaction]})
    assert item["autocall_id"] == one and item.keys() >= HISTORY_FIELDS
    assert item["dial_status"] == "answered" and item["ivr"] == "1"
    redials = await history(api, {"phoneNumbers": ["0901234563"]})  # any format matches
    assert [i["autocall_id"] for i in redials] == [three] * 3
    start = redials[0]["time_start_call"] * 1000
    assert len(await history(api, {"fromDate": start, "toDate": start + 999})) >= 2
    assert await history(api, {"fromDate": start + 10_000_000}) == []
    assert await history(api, {"transactionIds": ["nope"], "phoneNumbers": ["0901234561"]}) == []


async def test_the_history_pages_by_size_and_shows_only_ended_calls(
    sandbox: Sandbox, api: Api
) -> None:
    await api.config(call_seconds=0)  # each call has ended by the time it is accepted
    for digit in "1234":
        await call(api, f"090123456{digit}", num_retry=0)
    _, answer = await search(api, {}, "page=2&size=3")
    assert len(answer["payload"]["items"]) == 1 and answer["payload"]["has_next"] is False
    _, answer = await search(api, {}, "page=1&size=3")
    assert len(answer["payload"]["items"]) == 3 and answer["payload"]["has_next"] is True
    await api.config(call_seconds=60)
    await call(api, "0901234561")
    assert len(await history(api, {})) == 4  # still ringing: not in the history yet
    assert (await api.state())["attempts"] == 5


@pytest.mark.parametrize(
    ("body", "query", "code"),
    [
        ({}, "page=0&size=50", "invalid_page"),
        ({}, "page=1&size=51", "invalid_page"),
        ({}, "page=x", "invalid_page"),
        ({"fromDate": "yesterday"}, "page=1", "invalid_date"),
        ({"phoneNumbers": "0901234561"}, "page=1", "invalid_field"),
        (["not", "an", "object"], "page=1", "invalid_json"),
    ],
)
async def test_a_bad_search_gets_its_code(api: Api, body: Any, query: str, code: str) -> None:
    status, answer = await search(api, body, query)
    assert (status, code_of(answer)) == (400, code)


async def test_the_search_needs_a_token_and_can_be_rate_limited(api: Api) -> None:
    assert (await api.call({}, f"{SEARCH}?page=1", token="wrong"))[0] == 401
    await api.config(search_throttle=2, envelope="payload")
    for _ in range(2):
        status, answer = await search(api, {})
        assert (status, code_of(answer)) == (200, "limit_request_30_minute")
    assert (await search(api, {}))[1]["status_code"] == 9999
    requests = (await api.state())["search_requests"]
    assert requests == {"unauthorized": 1, "limit_request_30_minute": 2, "ok": 1}


# --- webhook API ----------------------------------------------------------------------------


async def hooks(api: Api, method: str, path: str, body: Any = None) -> tuple[int, Any]:
    headers = {"Authorization": f"Bearer {api.token}"}
    async with api.session.request(method, api.url + path, json=body, headers=headers) as resp:
        return resp.status, await resp.json()


def registration(url: str, kind: str = "call") -> dict[str, Any]:
    return {"webhook": {"type": kind, "url": url, "events": None}}


async def test_a_registered_webhook_receives_the_calls(
    sandbox: Sandbox, api: Api, receiver: Receiver
) -> None:
    status, answer = await hooks(api, "POST", "/api/webhooks/register", registration(receiver.url))
    assert (status, answer["status_code"]) == (200, 9999)
    listed = await hooks(api, "GET", "/api/webhooks/list")
    assert listed == (
        200,
        {"status_code": 9999, "payload": [registration(receiver.url)["webhook"]]},
    )
    await call(api, "0901234562")
    await sandbox.idle()
    assert [cdr["ivr"] for cdr in receiver.cdrs()] == ["2"]
    assert (await hooks(api, "POST", "/api/webhooks/destroy?hook_type=call"))[1][
        "status_code"
    ] == 9999
    assert (await hooks(api, "GET", "/api/webhooks/list"))[1]["payload"] == []
    status, answer = await hooks(api, "POST", "/api/webhooks/destroy?hook_type=call")
    assert code_of(answer) == "webhook_not_found"


async def test_registering_the_same_url_as_the_command_line_posts_once(
    sandbox: Sandbox, api: Api, receiver: Receiver
) -> None:
    await api.config(webhook_url=receiver.url)
    await hooks(api, "POST", "/api/webhooks/register", registration(receiver.url))
    await call(api, "0901234561")
    await sandbox.idle()
    assert len(receiver.cdrs()) == 1


@pytest.mark.parametrize(
    ("body", "code"),
    [
        (registration("https://hooks.example.com/omicall", "sms"), "invalid_webhook_type"),
        (registration("http://hooks.example.com/omicall"), "invalid_url"),
        (registration("ftp://127.0.0.1/x"), "invalid_url"),
        (registration("https://"), "invalid_url"),
        ({"webhook": {"type": "call", "url": 7}}, "invalid_url"),
        ({"url": "https://hooks.example.com"}, "invalid_json"),
    ],
)
async def test_a_bad_registration_gets_its_code(api: Api, body: Any, code: str) -> None:
    status, answer = await hooks(api, "POST", "/api/webhooks/register", body)
    assert (status, code_of(answer)) == (400, code)
    assert (await hooks(api, "GET", "/api/webhooks/list"))[1]["payload"] == []


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("POST", "/api/webhooks/register"),
        ("GET", "/api/webhooks/list"),
        ("POST", "/api/webhooks/destroy?hook_type=call"),
    ],
)
async def test_the_webhook_api_needs_a_token(api: Api, method: str, path: str) -> None:
    api.token = "expired"
    async with api.session.request(
        method, api.url + path, json=registration("https://a.example")
    ) as resp:
        assert resp.status == 401


async def test_reset_forgets_hooks_and_attempts_but_keeps_the_command_line_url(
    api: Api, receiver: Receiver
) -> None:
    await api.config(webhook_url=receiver.url, search_throttle=3, webhooks=False, call_seconds=1)
    await hooks(api, "POST", "/api/webhooks/register", registration("https://a.example/x"))
    await call(api, "0901234561")
    _, state = await api.control("reset")
    assert (state["webhook_url"], state["hooks"], state["attempts"]) == (receiver.url, [], 0)
    assert (state["search_throttle"], state["webhooks"], state["call_seconds"]) == (0, True, 2.0)


@pytest.mark.parametrize(
    "settings",
    [
        {"call_seconds": -1},
        {"webhooks": 1},
        {"number_format": "xml"},
        {"webhook_drop": -2},
        {"cdr_style": "old"},
    ],
)
async def test_bad_result_knobs_are_refused(api: Api, settings: dict[str, Any]) -> None:
    assert (await api.control("config", settings))[0] == 400


async def test_the_command_prints_the_webhook_without_its_token() -> None:
    hook = ("--webhook-url", "http://127.0.0.1:1/webhooks/omicall/s3cret-token")
    async with sandbox_command("--call-seconds", "0.1", *hook) as (first, second):
        url = re.fullmatch(r"sandbox listening on (\S+) .*\n", first)
        assert url, first
        assert second == "sandbox posts call events to http://127.0.0.1:1/webhooks/omicall/***\n"
        async with (
            aiohttp.ClientSession() as session,
            session.get(f"{url[1]}/_sandbox/state") as resp,
        ):
            state = await resp.json()
        assert (state["call_seconds"], state["webhook_url"].endswith("s3cret-token")) == (0.1, True)


async def test_idle_over_http_answers_once_the_calls_are_played_out(
    sandbox: Sandbox, api: Api, receiver: Receiver
) -> None:
    await api.config(webhook_url=receiver.url, call_seconds=0.05)
    await call(api, "0901234563", num_retry=1)
    async with api.session.get(f"{api.url}/_sandbox/idle") as resp:
        assert (resp.status, await resp.json()) == (200, {"idle": True})
    assert len(receiver.cdrs()) == 2  # both attempts were posted before it answered


async def test_a_receiver_that_hangs_up_is_retried_like_a_refused_connection(
    sandbox: Sandbox, api: Api
) -> None:
    hung_up: list[int] = []

    async def hang_up(request: web.Request) -> web.Response:
        hung_up.append(1)
        assert request.transport is not None
        request.transport.close()
        return web.Response(status=204)

    app = web.Application()
    app.router.add_post("/hook", hang_up)
    async with serve_app(app, "127.0.0.1", 0) as port:
        url = f"http://127.0.0.1:{port}/hook"
        await api.config(webhook_url=url, webhook_retries=1)
        await call(api, "0901234566", num_retry=0)  # failed: create, early, hangup, a CDR
        await sandbox.idle()
    assert len(hung_up) == 8
    assert (await api.state())["webhook_posts"] == {"connection_error": 4, "retry": 4}
