"""From a peer library's stored bytes to a sessionkit ``Record``.

Each peer writes a session's dict in its own format (``RecordFormat.decode``) with some keys
of its own bookkeeping (``internal``). The values become sessionkit's value texts through
``sessionkit.codecs.encode_value``; a value it cannot keep is dropped and its key named in
the log (never its value), and the rest of the session is kept. A record that cannot be
decoded at all is refused: logged, and the user gets a fresh session.
"""

from __future__ import annotations

import dataclasses
import json
import logging
from collections.abc import Callable, Mapping
from typing import Any

from ..codecs import encode_value
from ..stores.base import Record

logger = logging.getLogger("sessionkit")

#: The lifetime given to a peer session stored without one (Flask's default
#: PERMANENT_SESSION_LIFETIME); the importer caps it with sessionkit's own timeouts.
NO_EXPIRY_SECONDS = 31 * 86400.0


class RecordRefused(ValueError):
    """Stored bytes that are not a session in the peer's format."""


def session_fields(data: Mapping[Any, Any], internal: frozenset[str], peer: str
                   ) -> dict[str, str]:
    """The value texts of the keys sessionkit can keep; the others are logged by name."""
    fields: dict[str, str] = {}
    for key, value in data.items():
        if not isinstance(key, str):
            logger.warning("sessionkit: a %s session has a key that is not a string (%s); "
                           "dropped", peer, type(key).__name__)
            continue
        if key in internal:
            continue
        try:
            fields[key] = encode_value(key, value)
        except (TypeError, ValueError, RecursionError):
            logger.warning("sessionkit: %s session key %r holds a value sessionkit cannot keep "
                           "(%s); dropped", peer, key, _kind(value))
    return fields


def _kind(value: object) -> str:
    kind = type(value)
    return kind.__qualname__ if kind.__module__ == "builtins" else (
        f"{kind.__module__}.{kind.__qualname__}")


def json_object(raw: bytes) -> dict[str, Any]:
    """A JSON object from UTF-8 bytes, or ``RecordRefused``."""
    try:
        data = json.loads(raw.decode("utf-8"))
    except (ValueError, RecursionError):  # UnicodeDecodeError is a ValueError
        raise RecordRefused("not JSON") from None
    if not isinstance(data, dict):
        raise RecordRefused("not a JSON object")
    return data


@dataclasses.dataclass(frozen=True, slots=True)
class RecordFormat:
    """How one peer library writes a session's data."""

    peer: str  #: the library's name, for logs
    decode: Callable[[bytes], Mapping[Any, Any]]  #: the session's dict, or ``RecordRefused``
    internal: frozenset[str] = frozenset()  #: the peer's own bookkeeping keys, not copied
    #: When the session began, from its data (default: unknown, so ``now``).
    created: Callable[[Mapping[Any, Any]], float | None] = lambda data: None

    def record(self, raw: bytes, expires_at: float, now: float, where: str) -> Record | None:
        """The record of a peer session that expires at ``expires_at``; None (logged) when
        ``raw`` is not one."""
        if expires_at <= now:  # expired where it is: nothing to read, only to delete
            return Record({}, now, expires_at, now)
        try:
            data = self.decode(raw)
        except RecordRefused as exc:
            logger.error("sessionkit: a %s session in %s is unreadable (%s); it is not "
                         "imported", self.peer, where, exc)
            return None
        created = self.created(data)
        created = now if created is None else min(created, now)
        return Record(session_fields(data, self.internal, self.peer), created, expires_at, now)
