"""Protobuf's wire format, the pieces encoder.py writes a span from: varints, length-delimited
fields, an attribute's value, and each attribute key with the values it keeps encoded."""

from __future__ import annotations

import struct

from opentelemetry.trace import Status, StatusCode

_DOUBLE = struct.Struct("<d")
VALUES = 64  # values of one key kept encoded, past which they are taken as each its own


class Unwritten(Exception):
    """What encoder.py leaves to the SDK's encoder: a value that is a sequence or bytes."""


def varint(number: int) -> bytes:
    if 0 <= number < 0x80:
        return bytes((number,))
    number &= 0xFFFF_FFFF_FFFF_FFFF  # an int64 below zero: ten bytes, two's complement
    out = bytearray()
    while number > 0x7F:
        out.append(number & 0x7F | 0x80)
        number >>= 7
    out.append(number)
    return bytes(out)


def field(tag: int, payload: bytes) -> bytes:
    """A length-delimited field (tag already shifted: `number << 3 | 2`)."""
    return bytes((tag,)) + varint(len(payload)) + payload


def any_value(value: object) -> bytes:
    """An AnyValue's bytes."""
    if isinstance(value, str):
        return field(0x0A, value.encode())
    if isinstance(value, bool):
        return b"\x10\x01" if value else b"\x10\x00"
    if isinstance(value, int):
        return b"\x18" + varint(value)
    if isinstance(value, float):
        return b"\x21" + _DOUBLE.pack(value)
    raise Unwritten  # a sequence or bytes


class Key:
    """An attribute's key, encoded once, and the values it had encoded with it while they are
    few (a status, a template, a URL); past `VALUES` its values are taken as each its own (an
    event's id) and written as they come, around the key's bytes."""

    __slots__ = ("named", "numbers", "texts")

    def __init__(self, key: str) -> None:
        self.named = field(0x0A, key.encode())  # KeyValue.key (1)
        self.texts: dict[str, bytes] | None = {}
        self.numbers: dict[int, bytes] = {}  # ints apart: 1 and True are one key of a dict

    def attribute(self, value: object) -> bytes:
        """Span.attributes (9): one KeyValue."""
        if isinstance(value, str):
            return self._of_text(value)
        if isinstance(value, int) and type(value) is int and len(self.numbers) < VALUES:
            encoded = self.numbers.get(value)
            if encoded is None:
                encoded = self.numbers[value] = self._encoded(value)
            return encoded
        return self._encoded(value)

    def _of_text(self, value: str) -> bytes:
        texts = self.texts
        if texts is None:
            return self._text(value)
        encoded = texts.get(value)
        if encoded is None:
            encoded = self._text(value)
            if len(texts) < VALUES:
                texts[value] = encoded
            else:
                self.texts = None
        return encoded

    def _text(self, value: str) -> bytes:
        encoded = value.encode()
        size = len(encoded)
        whole = len(self.named) + size + 4
        if whole < 0x80:  # every length a byte: one join
            return b"".join(
                (bytes((0x4A, whole, *self.named)), bytes((0x12, size + 2, 0x0A, size)), encoded)
            )
        return field(0x4A, self.named + field(0x12, field(0x0A, encoded)))

    def _encoded(self, value: object) -> bytes:
        return field(0x4A, self.named + field(0x12, any_value(value)))


def status_field(status: Status) -> bytes:
    """Span.status (15)."""
    body = b""
    if status.description:
        body = field(0x12, status.description.encode())
    if status.status_code is not StatusCode.UNSET:
        body += b"\x18" + varint(status.status_code.value)
    return field(0x7A, body)
