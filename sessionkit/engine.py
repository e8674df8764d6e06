"""SessionEngine: all session policy, framework-neutral and free of I/O.

``_load`` and ``_commit`` are generators that *yield* store operations and receive their
results (the sans-I/O style of h11). ``load``/``commit`` drive them with the store's sync
``execute``; ``aload``/``acommit`` await its ``aexecute``. So WSGI and ASGI share every line
of policy and differ only in the runner that performs the I/O (``sessionkit.sansio``).
What differs between server-side and client-side sessions sits behind ``Backend``.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Generator
from typing import Any, NamedTuple, TypeAlias, TypeVar

from .affinity import resolve_instance_id
from .backend import Backend, Found
from .codecs import SessionIds
from .config import SessionConfig
from .cookies import CookieWriter, cookie_values
from .errors import ConfigError, SessionTooLarge
from .sansio import run_async, run_sync
from .serverside import ServerSide
from .session import Session
from .stores import Store, open_store
from .stores.base import Op, Record, deadline

logger = logging.getLogger("sessionkit")

T = TypeVar("T")
Steps: TypeAlias = Generator[Op, Any, T]  # an engine step: yields store operations

#: Stores that cannot slide expiry while reading get a write once this fraction of the idle
#: timeout has passed since the last one, not on every request.
TOUCH_FRACTION = 0.1
#: Authentic session cookies looked up per request at most (a stale cookie on a narrower path
#: is sent before the live one on "/"; more than this is not a browser).
_MAX_LOOKUPS = 3


class CommitResult(NamedTuple):
    """What the response must carry: ``Set-Cookie`` values, and whether to add ``Vary: Cookie``."""

    set_cookies: list[str]
    vary: bool


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
        self.instance_id = resolve_instance_id(cfg.instance_id)
        self.cookies = CookieWriter(cfg)
        self.session_class = session_class
        self._clock = cfg.clock
        self._idle = cfg.idle_seconds
        self._absolute = cfg.absolute_seconds
        self._cookie_name = cfg.cookie_name
        self.backend = self._make_backend(instance)
        #: The store behind the sessions: ``store.delete_user_sessions(user_id)`` and friends.
        self.store: Store = self.backend.public_store
        self._io = self.backend.io_store

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
            revocation = open_store(config.revocation_store) if config.revocation_store else None
            return JwtBackend(config, revocation)
        if config.revocation_store is not None:  # e.g. left in the environment after a switch
            logger.warning(
                "sessionkit: revocation_store is ignored with %s://: server-side sessions are "
                "revoked by deleting them", config.scheme,
            )
        store = instance if instance is not None else open_store(config.store)
        ids = SessionIds(config.secret_keys or self._development_key(store))
        return ServerSide(store, ids, self.instance_id, self._idle, self._absolute)

    def _development_key(self, store: Store) -> tuple[bytes, ...]:
        """No secret_key: only a store private to this process can live with a random key."""
        if store.shared:
            raise ConfigError(
                f"secret_key is required with the {self.config.scheme}:// store: every instance "
                f"must hash session ids the same way. Set secret_key (or SESSIONKIT_SECRET_KEY) "
                f"to the output of: python -c \"import secrets; print(secrets.token_urlsafe(48))\""
            )
        logger.warning(
            "sessionkit: no secret_key configured; using a random key for this process only. "
            "Sessions end when the process restarts. Set secret_key (or SESSIONKIT_SECRET_KEY) "
            "in production."
        )
        return (secrets.token_bytes(32),)

    # --- sync and async faces ---------------------------------------------------------------
    def load(self, cookie_header: str | None) -> Session:
        """The session for a request's ``Cookie`` header (a fresh one when there is none)."""
        return run_sync(self._load(cookie_header), self._io.execute)

    async def aload(self, cookie_header: str | None) -> Session:
        return await run_async(self._load(cookie_header), self._io.aexecute)

    def commit(self, session: Session, *, https: bool = False) -> CommitResult:
        """Save what changed; return what the response must carry."""
        return run_sync(self._commit(session, https), self._io.execute)

    async def acommit(self, session: Session, *, https: bool = False) -> CommitResult:
        return await run_async(self._commit(session, https), self._io.aexecute)

    def close(self) -> None:
        self._io.close()

    async def aclose(self) -> None:
        await self._io.aclose()

    # --- policy -----------------------------------------------------------------------------
    def _fresh(self, now: float, lookup: str) -> Session:
        session = self.session_class(now=now, expires_at=min(self._idle, self._absolute) + now)
        session._lookup = lookup
        return session

    def _load(self, cookie_header: str | None) -> Steps[Session]:
        now = self._clock()
        candidates = cookie_values(cookie_header, self._cookie_name)
        if not candidates:
            return self._fresh(now, "new")
        backend = self.backend
        lookup = "invalid"
        looked_up = 0
        for value in candidates:
            result = yield from backend.lookup(value, now)
            if isinstance(result, Found):
                record = result.record
                if record.expires_at > now and record.created_at + self._absolute > now:
                    return self._loaded(result, now)
                yield from backend.destroy(result.key, record.expires_at)  # expired
                result = backend.miss(result.route)
            if result == "invalid":
                continue
            if looked_up == 0:
                lookup = result
            looked_up += 1
            if looked_up == _MAX_LOOKUPS:
                break
        if lookup == "invalid":
            logger.debug("sessionkit: session cookie rejected (malformed or not ours)")
        return self._fresh(now, lookup)

    def _loaded(self, found: Found, now: float) -> Session:
        record = found.record
        session = self.session_class()
        session._raw = record.fields
        session._token = found.token
        session._key = found.key
        session._route = found.route
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
        now = self._clock()
        backend = self.backend
        expires = deadline(session._created_at, now, self._idle, self._absolute)
        record = Record({}, session._created_at, expires, now, session._user_id, session._version)
        value: str | None = None
        if session._key is None:  # new, regenerated, invalidated or re-keyed
            record.fields = session._fields()
            if record.fields or session._user_id is not None:
                value, token, key = yield from backend.create(record)
                cookie = self._cookie(value, session, now, https)
                session._raw, session._values = record.fields, {}
                session._removed, session._assigned = set(), set()
                session._token, session._key = token, key
            elif session._invalidated:
                cookie = self.cookies.delete(https=https)
            else:
                cookie = None
        else:
            changes, removed = session._delta()
            if changes or removed or session._user_changed or session._force:
                record.fields = session._fields()
                value = yield from backend.update(session, changes, removed, record)
            elif session._touch:
                record.fields = session._raw
                value = yield from backend.touch(session, record)
            else:
                record.expires_at = session._expires_at
            cookie = None if value is None else self._cookie(value, session, now, https)
        # Old ids die only once the new state is saved and its cookie is known to fit.
        for key, until in session._doomed:
            yield from backend.destroy(key, until)
        session._doomed = []
        session._expires_at = record.expires_at
        session._user_changed = session._force = session._invalidated = session._touch = False
        if cookie is None:
            return CommitResult([], session.accessed)
        return CommitResult([cookie], True)

    def _cookie(self, value: str, session: Session, now: float, https: bool) -> str:
        max_age = session._created_at + self._absolute - now
        try:
            return self.cookies.set(value, max_age=max_age, now=now, https=https)
        except SessionTooLarge as exc:
            fields = session._fields()
            largest = sorted(((k, len(k) + len(v)) for k, v in fields.items()),
                             key=lambda item: -item[1])
            raise SessionTooLarge(exc.size, exc.limit, largest[:3]) from None
