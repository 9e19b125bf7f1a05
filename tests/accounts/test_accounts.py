"""The accounts file: read, validated with the templates, one line per problem naming its place."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client import generate_latest

from service.accounts import check, load
from service.cli.main import main
from service.errors import ConfigError
from service.metrics import Metrics
from service.settings import Settings
from tests.conftest import EXAMPLES, templates_of

OMICALL = {"provider": "omicall", "base_url": "http://127.0.0.1:1", "api_key": "key-of-a"}
STRINGEE = {
    "provider": "stringee",
    "key_sid": "SK-1",
    "key_secret": "secret-1",
    "from_number": "842471008888",
    "recordings": {"rec-1": "https://cdn.example/greeting.mp3"},
    "menus": {"ivr-1": {"say": "Bấm 1 để xác nhận", "max_digits": 1, "timeout": "8s"}},
}


def settings_for(tmp_path: Path, document: Any, **overrides: Any) -> Settings:
    path = tmp_path / "accounts.yaml"
    path.write_text(document if isinstance(document, str) else yaml.safe_dump(document))
    values: dict[str, Any] = {"accounts_file": path, "webhook_public_url": "https://hooks.shop.vn"}
    return Settings(**(values | overrides))


def problems(tmp_path: Path, document: Any, **overrides: Any) -> list[str]:
    with pytest.raises(ConfigError) as raised:
        load(settings_for(tmp_path, document, **overrides))
    return raised.value.problems


def test_without_a_file_there_is_one_default_account_from_the_settings() -> None:
    accounts = load(Settings(api_key="the-key", api_base_url="http://omi.test", tts_daily_limit=9))

    [spec] = accounts
    assert (spec.name, spec.provider, spec.base_url) == ("default", "omicall", "http://omi.test")
    assert spec.secret("api_key") == "the-key" and spec.tts_daily_limit == 9
    assert accounts.chain("default") == ("default",)
    assert accounts.secrets == ["the-key"]


def test_a_file_with_two_accounts_and_a_failover(tmp_path: Path) -> None:
    key_file = tmp_path / "b-key"
    key_file.write_text("key-of-b\n")
    document = {
        "accounts": {
            "shop-a": OMICALL | {"cid": 842899959300, "tts_daily_limit": 100},
            "shop-b": {"provider": "omicall", "api_key_file": str(key_file)},
        },
        "failover": {"shop-a": ["shop-b"]},
    }

    accounts = load(settings_for(tmp_path, document))

    a, b = accounts.specs["shop-a"], accounts.specs["shop-b"]
    assert a.cid == "842899959300" and a.tts_daily_limit == 100
    assert b.secret("api_key") == "key-of-b" and b.tts_daily_limit == 3000
    assert b.base_url == "https://public-v1-stg.omicall.com"
    assert accounts.chain("shop-a") == ("shop-a", "shop-b")
    assert accounts.chain("shop-b") == ("shop-b",)
    assert sorted(accounts.secrets) == ["key-of-a", "key-of-b"]
    assert "key-of" not in repr(a) + repr(accounts.specs)  # never shown


def test_a_secret_from_the_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SHOP_A_KEY", "from-env")
    document = {"accounts": {"shop-a": {"provider": "omicall", "api_key_env": "SHOP_A_KEY"}}}

    assert load(settings_for(tmp_path, document)).specs["shop-a"].secret("api_key") == "from-env"


@pytest.mark.parametrize(
    ("document", "expected"),
    [
        (
            {"accounts": {"shop-a": OMICALL | {"provider": "twilio"}}},
            "accounts.shop-a.provider: unknown provider 'twilio' (omicall | stringee)",
        ),
        (
            {"accounts": {"Shop A": OMICALL}},
            "accounts.Shop A: not an account name (a-z, 0-9, _ and -, 1 to 40): 'Shop A'",
        ),
        (
            {"accounts": {"shop-a": OMICALL}, "failover": {"shop-a": ["shop-z"]}},
            "failover.shop-a[0]: no such account: shop-z",
        ),
        (
            {"accounts": {"shop-a": OMICALL}, "failover": {"shop-x": ["shop-a"]}},
            "failover.shop-x: no such account",
        ),
        (
            {"accounts": {"shop-a": OMICALL}, "failover": {"shop-a": ["shop-a"]}},
            "failover.shop-a[0]: shop-a is already in the chain",
        ),
        (
            {"accounts": {"shop-a": OMICALL | {"colour": "red"}}},
            "accounts.shop-a.colour: unknown key",
        ),
        (
            {"accounts": {"shop-a": {"provider": "omicall"}}},
            "accounts.shop-a.api_key: set exactly one of api_key and api_token "
            "(or their _file, _env)",
        ),
        (
            {"accounts": {"shop-a": OMICALL | {"api_key_file": "/nope/key"}}},
            "accounts.shop-a.api_key: give one of api_key, api_key_file and api_key_env",
        ),
        (
            {"accounts": {"shop-a": {"provider": "omicall", "api_key_file": "/nope/key"}}},
            "accounts.shop-a.api_key: cannot read /nope/key: No such file or directory",
        ),
        (
            {"accounts": {"shop-b": STRINGEE | {"key_secret": None, "from_number": None}}},
            "accounts.shop-b.key_secret: required for Stringee",
        ),
        (
            {"accounts": {}},
            "accounts: Dictionary should have at least 1 item after validation, not 0",
        ),
    ],
)
def test_a_bad_file_names_the_place(tmp_path: Path, document: Any, expected: str) -> None:
    found = problems(tmp_path, document)

    assert f"{tmp_path / 'accounts.yaml'}: {expected}" in found, found


def test_not_yaml_names_the_line(tmp_path: Path) -> None:
    [problem] = problems(tmp_path, "accounts:\n  shop-a: [\n")

    assert problem.startswith(f"{tmp_path / 'accounts.yaml'}:3:")


def test_stringee_needs_the_public_webhook_url(tmp_path: Path) -> None:
    found = problems(tmp_path, {"accounts": {"shop-b": STRINGEE}}, webhook_public_url=None)

    assert found == ["AUTOCALL_WEBHOOK_PUBLIC_URL: required when an account uses Stringee"]


def test_a_secret_is_never_in_a_problem(tmp_path: Path) -> None:
    account = OMICALL | {"api_key": "super-secret-value", "api_token": "token-secret-value"}

    found = problems(tmp_path, {"accounts": {"shop-a": account, "Bad": account}})

    assert found and not any("secret-value" in problem for problem in found)


TEMPLATES = """
version: 1
templates:
  - name: fixed
    event: order.created
    account: shop-a
    phone: "{{ data.phone }}"
    script:
      - say: "Xin chào"
      - recording: rec-1
      - ivr_menu: ivr-2
  - name: chosen
    event: order.paid
    account: "{{ data.shop }}"
    phone: "{{ data.phone }}"
    script:
      - recording: rec-9
  - name: nowhere
    event: order.lost
    account: shop-z
    phone: "{{ data.phone }}"
    script:
      - say: "Xin chào"
"""


def test_check_refuses_what_a_failover_account_cannot_play(tmp_path: Path) -> None:
    document = {
        "accounts": {"shop-a": OMICALL, "shop-b": STRINGEE},
        "failover": {"shop-a": ["shop-b"]},
    }
    accounts = load(settings_for(tmp_path, document))

    found = check(accounts, templates_of(TEMPLATES))

    assert found == [
        "fixed: script[2].ivr_menu: ivr-2 has no mapping in accounts.shop-b.menus",
        "chosen: script[0].recording: rec-9 has no mapping in accounts.shop-b.recordings",
        "nowhere: account: no such account: shop-z",
    ]


def test_without_a_file_a_template_may_not_name_another_account() -> None:
    accounts = load(Settings(api_key="k"))
    text = TEMPLATES.split("  - name: chosen", maxsplit=1)[0]

    assert check(accounts, templates_of(text)) == ["fixed: account: no such account: shop-a"]


def check_command(accounts: Path | dict[str, Any], tmp_path: Path) -> int:
    """`check examples/templates.yaml --accounts FILE`'s exit code (a dict: written to FILE)."""
    if isinstance(accounts, dict):
        path = tmp_path / "accounts.yaml"
        path.write_text(yaml.safe_dump(accounts))
        accounts = path
    with pytest.raises(SystemExit) as exit_:
        main(["check", str(EXAMPLES / "templates.yaml"), "--accounts", str(accounts)])
    return int(exit_.value.code or 0)


def test_the_example_accounts_file_is_valid_with_the_example_templates(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    for name in ("OMICALL_API_KEY", "STRINGEE_KEY_SID", "STRINGEE_KEY_SECRET"):
        monkeypatch.setenv(f"DEMO_{name}", "demo")
    monkeypatch.setenv("DEMO_STRINGEE_SIGNING_SECRET", "demo")
    monkeypatch.setenv("AUTOCALL_WEBHOOK_PUBLIC_URL", "http://127.0.0.1:8081")

    assert check_command(EXAMPLES / "accounts.yaml", tmp_path) == 0
    assert "examples/accounts.yaml: 2 accounts, all valid" in capsys.readouterr().out


def test_check_fails_on_a_bad_accounts_file_with_one_line_each(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    document = {"accounts": {"shop-a": OMICALL}, "failover": {"shop-a": ["nope"]}}

    assert check_command(document, tmp_path) == 2
    assert capsys.readouterr().err.splitlines() == [
        f"{tmp_path / 'accounts.yaml'}: failover.shop-a[0]: no such account: nope",
    ]


def test_check_refuses_a_template_whose_account_does_not_exist(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert check_command({"accounts": {"shop-a": OMICALL}}, tmp_path) == 2
    assert "order_confirmation: account: no such account: default" in capsys.readouterr().err


def test_render_shows_the_account_a_template_chooses(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    templates = tmp_path / "templates.yaml"
    templates.write_text(TEMPLATES)
    event = tmp_path / "event.json"
    event.write_text('{"shop": "shop-b", "phone": "0912345678"}')

    with pytest.raises(SystemExit):
        main(["render", str(templates), str(event), "--type", "order.paid"])

    decision = json.loads(capsys.readouterr().out)
    assert (decision["decision"], decision["account"]) == ("call", "shop-b")


def test_an_accounts_file_without_default_leaves_no_default_series() -> None:
    """Dashboards list the accounts a file names: `default`'s series, started before the file
    is read, go when it has no such account; each named account's start at 0."""
    metrics = Metrics()
    metrics.accounts(["shop-a", "backup"])
    exposed = generate_latest(metrics.registry).decode()
    assert 'account="default"' not in exposed
    assert 'autocall_balance_failures_total{account="shop-a"} 0.0' in exposed
    assert 'autocall_account_held{account="backup",reason="balance_is_not_enough"} 0.0' in exposed
    assert metrics.unrouted == "none"
    metrics = Metrics()
    metrics.accounts(["default"])
    assert (
        'autocall_balance_failures_total{account="default"} 0.0'
        in generate_latest(metrics.registry).decode()
    )
