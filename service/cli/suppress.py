"""`autocall-bridge suppress add | remove | list | import`: the suppression list by hand.

With Redis the command changes the store itself; with memory:// the list lives in the running
service's process, so the command publishes control events for it to apply."""

from __future__ import annotations

import argparse
import asyncio
import csv
import io
import logging
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aio_pika
import orjson

from ..amqp.connection import connect_once
from ..errors import AutocallError, ConfigError, InvalidPhone
from ..settings import Settings, load_settings
from ..store import Store, Suppression, open_store
from ..suppression.changes import ADD, REMOVE, listed_phone, masked, until_of
from ..templates.filters import LOCAL_TZ, mask

CHUNK = 500  # entries written at once to Redis (its commands go in one pipeline a loop turn)


def add_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """The `suppress` command and its four actions."""
    parser = commands.add_parser("suppress", help="the suppression list: numbers never called")
    actions = parser.add_subparsers(required=True, metavar="ACTION")
    add = actions.add_parser("add", help="put numbers on the list")
    add.add_argument("phones", nargs="+", metavar="PHONE")
    imported = actions.add_parser("import", help="put a file's numbers on the list")
    imported.add_argument("file", type=Path, help="one number a line, or CSV with a phone column")
    for action in (add, imported):
        action.add_argument("--reason", default="", help="why (kept with each number)")
        action.add_argument("--until", metavar="ISO-8601", help="called again after this time")
        action.set_defaults(command=_add)
    remove = actions.add_parser("remove", help="take numbers off the list")
    remove.add_argument("phones", nargs="+", metavar="PHONE")
    remove.set_defaults(command=_remove)
    listing = actions.add_parser("list", help="the numbers on the list (needs Redis)")
    listing.add_argument("--json", action="store_true", help="one JSON object a line")
    listing.add_argument("--unmasked", action="store_true", help="whole numbers, not 091****678")
    listing.set_defaults(command=_list)


def _add(args: argparse.Namespace) -> int:
    rows = _rows(args.file) if getattr(args, "file", None) else [{"phone": p} for p in args.phones]
    now = datetime.now(UTC).timestamp()
    entries = [_entry(row, args.reason, args.until, now) for row in rows]
    _check_all(entries)
    done = _apply(load_settings(), [e for e in entries if isinstance(e, Suppression)], add=True)
    print(done)
    return 0


def _remove(args: argparse.Namespace) -> int:
    entries = [_entry({"phone": phone}, "", None, 0.0) for phone in args.phones]
    _check_all(entries)
    done = _apply(load_settings(), [e for e in entries if isinstance(e, Suppression)], add=False)
    print(done)
    return 0


def _list(args: argparse.Namespace) -> int:
    settings = load_settings()
    if not settings.store_url.get_secret_value().startswith("redis"):
        raise ConfigError(
            ["AUTOCALL_STORE_URL: with memory:// the list lives in the service's process; "
             "listing it needs the shared store (redis://…)"]
        )  # fmt: skip
    for entry in asyncio.run(_with_store(settings, _suppressions)):
        shown = entry.phone if args.unmasked else masked(entry.phone)
        record = {"phone": shown, "reason": entry.reason, "until": _local(entry.until)}
        record["added"] = _local(entry.added)
        print(orjson.dumps(record).decode() if args.json else _line(record))
    return 0


async def _suppressions(store: Store) -> list[Suppression]:
    return await store.suppressions()


def _line(record: dict[str, Any]) -> str:
    return "  ".join(str(record[name] or "-") for name in ("phone", "reason", "until", "added"))


def _local(moment: float | None) -> str | None:
    return datetime.fromtimestamp(moment, LOCAL_TZ).isoformat() if moment is not None else None


def _rows(path: Path) -> list[dict[str, str]]:
    """A file's numbers: CSV with a `phone` column (and optional reason, until), or one a line."""
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError([f"{path}: cannot read: {exc}"]) from None
    lines = [line for line in text.splitlines() if line.strip() and not line.startswith("#")]
    if lines and "phone" in [cell.strip().lower() for cell in lines[0].split(",")]:
        reader = csv.DictReader(io.StringIO("\n".join(lines)))
        rows = [
            {(k or "").strip().lower(): (v or "").strip() for k, v in r.items()} for r in reader
        ]
        return rows
    return [{"phone": line.strip()} for line in lines]


def _entry(row: dict[str, str], reason: str, until: str | None, now: float) -> Suppression | str:
    """The list's entry for `row`, or what is wrong with it (the number masked)."""
    phone = row.get("phone", "")
    try:
        number = listed_phone(phone)
        ends = until_of(row.get("until") or until)
    except AutocallError as exc:
        where = f"{mask(phone)}: " if isinstance(exc, InvalidPhone) else ""
        return f"{where}{exc.message}"
    return Suppression(number, row.get("reason") or reason, ends, now)


def _check_all(entries: list[Suppression | str]) -> None:
    problems = [entry for entry in entries if isinstance(entry, str)]
    if problems:
        raise ConfigError(problems)
    if not entries:
        raise ConfigError(["no phone numbers given"])


def _apply(settings: Settings, entries: list[Suppression], *, add: bool) -> str:
    if settings.store_url.get_secret_value().startswith("redis"):
        done: str = asyncio.run(_with_store(settings, lambda s: _write(s, entries, add=add)))
        return done
    return asyncio.run(_publish(settings, entries, add=add))


async def _with_store(settings: Settings, work: Any) -> Any:
    url = settings.store_url.get_secret_value()
    try:
        async with open_store(url, settings.store_prefix, settings.idempotency_ttl) as store:
            return await work(store)
    except AutocallError as exc:  # the store did not answer
        raise ConfigError([f"AUTOCALL_STORE_URL: {exc.message}"]) from None


async def _write(store: Store, entries: list[Suppression], *, add: bool) -> str:
    removed = 0
    for start in range(0, len(entries), CHUNK):  # a chunk's commands share round trips
        chunk = entries[start : start + CHUNK]
        if add:
            await asyncio.gather(*(store.suppress(entry) for entry in chunk))
        else:
            removed += sum(await asyncio.gather(*(store.unsuppress(e.phone) for e in chunk)))
    if add:
        return f"added {len(entries)} to the suppression list"
    return f"removed {removed} from the suppression list ({len(entries) - removed} were not on it)"


async def _publish(settings: Settings, entries: list[Suppression], *, add: bool) -> str:
    """Control events for the running service (memory://: its list is in its process)."""
    logging.getLogger("aiormq").setLevel(logging.CRITICAL)
    kind = ADD if add else REMOVE
    async with connect_once(settings.amqp_urls) as connection:
        channel = await connection.channel(publisher_confirms=True)
        exchange = await channel.get_exchange(settings.input_exchange, ensure=True)
        for entry in entries:
            await exchange.publish(_event(kind, entry), routing_key=kind)
    return f"published {len(entries)} {kind} events to {settings.input_exchange}"


def _event(kind: str, entry: Suppression) -> aio_pika.Message:
    data = {"phone": entry.phone, "reason": entry.reason, "until": _local(entry.until)}
    event_id = str(uuid.uuid4())
    body = {
        "specversion": "1.0",
        "id": event_id,
        "type": kind,
        "source": "autocall-bridge/suppress",
        "time": datetime.now(UTC).isoformat(),
        "datacontenttype": "application/json",
        "data": data,
    }
    return aio_pika.Message(
        orjson.dumps(body),
        content_type="application/cloudevents+json",
        delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
        message_id=event_id,
        type=kind,
    )
