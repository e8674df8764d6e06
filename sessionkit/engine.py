"""SessionEngine: all session policy, framework-neutral and free of I/O.

``_load`` and ``_commit`` are generators that *yield* store operations and receive their
results (the sans-I/O style of h11). ``load``/``commit`` drive them with the store's sync
``execute``; ``aload``/``acommit`` await its ``aexecute``. So WSGI and ASGI share every line
of policy and differ only in the runner that performs the I/O (``sessionkit.sansio``).

What differs between server-side and client-side sessions sits behind ``Backend``
(``sessionkit.resolve`` builds it from the config); the engine's bookkeeping of a session is a
``SessionState`` it owns; draining and exit hooks are the adapters' business
(``sessionkit.lifecycle``). What is left here is policy: which cookie to believe, when a
session has expired, what to save, which cookie the response carries.
"""

from __future__ import annotations

import logging
import secrets
import time
from collections.abc import Callable, Generator, Sequence
from typing import Any, NamedTuple, TypeAlias, TypeVar

from . import events, migrate, peers
from . import meta as facts
from .affinity import debug_header, instance_id_for, routed_mode
from .backend import Found, Lookup, Miss
from .config import SessionConfig
from .cookies import CookieSettings, CookieStyle, CookieWriter, cookie_values
from .devices import Devices, Handles
from .errors import SessionTooLarge, StoreUnavailable
from .lifecycle import Lifecycle
from .nearcache import NearBackend
from .resolve import build_backend, shared_store
from .sansio import run_async, run_sync
from .session import Session, SessionState, loaded_session, state_of
from .stores import Store
from .stores.base import On, Record, Request, deadline
from .stores.memory import MemoryStore

logger = logging.getLogger("sessionkit")

T = TypeVar("T")
Steps: TypeAlias = Generator[Request, Any, T]  # an engine step: yields store operations
#: What changed in a session: each changed key's new text, and the keys removed.
Delta: TypeAlias = tuple[dict[str, str], tuple[str, ...]]

#: Stores that cannot slide expiry while reading get a write once this fraction of the idle
#: timeout has passed since the last one, not on every request.
TOUCH_FRACTION = 0.1
#: No cookie at all (a frozen dataclass is dear to make: one for every request).
_NEW = Miss("new")
#: Authentic session cookies looked up per request at most (a stale cookie on a narrower path
#: is sent before the live one on "/"; more than this is not a browser).
_MAX_LOOKUPS = 3


class CommitResult(NamedTuple):
    """What the response must carry: ``Set-Cookie`` values, whether to add ``Vary: Cookie``,
    and any other headers (the affinity debug header)."""

    set_cookies: list[str]
    vary: bool
    headers: Sequence[tuple[str, str]] = ()


NOTHING = CommitResult([], False)
UNCHANGED = CommitResult([], True)


def saves_session(status: int) -> bool:
    """Whether a response with ``status`` commits the session. A 5xx means the request failed
    part-way: what it changed is dropped, like a rolled-back transaction, so a half-changed
    session (a cart emptied before the payment failed) is never saved and no cookie is set."""
    return status < 500


class SessionEngine:
    """Loads and commits sessions for one configuration. Middlewares only translate HTTP."""

    def __init__(
        self,
        config: SessionConfig | str | None = None,
        /,
        *,
        store: Store | str | None = None,
        session_class: type[Session] = Session,
        cookie_style: CookieStyle = CookieStyle.SESSIONKIT,
        **kwargs: Any,
    ) -> None:
        # ``store`` is a URL like every other setting, or a ready Store object (custom stores).
        if store is not None:
            kwargs["store"] = store
        self.config = cfg = SessionConfig.coerce(config, kwargs)
        instance = cfg.store if isinstance(cfg.store, Store) else None
        # The route hint names this instance where a balancer routes on it; elsewhere it is
        # an opaque id that discloses no host name.
        self.instance_id = instance_id_for(cfg.instance_id, routes=routed_mode(cfg, instance),
                                           secret_keys=cfg.secret_keys)
        self.backend = backend = build_backend(cfg, instance, self.instance_id)
        #: The store behind the sessions: ``store.delete_user_sessions(user_id)`` and friends.
        self.store: Store = backend.public_store
        self._io = backend.io_store
        self.cookie_style = cookie_style
        self.cookies = CookieWriter(CookieSettings.from_config(cfg), cookie_style)
        self.route_cookies = (
            CookieWriter(CookieSettings.from_config(cfg, name=cfg.route_cookie), cookie_style)
            if cfg.route_cookie else None
        )
        self.session_class = session_class
        self._now = cfg.now
        self._idle = cfg.idle_seconds
        self._absolute = cfg.absolute_seconds
        local = self._io if isinstance(self._io, MemoryStore) else None
        near = backend if isinstance(backend, NearBackend) else None
        mode = ("client" if cfg.scheme == "jwt" and instance is None else
                "hybrid" if near is not None else "shared" if self.store.shared else "local")
        #: Hooks, counters and Prometheus text: ``engine.events.on("affinity_miss", hook)``.
        self.events = events.Events(self.instance_id, cfg.scheme, mode)
        if near is not None:
            near.events = self.events
        if local is not None:
            self.events.live_sessions = local.__len__
        # Operations on this process's memory are not timed: they cost less than the timing.
        self._untimed = self._io if self._io.capabilities.nonblocking else None
        #: Imports the sessions an app's previous session layer kept (``migrate_from``): a
        #: framework's signed cookie, or a peer library's store (``sessionkit.peers``).
        self.migration = migrate.importer_for(cfg, self._io)
        self._peer = peers.importer_for(cfg, getattr(backend, "ids", None), self.instance_id)
        # Both frameworks (and both peers) call their cookie "session" unless told otherwise.
        old_name = cfg.migrate_cookie_name or "session"
        self._old_cookie = (
            CookieWriter(CookieSettings.from_config(cfg, name=old_name), cookie_style)
            if (self.migration or self._peer) and old_name != cfg.cookie_name else None)
        drain_to = None
        if cfg.drain_to is not None:
            if local is None:
                logger.warning("sessionkit: drain_to is ignored: sessions already live in %s",
                               self.store.name)
            else:
                drain_to = shared_store(cfg.drain_to, "drain_to")
        #: Draining, exit hooks and the worker check, called by the adapters.
        self.lifecycle = Lifecycle(self.instance_id, local, drain_to, absolute=self._absolute,
                                   drain_seconds=cfg.drain_seconds, now=self._now)
        self._debug_header = bool(cfg.debug_header)
        #: Whether every operation of a request is on this process's memory (nothing to
        #: wait for, no import from another store either): then async code may call ``load``
        #: and ``commit`` directly.
        self.inline = backend.inline and not (self.migration or self._peer)
        #: A lookup that may be answered without the steps (``Backend.hit_now``).
        self._quick = backend.hit_now
        #: A user's sessions, listed and revoked (``engine.store.user_sessions``).
        self.devices = Devices(backend, Handles(_handle_secrets(cfg.secret_keys, backend)),
                               self._now, self._idle, self._absolute, self._perform,
                               self._aperform)
        self.store.devices = self.devices

    # --- sync and async faces ---------------------------------------------------------------
    def load(self, cookie_header: str | None, cookies: CookieWriter | None = None) -> Session:
        """The session for a request's ``Cookie`` header (a fresh one when there is none).
        ``cookies`` replaces the configured cookie (a framework whose settings change); the
        commit then writes that cookie too, unless it is given another."""
        cookies = cookies or self.cookies
        quick = self._quick_load(cookie_header, cookies) if self._quick is not None else None
        if isinstance(quick, Session):
            return quick
        return run_sync(self._load(cookie_header, cookies, quick), self._perform)

    async def aload(self, cookie_header: str | None,
                    cookies: CookieWriter | None = None) -> Session:
        cookies = cookies or self.cookies
        quick = self._quick_load(cookie_header, cookies) if self._quick is not None else None
        if isinstance(quick, Session):
            return quick
        if self.inline:  # every operation a load can make is on this process's memory
            return run_sync(self._load(cookie_header, cookies, quick), self._perform)
        return await run_async(self._load(cookie_header, cookies, quick), self._aperform)

    def commit(self, session: Session, *, https: bool | Callable[[], bool] = False,
               status: int = 200, cookies: CookieWriter | None = None) -> CommitResult:
        """Save what changed; return what the response must carry. A response ``status`` of
        500 or more saves nothing (see ``saves_session``). ``https`` may be a function: it is
        asked only when a cookie may be written (most requests write none)."""
        pending = self._pending(session, https, status, cookies)
        if isinstance(pending, CommitResult):
            return pending
        return run_sync(pending, self._perform)

    async def acommit(self, session: Session, *, https: bool | Callable[[], bool] = False,
                      status: int = 200, cookies: CookieWriter | None = None) -> CommitResult:
        pending = self._pending(session, https, status, cookies)
        if isinstance(pending, CommitResult):
            return pending
        return await run_async(pending, self._aperform)

    def _pending(self, session: Session, https: bool | Callable[[], bool], status: int,
                 cookies: CookieWriter | None) -> CommitResult | Steps[CommitResult]:
        """A commit's answer when it needs no store (a failed request, nothing to save), else
        the steps that save, for ``commit`` and ``acommit`` to run with their own I/O."""
        if not saves_session(status):
            return NOTHING
        state = state_of(session)
        cookies = cookies or state.cookies or self.cookies
        settled, delta = self._settled(session, state, cookies)
        if settled is not None:
            return settled
        if callable(https):
            https = https()
        return self._commit(session, https, cookies, delta=delta)

    async def aload_websocket(self, cookie_header: str | None) -> Session:
        """The session of a WebSocket connection: like ``aload``, but ``regenerate()`` raises
        (no cookie can carry a new id over a WebSocket)."""
        session = await self.aload(cookie_header)
        state_of(session).websocket = True
        return session

    async def acommit_websocket(self, session: Session) -> None:
        """Save a WebSocket's session when the connection ends. What must be destroyed
        (``invalidate()``, an emptied session) is destroyed; changes to a stored session are
        saved; a session created during the connection cannot be (no cookie can carry its
        id), which is logged."""
        await run_async(self._commit(session, False, self.cookies, websocket=True),
                        self._aperform)

    def drain(self) -> int:
        """Copy this instance's live sessions to ``drain_to`` (see ``sessionkit.lifecycle``)."""
        return self.lifecycle.drain()

    async def adrain(self) -> int:
        return await self.lifecycle.adrain()

    def rekey(self, secret_keys: Sequence[bytes]) -> None:
        """Use other secrets from now on (a framework whose secret key changed at run time):
        sessions issued under a key no longer listed are not found."""
        self.backend.rekey(tuple(secret_keys))
        self.devices.handles = Handles(_handle_secrets(tuple(secret_keys), self.backend))

    def close(self) -> None:
        self.backend.close()
        self._io.close()
        if self._peer is not None:
            self._peer.close()

    async def aclose(self) -> None:
        self.backend.close()
        await self._io.aclose()
        if self._peer is not None:
            await self._peer.aclose()

    def _perform(self, request: Request) -> Any:
        """Perform one store operation, timed, an outage counted (``_Observed``)."""
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

    # --- loading ------------------------------------------------------------------------------
    def _fresh(self, now: float, lookup: str, route: str | None = None) -> Session:
        state = SessionState(now, min(self._idle, self._absolute) + now)
        state.lookup = lookup
        state.route = route
        state.devices = self.devices
        return self.session_class(state=state)

    def _quick_load(self, cookie_header: str | None, cookies: CookieWriter
                    ) -> Session | tuple[float, Lookup] | None:
        """Most requests: one cookie, naming a live session that this process holds (its
        memory, a near-cache copy). Answered here without the steps' machinery (generators,
        their runner and the ``StopIteration`` carrying each result cost more than the
        lookup). Otherwise the clock and the answer the quick lookup gave, if any, which
        ``_load`` takes over (a memory read slides the session: a second lookup would see
        it used just now)."""
        candidates = cookie_values(cookie_header, cookies.name)
        if len(candidates) != 1:
            return None
        quick = self._quick
        assert quick is not None
        now = self._now()
        result = quick(candidates[0], now)
        if result is None:
            return None
        if isinstance(result, Found) and facts.alive(
                result.record, now, self._idle, self._absolute):
            session = self._loaded(result, now)
            self._observe_lookup(state_of(session), cookies)
            return session
        return now, result

    def _load(self, cookie_header: str | None, cookies: CookieWriter,
              first: tuple[float, Lookup] | None = None) -> Steps[Session]:
        """``first``: the clock and the lookup of the only cookie, made already."""
        now = self._now() if first is None else first[0]
        candidates = cookie_values(cookie_header, cookies.name)
        session: Session | None = None
        miss = _NEW
        looked_up = 0
        quick = self._quick
        for value in candidates:
            if first is not None:
                result, first = first[1], None
            else:
                answer = quick(value, now) if quick is not None else None
                result = answer if answer is not None else (  # else the steps look it up
                    yield from self.backend.lookup(value, now))
            if isinstance(result, Found):
                record = result.record
                if facts.alive(record, now, self._idle, self._absolute):
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
        if session is None and (self.migration or self._peer):
            session = yield from self._import(cookie_header, candidates, now)
        if session is None:
            session = self._fresh(now, miss.reason, miss.route)
        self._observe_lookup(state_of(session), cookies)
        return session

    def _import(self, cookie_header: str | None, candidates: Sequence[str], now: float
                ) -> Steps[Session | None]:
        """A session holding what the app's previous session layer kept, if the request
        carries its cookie (``migrate_from``); ``migrate_hook`` may bind its user."""
        if self._old_cookie is not None:
            candidates = cookie_values(cookie_header, self._old_cookie.name)
        session: Session | None = None
        if self.migration is not None:
            data = yield from self.migration.lookup(candidates, now)
            if data is not None:
                session = self._fresh(now, "imported")
                for key, value in data.items():
                    dict.__setitem__(session, key, value)
        elif self._peer is not None:
            found = yield from self._peer.lookup(candidates, now)
            if found is not None:
                session = self._loaded(found, now)
        if session is None:
            return None
        state = state_of(session)
        state.lookup = "imported"
        state.is_new = False
        state.imported = True
        hook = self.config.migrate_hook
        if hook is not None:
            hook(session)
        return session

    def _loaded(self, found: Found, now: float) -> Session:
        record = found.record
        state = SessionState()
        state.token = found.token
        state.key = found.key
        state.route = found.route
        state.reroute = found.reroute
        state.generation = found.generation
        state.created_at = record.created_at
        state.last_accessed = record.accessed_at
        idle, absolute = (facts.limits(record.meta, self._idle, self._absolute) if record.meta
                          else (self._idle, self._absolute))
        expires = deadline(record.created_at, now, idle, absolute)
        if not self.backend.slides_on_load:
            # Slide (a write) only once a tenth of the idle timeout has passed since the last
            # slide; until then the stored deadline stays the one in force.
            state.touch = expires - record.expires_at >= idle * TOUCH_FRACTION
            if not state.touch:
                expires = record.expires_at
        state.expires_at = expires
        state.version = record.version
        state.user_id = record.user_id
        state.meta = record.meta
        state.devices = self.devices
        state.is_new = False
        state.lookup = "hit"
        if found.generation:  # issued under a retired secret: move it to the current one
            state.doomed.append((found.key, expires))
            state.key = None
            state.token = None
        return loaded_session(self.session_class, state, record.fields)

    def _hasher(self, token: str | None) -> Any:
        """A function giving the keyed hash of ``token``, for when someone wants it."""
        log_id = self.backend.log_id
        return lambda: log_id(token) if token else None

    def _observe_lookup(self, state: SessionState, cookies: CookieWriter) -> None:
        """Count and report how the session was found; remember the cookie it was loaded
        with when it is not the configured one (the commit writes the same)."""
        if cookies is not self.cookies:
            state.cookies = cookies
        lookup = state.lookup
        if lookup == "hit":
            self.events.loaded(self._hasher, state.token)
        else:
            self.events.lookup(lookup)
        if lookup == "affinity_miss":
            logger.warning(
                "sessionkit: affinity miss: the cookie names instance %r, served by %r "
                "(the load balancer did not route it home; session unknown here)",
                state.route, self.instance_id,
            )
            self.events.emit("affinity_miss", expected_instance=state.route)
        elif lookup == "invalid":
            logger.debug("sessionkit: session cookie rejected (malformed or not ours)")
        if events.CONTEXT_WANTED[0]:
            events.current.set(events.RequestContext(
                self.instance_id, self._hasher(state.token), lookup,
                state.route if lookup == "affinity_miss" else None,
            ))

    # --- committing ---------------------------------------------------------------------------
    def _settled(self, session: Session, state: SessionState, cookies: CookieWriter
                 ) -> tuple[CommitResult | None, Delta | None]:
        """The answer for a request that leaves nothing to save (most requests), decided
        without starting a commit; else None, with the delta when it was computed."""
        if (state.user_changed or state.force or state.touch or state.reroute or state.doomed
                or state.invalidated or state.imported or state.meta_changed
                or state.revoke_others or (self._debug_header and state.lookup == "affinity_miss")
                or (cookies.settings.refresh and state.key is not None
                    and _persistent(session, state, cookies))):
            return None, None
        if not session.accessed:
            return NOTHING, None
        if state.key is None:  # a new session: nothing to save while it stays empty
            empty = not dict.__len__(session) and state.user_id is None
            return (UNCHANGED, None) if empty else (None, None)
        delta = state.delta(session)  # values were looked at: did any change in place?
        return (None, delta) if delta[0] or delta[1] else (UNCHANGED, None)

    def _commit(self, session: Session, https: bool, cookies: CookieWriter,
                websocket: bool = False, delta: Delta | None = None) -> Steps[CommitResult]:
        state = state_of(session)
        headers = (debug_header(state.route, self.instance_id)
                   if self._debug_header and state.lookup == "affinity_miss" else ())
        persistent = _persistent(session, state, cookies)
        refresh = cookies.settings.refresh and persistent and state.key is not None
        if not (session.accessed or state.user_changed or state.force or state.touch
                or state.reroute or state.doomed or state.invalidated or state.imported
                or refresh):
            return CommitResult([], False, headers) if headers else NOTHING
        backend = self.backend
        changes, removed = delta if delta is not None else state.delta(session)
        if state.key is not None and not (changes or removed or state.user_changed
                                          or state.force or state.touch or state.reroute
                                          or state.doomed or refresh or state.meta_changed
                                          or state.revoke_others):
            return CommitResult([], session.accessed, headers) if headers else (
                UNCHANGED if session.accessed else NOTHING)
        now = self._now()
        idle, absolute = facts.limits(state.meta, self._idle, self._absolute)
        expires = deadline(state.created_at, now, idle, absolute)
        if state.user_changed and state.user_id is not None:
            state.meta = {**state.meta, facts.BOUND: now}  # when the user was bound
            state.meta_changed = True
        record = Record({}, state.created_at, expires, now, state.user_id, state.version,
                        self.instance_id, state.meta)
        value: str | None = None
        event: str | None = None
        cookie: list[str] = []
        ended = not dict.__len__(session) and state.user_id is None
        if ended and state.key is not None:
            # Emptied (clear(), or the last key popped): the session ends, as in Starlette
            # and Flask. The record goes too, so nothing is left under the old id.
            state.doomed.append((state.key, state.expires_at))
            state.key = state.token = None
            state.invalidated = True
        if state.key is None:  # new, regenerated, invalidated, emptied or re-keyed
            if not ended and websocket:
                logger.error(
                    "sessionkit: a session created during a WebSocket connection was not "
                    "saved: no cookie can carry a new id there. Create the session in an "
                    "HTTP request (for example at login) before the WebSocket opens")
            elif not ended:
                record.fields = state.fields(session, changes)
                value, token, key = yield from backend.create(record)
                if not websocket:
                    cookie = self._cookies(cookies, value, session, state, now, https,
                                           persistent)
                state.raw, state.loaded = record.fields, dict(dict.items(session))
                state.token, state.key = token, key
                state.is_new = False
                event = "regenerated" if state.doomed and not state.invalidated else "created"
            elif (state.invalidated or state.doomed) and not websocket:
                cookie = self._deleted_cookies(cookies, https)
        else:
            if changes or removed or state.user_changed or state.force or state.meta_changed:
                record.fields = state.fields(session, changes)
                # A write sends the cookie again, as the frameworks do (None: not saved).
                value = yield from backend.update(state, changes, removed, record)
                state.raw, state.loaded = record.fields, dict(dict.items(session))
                event = "saved"
            elif state.touch:
                record.fields = state.raw
                value = yield from backend.touch(state, record)
            else:
                record.fields, record.expires_at = state.raw, state.expires_at
            if value is None and (state.reroute or refresh) and not websocket:
                # The session moved here, or its cookie is refreshed on every response.
                value = backend.cookie_value(state, record)
            if value is not None and not websocket:
                cookie = self._cookies(cookies, value, session, state, now, https, persistent)
        if state.imported and self._old_cookie is not None and not websocket:
            cookie.append(self._old_cookie.delete(https=https))  # imported: retire the old one
        # Old ids die only once the new state is saved and its cookie is known to fit.
        for key, until in state.doomed:
            yield from backend.destroy(key, until)
        if state.revoke_others and state.user_id is not None and state.key is not None:
            yield from self.devices.revoking_others(state.user_id, state.key)
        changed = bool(event or state.doomed or state.invalidated or changes or removed)
        if state.invalidated:
            self.events.emit("invalidated")
        state.changed = state.changed or changed
        state.doomed = []
        state.expires_at = record.expires_at
        state.user_changed = state.force = state.invalidated = False
        state.touch = state.reroute = state.imported = False
        state.meta_changed = state.revoke_others = False
        if event is not None:
            self.events.emit(event, self._hasher(state.token))
        return CommitResult(cookie, session.accessed or bool(cookie), headers)

    def _cookies(self, cookies: CookieWriter, value: str, session: Session,
                 state: SessionState, now: float, https: bool, persistent: bool) -> list[str]:
        _, absolute = facts.limits(state.meta, self._idle, self._absolute)
        remaining = state.created_at + absolute - now
        max_age = cookies.settings.max_age
        lifetime = (None if not persistent else
                    remaining if max_age is None else min(max_age, remaining))
        try:
            cookie = cookies.set(value, max_age=lifetime, now=now, https=https)
        except SessionTooLarge as exc:
            fields = state.raw or state.fields(session, state.delta(session)[0])
            largest = sorted(((k, len(k) + len(v)) for k, v in fields.items()),
                             key=lambda item: -item[1])
            raise SessionTooLarge(exc.size, exc.limit, largest[:3]) from None
        self.events.observe_cookie(len(cookie))
        if self.route_cookies is None:
            return [cookie]
        route = self.route_cookies.set(self.instance_id, max_age=lifetime, now=now, https=https)
        return [cookie, route]

    def _deleted_cookies(self, cookies: CookieWriter, https: bool) -> list[str]:
        deleted = [cookies.delete(https=https)]
        if self.route_cookies is not None:
            deleted.append(self.route_cookies.delete(https=https))
        return deleted


def _handle_secrets(secret_keys: tuple[bytes, ...], backend: Any) -> tuple[bytes, ...]:
    """What session handles (``sessionkit.devices``) are keyed with: the secret keys; for
    jwt:// with asymmetric keys, what its backend derives from the private key; with no key
    at all (local development), a random one, as the session ids then are."""
    if secret_keys:
        return secret_keys
    derived: tuple[bytes, ...] | None = getattr(backend, "handle_secrets", None)
    return derived or (secrets.token_bytes(32),)


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


__all__ = ["CommitResult", "SessionEngine", "saves_session"]


def _persistent(session: Session, state: SessionState, cookies: CookieWriter) -> bool:
    """Whether the session's cookie outlives the browser session: ``set_expiry``'s choice,
    else the framework's (Flask's ``permanent``), else the configured one."""
    meta = state.meta
    persistent = meta.get(facts.PERSISTENT) if meta else None
    if persistent is None:
        persistent = session.cookie_persistent
    if persistent is None:
        persistent = cookies.settings.persistent
    return bool(persistent)
