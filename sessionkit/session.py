"""Session: a mapping of JSON values that knows what changed, whatever store keeps it.

Values are decoded lazily, key by key, and at commit only the keys a request touched are
encoded again and compared with what was loaded. That one comparison finds every change,
in-place edits of nested lists and dicts included (no ``session.modified = True`` needed), and
yields the delta that a store merges without losing a concurrent request's keys.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, MutableMapping
from datetime import UTC, datetime
from typing import Any, NoReturn

from .codecs import decode_value, encode_value
from .errors import StoreUnavailable

logger = logging.getLogger("sessionkit")
_MISSING: Any = object()
_EMPTY: dict[str, str] = {}
_SCALARS = frozenset({str, int, float, bool, type(None)})
MAX_USER_ID_LENGTH = 256


class Session(MutableMapping[str, Any]):
    """The session of one request. Identical in every mode and framework."""

    __slots__ = (
        "_assigned",
        "_created_at",
        "_doomed",
        "_expires_at",
        "_force",
        "_generation",
        "_imported",
        "_invalidated",
        "_is_new",
        "_key",
        "_last_accessed",
        "_lookup",
        "_raw",
        "_removed",
        "_reroute",
        "_route",
        "_token",
        "_touch",
        "_user_changed",
        "_user_id",
        "_values",
        "_version",
        "accessed",
    )

    def __init__(
        self,
        data: dict[str, Any] | None = None,
        *,
        now: float = 0.0,
        expires_at: float = 0.0,
    ) -> None:
        self._raw: dict[str, str] = _EMPTY
        self._values: dict[str, Any] = {}
        self._removed: set[str] = set()
        self._assigned: set[str] = set()
        self._token: str | None = None
        self._key: str | None = None
        self._generation = 0
        self._route: str | None = None
        self._created_at = now
        self._last_accessed = now
        self._expires_at = expires_at
        self._user_id: str | None = None
        self._user_changed = False
        self._doomed: list[tuple[str, float]] = []  # (key, when it would expire)
        self._force = False
        self._invalidated = False
        self._is_new = True
        self._lookup = "new"
        self._touch = False
        self._reroute = False
        self._imported = False
        self._version = 0
        #: True once the request read or wrote the session (responses then get ``Vary: Cookie``).
        self.accessed = False
        if data:
            self.update(data)
            self.accessed = False

    # --- the mapping ------------------------------------------------------------------------
    def __getitem__(self, key: str) -> Any:
        self.accessed = True
        value = self._values.get(key, _MISSING)
        if value is not _MISSING:
            return value
        text = self._raw.get(key)
        if text is None or key in self._removed:
            raise KeyError(key)
        try:
            value = decode_value(text)
        except ValueError:
            logger.error(
                "sessionkit: stored value of session key %r is not valid JSON; "
                "treating the key as absent", key,
            )
            raise KeyError(key) from None
        self._values[key] = value
        return value

    def __setitem__(self, key: str, value: Any) -> None:
        if type(key) is not str:
            raise TypeError(f"session keys must be str, not {type(key).__name__} ({key!r})")
        encode_value(key, value)  # fail here, naming the key, not at the end of the request
        self.accessed = True
        self._values[key] = value
        self._assigned.add(key)
        if self._removed:
            self._removed.discard(key)

    def __delitem__(self, key: str) -> None:
        self.accessed = True
        if key in self._values:
            del self._values[key]
            if key in self._raw:
                self._removed.add(key)
        elif key in self._raw and key not in self._removed:
            self._removed.add(key)
        else:
            raise KeyError(key)

    def __contains__(self, key: object) -> bool:
        self.accessed = True
        return key in self._values or (key in self._raw and key not in self._removed)

    def __iter__(self) -> Iterator[str]:
        self.accessed = True
        raw, removed, values = self._raw, self._removed, self._values
        keys = [k for k in raw if k not in removed]
        keys.extend(k for k in values if k not in raw)
        return iter(keys)

    def __len__(self) -> int:
        self.accessed = True
        raw = self._raw
        return len(raw) - len(self._removed) + sum(1 for k in self._values if k not in raw)

    def clear(self) -> None:
        self.accessed = True
        self._values.clear()
        self._removed = set(self._raw)

    def to_dict(self) -> dict[str, Any]:
        """A plain ``dict`` copy of the data (decoding every value)."""
        return {key: self[key] for key in self}

    def mark_accessed(self) -> None:
        """Called by Starlette's ``request.session``: the response must vary on Cookie."""
        self.accessed = True

    def __repr__(self) -> str:  # never the id, never the values
        return f"<{type(self).__name__} new={self._is_new} keys={sorted(self)!r}>"

    # --- lifecycle ----------------------------------------------------------------------------
    @property
    def id(self) -> str | None:
        """The session id, None until the session is first saved (and after ``regenerate()``
        or ``invalidate()`` until the response saves it under its new id)."""
        return self._token

    @property
    def is_new(self) -> bool:
        """True when no stored session was loaded for this request."""
        return self._is_new

    @property
    def modified(self) -> bool:
        """True once anything changed, nested in-place edits included."""
        if self._force or self._user_changed or self._doomed or self._invalidated:
            return True
        changes, removed = self._delta()
        return bool(changes or removed)

    @modified.setter
    def modified(self, value: bool) -> None:
        # Changes are detected without help; True (a Flask habit) forces a save anyway.
        self._force = bool(value)

    def regenerate(self) -> None:
        """Give the session a new id, keep its data, destroy the old id (call it at login)."""
        self.accessed = True
        if self._key is not None:
            self._doomed.append((self._key, self._expires_at))
        self._key = None
        self._token = None

    def invalidate(self) -> None:
        """Destroy the session in the store and clear the cookie (call it at logout).

        The object is then an empty new session: data written afterwards in the same request
        starts a brand-new session with a new id.
        """
        self.regenerate()
        self._raw = _EMPTY
        self._values = {}
        self._removed = set()
        self._assigned = set()
        self._user_id = None
        self._user_changed = False
        self._invalidated = True
        self._is_new = True

    @property
    def user_id(self) -> str | None:
        """The user this session belongs to, for ``store.delete_user_sessions(user_id)``."""
        return self._user_id

    @user_id.setter
    def user_id(self, value: str | None) -> None:
        if value is not None and (
            type(value) is not str or not 0 < len(value) <= MAX_USER_ID_LENGTH
        ):
            raise TypeError(f"user_id must be None or a str of 1 to {MAX_USER_ID_LENGTH} chars")
        self.accessed = True
        if value != self._user_id:
            self._user_id = value
            self._user_changed = True

    @property
    def created_at(self) -> datetime:
        return datetime.fromtimestamp(self._created_at, UTC)

    @property
    def last_accessed(self) -> datetime:
        """When the session was used before this request (now, for a new session)."""
        return datetime.fromtimestamp(self._last_accessed, UTC)

    @property
    def expires_at(self) -> datetime:
        """When the session expires if it is not used again: the earlier of the idle and the
        absolute limit."""
        return datetime.fromtimestamp(self._expires_at, UTC)

    # --- for the engine -------------------------------------------------------------------
    def _delta(self) -> tuple[dict[str, str], tuple[str, ...]]:
        """The encoded values that differ from what was loaded, and the keys removed."""
        raw, assigned = self._raw, self._assigned
        changes: dict[str, str] = {}
        for key, value in self._values.items():
            if key not in assigned and type(value) in _SCALARS:
                continue  # read, not assigned, and immutable: cannot have changed
            text = encode_value(key, value)
            if raw.get(key) != text:
                changes[key] = text
        return changes, tuple(self._removed)

    def _fields(self, changes: dict[str, str] | None = None) -> dict[str, str]:
        """Every key's encoded value, for writing the whole record. Given ``_delta()``'s
        changes, nothing is encoded again: a value not among them is unchanged."""
        removed = self._removed
        fields = {k: t for k, t in self._raw.items() if k not in removed}
        if changes is not None:
            fields.update(changes)
            return fields
        for key, value in self._values.items():
            fields[key] = encode_value(key, value)
        return fields


class UnavailableSession(Session):
    """Stands in for a session whose store is down. Any use raises ``StoreUnavailable``, which
    the middlewares answer with 503; a request that never touches the session is served."""

    __slots__ = ("_error",)

    def __init__(self, error: StoreUnavailable) -> None:  # no Session state: nothing loaded
        self._error = error

    def _fail(self, *args: Any, **kwargs: Any) -> NoReturn:
        raise self._error

    __getitem__ = __setitem__ = __delitem__ = __contains__ = __iter__ = __len__ = _fail
    get = pop = popitem = setdefault = update = clear = keys = items = values = _fail
    to_dict = mark_accessed = regenerate = invalidate = _fail
    id = user_id = created_at = last_accessed = expires_at = modified = property(_fail, _fail)
    accessed = property(lambda self: False, _fail)

    def __repr__(self) -> str:
        return f"<UnavailableSession: {self._error}>"
