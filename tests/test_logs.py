"""service/logs.py: one JSON object per line, readable text, and no secret in either."""

from __future__ import annotations

import io
import logging
from collections.abc import Callable, Iterator
from datetime import datetime

import orjson
import pytest

from service.logs import JsonFormatter, Redactor, TextFormatter, configure

KEY = "omi-key-0123456789"
TOKEN = "eyJhbGciOiJIUzI1NiJ9.payload.sig"
Capture = Callable[..., tuple[logging.Logger, io.StringIO]]


@pytest.fixture
def capture(request: pytest.FixtureRequest) -> Iterator[Capture]:
    """A logger of its own writing to a string, as configure() sets up the root; removed after."""
    made: list[tuple[logging.Logger, logging.Handler]] = []

    def make(
        formatter: logging.Formatter | None = None, secrets: tuple[str, ...] = (KEY, TOKEN)
    ) -> tuple[logging.Logger, io.StringIO]:
        stream = io.StringIO()
        handler = logging.StreamHandler(stream)
        handler.setFormatter(formatter or JsonFormatter())
        handler.addFilter(Redactor(list(secrets)))
        logger = logging.getLogger(f"test.logs.{request.node.name}.{len(made)}")
        logger.addHandler(handler)
        logger.setLevel(logging.DEBUG)
        logger.propagate = False
        made.append((logger, handler))
        return logger, stream

    yield make
    for logger, handler in made:
        logger.removeHandler(handler)


def lines(stream: io.StringIO) -> list[dict[str, object]]:
    return [orjson.loads(line) for line in stream.getvalue().splitlines()]


# JSON lines


def test_json_line_has_time_level_logger_message_and_extra_fields(capture: Capture) -> None:
    logger, stream = capture()

    logger.info("event %s", "accepted", extra={"event_id": "e-1", "attempts": 1, "template": None})

    (entry,) = lines(stream)
    assert entry["level"] == "info"
    assert entry["logger"] == logger.name
    assert entry["message"] == "event accepted"
    assert entry["event_id"] == "e-1"
    assert entry["attempts"] == 1
    assert "template" not in entry  # None extras are left out
    assert isinstance(entry["time"], str)
    moment = datetime.fromisoformat(entry["time"])
    assert moment.utcoffset() is not None
    assert entry["time"].endswith("+00:00")
    assert {"args", "msg", "levelno", "pathname"}.isdisjoint(entry)


def test_json_is_one_line_per_record(capture: Capture) -> None:
    logger, stream = capture()

    logger.warning("two\nlines")
    logger.error("another")

    assert [entry["message"] for entry in lines(stream)] == ["two\nlines", "another"]
    assert [entry["level"] for entry in lines(stream)] == ["warning", "error"]


def test_json_extra_values_that_are_not_json_become_text(capture: Capture) -> None:
    logger, stream = capture()

    logger.info("x", extra={"when": datetime(2026, 11, 27, 10, 0), "path": object()})

    (entry,) = lines(stream)
    assert entry["when"] == "2026-11-27T10:00:00"
    assert str(entry["path"]).startswith("<object object")


def test_json_line_carries_the_exception(capture: Capture) -> None:
    logger, stream = capture()

    try:
        raise RuntimeError("boom")
    except RuntimeError:
        logger.exception("failed")

    (entry,) = lines(stream)
    assert entry["level"] == "error"
    assert "RuntimeError: boom" in str(entry["exception"])
    assert "Traceback" in str(entry["exception"])


def test_text_line_for_people(capture: Capture) -> None:
    logger, stream = capture(TextFormatter())

    logger.info("event %s", "accepted", extra={"event_id": "e-1", "template": "t"})

    line = stream.getvalue().rstrip("\n")
    assert " INFO    event accepted  " in line
    assert line.endswith("event_id=e-1 template=t")


# no secrets


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (f"key is {KEY}", "key is ***"),
        (f"Authorization: Bearer {TOKEN}", "Authorization: Bearer ***"),
        (
            "GET https://public-v1-stg.omicall.com/api/auth?apiKey=abc123 200",
            "GET https://public-v1-stg.omicall.com/api/auth?apiKey=*** 200",
        ),
        ("/api/auth?APIKEY=abc&x=1", "/api/auth?APIKEY=***&x=1"),
        ("url='/cb?access_token=t0k3n'", "url='/cb?access_token=***'"),
        (
            "connecting to amqp://autocall:s3cr3t@rabbit:5672/vhost",
            "connecting to amqp://autocall:***@rabbit:5672/vhost",
        ),
        ("amqps://u:p%40ss@host/", "amqps://u:***@host/"),
        ("redis://:redispass@redis:6379/0", "redis://:***@redis:6379/0"),
        (
            "nothing secret here: https://host/path?x=1",
            "nothing secret here: https://host/path?x=1",
        ),
    ],
)
def test_redact(text: str, expected: str) -> None:
    assert Redactor([KEY, TOKEN]).redact(text) == expected


def test_short_secrets_are_not_redacted_everywhere() -> None:
    # A three-character "secret" would blank every occurrence of common text.
    assert Redactor(["abc"]).redact("abcdef") == "abcdef"


def test_secret_in_message_arguments_is_blanked(capture: Capture) -> None:
    logger, stream = capture()

    logger.info("GET %s?apiKey=%s", "https://host/api/auth", KEY)

    (entry,) = lines(stream)
    assert entry["message"] == "GET https://host/api/auth?apiKey=***"
    assert KEY not in stream.getvalue()


def test_library_logger_lines_are_redacted_too(capture: Capture) -> None:
    logger, stream = capture(TextFormatter())

    logger.info(
        'HTTP Request: GET https://public-v1-stg.omicall.com/api/auth?apiKey=%s "HTTP/1.1 200 OK"',
        KEY,
    )

    assert KEY not in stream.getvalue()
    assert "apiKey=***" in stream.getvalue()


@pytest.mark.parametrize("formatter", [JsonFormatter(), TextFormatter()])
def test_secret_in_an_exception_is_blanked(capture: Capture, formatter: logging.Formatter) -> None:
    logger, stream = capture(formatter)

    try:
        raise ValueError(f"401 for url 'https://host/api/auth?apiKey={KEY}'")
    except ValueError:
        logger.exception("token request failed")

    assert KEY not in stream.getvalue()
    assert "apiKey=***" in stream.getvalue()


def test_secret_in_an_extra_field_is_blanked(capture: Capture) -> None:
    logger, stream = capture()

    logger.info("token", extra={"url": f"https://host/api/auth?apiKey={KEY}", "raw": TOKEN})

    (entry,) = lines(stream)
    assert entry["url"] == "https://host/api/auth?apiKey=***"
    assert entry["raw"] == "***"


def test_configure_installs_one_redacting_handler(capsys: pytest.CaptureFixture[str]) -> None:
    touched = [logging.getLogger(name) for name in ("", "aiohttp.access", "aiormq", "aio_pika")]
    saved = [(logger, logger.handlers[:], logger.level) for logger in touched]
    try:
        configure("INFO", "json", [KEY])
        logging.getLogger("test.logs.configure").info("key %s", KEY)
        logging.getLogger("test.logs.configure").debug("not shown")
        (handler,) = logging.getLogger().handlers
        library_level = logging.getLogger("aio_pika").level
    finally:
        for logger, handlers, level in saved:
            logger.handlers[:] = handlers
            logger.setLevel(level)

    assert isinstance(handler.formatter, JsonFormatter)
    (line,) = capsys.readouterr().err.splitlines()
    assert orjson.loads(line)["message"] == "key ***"
    assert library_level == logging.CRITICAL  # its reconnect tracebacks: the service logs its own
