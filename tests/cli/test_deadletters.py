"""`autocall-bridge dead-letters`: the command as an operator runs it: lines out, exit codes."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from typing import Any

import orjson
import pytest

from service.cli.main import main
from tests.conftest import Broker
from tests.deadletters.test_deadletters import count, fill


def cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    """main(argv): its exit code, stdout and stderr."""
    with pytest.raises(SystemExit) as exited:
        main(list(argv))
    out, err = capsys.readouterr()
    assert isinstance(exited.value.code, int)
    return exited.value.code, out, err


@pytest.mark.parametrize(
    ("argv", "problem"),
    [
        (["list", "--limit", "0"], "--limit 0: must be at least 1"),
        (["replay", "--older-than", "soon"], "--older-than: not a duration: 'soon'"),
        (["purge", "--code", "expired"], "dead-letters purge: add --yes to remove them"),
    ],
)
def test_bad_arguments_exit_2_with_one_line(
    capsys: pytest.CaptureFixture[str], argv: list[str], problem: str
) -> None:
    code, out, err = cli(capsys, "dead-letters", *argv)
    assert (code, out) == (2, "")
    assert err.startswith(problem)
    assert err.count("\n") == 1


def test_an_unreachable_broker_exits_2_without_a_traceback() -> None:
    env = os.environ | {"AUTOCALL_AMQP_URL": "amqp://guest:hunter2@127.0.0.1:1/"}
    done = subprocess.run(
        [sys.executable, "-m", "service", "dead-letters", "list"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 2
    assert done.stdout == ""
    assert done.stderr.startswith("AUTOCALL_AMQP_URL: cannot reach the broker (")
    assert done.stderr.count("\n") == 1
    assert "hunter2" not in done.stderr


async def test_list_replay_and_purge_as_an_operator_runs_them(
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    make_settings: Any,
    broker: Broker,
) -> None:
    config = make_settings()
    name = await fill(broker, config, 6, lambda i: "expired" if i % 2 else "invalid_phone")
    await broker.channel.declare_exchange(config.input_exchange, "topic", durable=True)
    catcher = await broker.channel.declare_queue(exclusive=True)
    await catcher.bind(config.input_exchange, routing_key="#")
    for variable in ("amqp_url", "queue", "input_exchange"):
        monkeypatch.setenv(f"AUTOCALL_{variable.upper()}", str(getattr(config, variable)))
    monkeypatch.setenv("AUTOCALL_AMQP_URL", config.amqp_url.get_secret_value())

    async def run(*argv: str) -> tuple[int, str, str]:
        return await asyncio.to_thread(cli, capsys, "dead-letters", *argv)

    code, out, err = await run("list", "--code", "expired", "--json")
    assert code == 0
    assert [orjson.loads(line)["event_id"] for line in out.splitlines()] == ["e-1", "e-3", "e-5"]
    assert err == f"3 of 6 on {name}\n"

    code, out, _ = await run("list", "--template", "t0")
    assert [line.split("  ")[:4] for line in out.splitlines()] == [
        ["e-0", "order.created", "invalid_phone", "t0"],
        ["e-3", "order.created", "expired", "t0"],
    ]

    code, out, _ = await run("replay", "--event-id", "e-2", "--event-id", "e-4", "--dry-run")
    assert (code, out.splitlines()[-1]) == (0, f"would replay 2; 4 would remain on {name}")
    code, out, _ = await run("replay", "--event-id", "e-2", "--event-id", "e-4")
    assert (code, out) == (0, f"replayed 2 to {config.input_exchange}; 4 remain on {name}\n")
    replayed = [await catcher.get(timeout=5), await catcher.get(timeout=5)]
    assert [orjson.loads(m.body)["n"] for m in replayed] == [2, 4]

    code, out, _ = await run("purge", "--code", "expired", "--limit", "2", "--yes")
    assert (code, out) == (0, f"purged 2; 2 remain on {name}\n")
    assert await count(broker, name) == 2
    left = [orjson.loads(m.body)["n"] for m in await broker.drain(name)]
    assert left == [0, 5]
