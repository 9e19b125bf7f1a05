"""Logging: one JSON object per line in containers, readable text on a terminal; no secrets."""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import orjson

from . import tracing

log = logging.getLogger("autocall")
_STANDARD = set(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message", "asctime"}
_QUERY_SECRET = re.compile(r"(?i)(apikey|api_key|token|access_token)=[^&\s\"']+")
_URL_PASSWORD = re.compile(r"(://[^:/@\s]*:)[^@\s]+@")


class Redactor(logging.Filter):
    """Blanks the key, the token and credentials in URLs, whoever logs them (libraries too)."""

    def __init__(self, secrets: list[str]) -> None:
        super().__init__()
        self._secrets = [secret for secret in secrets if len(secret) >= 4]

    def redact(self, text: str) -> str:
        for secret in self._secrets:
            if secret in text:
                text = text.replace(secret, "***")
        if "://" in text:  # [user]:password@ in URLs
            text = _URL_PASSWORD.sub(r"\1***@", text)
        if "=" in text:  # the per-event line has neither: the regular expressions are the cost
            text = _QUERY_SECRET.sub(r"\1=***", text)
        return text

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        redacted = self.redact(message)
        if redacted != message:
            record.msg, record.args = redacted, None
        if record.exc_info and not record.exc_text:  # the formatters print exc_text
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:  # an exception's text may carry a URL with the key
            record.exc_text = self.redact(record.exc_text)
        for key, value in list(vars(record).items()):  # and so may extra fields
            if key not in _STANDARD and isinstance(value, str):
                setattr(record, key, self.redact(value))
        return True


class TraceIds(logging.Filter):
    """`trace_id` and `span_id` of the span a record was logged in, while tracing is on."""

    def filter(self, record: logging.LogRecord) -> bool:
        ids = tracing.log_ids()
        if ids is not None:
            record.trace_id, record.span_id = ids
        return True


class JsonFormatter(logging.Formatter):
    """time, level, logger, message, then the record's extra fields (event_id, template, …)."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        entry |= {k: v for k, v in vars(record).items() if k not in _STANDARD and v is not None}
        if exception := _exception(self, record):
            entry["exception"] = exception
        return orjson.dumps(entry, default=str).decode()


class TextFormatter(logging.Formatter):
    """'15:04:05 INFO  event accepted  event_id=… template=…' for people at a terminal."""

    def format(self, record: logging.LogRecord) -> str:
        clock = datetime.fromtimestamp(record.created).strftime("%H:%M:%S")
        extra = " ".join(
            f"{k}={v}" for k, v in vars(record).items() if k not in _STANDARD and v is not None
        )
        line = f"{clock} {record.levelname:<7} {record.getMessage()}"
        line = f"{line}  {extra}" if extra else line
        if exception := _exception(self, record):
            line += "\n" + exception
        return line


def _exception(formatter: logging.Formatter, record: logging.LogRecord) -> str | None:
    """The record's traceback: the Redactor's redacted text when it ran."""
    if record.exc_text:
        return record.exc_text
    return formatter.formatException(record.exc_info) if record.exc_info else None


def configure(level: str = "INFO", fmt: str = "auto", secrets: list[str] | None = None) -> None:
    """Logging for the whole process: `fmt` auto is text on a terminal, JSON otherwise."""
    use_json = fmt == "json" or (fmt == "auto" and not sys.stderr.isatty())
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if use_json else TextFormatter())
    handler.addFilter(TraceIds())
    handler.addFilter(Redactor(secrets or []))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # Libraries that print URLs or chatter at INFO: the token request's URL carries the key.
    logging.getLogger("aiohttp.access").setLevel(max(logging.WARNING, logging.getLevelName(level)))
    # The AMQP client logs a broker restart as several tracebacks; the service says it in two
    # lines of its own ("broker connection lost", "restored"). DEBUG shows the client's view.
    for name in ("aiormq", "aio_pika"):
        logging.getLogger(name).setLevel(logging.DEBUG if level == "DEBUG" else logging.CRITICAL)


def redact_url(url: str, secrets: Iterable[str] = ()) -> str:
    """The URL fit to print: no credentials, query or fragment, its last path segment (where the
    service's webhook token goes) and every given secret shown as `***`."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "***"
    bare = parts.path.rstrip("/")
    head, sep, last = bare.rpartition("/")
    if last and not sep:  # not a URL: nothing says which part is secret
        return "***"
    # A trailing slash stays: a registration that differs from ours only by it shows why.
    path = f"{head}/***{parts.path[len(bare) :]}" if last else parts.path
    shown = urlunsplit((parts.scheme, parts.netloc.rpartition("@")[2], path, "", ""))
    for secret in secrets:
        if secret:
            shown = shown.replace(secret, "***")
    return shown
