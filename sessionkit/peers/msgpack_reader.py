"""A strict MessagePack reader for the records Flask-Session 0.8 writes with msgspec.

sessionkit reads these records once, while moving them, so it keeps a small decoder of its
own instead of a compiled dependency. It reads the whole format (nil, booleans, integers,
floats, strings, binary, arrays, maps) and the one extension msgspec writes, the timestamp
(type -1), giving what msgspec's untyped decoder gives: ``datetime`` in UTC, ``bytes``, lists,
dicts (an array used as a key becomes a tuple). Anything else is refused with
``MsgpackRefused``: other extensions, invalid UTF-8, truncated input, bytes after the value,
nesting deeper than ``MAX_DEPTH``, lengths beyond the input.
"""

from __future__ import annotations

import datetime
import struct
from typing import Any

__all__ = ["MAX_DEPTH", "MsgpackRefused", "read_msgpack"]

MAX_DEPTH = 64
_EPOCH = datetime.datetime(1970, 1, 1, tzinfo=datetime.UTC)
_TIMESTAMP = -1


class MsgpackRefused(ValueError):
    """The bytes are not one complete MessagePack value of the kinds this reader builds."""


def read_msgpack(data: bytes) -> Any:
    """The one value ``data`` holds; ``MsgpackRefused`` for anything else."""
    reader = _Reader(data)
    value = reader.value(0)
    if reader.position != len(data):
        raise MsgpackRefused(f"{len(data) - reader.position} bytes after the value")
    return value


class _Reader:
    __slots__ = ("data", "position")

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.position = 0

    def take(self, size: int) -> bytes:
        start, end = self.position, self.position + size
        if end > len(self.data):
            raise MsgpackRefused("truncated")
        self.position = end
        return self.data[start:end]

    def unsigned(self, size: int) -> int:
        return int.from_bytes(self.take(size), "big")

    def signed(self, size: int) -> int:
        return int.from_bytes(self.take(size), "big", signed=True)

    def text(self, size: int) -> str:
        try:
            return self.take(size).decode("utf-8")  # strict: no lone surrogates either
        except UnicodeDecodeError:
            raise MsgpackRefused("a string that is not UTF-8") from None

    def value(self, depth: int, key: bool = False) -> Any:
        if depth > MAX_DEPTH:
            raise MsgpackRefused(f"nested deeper than {MAX_DEPTH}")
        code = self.unsigned(1)
        if code <= 0x7F:
            return code
        if code >= 0xE0:
            return code - 0x100
        if 0xA0 <= code <= 0xBF:
            return self.text(code & 0x1F)
        if 0x90 <= code <= 0x9F:
            return self.array(code & 0x0F, depth, key)
        if 0x80 <= code <= 0x8F:
            return self.map(code & 0x0F, depth, key)
        return self.typed(code, depth, key)

    def typed(self, code: int, depth: int, key: bool) -> Any:
        simple = _SIMPLE.get(code, _MISSING)
        if simple is not _MISSING:
            return simple
        if 0xCC <= code <= 0xCF:
            return self.unsigned(1 << (code - 0xCC))
        if 0xD0 <= code <= 0xD3:
            return self.signed(1 << (code - 0xD0))
        if code == 0xCA:
            return float(struct.unpack(">f", self.take(4))[0])
        if code == 0xCB:
            return float(struct.unpack(">d", self.take(8))[0])
        if 0xD9 <= code <= 0xDB:
            return self.text(self.unsigned(1 << (code - 0xD9)))
        if 0xC4 <= code <= 0xC6:
            return self.take(self.unsigned(1 << (code - 0xC4)))
        if code in (0xDC, 0xDD):
            return self.array(self.unsigned(2 if code == 0xDC else 4), depth, key)
        if code in (0xDE, 0xDF):
            return self.map(self.unsigned(2 if code == 0xDE else 4), depth, key)
        if 0xD4 <= code <= 0xD8:
            return self.extension(1 << (code - 0xD4))
        if 0xC7 <= code <= 0xC9:
            return self.extension(self.unsigned(1 << (code - 0xC7)))
        raise MsgpackRefused(f"invalid type byte 0x{code:02x}")

    def array(self, size: int, depth: int, key: bool) -> Any:
        if size > len(self.data) - self.position:  # every item takes a byte at least
            raise MsgpackRefused("truncated")
        items = [self.value(depth + 1, key) for _ in range(size)]
        return tuple(items) if key else items

    def map(self, size: int, depth: int, key: bool) -> dict[Any, Any]:
        if key:
            raise MsgpackRefused("a map used as a map key")
        if 2 * size > len(self.data) - self.position:
            raise MsgpackRefused("truncated")
        found: dict[Any, Any] = {}
        for _ in range(size):
            name = self.value(depth + 1, key=True)
            found[name] = self.value(depth + 1)
        return found

    def extension(self, size: int) -> datetime.datetime:
        kind = self.signed(1)
        if kind != _TIMESTAMP:
            raise MsgpackRefused(f"extension type {kind}")
        if size == 4:
            seconds, nanoseconds = self.unsigned(4), 0
        elif size == 8:
            packed = self.unsigned(8)
            seconds, nanoseconds = packed & ((1 << 34) - 1), packed >> 34
        elif size == 12:
            nanoseconds, seconds = self.unsigned(4), self.signed(8)
        else:
            raise MsgpackRefused(f"a timestamp of {size} bytes")
        if nanoseconds >= 1_000_000_000:
            raise MsgpackRefused("a timestamp's nanoseconds out of range")
        try:  # microseconds rounded half up, as msgspec does
            return _EPOCH + datetime.timedelta(seconds=seconds,
                                               microseconds=(nanoseconds + 500) // 1000)
        except OverflowError:
            raise MsgpackRefused("a timestamp out of datetime's range") from None


_MISSING: Any = object()
_SIMPLE: dict[int, Any] = {0xC0: None, 0xC2: False, 0xC3: True}
