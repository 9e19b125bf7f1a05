"""Reading the accounts file: YAML to models, secrets read from files or the environment, the
failover lists checked; every problem one line naming its place."""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from pydantic import SecretStr, ValidationError

from ..errors import ConfigError
from ..settings import DEFAULT_ACCOUNT, Settings
from ..templates import Template, Templates
from .models import BASE_URLS, SECRETS, Account, AccountsFile, Menu

REQUIRED = {"stringee": ("key_sid", "key_secret")}


@dataclass(frozen=True, slots=True)
class AccountSpec:
    """One account as the service uses it: its secrets read."""

    name: str
    provider: str
    base_url: str
    tts_daily_limit: int
    cid: str | None = None
    secrets: dict[str, SecretStr] = field(default_factory=dict)
    from_number: str | None = None
    voices: dict[str, str] = field(default_factory=dict)
    recordings: dict[str, str] = field(default_factory=dict)
    menus: dict[str, Menu] = field(default_factory=dict)

    def secret(self, name: str) -> str | None:
        """A secret's value, or None when the account has none of that name."""
        value = self.secrets.get(name)
        return value.get_secret_value() if value is not None else None

    def __repr__(self) -> str:  # never the secrets
        return f"AccountSpec({self.name!r}, provider={self.provider!r}, base_url={self.base_url!r})"


@dataclass(frozen=True, slots=True)
class Accounts:
    """Every account, and where each fails over to."""

    specs: dict[str, AccountSpec]
    failover: dict[str, tuple[str, ...]]
    source: str

    def __iter__(self) -> Iterator[AccountSpec]:
        return iter(self.specs.values())

    def __len__(self) -> int:
        return len(self.specs)

    def chain(self, name: str) -> tuple[str, ...]:
        """`name`, then the accounts it fails over to, in order."""
        return (name, *self.failover.get(name, ()))

    @property
    def secrets(self) -> list[str]:
        """Values no log line may show."""
        return [v.get_secret_value() for spec in self for v in spec.secrets.values()]

    def uses(self, provider: str) -> bool:
        return any(spec.provider == provider for spec in self)


def load(settings: Settings) -> Accounts:
    """The accounts of AUTOCALL_ACCOUNTS_FILE; without it, `default` from the §2 settings."""
    path = settings.accounts_file
    if path is None:
        return _default(settings)
    try:
        document = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError([f"{path}: cannot read: {exc}"]) from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{path}:{mark.line + 1}:{mark.column + 1}" if mark else str(path)
        raise ConfigError([f"{where}: not valid YAML: {getattr(exc, 'problem', exc)}"]) from None
    try:
        model = AccountsFile.model_validate(document)
    except ValidationError as exc:
        raise ConfigError([f"{path}: {_where(error)}" for error in exc.errors()]) from None
    problems: list[str] = []
    specs = {name: _spec(name, spec, settings, problems) for name, spec in model.accounts.items()}
    problems = [f"{path}: {problem}" for problem in problems + _failover_problems(model)]
    stringee = any(spec.provider == "stringee" for spec in specs.values())
    if settings.webhook_public_url is None and stringee:
        problems.append("AUTOCALL_WEBHOOK_PUBLIC_URL: required when an account uses Stringee")
    if problems:
        raise ConfigError(problems)
    failover = {name: tuple(chain) for name, chain in model.failover.items()}
    return Accounts(specs, failover, str(path))


def _default(settings: Settings) -> Accounts:
    secrets = {
        name: value
        for name, value in (("api_key", settings.api_key), ("api_token", settings.api_token))
        if value is not None
    }
    spec = AccountSpec(
        DEFAULT_ACCOUNT, "omicall", settings.api_base_url, settings.tts_daily_limit, None, secrets
    )
    return Accounts({DEFAULT_ACCOUNT: spec}, {}, "AUTOCALL_API_KEY")


def _spec(name: str, account: Account, settings: Settings, problems: list[str]) -> AccountSpec:
    secrets: dict[str, SecretStr] = {}
    for secret in SECRETS:
        try:
            value = _secret(account, secret)
        except ValueError as exc:
            problems.append(f"accounts.{name}.{secret}: {exc}")
            continue
        if value is not None:
            secrets[secret] = value
    problems += [f"accounts.{name}.{p}" for p in _missing(account, secrets)]
    limit = account.tts_daily_limit
    return AccountSpec(
        name=name,
        provider=account.provider,
        base_url=account.base_url or BASE_URLS[account.provider],
        tts_daily_limit=settings.tts_daily_limit if limit is None else limit,
        cid=account.cid,
        secrets=secrets,
        from_number=account.from_number,
        voices=dict(account.voices),
        recordings=dict(account.recordings),
        menus=dict(account.menus),
    )


def _secret(account: Account, name: str) -> SecretStr | None:
    """The secret given as a value, a file or an environment variable (only one of them)."""
    given: SecretStr | None = getattr(account, name)
    path: str | None = getattr(account, f"{name}_file")
    variable: str | None = getattr(account, f"{name}_env")
    if sum(x is not None for x in (given, path, variable)) > 1:
        raise ValueError(f"give one of {name}, {name}_file and {name}_env")
    if path is not None:
        try:
            given = SecretStr(Path(path).read_text(encoding="utf-8").strip())
        except OSError as exc:
            raise ValueError(f"cannot read {path}: {exc.strerror}") from None
    elif variable is not None:
        if not os.environ.get(variable):
            raise ValueError(f"the environment variable {variable} is not set")
        given = SecretStr(os.environ[variable].strip())
    if given is not None and not given.get_secret_value():
        raise ValueError("is empty (the value is not shown)")
    return given


def _missing(account: Account, secrets: dict[str, SecretStr]) -> list[str]:
    if account.provider == "omicall":
        if ("api_key" in secrets) == ("api_token" in secrets):
            return ["api_key: set exactly one of api_key and api_token (or their _file, _env)"]
        return []
    missing = [
        f"{name}: required for Stringee" for name in REQUIRED["stringee"] if name not in secrets
    ]
    if account.from_number is None:
        missing.append("from_number: required for Stringee (the caller line)")
    return missing


def _failover_problems(model: AccountsFile) -> list[str]:
    problems = []
    for name, chain in model.failover.items():
        if name not in model.accounts:
            problems.append(f"failover.{name}: no such account")
        for n, target in enumerate(chain):
            if target not in model.accounts:
                problems.append(f"failover.{name}[{n}]: no such account: {target}")
            elif target == name or chain.index(target) != n:
                problems.append(f"failover.{name}[{n}]: {target} is already in the chain")
    return problems


def check(accounts: Accounts, templates: Templates) -> list[str]:
    """What a template cannot do on an account it may reach: a fixed `account:` that does not
    exist, a `recording` or `ivr_menu` a Stringee account in its chain does not map."""
    problems: list[str] = []
    for template in templates:
        source = template.spec.account
        if source is None or _fixed(source):
            name = source or DEFAULT_ACCOUNT
            if name not in accounts.specs:
                problems.append(f"{template.name}: account: no such account: {name}")
                continue
            reachable = accounts.chain(name)
        else:  # an expression: any account may be chosen
            reachable = tuple(accounts.specs)
        for name in reachable:
            problems += _unmapped(template, accounts.specs[name])
    return list(dict.fromkeys(problems))


def _fixed(source: str) -> bool:
    return "{{" not in source and "{%" not in source


def _unmapped(template: Template, spec: AccountSpec) -> list[str]:
    if spec.provider != "stringee":
        return []
    problems = []
    for n, step in enumerate(template.spec.script):
        if step.recording is not None and step.recording not in spec.recordings:
            problems.append(
                f"{template.name}: script[{n}].recording: {step.recording} has no mapping in "
                f"accounts.{spec.name}.recordings"
            )
        if step.ivr_menu is not None and step.ivr_menu not in spec.menus:
            problems.append(
                f"{template.name}: script[{n}].ivr_menu: {step.ivr_menu} has no mapping in "
                f"accounts.{spec.name}.menus"
            )
    return problems


def _where(error: Any) -> str:
    """'accounts.shop-a.provider: …' from a pydantic error location."""
    loc = [str(part) for part in error["loc"] if part != "[key]"]
    message = str(error["msg"]).removeprefix("Value error, ")
    if error["type"] == "extra_forbidden":
        message = "unknown key"
    elif error["type"] == "string_pattern_mismatch":
        message = f"not an account name (a-z, 0-9, _ and -, 1 to 40): {error['input']!r}"
    elif error["type"] == "literal_error" and loc[-1:] == ["provider"]:
        message = f"unknown provider {error['input']!r} (omicall | stringee)"
    return f"{'.'.join(loc) or 'file'}: {message}"
