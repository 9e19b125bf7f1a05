"""`autocall-bridge doctor` as a user runs it, against the sandbox over HTTP, the real broker and
Redis: one line a check, the exit code, no call placed, no secret printed."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Protocol

import pytest
import yaml

from service.cli.main import main
from service.sandbox import Sandbox, SandboxState, serve
from tests.conftest import AMQP_URL, EXAMPLES, REDIS_URL

KEY = "sandbox-key-7f3a9c2e"
TOKEN = "doctor-webhook-token-0123456789abcdef"
HOOK = f"https://calls.example.com/webhooks/omicall/{TOKEN}"


@pytest.fixture
async def sandbox() -> AsyncIterator[Sandbox]:
    async with serve(SandboxState(api_keys={KEY})) as running:
        yield running


class Doctor(Protocol):
    async def __call__(self, **env: str) -> tuple[int, dict[str, tuple[str, str]], str]: ...


@pytest.fixture
def doctor(
    sandbox: Sandbox, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> Doctor:
    """`autocall-bridge doctor` in-process with only the AUTOCALL_* variables given (an empty
    value unsets one): the exit code, each check's (status, why), and everything printed."""

    async def run(**env: str) -> tuple[int, dict[str, tuple[str, str]], str]:
        for name in [name for name in os.environ if name.startswith("AUTOCALL_")]:
            monkeypatch.delenv(name)
        values = {
            "AUTOCALL_API_BASE_URL": sandbox.url,
            "AUTOCALL_API_KEY": KEY,
            "AUTOCALL_AMQP_URL": AMQP_URL,
            "AUTOCALL_STORE_URL": REDIS_URL,
            "AUTOCALL_TEMPLATES": str(EXAMPLES / "templates.yaml"),
        } | env
        for name, value in values.items():
            if value:
                monkeypatch.setenv(name, value)
        code = await asyncio.to_thread(_exit_code)
        out, err = capsys.readouterr()
        lines = {}
        for line in out.splitlines():
            status, _, rest = line.partition(" ")
            name, _, why = rest.strip().partition(": ")
            lines[name] = (status, why)
        return code, lines, out + err

    return run


def _exit_code() -> int:
    with pytest.raises(SystemExit) as exited:
        main(["doctor"])
    assert isinstance(exited.value.code, int)
    return exited.value.code


def statuses(lines: dict[str, tuple[str, str]]) -> dict[str, str]:
    return {name: status for name, (status, _) in lines.items()}


def no_call(sandbox: Sandbox) -> None:
    assert sandbox.state.calls == []
    assert sum(sandbox.state.requests.values()) == 0


async def test_all_well(sandbox: Sandbox, doctor: Doctor) -> None:
    sandbox.state.hooks["call"] = {"type": "call", "url": HOOK, "events": None}

    code, lines, printed = await doctor(AUTOCALL_WEBHOOK_TOKEN=TOKEN)

    assert code == 0
    assert list(lines) == ["token", "webhooks", "call history", "templates", "broker", "store"]
    assert set(statuses(lines).values()) == {"ok"}
    assert "webhooks/omicall/***" in lines["webhooks"][1]
    assert TOKEN not in printed and KEY not in printed
    no_call(sandbox)


async def test_a_refused_key_fails(sandbox: Sandbox, doctor: Doctor) -> None:
    code, lines, printed = await doctor(AUTOCALL_API_KEY="refused-key-0042")

    assert code == 1
    assert lines["token"][0] == "FAIL"
    assert "unauthorized" in lines["token"][1]
    assert statuses(lines)["templates"] == "ok"
    assert "refused-key-0042" not in printed
    no_call(sandbox)


async def test_a_history_version_that_does_not_answer_fails(
    sandbox: Sandbox, doctor: Doctor
) -> None:
    sandbox.state.not_found = {"/api/v2/", "/api/v3/"}

    code, lines, _ = await doctor()

    assert code == 1
    assert lines["call history"][0] == "FAIL"
    assert "HTTP 404" in lines["call history"][1]
    assert statuses(lines)["token"] == "ok"
    no_call(sandbox)


async def test_webhook_warnings_do_not_fail(sandbox: Sandbox, doctor: Doctor) -> None:
    code, lines, _ = await doctor(AUTOCALL_WEBHOOK_TOKEN=TOKEN)  # no hook registered
    assert (code, lines["webhooks"][0]) == (0, "warn")

    sandbox.state.hooks["call"] = {"type": "call", "url": HOOK, "events": None}
    code, lines, _ = await doctor()  # the listener off
    assert (code, lines["webhooks"][0]) == (0, "warn")
    assert "listener is off" in lines["webhooks"][1]

    plain = f"http://calls.example.com/webhooks/omicall/{TOKEN}"
    sandbox.state.hooks["call"] = {"type": "call", "url": plain, "events": None}
    code, lines, _ = await doctor(AUTOCALL_WEBHOOK_TOKEN=TOKEN)
    assert (code, lines["webhooks"][0]) == (0, "warn")
    assert "plain http://" in lines["webhooks"][1]


async def test_a_hook_posting_elsewhere_fails(sandbox: Sandbox, doctor: Doctor) -> None:
    other = "https://elsewhere.example.com/hooks/0912345678"
    sandbox.state.hooks["call"] = {"type": "call", "url": other, "events": None}

    code, lines, printed = await doctor(AUTOCALL_WEBHOOK_TOKEN=TOKEN)

    assert (code, lines["webhooks"][0]) == (1, "FAIL")
    assert "0912345678" not in printed


async def test_broker_store_and_templates_failures(doctor: Doctor) -> None:
    code, lines, printed = await doctor(
        AUTOCALL_AMQP_URL="amqp://guest:hunter2pw@127.0.0.1:1/",
        AUTOCALL_STORE_URL="redis://:hunter2pw@127.0.0.1:1/0",
        AUTOCALL_TEMPLATES="/nonexistent/templates.yaml",
    )

    assert code == 1
    assert statuses(lines) == {
        "token": "ok",
        "webhooks": "ok",
        "call history": "ok",
        "templates": "FAIL",
        "broker": "FAIL",
        "store": "FAIL",
    }
    assert "hunter2pw" not in printed


async def test_bad_settings_exit_2(doctor: Doctor) -> None:
    code, _, printed = await doctor(AUTOCALL_API_KEY="", AUTOCALL_HTTP_PORT="many")

    assert code == 2
    assert "AUTOCALL_HTTP_PORT" in printed


async def test_each_account_of_the_accounts_file_is_checked(
    sandbox: Sandbox, doctor: Doctor, tmp_path: Path
) -> None:
    path = tmp_path / "accounts.yaml"
    accounts = {
        "shop-a": {"provider": "omicall", "base_url": sandbox.url, "api_key": KEY},
        "shop-b": {"provider": "omicall", "base_url": sandbox.url, "api_key": "refused-key-0042"},
    }
    path.write_text(yaml.safe_dump({"accounts": accounts}))

    code, lines, printed = await doctor(AUTOCALL_ACCOUNTS_FILE=str(path), AUTOCALL_API_KEY="")

    assert code == 1
    assert statuses(lines)["token (shop-a)"] == "ok"
    assert statuses(lines)["token (shop-b)"] == "FAIL"
    assert "call history (shop-a)" in lines and "webhooks (shop-b)" in lines
    assert KEY not in printed and "refused-key-0042" not in printed
    no_call(sandbox)
