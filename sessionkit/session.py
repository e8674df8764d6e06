"""Session: the ``dict`` an app sees, in every mode and framework, and nothing more.

A ``Session`` *is* a ``dict`` (as Starlette's and Flask's own sessions are), so
``JSONResponse(request.session)``, ``json.dumps``, ``dict(session)``, ``copy()``, ``|`` and
``isinstance(session, dict)`` behave as with the framework's own session. What the engine
needs to know about it (the id, what was loaded, what must be destroyed) lives in a separate
``SessionState`` that the engine owns; the session only reaches into it for the few methods
that change the session's lifecycle (``regenerate``, ``invalidate``, ``user_id``).

Changes are found by comparison, not by bookkeeping: at commit each value is encoded again
(``sessionkit.codecs``) and compared with the text that was loaded, so in-place edits of
nested lists and dicts are saved without ``session.modified = True``, and only the keys that
differ are written (a delta that a store merges without losing a concurrent request's keys).
"""

from __future__ import annotations

import copy
import logging
import math
import time
from collections.abc import Iterable, Iterator, Mapping
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, NoReturn

from . import meta as facts
from .codecs import decode_copy, encode_value, unchanged_copy
from .errors import StoreUnavailable

if TYPE_CHECKING:
    from .cookies import CookieWriter
    from .devices import Devices

logger = logging.getLogger("sessionkit")
_MISSING: Any = object()
_EMPTY: dict[str, str] = {}
_EMPTY_META: dict[str, Any] = {}
_LIMIT_FACTS = (facts.IDLE, facts.ABSOLUTE, facts.PERSISTENT)
#: Immutable values: one that is still the object that was loaded cannot have changed.
_IMMUTABLE = frozenset({str, int, float, bool, type(None), bytes, tuple})
MAX_USER_ID_LENGTH = 256


def check_text(value: str, what: str) -> None:
    """Refuse a string no UTF-8 store can keep as it is (a lone surrogate) or that databases
    refuse (NUL), at assignment, with an error the app can catch."""
    if value.isascii():
        if "\x00" in value:
            raise ValueError(f"{what} must not contain NUL characters")
        return
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError(f"{what} must be valid Unicode text (it holds a lone surrogate)"
                         ) from None
    if "\x00" in value:
        raise ValueError(f"{what} must not contain NUL characters")


class SessionState:
    """The engine's bookkeeping for one request's session. Owned by the engine
    (``sessionkit.engine``); the app never sees it."""

    # Defaults live on the class and an instance sets only what differs: a state is made
    # for every request, and most of these never change from their default.
    #: Each key's text as loaded (what a store holds), and the values decoded from it.
    raw: dict[str, str] = _EMPTY
    loaded: dict[str, Any] = _EMPTY
    #: For a flat list or dict that was loaded: the pristine value it is a shallow copy of
    #: (``codecs.decode_copy``), by key.
    pristine: dict[str, Any] = _EMPTY
    #: Keys whose stored text could not be decoded: absent for the app, kept in the store.
    unreadable: frozenset[str] = frozenset()
    token: str | None = None  #: the session id (``Session.id``)
    key: str | None = None  #: what the backend destroys; None until saved
    generation = 0
    route: str | None = None
    reroute = False
    user_id: str | None = None
    user_changed = False
    #: The record's facts about the session (``Record.meta``, ``sessionkit.meta``); never
    #: changed in place (a change installs a new dict), and saved when ``meta_changed``.
    meta: dict[str, Any] = _EMPTY_META
    meta_changed = False
    #: ``revoke_others()`` was called: the user's other sessions end at commit.
    revoke_others = False
    #: The engine's listing of users' sessions, and its clock (``now``).
    devices: Devices | None = None
    force = False  #: ``session.modified = True``: save even if nothing differs
    invalidated = False
    is_new = True
    lookup = "new"
    touch = False  #: the deadline is due to slide (a write even if nothing changed)
    imported: Any = None  #: where an imported session came from (``migrate``)
    version = 0
    #: Whether the request changed the session (kept after commit: Flask's ``modified``).
    changed = False
    #: Whether the cookie outlives the browser session; None: as configured.
    persistent: bool | None = None
    #: The session of a WebSocket connection: no cookie can be set.
    websocket = False
    #: The cookie the session was loaded with, when not the configured one (a framework
    #: whose settings change at run time): the commit writes the same.
    cookies: CookieWriter | None = None

    def __init__(self, now: float = 0.0, expires_at: float = 0.0) -> None:
        self.created_at = now
        self.last_accessed = now
        self.expires_at = expires_at
        self.doomed: list[tuple[str, float]] = []  #: (key, when it would expire) to destroy

    def now(self) -> float:
        """Epoch seconds by the engine's clock (``time.time`` without an engine)."""
        devices = self.devices
        return devices.clock() if devices is not None else time.time()

    def delta(self, values: dict[str, Any]) -> tuple[dict[str, str], tuple[str, ...]]:
        """The texts of ``values`` that differ from what was loaded, and the keys removed."""
        raw, loaded, pristine = self.raw, self.loaded, self.pristine
        changes: dict[str, str] = {}
        for key, value in dict.items(values):
            if loaded.get(key, _MISSING) is value:
                if type(value) in _IMMUTABLE:
                    continue  # the very object that was loaded, and immutable: unchanged
                original = pristine.get(key)
                if original is not None and unchanged_copy(value, original):
                    continue  # a flat copy whose members are all still its own: unchanged
            text = encode_value(key, value)
            if raw.get(key) != text:
                changes[key] = text
        if raw.keys() <= dict.keys(values):
            return changes, ()  # every key loaded is still there
        unreadable = self.unreadable
        return changes, tuple(k for k in raw
                              if not dict.__contains__(values, k) and k not in unreadable)

    def fields(self, values: dict[str, Any], changes: dict[str, str]) -> dict[str, str]:
        """Every key's text after a change found by ``delta``: what a whole record holds."""
        raw = self.raw
        fields = {key: (changes.get(key) or raw[key]) for key in dict.keys(values)}
        for key in self.unreadable:
            fields.setdefault(key, raw[key])
        return fields


class Session(dict[str, Any]):
    """The session of one request: a ``dict`` of JSON values (and tuple, bytes, Markup, UUID,
    datetime) with the session's lifecycle on top. Identical in every mode and framework."""

    __slots__ = ("_state", "accessed")

    def __init__(self, data: Mapping[str, Any] | None = None, *,
                 state: SessionState | None = None) -> None:
        # (no ``dict.__init__``: the dict is empty already, and ``data`` goes through
        # ``update`` below, which checks every key and value)
        self._state = state if state is not None else SessionState()
        #: True once the request read or wrote the session (responses then vary on Cookie).
        self.accessed = False
        if data:  # a session that holds ``data`` already: unmodified until changed
            self.update(data)
            self.accessed = False
            self._state.raw = {key: encode_value(key, value) for key, value in data.items()}
            self._state.loaded = dict(dict.items(self))

    # --- the dict, with access tracking and early checks ------------------------------------
    def __getitem__(self, key: str) -> Any:
        self.accessed = True
        return dict.__getitem__(self, key)

    def __setitem__(self, key: str, value: Any) -> None:
        if type(key) is not str:
            raise TypeError(f"session keys must be str, not {type(key).__name__} ({key!r})")
        if not key.isascii():
            check_text(key, "a session key")
        encode_value(key, value)  # fail here, naming the key, not at the end of the request
        self.accessed = True
        dict.__setitem__(self, key, value)

    def __delitem__(self, key: str) -> None:
        self.accessed = True
        dict.__delitem__(self, key)

    def __contains__(self, key: object) -> bool:
        self.accessed = True
        return dict.__contains__(self, key)

    def __iter__(self) -> Iterator[str]:
        self.accessed = True
        return dict.__iter__(self)

    def __len__(self) -> int:
        self.accessed = True
        return dict.__len__(self)

    def get(self, key: str, default: Any = None) -> Any:
        self.accessed = True
        return dict.get(self, key, default)

    def keys(self) -> Any:
        self.accessed = True
        return dict.keys(self)

    def items(self) -> Any:
        self.accessed = True
        return dict.items(self)

    def values(self) -> Any:
        self.accessed = True
        return dict.values(self)

    def pop(self, key: str, *default: Any) -> Any:
        if dict.__contains__(self, key):  # as Starlette's: popping nothing touches nothing
            self.accessed = True
        return dict.pop(self, key, *default)

    def popitem(self) -> tuple[str, Any]:
        self.accessed = True
        return dict.popitem(self)

    def setdefault(self, key: str, default: Any = None) -> Any:
        if not dict.__contains__(self, key):
            self[key] = default
        self.accessed = True
        return dict.__getitem__(self, key)

    def update(self, other: Any = (), /, **kwargs: Any) -> None:
        items: Iterable[tuple[Any, Any]]
        if isinstance(other, Mapping):
            items = [(key, other[key]) for key in other]
        elif hasattr(other, "keys"):
            items = [(key, other[key]) for key in other.keys()]  # noqa: SIM118  (dict.update does)
        else:
            items = other
        for key, value in items:
            self[key] = value
        for key, value in kwargs.items():
            self[key] = value
        self.accessed = True

    def __ior__(self, other: Any) -> Session:  # type: ignore[override,misc]
        self.update(other)
        return self

    def clear(self) -> None:
        """Empty the session. A session left empty ends at the response, as in Starlette and
        Flask: the cookie is deleted and a server-side store forgets the record."""
        self.accessed = True
        dict.clear(self)

    def copy(self) -> dict[str, Any]:
        """A plain ``dict`` copy (what ``dict.copy`` of the frameworks' sessions gives)."""
        self.accessed = True
        return dict(dict.items(self))

    def __copy__(self) -> dict[str, Any]:
        return self.copy()

    def __deepcopy__(self, memo: dict[int, Any]) -> dict[str, Any]:
        self.accessed = True
        return copy.deepcopy(dict(dict.items(self)), memo)

    def __reduce__(self) -> tuple[Any, ...]:
        return (dict, (dict(dict.items(self)),))

    def to_dict(self) -> dict[str, Any]:
        """A plain ``dict`` copy of the data."""
        return self.copy()

    def mark_accessed(self) -> None:
        """Called by Starlette's ``request.session``: the response must vary on Cookie."""
        self.accessed = True

    def mark_modified(self) -> None:
        """Save the session even if nothing differs (Starlette's spelling of
        ``modified = True``)."""
        self.accessed = True
        self._state.force = True

    def __repr__(self) -> str:  # never the id, never the values
        return f"<{type(self).__name__} new={self._state.is_new} keys={sorted(dict.keys(self))!r}>"

    # --- lifecycle ----------------------------------------------------------------------------
    @property
    def id(self) -> str | None:
        """The session id, None until the session is first saved (and after ``regenerate()``
        or ``invalidate()`` until the response saves it under its new id)."""
        return self._state.token

    @property
    def is_new(self) -> bool:
        """True when no stored session was loaded for this request."""
        return self._state.is_new

    @property
    def modified(self) -> bool:
        """True once the request changed anything, nested in-place edits included (and after
        the response, whether it did)."""
        state = self._state
        if state.changed or state.force or state.user_changed or state.doomed or (
                state.invalidated or state.meta_changed):
            return True
        changes, removed = state.delta(self)
        return bool(changes or removed)

    @modified.setter
    def modified(self, value: bool) -> None:
        # Changes are detected without help; True (a Flask habit) forces a save anyway.
        self._state.force = bool(value)

    def regenerate(self) -> None:
        """Give the session a new id, keep its data, destroy the old id (call it at login)."""
        self.accessed = True
        state = self._state
        if state.websocket:
            raise RuntimeError(
                "regenerate() cannot work over a WebSocket: no cookie can carry the new id. "
                "Regenerate in an HTTP request (for example at login); invalidate() works")
        if state.key is not None:
            state.doomed.append((state.key, state.expires_at))
        state.key = None
        state.token = None

    def invalidate(self) -> None:
        """Destroy the session in the store and clear the cookie (call it at logout).

        The object is then an empty new session: data written afterwards in the same request
        starts a brand-new session with a new id.
        """
        self.accessed = True
        state = self._state
        if state.key is not None:
            state.doomed.append((state.key, state.expires_at))
        state.key = None
        state.token = None
        dict.clear(self)
        state.raw = _EMPTY
        state.loaded = _EMPTY
        state.unreadable = frozenset()
        state.user_id = None
        state.user_changed = False
        state.meta = _EMPTY_META  # its own expiry, its login time, its description
        state.meta_changed = False
        state.revoke_others = False
        state.invalidated = True
        state.is_new = True

    @property
    def user_id(self) -> str | None:
        """The user this session belongs to, for ``store.delete_user_sessions(user_id)``."""
        return self._state.user_id

    @user_id.setter
    def user_id(self, value: str | None) -> None:
        if value is not None:
            if type(value) is not str or not 0 < len(value) <= MAX_USER_ID_LENGTH:
                raise TypeError(
                    f"user_id must be None or a str of 1 to {MAX_USER_ID_LENGTH} chars")
            check_text(value, "user_id")
        self.accessed = True
        state = self._state
        if value != state.user_id:
            state.user_id = value
            state.user_changed = True

    @property
    def cookie_persistent(self) -> bool | None:
        """Whether this session's cookie outlives the browser session; None: as configured
        (``cookie_persistent``). Flask's session answers with its ``permanent``;
        ``set_expiry`` overrides both."""
        return self._state.persistent

    # --- this session's own lifetime ("remember me") --------------------------------------
    def set_expiry(self, idle: float | timedelta | None = None,
                   absolute: float | timedelta | None = None, *,
                   browser_session: bool | None = None) -> None:
        """Give this session its own lifetime, within the configured one ("remember me").

        ``idle`` and ``absolute`` (seconds or a ``timedelta``) shorten the configured
        ``idle_timeout`` and ``absolute_timeout`` for this session only; a longer value means
        the configured one. A session given a lifetime gets a persistent cookie (as Django's
        ``set_expiry``); ``browser_session=True`` asks for a cookie that ends with the browser
        instead, ``False`` for a persistent one. ``set_expiry()`` with nothing goes back to the
        configuration. The choice is saved with the session, kept by ``regenerate()`` and
        dropped by ``invalidate()``::

            if form.remember_me:
                session.set_expiry(absolute=timedelta(days=30))
            else:
                session.set_expiry(idle=timedelta(hours=1), browser_session=True)
        """
        chosen: dict[str, Any] = {}
        if idle is not None:
            chosen[facts.IDLE] = _seconds(idle, "idle")
        if absolute is not None:
            chosen[facts.ABSOLUTE] = _seconds(absolute, "absolute")
        if browser_session is not None:
            if type(browser_session) is not bool:
                raise TypeError("browser_session must be True, False or None")
            chosen[facts.PERSISTENT] = not browser_session
        elif chosen:
            chosen[facts.PERSISTENT] = True
        state = self._state
        kept = {k: v for k, v in state.meta.items() if k not in _LIMIT_FACTS}
        before = (state.meta.get(facts.IDLE), state.meta.get(facts.ABSOLUTE))
        self._set_facts({**kept, **chosen})
        if before != (chosen.get(facts.IDLE), chosen.get(facts.ABSOLUTE)):
            state.touch = True  # the deadline moves now, to what the new limits give

    # --- fresh logins -----------------------------------------------------------------------
    def mark_authenticated(self) -> None:
        """Record that the user proved who they are now (a password, a second factor): call
        it at login and wherever the app asks again. Kept by ``regenerate()``, dropped by
        ``invalidate()``; read with ``authenticated_within``."""
        state = self._state
        self._set_facts({**state.meta, facts.AUTHENTICATED: state.now()})

    @property
    def authenticated_at(self) -> datetime | None:
        """When the user last proved who they are (``mark_authenticated``), or None."""
        self.accessed = True
        at = self._state.meta.get(facts.AUTHENTICATED)
        return None if at is None else datetime.fromtimestamp(at, UTC)

    def authenticated_within(self, seconds: float | timedelta) -> bool:
        """Whether the user proved who they are at most ``seconds`` ago: for pages that need
        a recent password (``if not session.authenticated_within(300): ask again``)."""
        limit = _seconds(seconds, "seconds")
        self.accessed = True
        state = self._state
        at = state.meta.get(facts.AUTHENTICATED)
        return at is not None and state.now() - at <= limit

    # --- the user's devices (``sessionkit.devices``) ---------------------------------------
    @property
    def description(self) -> str | None:
        """What the app says this session is (e.g. "Firefox on Linux", derived by the app from
        what it chooses; nothing is collected by default), shown by ``store.user_sessions``."""
        self.accessed = True
        found: str | None = self._state.meta.get(facts.DESCRIPTION)
        return found

    @description.setter
    def description(self, value: str | None) -> None:
        if value is not None:
            if type(value) is not str or len(value) > facts.MAX_DESCRIPTION:
                raise TypeError(f"description must be None or a str of at most "
                                f"{facts.MAX_DESCRIPTION} characters")
            check_text(value, "description")
        state = self._state
        self.accessed = True
        if state.meta.get(facts.DESCRIPTION) == value:
            return  # unchanged: nothing to write
        changed = {k: v for k, v in state.meta.items() if k != facts.DESCRIPTION}
        if value is not None:
            changed[facts.DESCRIPTION] = value
        self._set_facts(changed)

    @property
    def handle(self) -> str | None:
        """This session's handle among its user's sessions (``store.user_sessions``), to mark
        "this device" on a devices page; None until the session is saved."""
        self.accessed = True
        state = self._state
        if state.key is None or state.devices is None:
            return None
        return state.devices.handles.of(state.key)

    def revoke_others(self) -> None:
        """End every other session of this session's user ("sign out everywhere else"), when
        the response is saved; this one stays. Raises ``ConfigError`` at once in a mode that
        cannot list sessions (jwt:// without a revocation store)."""
        state = self._state
        if state.user_id is None:
            raise RuntimeError("revoke_others() needs a user: set session.user_id first")
        if state.devices is not None:
            state.devices.check()
        self.accessed = True
        state.revoke_others = True

    def _set_facts(self, changed: dict[str, Any]) -> None:
        self.accessed = True
        state = self._state
        if changed != state.meta:
            state.meta = changed
            state.meta_changed = True

    @property
    def created_at(self) -> datetime:
        return datetime.fromtimestamp(self._state.created_at, UTC)

    @property
    def last_accessed(self) -> datetime:
        """When the session was used before this request (now, for a new session)."""
        return datetime.fromtimestamp(self._state.last_accessed, UTC)

    @property
    def expires_at(self) -> datetime:
        """When the session expires if it is not used again: the earlier of the idle and the
        absolute limit."""
        return datetime.fromtimestamp(self._state.expires_at, UTC)


def _seconds(value: float | timedelta, name: str) -> float:
    if isinstance(value, timedelta):
        seconds = value.total_seconds()
    elif type(value) in (int, float):
        seconds = float(value)
    else:
        raise TypeError(f"{name} must be seconds or a timedelta, not {type(value).__name__}")
    if not math.isfinite(seconds) or seconds <= 0:
        raise ValueError(f"{name} must be a positive, finite duration (got {value!r})")
    return seconds


def state_of(session: Session) -> SessionState:
    """The engine's bookkeeping of ``session`` (for the engine and its backends only)."""
    return session._state


def loaded_session(session_class: type[Session], state: SessionState,
                   fields: Mapping[str, str]) -> Session:
    """A session holding the values of stored ``fields`` (each key's text), with ``state``
    remembering what was loaded. A text that is not JSON is logged and left out (and left as
    it is in the store)."""
    values: dict[str, Any] = {}
    unreadable: list[str] = []
    pristine: dict[str, Any] = {}
    for key, text in fields.items():
        try:
            value, original = decode_copy(text)
        except (ValueError, RecursionError):
            logger.error("sessionkit: stored value of session key %r is not valid JSON; "
                         "treating the key as absent", key)
            unreadable.append(key)
            continue
        values[key] = value
        if original is not None:
            pristine[key] = original
    session = session_class(state=state)
    dict.update(session, values)
    state.raw = fields if isinstance(fields, dict) else dict(fields)
    state.loaded = values  # what was loaded, kept apart from the session the app changes
    if pristine:
        state.pristine = pristine
    if unreadable:
        state.unreadable = frozenset(unreadable)
    return session


class UnavailableSession(Session):
    """Stands in for a session whose store is down. Any use raises ``StoreUnavailable``, which
    the middlewares answer with 503; a request that never touches the session is served.

    It holds one hidden entry so that code reading the dict at C level (``json.dumps``'s
    empty-dict shortcut) cannot take it for an empty session: every such path ends in one of
    the methods below, which raise."""

    __slots__ = ("_error",)

    def __init__(self, error: StoreUnavailable) -> None:  # no Session state: nothing loaded
        dict.__init__(self)
        dict.__setitem__(self, "\x00unavailable", None)
        self._error = error

    def _fail(self, *args: Any, **kwargs: Any) -> NoReturn:
        raise self._error

    __getitem__ = __setitem__ = __delitem__ = __contains__ = __iter__ = __len__ = _fail
    get = pop = popitem = setdefault = update = clear = keys = items = values = _fail
    copy = __copy__ = __deepcopy__ = __reduce__ = __ior__ = __or__ = __ror__ = _fail
    __eq__ = __ne__ = _fail
    to_dict = mark_accessed = mark_modified = regenerate = invalidate = _fail
    set_expiry = mark_authenticated = authenticated_within = revoke_others = _fail
    id = user_id = created_at = last_accessed = expires_at = modified = is_new = property(
        _fail, _fail)
    description = property(_fail, _fail)
    cookie_persistent = authenticated_at = handle = property(_fail)
    accessed = property(lambda self: False, _fail)

    def __repr__(self) -> str:
        return f"<UnavailableSession: {self._error}>"

    def __bool__(self) -> bool:
        raise self._error

    __hash__ = None  # type: ignore[assignment]
