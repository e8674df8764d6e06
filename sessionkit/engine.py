"""SessionEngine: all session policy, framework-neutral and free of I/O.

``_load`` and ``_commit`` are generators that *yield* store operations and receive their
results (the sans-I/O style of h11). ``load``/``commit`` drive them with the store's sync
``execute``; ``aload``/``acommit`` await its ``aexecute``. So WSGI and ASGI share every line
of policy and differ only in the runner that performs the I/O (``sessionkit.sansio``).
What differs between server-side and client-side sessions sits behind ``Backend``.
"""

from __future__ import annotations

import atexit
import dataclasses
import logging
import secrets
import signal
import threading
import time
import weakref
from collections.abc import Generator, Sequence
from typing import Any, NamedTuple, TypeAlias, TypeVar

from . import drain, events, migrate, workers
from .affinity import instance_id_for, routed_mode
from .backend import Backend, Found, Miss
from .codecs import SessionIds, encode_value
from .config import SessionConfig
from .cookies import CookieWriter, cookie_values
from .errors import ConfigError, SessionTooLarge, StoreUnavailable
from .nearcache import NearBackend
from .sansio import run_async, run_sync
from .serverside import ServerSide
from .session import Session
from .stores import Store, open_store
from .stores.base import On, Record, Request, deadline
from .stores.memory import MemoryStore

logger = logging.getLogger("sessionkit")

T = TypeVar("T")
Steps: TypeAlias = Generator[Request, Any, T]  # an engine step: yields store operations

#: Stores that cannot slide expiry while reading get a write once this fraction of the idle
#: timeout has passed since the last one, not on every request.
TOUCH_FRACTION = 0.1
#: Authentic session cookies looked up per request at most (a stale cookie on a narrower path
#: is sent before the live one on "/"; more than this is not a browser).
_MAX_LOOKUPS = 3


class CommitResult(NamedTuple):
    """What the response must carry: ``Set-Cookie`` values, whether to add ``Vary: Cookie``,
    and any other headers (the affinity debug header)."""

    set_cookies: list[str]
    vary: bool
    headers: Sequence[tuple[str, str]] = ()


DEBUG_HEADER = "X-Sessionkit-Affinity"


class SessionEngine:
    """Loads and commits sessions for one configuration. Middlewares only translate HTTP."""

    def __init__(
        self,
        config: SessionConfig | str | None = None,
        /,
        *,
        store: Store | str | None = None,
        session_class: type[Session] = Session,
        **kwargs: Any,
    ) -> None:
        # ``store`` is a URL like every other setting, or a ready Store object (custom stores).
        instance = store if isinstance(store, Store) else None
        if isinstance(store, str):
            kwargs["store"] = store
        elif instance is not None and "://" in instance.name:
            kwargs["store"] = instance.name
        self.config = cfg = SessionConfig.coerce(config, kwargs)
        self.instance_id = instance_id_for(cfg.instance_id, routes=routed_mode(cfg, instance),
                                           secret_keys=cfg.secret_keys)
        self.cookies = CookieWriter(cfg)
        self.route_cookies = (
            CookieWriter(dataclasses.replace(cfg, cookie_name=cfg.route_cookie, route_cookie=None))
            if cfg.route_cookie else None
        )
        self.session_class = session_class
        self._clock = cfg.clock
        self._idle = cfg.idle_seconds
        self._absolute = cfg.absolute_seconds
        self._cookie_name = cfg.cookie_name
        self.backend = self._make_backend(instance)
        #: The store behind the sessions: ``store.delete_user_sessions(user_id)`` and friends.
        self.store: Store = self.backend.public_store
        self._io = self.backend.io_store
        self.local = isinstance(self._io, MemoryStore)
        self._untimed: Store | None = self._io if self.local else None
        mode = "client" if cfg.scheme == "jwt" else ("local" if not self.store.shared else "shared")
        near = self.backend if isinstance(self.backend, NearBackend) else None
        #: Hooks, counters and Prometheus text: ``engine.events.on("affinity_miss", hook)``.
        self.events = events.Events(self.instance_id, cfg.scheme,
                                    "hybrid" if near is not None else mode)
        if near is not None:
            near.events = self.events
        if isinstance(self._io, MemoryStore):
            self.events.live_sessions = _counter(self._io)
        self._importer = migrate.importer_for(cfg)
        # Both frameworks call their cookie "session" unless told otherwise.
        self._old_cookie = cfg.migrate_cookie_name or "session"
        self._old_cookie_writer = (
            CookieWriter(dataclasses.replace(cfg, cookie_name=self._old_cookie,
                                             route_cookie=None))
            if self._importer is not None and self._old_cookie != cfg.cookie_name else None
        )
        self._workers_checked = not self.local
        self._debug_header = bool(cfg.debug_header)
        self._drain_store = self._open_drain_store()
        self._drained = threading.Event()

    def _make_backend(self, instance: Store | None) -> Backend:
        config = self.config
        if instance is None and config.scheme == "jwt":
            try:
                from .client.jwt import JwtBackend
            except ModuleNotFoundError as exc:
                if exc.name not in ("jwt", "cryptography"):
                    raise
                raise ConfigError(
                    "the jwt:// mode needs PyJWT: pip install 'sessionkit[jwt]'"
                ) from None
            if config.migrate_from is not None and "://" in config.migrate_from:
                raise ConfigError(
                    "migrate_from=<store URL> reads server-side sessions, which jwt:// cannot "
                    "hold; migrate to a server-side store, or import a framework cookie with "
                    "migrate_from='flask-cookie' / 'starlette-cookie'"
                )
            revocation = open_store(config.revocation_store) if config.revocation_store else None
            return JwtBackend(config, revocation)
        if config.revocation_store is not None:  # e.g. left in the environment after a switch
            logger.warning(
                "sessionkit: revocation_store is ignored with %s://: server-side sessions are "
                "revoked by deleting them", config.scheme,
            )
        store = instance if instance is not None else open_store(config.store)
        ids = SessionIds(config.secret_keys or self._development_key(store))
        secondaries = []
        if config.on_affinity_miss == "fallback" and config.fallback_store is not None:
            if store.shared:
                logger.warning("sessionkit: on_affinity_miss='fallback' is ignored with a "
                               "shared store: every instance already sees every session")
            else:
                secondaries.append(_shared_store(config.fallback_store, "fallback_store"))
        if config.migrate_from is not None and "://" in config.migrate_from:
            secondaries.append(open_store(config.migrate_from))
        if config.near_cache:
            if not store.shared:
                raise ConfigError(f"near_cache=True needs a shared store (redis://, a SQL URL), "
                                  f"not {store.name}")
            return NearBackend(store, ids, self.instance_id, self._idle, self._absolute,
                               tuple(secondaries), size=config.near_cache_size,
                               max_age=config.near_cache_seconds, clock=config.clock,
                               url=config.store)
        return ServerSide(store, ids, self.instance_id, self._idle, self._absolute,
                          tuple(secondaries))

    def _development_key(self, store: Store) -> tuple[bytes, ...]:
        """No secret_key: only a store private to this process can live with a random key."""
        if store.shared or self.config.drain_to or self.config.fallback_store:
            raise ConfigError(
                f"secret_key is required with the {self.config.scheme}:// store and with "
                f"drain_to/fallback_store: every instance must hash session ids the same way. "
                f"Set secret_key (or SESSIONKIT_SECRET_KEY) to the output of: "
                f"python -c \"import secrets; print(secrets.token_urlsafe(48))\""
            )
        logger.warning(
            "sessionkit: no secret_key configured; using a random key for this process only. "
            "Sessions end when the process restarts. Set secret_key (or SESSIONKIT_SECRET_KEY) "
            "in production."
        )
        return (secrets.token_bytes(32),)

    def _open_drain_store(self) -> Store | None:
        target = self.config.drain_to
        if target is None:
            return None
        if not self.local:
            logger.warning("sessionkit: drain_to is ignored: sessions already live in %s",
                           self.store.name)
            return None
        store = _shared_store(target, "drain_to")
        atexit.register(_drain_at_exit, weakref.ref(self))
        _exit_on_sigterm()
        return store

    # --- sync and async faces ---------------------------------------------------------------
    def load(self, cookie_header: str | None) -> Session:
        """The session for a request's ``Cookie`` header (a fresh one when there is none)."""
        return run_sync(self._load(cookie_header), self._perform)

    async def aload(self, cookie_header: str | None) -> Session:
        return await run_async(self._load(cookie_header), self._aperform)

    def commit(self, session: Session, *, https: bool = False) -> CommitResult:
        """Save what changed; return what the response must carry."""
        return run_sync(self._commit(session, https), self._perform)

    async def acommit(self, session: Session, *, https: bool = False) -> CommitResult:
        return await run_async(self._commit(session, https), self._aperform)

    def drain(self) -> int:
        """Copy this instance's live sessions to ``drain_to`` (once); return how many moved.
        Runs by itself at exit, on SIGTERM and at ASGI lifespan shutdown."""
        if self._drain_store is None or self._drained.is_set():
            return 0
        self._drained.set()
        return self._report(run_sync(self._drain_steps(), self._perform))

    async def adrain(self) -> int:
        if self._drain_store is None or self._drained.is_set():
            return 0
        self._drained.set()
        return self._report(await run_async(self._drain_steps(), self._aperform))

    def close(self) -> None:
        self.backend.close()
        self._io.close()

    async def aclose(self) -> None:
        self.backend.close()
        await self._io.aclose()

    def _perform(self, request: Request) -> Any:
        """Perform one store operation, timed, an outage counted (``_Observed``). Operations
        on this process's memory are not timed: they cost less than the timing."""
        store, op = (request.store, request.op) if isinstance(request, On) else (self._io, request)
        if store is self._untimed:
            return store.execute(op)
        with _Observed(self.events):
            return store.execute(op)

    async def _aperform(self, request: Request) -> Any:
        store, op = (request.store, request.op) if isinstance(request, On) else (self._io, request)
        if store is self._untimed:
            return store.execute(op)  # memory: nothing to await
        with _Observed(self.events):
            return await store.aexecute(op)

    # --- policy -----------------------------------------------------------------------------
    def _fresh(self, now: float, lookup: str, route: str | None = None) -> Session:
        session = self.session_class(now=now, expires_at=min(self._idle, self._absolute) + now)
        session._lookup = lookup
        session._route = route
        return session

    def _load(self, cookie_header: str | None) -> Steps[Session]:
        if not self._workers_checked:
            self._workers_checked = True
            workers.warn_if_shared(self.instance_id)
        now = self._clock()
        candidates = cookie_values(cookie_header, self._cookie_name)
        session: Session | None = None
        miss = Miss("new")
        looked_up = 0
        for value in candidates:
            result = yield from self.backend.lookup(value, now)
            if isinstance(result, Found):
                record = result.record
                if record.expires_at > now and record.created_at + self._absolute > now:
                    session = self._loaded(result, now)
                    break
                yield from self.backend.destroy(result.key, record.expires_at)
                self.events.emit("expired", self._hasher(result.token))
                result = self.backend.miss(result.route)
            if result.reason == "invalid":
                if looked_up == 0:
                    miss = result
                continue
            if looked_up == 0:
                miss = result
            looked_up += 1
            if looked_up == _MAX_LOOKUPS:
                break
        if session is None and self._importer is not None:
            session = self._import(cookie_header, candidates, now)
        if session is None:
            session = self._fresh(now, miss.reason, miss.route)
        self._observe_lookup(session)
        return session

    def _import(self, cookie_header: str | None, candidates: list[str], now: float
                ) -> Session | None:
        """A session from the framework cookie the app used before sessionkit, if valid."""
        assert self._importer is not None
        if self._old_cookie != self._cookie_name:
            candidates = cookie_values(cookie_header, self._old_cookie)
        for value in candidates[:_MAX_LOOKUPS]:
            data = self._importer(value)
            if data is None:
                continue
            session = self._fresh(now, "imported")
            session._raw = {key: encode_value(key, item) for key, item in data.items()}
            session._is_new = False
            session._imported = True
            return session
        return None

    def _hasher(self, token: str | None) -> Any:
        """A function giving the keyed hash of ``token``, for when someone wants it."""
        log_id = self.backend.log_id
        return lambda: log_id(token) if token else None

    def _observe_lookup(self, session: Session) -> None:
        lookup = session._lookup
        self.events.lookup(lookup)
        token = self._hasher(session._token)
        if lookup == "hit":
            self.events.emit("loaded", token)
        elif lookup == "affinity_miss":
            logger.warning(
                "sessionkit: affinity miss: the cookie names instance %r, served by %r "
                "(the load balancer did not route it home; session unknown here)",
                session._route, self.instance_id,
            )
            self.events.emit("affinity_miss", expected_instance=session._route)
        elif lookup == "invalid":
            logger.debug("sessionkit: session cookie rejected (malformed or not ours)")
        events.current.set(events.RequestContext(
            self.instance_id, token, lookup,
            session._route if lookup == "affinity_miss" else None,
        ))

    def _loaded(self, found: Found, now: float) -> Session:
        record = found.record
        session = self.session_class()
        session._raw = record.fields
        session._token = found.token
        session._key = found.key
        session._route = found.route
        session._reroute = found.reroute
        session._generation = found.generation
        session._created_at = record.created_at
        session._last_accessed = record.accessed_at
        expires = deadline(record.created_at, now, self._idle, self._absolute)
        if not self.backend.slides_on_load:
            # Slide (a write) only once a tenth of the idle timeout has passed since the last
            # slide; until then the stored deadline stays the one in force.
            session._touch = expires - record.expires_at >= self._idle * TOUCH_FRACTION
            if not session._touch:
                expires = record.expires_at
        session._expires_at = expires
        session._version = record.version
        session._user_id = record.user_id
        session._is_new = False
        session._lookup = "hit"
        if found.generation:  # issued under a retired secret: move it to the current one
            session._doomed.append((found.key, expires))
            session._key = None
            session._token = None
        return session

    def _commit(self, session: Session, https: bool) -> Steps[CommitResult]:
        headers = []
        if self._debug_header and session._lookup == "affinity_miss":
            headers.append((DEBUG_HEADER, f"miss; expected={session._route}; "
                                          f"served={self.instance_id}"))
        if _untouched(session):
            return CommitResult([], session.accessed, headers)
        delta: tuple[dict[str, str], tuple[str, ...]] | None = None
        if session._key is not None and not (
                session._user_changed or session._force or session._touch or session._reroute
                or session._doomed or session._invalidated or session._removed):
            # The common read: values were looked at. Did any change in place?
            delta = session._delta()
            if not delta[0]:
                return CommitResult([], session.accessed, headers)
        now = self._clock()
        backend = self.backend
        expires = deadline(session._created_at, now, self._idle, self._absolute)
        record = Record({}, session._created_at, expires, now, session._user_id,
                        session._version, self.instance_id)
        value: str | None = None
        event: str | None = None
        cookies: list[str] = []
        if session._key is None:  # new, regenerated, invalidated or re-keyed
            record.fields = session._fields()
            if record.fields or session._user_id is not None:
                value, token, key = yield from backend.create(record)
                cookies = self._cookies(value, session, now, https)
                session._raw, session._values = record.fields, {}
                session._removed, session._assigned = set(), set()
                session._token, session._key = token, key
                event = "regenerated" if session._doomed and not session._invalidated else "created"
            elif session._invalidated:
                cookies = self._deleted_cookies(https)
            if session._imported and self._old_cookie_writer is not None:
                cookies.append(self._old_cookie_writer.delete(https=https))  # imported: clear it
        else:
            changes, removed = delta if delta is not None else session._delta()
            if changes or removed or session._user_changed or session._force:
                record.fields = session._fields(changes)
                value = yield from backend.update(session, changes, removed, record)
                event = "saved"
            elif session._touch:
                record.fields = session._raw
                value = yield from backend.touch(session, record)
            else:
                record.expires_at = session._expires_at
            if value is None and session._reroute:
                value = backend.cookie_value(session)  # the session moved here: say so
            if value is not None:
                cookies = self._cookies(value, session, now, https)
        # Old ids die only once the new state is saved and its cookie is known to fit.
        for key, until in session._doomed:
            yield from backend.destroy(key, until)
        if session._invalidated:
            self.events.emit("invalidated")
        session._doomed = []
        session._expires_at = record.expires_at
        session._user_changed = session._force = session._invalidated = False
        session._touch = session._reroute = False
        if event is not None:
            self.events.emit(event, self._hasher(session._token))
        return CommitResult(cookies, session.accessed or bool(cookies), headers)

    def _cookies(self, value: str, session: Session, now: float, https: bool) -> list[str]:
        max_age = session._created_at + self._absolute - now
        try:
            cookie = self.cookies.set(value, max_age=max_age, now=now, https=https)
        except SessionTooLarge as exc:
            fields = session._fields()
            largest = sorted(((k, len(k) + len(v)) for k, v in fields.items()),
                             key=lambda item: -item[1])
            raise SessionTooLarge(exc.size, exc.limit, largest[:3]) from None
        self.events.observe_cookie(len(cookie))
        if self.route_cookies is None:
            return [cookie]
        route = self.route_cookies.set(self.instance_id, max_age=max_age, now=now, https=https)
        return [cookie, route]

    def _deleted_cookies(self, https: bool) -> list[str]:
        cookies = [self.cookies.delete(https=https)]
        if self.route_cookies is not None:
            cookies.append(self.route_cookies.delete(https=https))
        return cookies

    def _drain_steps(self) -> Steps[tuple[int, int, float]]:
        assert self._drain_store is not None
        assert isinstance(self._io, MemoryStore)
        started = time.monotonic()
        moved, left = yield from drain.drain_steps(
            self._io, self._drain_store, now=self._clock(), absolute=self._absolute,
            clock=time.monotonic, deadline=started + self.config.drain_seconds,
        )
        return moved, left, time.monotonic() - started

    def _report(self, result: tuple[int, int, float]) -> int:
        moved, left, seconds = result
        assert self._drain_store is not None
        drain.report(moved, left, self._drain_store, seconds)
        return moved


class _Observed:
    """Times one store operation and counts an outage: the bookkeeping both runners share.
    A plain class rather than ``contextlib.contextmanager``: it runs for every operation."""

    __slots__ = ("events", "started")

    def __init__(self, sink: events.Events) -> None:
        self.events = sink
        self.started = time.perf_counter()

    def __enter__(self) -> None:
        return None

    def __exit__(self, kind: type[BaseException] | None, *rest: object) -> None:
        if kind is not None and issubclass(kind, StoreUnavailable):
            self.events.emit("store_error")
        self.events.observe_store(time.perf_counter() - self.started)


def _untouched(session: Session) -> bool:
    """Nothing to save and no cookie to send: the common case, decided without any work."""
    if session._values or session._removed or session._doomed or session._force:
        return False
    if session._key is None:  # a new session that stayed empty
        return not session._raw and session._user_id is None and not session._invalidated
    return not (session._user_changed or session._touch or session._reroute)


def _counter(store: MemoryStore) -> Any:
    reference = weakref.ref(store)

    def live() -> int | None:
        found = reference()
        return len(found) if found is not None else None

    return live


def _shared_store(url: str, setting: str) -> Store:
    store = open_store(url)
    if not store.shared:
        raise ConfigError(f"{setting} must be a store every instance can reach (redis://, a SQL "
                          f"URL), not {store.name}")
    return store


def _drain_at_exit(reference: weakref.ref[SessionEngine]) -> None:
    engine = reference()
    if engine is None:
        return
    try:
        engine.drain()
    except Exception:
        logger.exception("sessionkit: draining sessions at exit failed")


def _exit_on_sigterm() -> None:
    """Make SIGTERM a normal exit (so the drain at exit runs) unless someone handles it
    already: gunicorn and uvicorn do, and drain through their own shutdown."""
    if threading.current_thread() is not threading.main_thread():
        return
    if signal.getsignal(signal.SIGTERM) is signal.SIG_DFL:
        signal.signal(signal.SIGTERM, _raise_system_exit)


def _raise_system_exit(signum: int, frame: Any) -> None:
    raise SystemExit(128 + signum)
