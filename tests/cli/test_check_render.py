"""service/cli/main.py: `check` and `render` as a user runs them (CONTRACT.md §1)."""

from __future__ import annotations

import io
import subprocess
import sys
from pathlib import Path
from typing import Any

import orjson
import pytest

from service.cli.main import main

ROOT = Path(__file__).parents[2]
EXAMPLES = ROOT / "examples" / "templates.yaml"
EVENTS = ROOT / "examples" / "events"
HARAVAN = Path(__file__).parents[1] / "samples" / "haravan_order_create_response.json"
DAY = "2026-11-27T10:00:00+07:00"
NIGHT = "2026-11-27T22:00:00+07:00"
HEADER_TEMPLATES = """\
version: 1
templates:
  - name: by_header
    event: "#"
    phone: "{{ event.headers['x-phone'] }}"
    script:
      - say: "tenant {{ event.headers.tenant }}"
"""


def run(capsys: pytest.CaptureFixture[str], *argv: str | Path) -> tuple[int, str, str]:
    """main(argv): its exit code, stdout and stderr."""
    with pytest.raises(SystemExit) as exited:
        main([str(arg) for arg in argv])
    out, err = capsys.readouterr()
    code = exited.value.code
    assert isinstance(code, int)
    return code, out, err


def render(capsys: pytest.CaptureFixture[str], *argv: str | Path) -> dict[str, Any]:
    """The one JSON decision `render` prints, which it must exit 0 for."""
    code, out, err = run(capsys, "render", *argv)
    assert code == 0, err
    decision: dict[str, Any] = orjson.loads(out)
    return decision


def write(tmp_path: Path, name: str, text: str | bytes) -> Path:
    path = tmp_path / name
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text, encoding="utf-8")
    return path


# check


def test_check_a_valid_file(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, "check", EXAMPLES)

    assert code == 0
    assert out == f"{EXAMPLES}: 9 templates, all valid\n"
    assert err == ""


def test_check_prints_one_problem_per_line_and_exits_2(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    bad = write(
        tmp_path,
        "bad.yaml",
        """\
version: 1
defaults:
  voice: robot
templates:
  - name: a
    event: order.created
    phone: "{{ data.phone }}"
    speed: 9
    script: [{say: "{{ x"}]
  - name: b
    event: order.created
    script: [{say: hi}]
""",
    )

    code, out, err = run(capsys, "check", bad)

    assert code == 2
    assert out == ""
    lines = err.splitlines()
    assert len(lines) == 3
    assert any(line.startswith("defaults: voice: ") for line in lines)
    assert any(line.startswith("a: speed: ") for line in lines)
    assert any(line.startswith("b: set exactly one of phone and extension") for line in lines)


def test_check_a_yaml_syntax_error(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    bad = write(tmp_path, "bad.yaml", "version: 1\ntemplates: [\n")

    code, _, err = run(capsys, "check", bad)

    assert code == 2
    assert err.startswith(f"{bad}:3:1: not valid YAML")


def test_check_a_missing_file(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    code, _, err = run(capsys, "check", tmp_path / "nope.yaml")

    assert code == 2
    assert err.startswith(f"{tmp_path / 'nope.yaml'}: cannot read")


# render


def test_render_a_call(capsys: pytest.CaptureFixture[str]) -> None:
    decision = render(
        capsys, EXAMPLES, EVENTS / "order_created.json", "--type", "order.created", "--now", DAY
    )

    assert decision["decision"] == "call"
    assert decision["template"] == "order_confirmation"
    assert decision["event"]["type"] == "order.created"
    assert decision["request"]["path"] == "/api/auto_call/execute_by_phone"
    assert decision["request"]["json"]["phone_number_list"] == ["0909090909"]
    assert "tổng giá trị 455.000 đồng" in decision["request"]["json"]["variables"]


@pytest.mark.parametrize(
    ("event", "argv", "expected"),
    [
        (HARAVAN, ["--type", "haravan.orders.create"], {"decision": "call"}),
        (HARAVAN, ["--type", "nobody.listens"], {"decision": "skip", "reason": "no_template"}),
        (
            Path(__file__).parents[1]
            / "samples"
            / "woocommerce_rest-v3_order_retrieve-response.json",
            ["--type", "woocommerce.order.created"],
            {"decision": "fail", "error": {"code": "invalid_phone"}},
        ),
    ],
)
def test_render_exits_0_for_any_decision(
    capsys: pytest.CaptureFixture[str], event: Path, argv: list[str], expected: dict[str, Any]
) -> None:
    decision = render(capsys, EXAMPLES, event, *argv, "--now", DAY)

    for key, value in expected.items():
        if isinstance(value, dict):
            assert decision[key].items() >= value.items()
        else:
            assert decision[key] == value


def test_render_an_invalid_event_is_a_fail_decision(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    empty = write(tmp_path, "empty.json", b"")

    decision = render(capsys, EXAMPLES, empty, "--type", "order.created")

    assert decision["decision"] == "fail"
    assert decision["template"] is None
    assert decision["error"] == {"code": "invalid_event", "message": "empty body"}
    assert decision["event"]["type"] is None
    assert decision["event"]["id"]


def test_render_takes_the_type_from_the_routing_key(capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["--routing-key", "order.created", "--now", DAY]

    decision = render(capsys, EXAMPLES, EVENTS / "order_created.json", *argv)

    assert decision["event"]["type"] == "order.created"
    assert decision["decision"] == "call"


def test_render_a_cloudevent_by_content_type(capsys: pytest.CaptureFixture[str]) -> None:
    event = EVENTS / "cloudevent_order_created.json"

    decision = render(
        capsys, EXAMPLES, event, "--content-type", "application/cloudevents+json", "--now", DAY
    )

    assert decision["event"] == {
        "id": "5f0e3c1e-8c4b-4e43-9d6f-0b1f2d6c9a10",
        "type": "order.created",
        "source": "/shop/checkout",
    }
    assert decision["decision"] == "call"


def test_render_reads_the_event_from_stdin(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    body = (EVENTS / "order_created.json").read_bytes()
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(body)))

    decision = render(capsys, EXAMPLES, "-", "--type", "order.created", "--now", DAY)

    assert decision["decision"] == "call"
    assert decision["request"]["json"]["name"] == "Xác nhận đơn DH-240915-0042"


def test_header_reaches_event_headers(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    templates = write(tmp_path, "t.yaml", HEADER_TEMPLATES)
    argv = ["--type", "x", "--header", "x-phone=0912345678", "--header", "tenant=shop=1"]

    decision = render(capsys, templates, EVENTS / "order_flagged.json", *argv)

    assert decision["request"]["json"]["phone_number_list"] == ["0912345678"]
    assert decision["request"]["json"]["variables"] == ["tenant shop=1"]


@pytest.mark.parametrize(
    ("now", "until"),
    [
        (NIGHT, "2026-11-28T08:00:00+07:00"),
        ("2026-11-27T22:00:00", "2026-11-28T08:00:00+07:00"),  # no offset: local time
        ("2026-11-27T15:00:00+00:00", "2026-11-28T08:00:00+07:00"),
        ("2026-11-28T05:00:00+07:00", "2026-11-28T08:00:00+07:00"),
    ],
)
def test_now_outside_the_window_defers(
    capsys: pytest.CaptureFixture[str], now: str, until: str
) -> None:
    decision = render(capsys, EXAMPLES, HARAVAN, "--type", "haravan.orders.create", "--now", now)

    assert decision == {
        "decision": "defer",
        "template": "haravan_order_confirmation",
        "until": until,
        "reason": "call_window",
        "event": decision["event"],
    }


def test_now_inside_the_window_turns_the_defer_into_a_call(
    capsys: pytest.CaptureFixture[str],
) -> None:
    argv: list[str | Path] = [EXAMPLES, HARAVAN, "--type", "haravan.orders.create"]

    night = render(capsys, *argv, "--now", NIGHT)
    day = render(capsys, *argv, "--now", DAY)

    assert night["decision"] == "defer"
    assert day["decision"] == "call"
    assert day["event"] == night["event"]


def test_render_with_broken_templates_exits_2(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    broken = write(tmp_path, "t.yaml", "version: 1\ntemplates: []\n")

    code, out, err = run(capsys, "render", broken, EVENTS / "order_created.json")

    assert code == 2
    assert out == ""
    assert err == "templates: List should have at least 1 item after validation, not 0\n"


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--header", "no-equals-sign"], "--header 'no-equals-sign': expected K=V"),
        (["--header", "=value"], "--header '=value': expected K=V"),
        (["--now", "tomorrow"], "--now 'tomorrow': not an ISO-8601 time"),
    ],
)
def test_render_with_bad_arguments_exits_2(
    capsys: pytest.CaptureFixture[str], argv: list[str], message: str
) -> None:
    code, out, err = run(capsys, "render", EXAMPLES, EVENTS / "order_created.json", *argv)

    assert (code, out, err) == (2, "", message + "\n")


def test_render_a_missing_event_file_exits_2(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    code, out, err = run(capsys, "render", EXAMPLES, tmp_path / "nope.json")

    assert (code, out) == (2, "")
    assert err.startswith(f"{tmp_path / 'nope.json'}: cannot read")


@pytest.mark.parametrize("argv", [[], ["frobnicate"], ["render", str(EXAMPLES)]])
def test_usage_errors_exit_2(capsys: pytest.CaptureFixture[str], argv: list[str]) -> None:
    code, out, err = run(capsys, *argv)

    assert code == 2
    assert out == ""
    assert "usage: autocall-bridge" in err


# the installed console script


def test_console_script_renders_from_stdin() -> None:
    script = Path(sys.executable).parent / "autocall-bridge"
    body = (EVENTS / "order_created.json").read_bytes()

    done = subprocess.run(
        [script, "render", EXAMPLES, "-", "--type", "order.created", "--now", DAY],
        input=body,
        capture_output=True,
        timeout=30,
        check=False,
    )

    assert done.returncode == 0, done.stderr.decode()
    decision = orjson.loads(done.stdout)
    assert decision["decision"] == "call"
    assert decision["request"]["json"]["phone_number_list"] == ["0909090909"]
    assert done.stdout.decode().count("\n") > 1  # indented for people
