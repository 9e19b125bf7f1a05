"""`autocall-bridge webhook register|list|remove` as a user runs it, against the sandbox (HTTP)."""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Protocol

import pytest

from service.cli.main import main
from service.cli.webhook import redact
from service.sandbox import Sandbox, SandboxState, serve

ROOT = Path(__file__).parents[2]
TOKEN = "dev-webhook-token-0123456789abcdef0123"
URL = f"https://calls.example.com/webhooks/omicall/{TOKEN}"
SHOWN = "https://calls.example.com/webhooks/omicall/***"


@pytest.fixture
async def sandbox() -> AsyncIterator[Sandbox]:
    async with serve(SandboxState()) as running:
        yield running


class Run(Protocol):
    async def __call__(self, url: str, *argv: str, **env: str) -> tuple[int, str, str]: ...


@pytest.fixture
def webhook(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> Run:
    """`autocall-bridge webhook ARGV` in-process, with the provider at `url` and only the
    AUTOCALL_* variables given (an empty value unsets one): exit code, stdout, stderr."""

    async def run(url: str, *argv: str, **env: str) -> tuple[int, str, str]:
        for name in [name for name in os.environ if name.startswith("AUTOCALL_")]:
            monkeypatch.delenv(name)
        values = {"AUTOCALL_API_BASE_URL": url, "AUTOCALL_API_KEY": "sandbox-key"} | env
        for name, value in values.items():
            if value:
                monkeypatch.setenv(name, value)
            else:
                monkeypatch.delenv(name, raising=False)
        code = await asyncio.to_thread(_exit_code, ["webhook", *argv])
        out, err = capsys.readouterr()
        return code, out, err

    return run


def _exit_code(argv: list[str]) -> int:
    with pytest.raises(SystemExit) as exited:
        main(argv)
    assert isinstance(exited.value.code, int)
    return exited.value.code


async def test_register_list_and_remove(sandbox: Sandbox, webhook: Run) -> None:
    assert await webhook(sandbox.url, "list") == (0, "no webhook registered\n", "")
    code, out, err = await webhook(sandbox.url, "register", URL)
    assert (code, out, err) == (0, f"registered the call webhook: {SHOWN}\n", "")
    assert sandbox.state.hooks == {"call": {"type": "call", "url": URL, "events": None}}
    assert await webhook(sandbox.url, "list") == (0, f"call\t{SHOWN}\tall events\n", "")
    assert await webhook(sandbox.url, "remove") == (0, "removed the call webhook\n", "")
    assert sandbox.state.hooks == {}
    assert await webhook(sandbox.url, "remove") == (0, "no call webhook was registered\n", "")


async def test_a_fixed_token_works_too(sandbox: Sandbox, webhook: Run) -> None:
    sandbox.state.fixed_tokens = {"fixed-token"}
    code, _, _ = await webhook(
        sandbox.url, "register", URL, AUTOCALL_API_KEY="", AUTOCALL_API_TOKEN="fixed-token"
    )
    assert (code, sandbox.state.auth_requests) == (0, 0)


@pytest.mark.parametrize(
    ("argv", "env", "message"),
    [
        (["register", "ftp://calls.example.com/x"], {}, "is not an https:// URL"),
        (["register", "calls.example.com/hook"], {}, "is not an https:// URL"),
        (["register"], {}, "the following arguments are required: url"),
        (["forget"], {}, "invalid choice: 'forget'"),
        (["list"], {"AUTOCALL_API_KEY": ""}, "AUTOCALL_API_KEY: required"),
        (["list"], {"AUTOCALL_API_KEY": "wrong-key"}, "refused the API key"),
    ],
)
async def test_bad_arguments_or_credentials_exit_2_with_one_line(
    sandbox: Sandbox, webhook: Run, argv: list[str], env: dict[str, str], message: str
) -> None:
    code, out, err = await webhook(sandbox.url, *argv, **env)
    assert (code, out) == (2, "")
    assert message in err.splitlines()[-1]
    assert sandbox.state.hooks == {}


async def test_an_unreachable_provider_exits_2(webhook: Run) -> None:
    code, out, err = await webhook("http://127.0.0.1:1", "list")
    assert (code, out) == (2, "")
    assert err.startswith("webhook: cannot connect to the provider") and err.count("\n") == 1


async def test_a_refused_registration_names_the_code_and_hides_the_token(
    sandbox: Sandbox, webhook: Run
) -> None:
    plain = f"http://calls.example.com/webhooks/omicall/{TOKEN}"  # the provider wants https
    code, out, err = await webhook(sandbox.url, "register", plain)
    assert (code, out, err) == (1, "", "webhook: the provider refused: invalid_url\n")
    code, _, err = await webhook(sandbox.url, "register", f"ftp://x/webhooks/omicall/{TOKEN}")
    assert code == 2 and TOKEN not in err


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        (URL, SHOWN),
        ("https://calls.example.com/webhooks/omicall", "https://calls.example.com/webhooks/***"),
        ("https://calls.example.com/", "https://calls.example.com/"),
        ("https://calls.example.com", "https://calls.example.com"),
    ],
)
def test_redact_hides_the_last_path_segment(url: str, shown: str) -> None:
    assert redact(url) == shown


async def test_the_console_command_runs(sandbox: Sandbox) -> None:
    env = {"PATH": os.environ.get("PATH", ""), "AUTOCALL_API_BASE_URL": sandbox.url}
    process = await asyncio.create_subprocess_exec(
        *(sys.executable, "-m", "service", "webhook", "list"),
        cwd=ROOT,
        env=env | {"AUTOCALL_API_KEY": "sandbox-key"},
        stdout=asyncio.subprocess.PIPE,
    )
    out, _ = await asyncio.wait_for(process.communicate(), 30)
    assert (process.returncode, out) == (0, b"no webhook registered\n")
