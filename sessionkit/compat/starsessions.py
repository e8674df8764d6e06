"""starsessions 2.x on sessionkit: an app changes ``from starsessions import ...`` (and
``starsessions.session``, ``starsessions.stores...``) to ``from sessionkit.compat.starsessions
import ...`` and keeps its code.

``SessionMiddleware`` is sessionkit's ASGI middleware (it subclasses
``sessionkit.asgi.SessionMiddleware``) given starsessions' arguments with starsessions' meaning:

* ``lifetime=0`` (its default): a browser-session cookie; the record lives ``gc_ttl`` (30 days)
  after its last use. ``lifetime=N`` (seconds or a ``timedelta``) with ``rolling=True``: the
  cookie is sent again on every response with ``Max-Age=N``, and the session ends after N
  seconds unused. ``rolling=False``: the session ends N seconds after it was created, and every
  response carries the cookie with the seconds left, so its expiry never moves.
* ``cookie_name``, ``cookie_same_site``, ``cookie_https_only`` (True by default: the cookie is
  always ``Secure``), ``cookie_domain``, ``cookie_path`` (None: ``/``).
* ``store``: ``InMemoryStore()`` is ``memory://``; ``RedisStore(url=...)`` or
  ``RedisStore(connection=redis.asyncio.Redis(...))`` is sessionkit's Redis store, its records
  under the same ``prefix``; ``CookieStore(secret_key)`` is ``jwt://`` (the session in a signed
  cookie), and the cookies starsessions' ``CookieStore`` issued are imported once. A sessionkit
  store URL or ``Store`` works too.
* Any sessionkit setting may be added as a keyword: ``secret_key`` (a shared store needs one:
  sessionkit derives the store's keys from the session ids with it), ``migrate_from=
  "starsessions+redis://host/0?prefix=starsessions."`` to keep the sessions starsessions'
  ``RedisStore`` holds (docs/migration.md), ``absolute_timeout``, ``near_cache``...

What sessionkit does differently (docs/coming-from-peers.md, the ``starsessions-*`` rows):

* the session is always loaded: ``load_session`` and ``SessionAutoloadMiddleware`` have
  nothing left to do, ``is_loaded`` is True, nothing raises ``SessionNotLoaded``;
* stores are descriptions of a sessionkit store, not objects the app reads and writes by id
  (no ``read``/``write``/``remove``), and a cookie carrying an id sessionkit did not issue gets
  a fresh session with a new id;
* a session gets its id when it is first saved, at the response: ``get_session_id`` is None
  for a new session and after ``regenerate_session_id`` (which returns None) until then;
  ``generate_session_id`` and ``get_session_handler`` (the low-level handler, private by its
  own docstring) have no counterpart;
* ``serializer``: sessionkit encodes values itself (JSON plus datetime, UUID, bytes, tuple);
* a rolling session, or one with ``lifetime=0``, also ends ``absolute_timeout`` (30 days, or
  the lifetime if longer) after it was created, however often it is used;
* ``cookie_path=None`` is ``/``, where starsessions takes the app's ``root_path``.
"""

from __future__ import annotations

import abc
import dataclasses
import json
import logging
from collections.abc import Callable, MutableMapping
from datetime import timedelta
from typing import Any, Protocol, TypedDict
from urllib.parse import quote

from ..asgi import ASGIApp, Receive, Scope, Send
from ..asgi import SessionMiddleware as _SessionKitMiddleware
from ..errors import ConfigError, SessionKitError
from ..session import Session
from ..stores import Store

__all__ = [
    "CookieStore", "ImproperlyConfigured", "InMemoryStore", "JsonSerializer", "RedisStore",
    "Serializer", "SessionAutoloadMiddleware", "SessionError", "SessionMetadata",
    "SessionMiddleware", "SessionNotLoaded", "SessionStore", "get_session_id",
    "get_session_metadata", "get_session_remaining_seconds", "is_loaded", "load_session",
    "regenerate_session_id",
]

logger = logging.getLogger("sessionkit")

#: starsessions' ``RedisStore.gc_ttl`` default: how long a browser-session record is kept.
GC_TTL = 30 * 86400
#: How old a cookie of starsessions' ``CookieStore`` may be with ``lifetime=0`` (as it reads).
COOKIE_STORE_MAX_AGE = 360 * 86400
#: The sessionkit absolute timeout when the lifetime is shorter (or 0): 30 days.
MIN_ABSOLUTE = 30 * 86400
#: Where the middleware leaves what the helpers need to know about the request.
SCOPE_KEY = "sessionkit.compat.starsessions"


class SessionError(SessionKitError):
    """Base class of the errors below (starsessions' ``SessionError``)."""


class SessionNotLoaded(SessionError):
    """Kept so that code catching it still imports: a sessionkit session is always loaded,
    so nothing raises it."""


class ImproperlyConfigured(SessionError, ConfigError):
    """An argument sessionkit cannot honour; the message says what to do instead."""


class SessionMetadata(TypedDict):
    lifetime: int
    created: float  # epoch seconds
    last_access: float  # epoch seconds: when this request loaded the session


# --- serializers ----------------------------------------------------------------------------
class Serializer(abc.ABC):  # noqa: B024  (a base to subclass or annotate with, as starsessions')
    """starsessions' serializer base. sessionkit encodes values itself, so a serializer other
    than ``JsonSerializer`` is refused by ``SessionMiddleware`` (a custom one exists for values
    that JSON cannot hold, and sessionkit would not store them the way the app expects)."""


class JsonSerializer(Serializer):
    """JSON, which is what sessionkit stores (plus datetime, UUID, bytes, tuple, tagged).
    Custom ``json_encoder``/``json_decoder`` classes are not consulted (a warning says so)."""

    def __init__(self, json_encoder: type[json.JSONEncoder] = json.JSONEncoder,
                 json_decoder: type[json.JSONDecoder] = json.JSONDecoder) -> None:
        self.json_encoder = json_encoder
        self.json_decoder = json_decoder


# --- stores -----------------------------------------------------------------------------------
class SessionStore(abc.ABC):
    """A starsessions store, as the sessionkit store (and settings) it stands for. Not a
    starsessions store: it has no ``read``/``write``/``remove``, since sessionkit's records
    are kept under keys derived from its ids with the secret, never under an id the app or a
    client chose."""

    #: How long a record of a browser-session cookie (``lifetime=0``) lives after its last use.
    gc_ttl: int = GC_TTL

    @abc.abstractmethod
    def sessionkit_settings(self, lifetime: int) -> dict[str, Any]:
        """The sessionkit settings this store stands for, under the middleware's lifetime."""


class InMemoryStore(SessionStore):
    """This process's memory: ``memory://``."""

    def sessionkit_settings(self, lifetime: int) -> dict[str, Any]:
        return {"store": "memory://"}


class RedisStore(SessionStore):
    """A Redis server, by ``url`` or by a ``redis.asyncio`` client (``connection``), with
    sessionkit's records under ``prefix`` (a string; starsessions' callable form has no
    sessionkit counterpart). Give the middleware a ``secret_key``."""

    def __init__(self, url: str | None = None, connection: Any = None,
                 prefix: str = "starsessions.", gc_ttl: int = GC_TTL) -> None:
        if not (url or connection):
            raise ImproperlyConfigured("RedisStore needs 'url' or 'connection' (a "
                                       "redis.asyncio.Redis client)")
        if not isinstance(prefix, str):
            raise ImproperlyConfigured(
                "RedisStore(prefix=...) must be a string here: sessionkit keeps every record "
                "at <prefix><key>. Give the string your prefix function adds")
        self.url = url
        self.connection = connection
        self.prefix = prefix
        self.gc_ttl = gc_ttl

    def sessionkit_settings(self, lifetime: int) -> dict[str, Any]:
        if self.connection is not None:
            from ..stores.redis import RedisStore as SessionKitRedisStore

            return {"store": SessionKitRedisStore.from_client(
                async_client=self.connection, key_prefix=self.prefix)}
        assert self.url is not None
        joiner = "&" if "?" in self.url else "?"
        return {"store": f"{self.url}{joiner}key_prefix={quote(self.prefix, safe='')}"}


class CookieStore(SessionStore):
    """The session in a signed cookie: sessionkit's ``jwt://`` signed with ``secret_key``
    (stretched with a warning when shorter than 32 bytes). The cookies starsessions'
    ``CookieStore`` signed with this key are read once and replaced."""

    def __init__(self, secret_key: Any) -> None:
        self.secret_key = str(secret_key)  # a str, or Starlette's Secret

    def sessionkit_settings(self, lifetime: int) -> dict[str, Any]:
        return {"store": "jwt://", "secret_key": self.secret_key,
                # starsessions' CookieStore signs as Starlette's SessionMiddleware does.
                "migrate_from": "starlette-cookie", "migrate_secret_key": self.secret_key,
                "migrate_max_age": lifetime or COOKIE_STORE_MAX_AGE,
                "migrate_hook": _drop_starsessions_metadata}


def _drop_starsessions_metadata(session: Session) -> None:
    session.pop("__metadata__", None)


class _Given(SessionStore):
    """A sessionkit store URL or ``Store``, given as it is."""

    def __init__(self, store: str | Store) -> None:
        self.store = store

    def sessionkit_settings(self, lifetime: int) -> dict[str, Any]:
        return {"store": self.store}


def _store_of(store: object) -> SessionStore:
    if isinstance(store, SessionStore):
        return store
    if isinstance(store, str | Store):
        return _Given(store)
    kind = type(store)
    if kind.__module__.split(".")[0] == "starsessions":
        raise ImproperlyConfigured(
            f"store={kind.__name__}(...) is starsessions' own: import {kind.__name__} from "
            f"sessionkit.compat.starsessions instead (InMemoryStore, RedisStore and CookieStore "
            f"are there; a custom starsessions store cannot keep sessionkit's sessions)")
    raise ImproperlyConfigured(
        f"store must be InMemoryStore(), RedisStore(...) or CookieStore(...) from "
        f"sessionkit.compat.starsessions, or a sessionkit store URL (not {kind.__name__})")


def _check_serializer(serializer: object) -> None:
    if serializer is None:
        return
    if not isinstance(serializer, JsonSerializer):
        raise ImproperlyConfigured(
            f"serializer={type(serializer).__name__}(...) cannot be used: sessionkit encodes "
            f"session values itself (JSON plus datetime, UUID, bytes and tuple). Drop the "
            f"argument, or pass JsonSerializer() from sessionkit.compat.starsessions")
    if (serializer.json_encoder, serializer.json_decoder) != (json.JSONEncoder,
                                                              json.JSONDecoder):
        logger.warning(
            "sessionkit: JsonSerializer's json_encoder/json_decoder are not used: sessionkit "
            "encodes session values itself (JSON plus datetime, UUID, bytes and tuple); "
            "assigning a value it cannot hold raises TypeError naming the key")


def _expiry(lifetime: int, rolling: bool, gc_ttl: int) -> dict[str, Any]:
    """sessionkit's expiry settings for starsessions' ``lifetime`` and ``rolling``."""
    if lifetime == 0:  # a browser-session cookie; the record outlives it by gc_ttl
        return {"cookie_persistent": False, "cookie_max_age": None, "idle_timeout": gc_ttl,
                "absolute_timeout": max(gc_ttl, MIN_ABSOLUTE)}
    if rolling:  # each response extends the cookie and the record by the lifetime
        return {"cookie_max_age": lifetime, "cookie_refresh": True, "idle_timeout": lifetime,
                "absolute_timeout": max(lifetime, MIN_ABSOLUTE)}
    # Fixed from creation: every response resends the cookie with the seconds left.
    return {"cookie_max_age": None, "cookie_refresh": True, "idle_timeout": lifetime,
            "absolute_timeout": lifetime}


# --- middleware -------------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class _RequestFacts:
    lifetime: int
    loaded_at: float
    now: Callable[[], float]


class SessionMiddleware(_SessionKitMiddleware):
    """starsessions' ``SessionMiddleware`` (see the module's docstring); ``**settings`` are
    sessionkit's own (``secret_key``, ``migrate_from``, ...) and win over the mapped ones."""

    def __init__(
        self,
        app: ASGIApp,
        store: SessionStore | str | Store,
        lifetime: int | timedelta = 0,
        rolling: bool = False,
        cookie_name: str = "session",
        cookie_same_site: str = "lax",
        cookie_https_only: bool = True,
        cookie_domain: str | None = None,
        cookie_path: str | None = None,
        serializer: Serializer | None = None,
        **settings: Any,
    ) -> None:
        seconds = int(lifetime.total_seconds() if isinstance(lifetime, timedelta) else lifetime)
        if seconds < 0:
            raise ImproperlyConfigured(f"lifetime cannot be less than zero seconds ({lifetime})")
        described = _store_of(store)
        _check_serializer(serializer)
        self.store = store
        self.lifetime = seconds
        self.rolling = rolling
        mapped: dict[str, Any] = {
            "cookie_name": cookie_name, "cookie_samesite": cookie_same_site,
            "cookie_secure": bool(cookie_https_only), "cookie_domain": cookie_domain,
            "cookie_path": cookie_path or "/",
            **_expiry(seconds, rolling, described.gc_ttl),
            **described.sessionkit_settings(seconds),
            **settings,
        }
        if mapped.get("migrate_from"):  # the old cookie is starsessions' cookie
            mapped.setdefault("migrate_cookie_name", cookie_name)
        super().__init__(app, **mapped)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] in ("http", "websocket") and self.error is None:
            now = self.engine.config.now
            scope[SCOPE_KEY] = _RequestFacts(self.lifetime, now(), now)
        await super().__call__(scope, receive, send)


class SessionAutoloadMiddleware:
    """starsessions' autoloading middleware. Under sessionkit the session is loaded for every
    request, on every path, so this passes requests through; ``paths`` is kept, unused."""

    def __init__(self, app: ASGIApp, paths: list[Any] | None = None) -> None:
        self.app = app
        self.paths = paths or []

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self.app(scope, receive, send)


# --- helpers (each takes a Starlette Request, WebSocket or HTTPConnection) ---------------------
class Connection(Protocol):
    @property
    def scope(self) -> MutableMapping[str, Any]: ...


def _session(connection: Connection) -> Session:
    session = connection.scope.get("session")
    if not isinstance(session, Session):
        raise ImproperlyConfigured("no sessionkit session on this request: add "
                                   "SessionMiddleware from sessionkit.compat.starsessions")
    return session


def _facts(connection: Connection) -> _RequestFacts:
    facts = connection.scope.get(SCOPE_KEY)
    if not isinstance(facts, _RequestFacts):
        raise ImproperlyConfigured("the session's metadata needs SessionMiddleware from "
                                   "sessionkit.compat.starsessions")
    return facts


async def load_session(connection: Connection) -> None:
    """Nothing to do: the middleware loaded the session already (it checks it did)."""
    _session(connection)


def is_loaded(connection: Connection) -> bool:
    """True where the middleware ran: a sessionkit session is always loaded."""
    return isinstance(connection.scope.get("session"), Session)


def get_session_id(connection: Connection) -> str | None:
    """The session's id: None for a session not saved yet (new, or regenerated in this
    request), which gets its id at the response, as starsessions' new sessions do."""
    return _session(connection).id


def regenerate_session_id(connection: Connection) -> None:
    """Give the session a new id, keeping its data, and destroy the old one (call it at
    login). Returns None, not the new id: sessionkit issues it when the response saves the
    session (read it with ``get_session_id`` in a later request)."""
    _session(connection).regenerate()


def get_session_metadata(connection: Connection) -> SessionMetadata:
    """``lifetime`` (the middleware's), ``created`` (when the session was created) and
    ``last_access`` (when this request loaded it), as starsessions gives them."""
    facts = _facts(connection)
    created = _session(connection).created_at.timestamp()
    return {"lifetime": facts.lifetime, "created": created,
            "last_access": max(created, facts.loaded_at)}  # a new session: created as loaded


def get_session_remaining_seconds(connection: Connection) -> int:
    """Seconds until the session expires if unused: with a fixed lifetime, its creation plus
    the lifetime, as starsessions counts; rolling (or with ``lifetime=0``), the deadline in
    force, which starsessions does not compute."""
    facts = _facts(connection)
    return int(_session(connection).expires_at.timestamp() - facts.now())
