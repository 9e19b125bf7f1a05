"""The sandbox provider, driven over real HTTP."""

from __future__ import annotations

import asyncio
import re
import signal
import sys
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from service.sandbox import Sandbox, SandboxState, serve, tts_chars, validate
from tests.fakes import Clock as FakeClock

PHONE = "/api/auto_call/execute_by_phone"
EXTENSION = "/api/auto_call/execute_by_extension"
TEXT = {"target_type": "Text_variable"}
RECORDING = {"target_type": "Recording", "target": "5ed0c6dffb7b390007e5211"}
UUID4 = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}")
# 23:59 on 27 Nov 2026 in Ho Chi Minh City: one minute before the provider's day changes
BEFORE_LOCAL_MIDNIGHT = datetime(2026, 11, 27, 16, 59, tzinfo=UTC).timestamp()


def phone_body(**changes: Any) -> dict[str, Any]:
    body = {
        "name": "Xác nhận đơn",
        "voice": "banmai",
        "speed": 0,
        "phone_number_list": ["0912345678"],
        "template_dialplans": [TEXT, RECORDING],
        "variables": ["Đơn hàng của bạn"],
        "num_retry": 1,
    }
    return body | changes


def extension_body(**changes: Any) -> dict[str, Any]:
    body = {
        "cid": "842899959300",
        "template_dialplans": [TEXT],
        "variables": ["Xin chào"],
        "extensions": ["101"],
    }
    return body | changes


def code_of(answer: dict[str, Any]) -> Any:
    """The error code, read the way CONTRACT.md §5 says the client reads it."""
    assert answer["status_code"] != 9999
    payload = answer.get("payload")
    if isinstance(payload, dict) and payload.get("error"):
        return payload["error"]
    if answer.get("message"):
        return answer["message"]
    return payload.get("message") if isinstance(payload, dict) else None


class Api:
    """A thin client of one sandbox."""

    def __init__(self, session: aiohttp.ClientSession, url: str) -> None:
        self.session = session
        self.url = url
        self.token = ""

    async def login(self, key: str = "sandbox-key") -> tuple[int, Any]:
        async with self.session.get(f"{self.url}/api/auth", params={"apiKey": key}) as resp:
            answer = await resp.json()
        if resp.status == 200:
            self.token = answer["payload"]["access_token"]
        return resp.status, answer

    async def call(
        self,
        body: Any = None,
        path: str = PHONE,
        *,
        token: str | None = None,
        **kwargs: Any,
    ) -> tuple[int, Any]:
        token = self.token if token is None else token
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        headers |= kwargs.pop("headers", {})
        if "data" not in kwargs:
            kwargs["json"] = phone_body() if body is None else body
        async with self.session.post(self.url + path, headers=headers, **kwargs) as resp:
            if resp.content_type == "application/json":
                return resp.status, await resp.json()
            return resp.status, await resp.text()

    async def state(self) -> dict[str, Any]:
        async with self.session.get(f"{self.url}/_sandbox/state") as resp:
            return await resp.json()  # type: ignore[no-any-return]

    async def control(self, name: str, settings: Any = None) -> tuple[int, Any]:
        async with self.session.post(f"{self.url}/_sandbox/{name}", json=settings) as resp:
            return resp.status, await resp.json()

    async def config(self, **settings: Any) -> dict[str, Any]:
        status, answer = await self.control("config", settings)
        assert status == 200, answer
        return answer  # type: ignore[no-any-return]


@pytest.fixture
def state() -> SandboxState:
    return SandboxState()


@pytest.fixture
async def sandbox(state: SandboxState) -> AsyncIterator[Sandbox]:
    async with serve(state) as running:
        yield running


# --- auth ---------------------------------------------------------------------------------


async def test_auth_issues_a_day_long_bearer_token(api: Api) -> None:
    status, answer = await api.login()
    assert status == 200
    assert answer["status_code"] == 9999
    assert answer["payload"]["token_type"] == "Bearer"
    assert answer["payload"]["expires_in"] == 86400
    assert re.fullmatch(r"[A-Za-z0-9_-]{20,}", answer["payload"]["access_token"])
    first = api.token
    await api.login()
    assert api.token != first
    assert (await api.call())[0] == 200


@pytest.mark.parametrize("key", ["wrong-key", ""])
async def test_auth_rejects_an_unknown_key(api: Api, key: str) -> None:
    assert await api.login(key) == (401, {"status_code": 401, "message": "invalid_api_key"})


@pytest.mark.parametrize("header", [None, "Basic c2FuZGJveA==", "Bearer not-issued", "Bearer "])
async def test_execute_without_a_valid_token_is_401(api: Api, header: str | None) -> None:
    headers = {} if header is None else {"Authorization": header}
    async with api.session.post(api.url + PHONE, json=phone_body(), headers=headers) as resp:
        assert (resp.status, await resp.text()) == (401, "Unauthorized")
    state = await api.state()
    assert state["calls"] == 0
    assert state["requests"] == {"unauthorized": 1}


async def test_expired_tokens_need_a_new_one(api: Api) -> None:
    assert (await api.call())[0] == 200
    assert await api.control("expire-tokens") == (200, {"expired": 1})
    assert await api.call() == (401, "Unauthorized")
    await api.login()
    assert (await api.call())[0] == 200


async def test_a_token_lives_24_hours(state: SandboxState, api: Api) -> None:
    clock = FakeClock(BEFORE_LOCAL_MIDNIGHT)
    state.clock = clock
    await api.login()
    clock.now += 86_399
    assert (await api.call())[0] == 200
    clock.now += 1
    assert (await api.call())[0] == 401


async def test_a_fixed_token_is_accepted(api: Api) -> None:
    assert (await api.call(token="fixed-token"))[0] == 401
    await api.config(fixed_tokens=["fixed-token"])
    assert (await api.call(token="fixed-token"))[0] == 200


# --- request validation -------------------------------------------------------------------


async def test_a_query_string_is_rejected(api: Api) -> None:
    status, answer = await api.call(params={"phone_number": "0912345678"})
    assert status == 400
    assert code_of(answer) == "unexpected_query_string"
    assert (await api.state())["calls"] == 0


@pytest.mark.parametrize(
    ("data", "content_type"),
    [
        (b'{"phone_number_list": ["0912345678"]}', "text/plain"),
        (b"{not json", "application/json"),
        (b'[{"phone_number_list": ["0912345678"]}]', "application/json"),
        (b"", "application/json"),
    ],
    ids=["content_type", "malformed", "not_an_object", "empty"],
)
async def test_a_body_that_is_not_a_json_object_is_rejected(
    api: Api, data: bytes, content_type: str
) -> None:
    status, answer = await api.call(data=data, headers={"Content-Type": content_type})
    assert status == 400
    assert code_of(answer) == "invalid_json"


INVALID = [
    (PHONE, phone_body(extensions=["101"]), "unknown_field"),
    (PHONE, phone_body(phone_number="0912345678"), "unknown_field"),
    (
        PHONE,
        {k: v for k, v in phone_body().items() if k != "phone_number_list"},
        "invalid_phone_number_list",
    ),
    (PHONE, phone_body(phone_number_list=[]), "invalid_phone_number_list"),
    (PHONE, phone_body(phone_number_list="0912345678"), "invalid_phone_number_list"),
    (PHONE, phone_body(phone_number_list=["0912-345-678"]), "invalid_phone_number_list"),
    (PHONE, phone_body(phone_number_list=["12345678"]), "invalid_phone_number_list"),
    (PHONE, phone_body(phone_number_list=["+8491234567890123"]), "invalid_phone_number_list"),
    (PHONE, phone_body(phone_number_list=[912345678]), "invalid_phone_number_list"),
    (PHONE, phone_body(voice="robot"), "invalid_voice"),
    (PHONE, phone_body(voice=["banmai"]), "invalid_voice"),
    (PHONE, phone_body(speed=4), "invalid_speed"),
    (PHONE, phone_body(speed=0.5), "invalid_speed"),
    (PHONE, phone_body(speed=True), "invalid_speed"),
    (PHONE, phone_body(name=1), "invalid_field"),
    (PHONE, phone_body(cid=842899959300), "invalid_field"),
    (PHONE, phone_body(num_retry=-1), "invalid_field"),
    (PHONE, phone_body(distance_retry="60"), "invalid_field"),
    (PHONE, phone_body(template_dialplans=[]), "invalid_template_dialplans"),
    (
        PHONE,
        phone_body(template_dialplans=[{"target_type": "Video"}]),
        "invalid_template_dialplans",
    ),
    (
        PHONE,
        phone_body(template_dialplans=[{"target_type": "Recording"}]),
        "invalid_template_dialplans",
    ),
    (
        PHONE,
        phone_body(template_dialplans=[{"target_type": "Ivr_menu", "target": ""}]),
        "invalid_template_dialplans",
    ),
    (
        PHONE,
        phone_body(template_dialplans=[TEXT | {"target": "x"}], variables=["a"]),
        "invalid_template_dialplans",
    ),
    (
        PHONE,
        phone_body(template_dialplans=[RECORDING | {"loop": 2}], variables=[]),
        "invalid_template_dialplans",
    ),
    (PHONE, phone_body(variables=[]), "variables_mismatch"),
    (PHONE, phone_body(variables=["a", "b"]), "variables_mismatch"),
    (PHONE, phone_body(variables="Đơn hàng"), "variables_mismatch"),
    (PHONE, phone_body(variables=[90000]), "variables_mismatch"),
    (EXTENSION, extension_body(name="x"), "unknown_field"),
    (EXTENSION, {k: v for k, v in extension_body().items() if k != "extensions"}, "missing_field"),
    (EXTENSION, {k: v for k, v in extension_body().items() if k != "variables"}, "missing_field"),
    (
        EXTENSION,
        {k: v for k, v in extension_body().items() if k != "template_dialplans"},
        "missing_field",
    ),
    (EXTENSION, extension_body(extensions=[]), "missing_field"),
    (EXTENSION, extension_body(cid=1), "invalid_field"),
    (EXTENSION, extension_body(template_dialplans=[RECORDING]), "variables_mismatch"),
]


@pytest.mark.parametrize(("path", "body", "code"), INVALID)
async def test_each_invalid_request_gets_its_code(
    api: Api, path: str, body: dict[str, Any], code: str
) -> None:
    assert validate(path.rsplit("/", 1)[1], body) == code
    status, answer = await api.call(body, path)
    assert status == 400
    assert code_of(answer) == code
    assert (await api.state())["calls"] == 0


@pytest.mark.parametrize(
    ("action", "body"),
    [
        ("execute_by_phone", {"phone_number_list": ["+84912345678"]}),
        ("execute_by_phone", phone_body(template_dialplans=[RECORDING], variables=[])),
        (
            "execute_by_extension",
            extension_body(template_dialplans=[TEXT, RECORDING, TEXT], variables=["a", "b"]),
        ),
    ],
)
def test_valid_bodies_pass(action: str, body: dict[str, Any]) -> None:
    assert validate(action, body) is None


def test_tts_chars_counts_nfc_code_points() -> None:
    assert tts_chars({"variables": ["e\u0301", "ab"]}) == 3
    assert tts_chars({}) == 0


# --- success ------------------------------------------------------------------------------


async def test_by_phone_answers_its_documented_shape(api: Api) -> None:
    status, answer = await api.call()
    assert status == 200
    assert answer["status_code"] == 9999
    assert answer["payload"]["name"] == "Xác nhận đơn"
    assert UUID4.fullmatch(answer["payload"]["autocall_id"])
    body = {k: v for k, v in phone_body().items() if k != "name"}
    assert (await api.call(body))[1]["payload"]["name"] == ""


async def test_by_extension_answers_its_documented_shape(api: Api) -> None:
    status, answer = await api.call(extension_body(), EXTENSION)
    assert status == 200
    assert answer.keys() == {
        "instance_id",
        "payload",
        "instance_version",
        "key_enabled",
        "status_code",
    }
    assert answer["status_code"] == 9999
    assert re.fullmatch(r"[0-9a-f]{24}", answer["payload"]["autocall_id"])
    [uuid] = answer["payload"]["autocall_uuids"]
    assert UUID4.fullmatch(uuid)


# --- business rules -----------------------------------------------------------------------


async def test_a_trial_plan_cannot_call(api: Api) -> None:
    await api.config(trial=True)
    for path, body in ((PHONE, phone_body()), (EXTENSION, extension_body())):
        status, answer = await api.call(body, path)
        assert (status, code_of(answer)) == (200, "limit_service")
    assert (await api.state())["calls"] == 0


async def test_300_characters_per_call_in_nfc_code_points(api: Api) -> None:
    over = phone_body(variables=["a" * 301])
    status, answer = await api.call(over)
    assert (status, code_of(answer)) == (200, "limit_word_session")
    assert (await api.call(phone_body(variables=["a" * 300])))[0] == 200
    decomposed = "e\u0301" * 300  # 600 code points, 300 once composed
    assert (await api.call(phone_body(variables=[decomposed])))[1]["status_code"] == 9999
    assert (await api.state())["tts_used_today"] == 600


async def test_3000_characters_a_local_day_across_calls(state: SandboxState, api: Api) -> None:
    clock = FakeClock(BEFORE_LOCAL_MIDNIGHT)
    state.clock = clock
    await api.login()
    full = phone_body(template_dialplans=[TEXT, TEXT], variables=["a" * 150, "b" * 150])
    for _ in range(10):
        assert (await api.call(full))[1]["status_code"] == 9999
    status, answer = await api.call(phone_body(variables=["x"]))
    assert (status, code_of(answer)) == (200, "limit_word")
    assert (await api.state())["tts_used_today"] == 3000
    clock.now += 60  # midnight in Asia/Ho_Chi_Minh (17:00 UTC)
    assert (await api.call(phone_body(variables=["x"])))[1]["status_code"] == 9999
    assert (await api.state())["tts_used_today"] == 1


async def test_balance_runs_out_and_a_top_up_restores_it(api: Api) -> None:
    await api.config(balance=1_500, call_cost=1_000)
    assert (await api.call())[1]["status_code"] == 9999
    status, answer = await api.call()
    assert (status, code_of(answer)) == (200, "balance_is_not_enough")
    assert (await api.state())["balance"] == 500
    await api.config(balance=10_000)
    assert (await api.call())[1]["status_code"] == 9999
    assert (await api.state())["balance"] == 9_000


async def test_business_rules_apply_in_order(api: Api) -> None:
    await api.config(trial=True, balance=0, daily_limit=5)
    long_text = phone_body(variables=["a" * 301])
    assert code_of((await api.call(long_text))[1]) == "limit_service"
    await api.config(trial=False)
    assert code_of((await api.call(long_text))[1]) == "limit_word_session"
    assert code_of((await api.call(phone_body(variables=["abcdef"])))[1]) == "limit_word"
    assert code_of((await api.call(phone_body(variables=["abcde"])))[1]) == "balance_is_not_enough"


# --- error envelopes ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("envelope", "expected"),
    [
        ("message", {"status_code": 400, "message": "limit_service", "payload": None}),
        (
            "payload",
            {
                "status_code": 400,
                "payload": {
                    "error": "limit_service",
                    "message": "Gói dịch vụ dùng thử không hỗ trợ gọi tự động",
                },
            },
        ),
        ("payload_message", {"status_code": 400, "payload": {"message": "limit_service"}}),
    ],
)
async def test_each_envelope_carries_the_code(api: Api, envelope: str, expected: Any) -> None:
    await api.config(envelope=envelope, trial=True)
    assert await api.call() == (200, expected)
    assert code_of(expected) == "limit_service"


async def test_the_alternate_envelope_cycles_through_all_three(api: Api) -> None:
    await api.config(trial=True)
    answers = [(await api.call())[1] for _ in range(3)]
    assert [code_of(answer) for answer in answers] == ["limit_service"] * 3
    assert "message" in answers[0]
    assert "error" in answers[1]["payload"]
    assert answers[2]["payload"] == {"message": "limit_service"}
    validation = (await api.call(phone_body(voice="robot")))[1]
    assert validation == {"status_code": 400, "message": "invalid_voice", "payload": None}


# --- faults -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fault", "status", "body"),
    [
        ("503", 503, "Service Unavailable"),
        ("429", 429, "Too Many Requests"),
        ("500", 500, "<html><body><h1>500 Internal Server Error</h1></body></html>"),
        ("garbage", 200, "<html>oops</html>"),
        ("nocode", 200, {"status_code": 1}),
    ],
)
async def test_an_answering_fault_is_not_a_call(
    api: Api, fault: str, status: int, body: Any
) -> None:
    await api.config(faults=[fault])
    assert await api.call(token="") == (status, body)  # before the token is even looked at
    assert (await api.call())[1]["status_code"] == 9999
    state = await api.state()
    assert (state["calls"], state["balance"], state["faults"]) == (1, 999_999_000, [])
    assert state["requests"] == {fault: 1, "ok": 1}


async def test_an_outage_answers_503_until_it_counts_down(api: Api) -> None:
    state = await api.config(outage=3, faults=["nocode"])
    assert (state["outage"], state["faults"]) == (3, ["nocode"])
    assert [(await api.call())[0] for _ in range(3)] == [503, 503, 503]
    assert (await api.state())["outage"] == 0
    assert (await api.call())[1] == {"status_code": 1}
    assert (await api.call())[1]["status_code"] == 9999


async def test_hang_never_answers_and_makes_no_call(api: Api) -> None:
    await api.config(faults=["hang"])
    with pytest.raises(asyncio.TimeoutError):
        await api.call(timeout=aiohttp.ClientTimeout(total=0.2))
    state = await api.state()
    assert (state["calls"], state["requests"]) == (0, {"hang": 1})
    assert (await api.call())[1]["status_code"] == 9999


async def test_accept_then_hang_makes_the_call_but_never_answers(api: Api) -> None:
    await api.config(faults=["accept_then_hang"])
    with pytest.raises(asyncio.TimeoutError):
        await api.call(timeout=aiohttp.ClientTimeout(total=0.2))
    state = await api.state()
    assert (state["calls"], state["balance"], state["requests"]) == (1, 999_999_000, {"ok": 1})


async def test_accept_then_drop_makes_the_call_and_disconnects(api: Api) -> None:
    await api.config(faults=["accept_then_drop"])
    with pytest.raises(aiohttp.ServerDisconnectedError):
        await api.call(extension_body(), EXTENSION)
    state = await api.state()
    assert (state["calls"], state["balance"], state["tts_used_today"]) == (1, 999_999_000, 8)
    assert (await api.call())[1]["status_code"] == 9999


async def test_stopping_the_server_drops_a_hanging_request() -> None:
    async with aiohttp.ClientSession() as session:
        async with serve() as sandbox:
            api = Api(session, sandbox.url)
            await api.login()
            await api.config(faults=["hang"])
            pending = asyncio.create_task(api.call())
            while (await api.state())["requests"].get("hang") != 1:
                pass
            started = time.monotonic()
        assert time.monotonic() - started < 2  # not the 5 s shutdown timeout
        with pytest.raises(aiohttp.ServerDisconnectedError):
            await pending


async def test_latency_delays_every_answer(api: Api) -> None:
    await api.config(latency=0.1)
    started = time.monotonic()
    assert (await api.call())[0] == 200
    assert time.monotonic() - started >= 0.1
    with pytest.raises(asyncio.TimeoutError):
        await api.call(timeout=aiohttp.ClientTimeout(total=0.05))


# --- control endpoints --------------------------------------------------------------------


async def test_state_and_calls_show_what_happened(api: Api) -> None:
    first = (await api.call())[1]["payload"]["autocall_id"]
    await api.call(phone_body(phone_number_list=["0912345678", "+84987654321"]))
    await api.call(extension_body(), EXTENSION)
    await api.call(phone_body(voice="robot"))
    state = await api.state()
    assert state["calls"] == 3
    assert state["calls_by_phone"] == {"0912345678": 2, "+84987654321": 1}
    assert state["requests"] == {"ok": 3, "invalid_voice": 1}
    assert state["balance"] == 1_000_000_000 - 3_000
    assert state["tts_used_today"] == 2 * len("Đơn hàng của bạn") + len("Xin chào")
    assert state["auth_requests"] == 1
    async with api.session.get(f"{api.url}/_sandbox/calls") as resp:
        calls = await resp.json()
    assert [call["path"] for call in calls] == [PHONE, PHONE, EXTENSION]
    assert calls[0]["body"] == phone_body()
    assert calls[0]["autocall_id"] == first
    assert calls[0]["at"].endswith("+07:00")


@pytest.mark.parametrize(
    "settings",
    [
        {"nope": 1},
        {"balance": "1000"},
        {"balance": True},
        {"trial": 1},
        {"envelope": "xml"},
        {"faults": ["boom"]},
        {"faults": "503"},
        {"api_keys": [1]},
        {"outage": 2, "latency": "fast"},
        ["not", "an", "object"],
    ],
)
async def test_config_rejects_bad_settings_whole(api: Api, settings: Any) -> None:
    before = await api.state()
    status, answer = await api.control("config", settings)
    assert status == 400
    assert "error" in answer
    assert await api.state() == before


async def test_config_replaces_the_api_keys(api: Api) -> None:
    await api.config(api_keys=["new-key"])
    assert (await api.login())[0] == 401
    assert (await api.login("new-key"))[0] == 200


async def test_reset_restores_defaults_but_keeps_keys_and_tokens(api: Api) -> None:
    await api.call()
    await api.config(
        trial=True, balance=5, outage=2, faults=["hang"], latency=0.5, envelope="message"
    )
    await api.config(api_keys=["sandbox-key", "other-key"])
    status, state = await api.control("reset")
    assert status == 200
    assert state == {
        "balance": 1_000_000_000,
        "call_cost": 1_000,
        "trial": False,
        "latency": 0.0,
        "daily_limit": 3_000,
        "session_limit": 300,
        "envelope": "alternate",
        "outage": 0,
        "calls_by_phone": {},
        "requests": {},
        "auth_requests": 0,
        "tts_used_today": 0,
        "calls": 0,
        "faults": [],
        "call_seconds": 2.0,
        "number_format": "as_sent",
        "cdr_style": "current",
        "webhook_url": "",
        "webhooks": True,
        "webhook_drop": 0,
        "webhook_duplicate": 0,
        "webhook_delay": 0.0,
        "webhook_retries": 5,
        "webhook_backoff": 0.2,
        "search_throttle": 0,
        "history_api": "v3",
        "history_paging": "snake",
        "history_autocall_id": True,
        "answer_uuids": True,
        "send_num_retry": "deliveries",
        "cdr_posts": 2,
        "search_requests": {},
        "throttle": 0,
        "throttle_style": "429",
        "retry_after": 0.0,
        "account": "",
        "webhook_posts": {},
        "attempts": 0,
        "hooks": [],
        "not_found": [],
    }
    assert (await api.call())[1]["status_code"] == 9999
    assert (await api.login("other-key"))[0] == 200


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
async def test_serve_forever_prints_its_url_and_stops_on_a_signal(signum: int) -> None:
    code = "from service.sandbox import *; serve_forever('127.0.0.1', 0, SandboxState())"
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-c", code, cwd=Path(__file__).parents[2], stdout=asyncio.subprocess.PIPE
    )
    assert process.stdout is not None
    line = (await asyncio.wait_for(process.stdout.readline(), 10)).decode()
    match = re.fullmatch(
        r"sandbox listening on (http://127\.0\.0\.1:\d+) \(api key: sandbox-key\)\n", line
    )
    assert match, line
    async with aiohttp.ClientSession() as session:
        assert (await Api(session, match[1]).login())[0] == 200
    process.send_signal(signum)
    assert await asyncio.wait_for(process.wait(), 10) == 0
