"""SessionEngine: all session policy, framework-neutral and free of I/O.

``_load`` and ``_commit`` are generators that *yield* store operations and receive their
results (the sans-I/O style of h11). ``load``/``commit`` drive them with the store's sync
``execute``; ``aload``/``acommit`` await its ``aexecute``. So WSGI and ASGI share every line
of policy and differ only in the three-line runner that performs the I/O.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Generator
from typing import Any, NamedTuple, TypeAlias, TypeVar

from .affinity import resolve_instance_id, split_route
from .codecs import TOKEN_LENGTH, SessionIds
from .config import SessionConfig
from .cookies import CookieWriter, cookie_values
from .errors import ConfigError
from .sansio import run_async, run_sync
from .session import Session
from .stores import Store, open_store
from .stores.base import Create, Delete, Load, Op, Record, Touch, Update, deadline

logger = logging.getLogger("sessionkit")

T = TypeVar("T")
Steps: TypeAlias = Generator[Op, Any, T]  # an engine step: yields store operations

#: Stores that cannot slide expiry while reading get a write once this fraction of the idle
#: timeout has passed since the last one, not on every request.
TOUCH_FRACTION = 0.1
_MAX_COOKIE_VALUE = TOKEN_LENGTH + 1 + 63
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
        self.store = instance if instance is not None else open_store(cfg.store)
        self.ids = SessionIds(cfg.secret_keys or self._development_key())
        self.cookies = CookieWriter(cfg)
        self.session_class = session_class
        self._clock = cfg.clock
        self._idle = cfg.idle_seconds
        self._absolute = cfg.absolute_seconds
        self._cookie_name = cfg.cookie_name
        self._route_suffix = "." + self.instance_id

    def _development_key(self) -> tuple[bytes, ...]:
        """No secret_key: only a store private to this process can live with a random key."""
        if self.store.shared:
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
        return run_sync(self._load(cookie_header), self.store.execute)

    async def aload(self, cookie_header: str | None) -> Session:
        return await run_async(self._load(cookie_header), self.store.aexecute)

    def commit(self, session: Session, *, https: bool = False) -> CommitResult:
        """Save what changed; return what the response must carry."""
        return run_sync(self._commit(session, https), self.store.execute)

    async def acommit(self, session: Session, *, https: bool = False) -> CommitResult:
        return await run_async(self._commit(session, https), self.store.aexecute)

    def close(self) -> None:
        self.store.close()

    async def aclose(self) -> None:
        await self.store.aclose()

    # --- policy -----------------------------------------------------------------------------
    def _fresh(self, now: float, lookup: str) -> Session:
        session = self.session_class(now=now, expires_at=min(self._idle, self._absolute) + now)
        session._lookup = lookup
        return session

    def _parse(self, value: str) -> tuple[str, str | None, str, int] | None:
        """``(token, route, store_key, generation)`` of an authentic cookie value, else None.
        Everything is checked here, before any store lookup."""
        if len(value) > _MAX_COOKIE_VALUE:
            return None
        parts = split_route(value)
        if parts is None:
            return None
        verified = self.ids.verify(parts[0])
        if verified is None:
            return None
        return parts[0], parts[1], verified[0], verified[1]

    def _load(self, cookie_header: str | None) -> Steps[Session]:
        now = self._clock()
        candidates = cookie_values(cookie_header, self._cookie_name)
        if not candidates:
            return self._fresh(now, "new")
        idle, absolute = self._idle, self._absolute
        lookup = "invalid"
        looked_up = 0
        for value in candidates:
            parsed = self._parse(value)
            if parsed is None:
                continue
            token, route, key, generation = parsed
            record: Record | None = yield Load(key, now, idle, absolute)
            if record is not None and (
                record.expires_at <= now or record.created_at + absolute <= now
            ):
                yield Delete(key)  # expired under the current settings
                record = None
            if record is not None:
                return self._loaded(record, now, token, route, key, generation)
            if looked_up == 0:
                foreign = route is not None and route != self.instance_id
                lookup = "affinity_miss" if foreign and not self.store.shared else "not_found"
            looked_up += 1
            if looked_up == _MAX_LOOKUPS:
                break
        if lookup == "invalid":
            logger.debug("sessionkit: session cookie rejected (malformed or not ours)")
        return self._fresh(now, lookup)

    def _loaded(
        self, record: Record, now: float, token: str, route: str | None, key: str, generation: int
    ) -> Session:
        session = self.session_class()
        session._raw = record.fields
        session._token = token
        session._key = key
        session._route = route
        session._generation = generation
        session._created_at = record.created_at
        session._last_accessed = record.accessed_at
        expires = deadline(record.created_at, now, self._idle, self._absolute)
        if not self.store.slides_on_load:
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
        if generation:  # issued under a retired secret: move it to the current one
            session._doomed.append(key)
            session._key = None
            session._token = None
        return session

    def _commit(self, session: Session, https: bool) -> Steps[CommitResult]:
        now = self._clock()
        set_cookies: list[str] = []
        if session._doomed:
            for key in session._doomed:
                yield Delete(key)
            session._doomed = []
        if session._key is None:  # new, regenerated, invalidated or re-keyed
            expires = deadline(session._created_at, now, self._idle, self._absolute)
            fields = session._fields()
            if not fields and session._user_id is None:
                if session._invalidated:
                    set_cookies.append(self.cookies.delete(https=https))
                return CommitResult(set_cookies, session.accessed or bool(set_cookies))
            token, key = self.ids.new()
            cookie = self.cookies.set(
                token + self._route_suffix,
                max_age=session._created_at + self._absolute - now,
                now=now,
                https=https,
            )
            record = Record(fields, session._created_at, expires, now, session._user_id)
            yield Create(key, record, self._absolute)
            set_cookies.append(cookie)
            session._raw, session._values = fields, {}
            session._removed, session._assigned = set(), set()
            session._token, session._key, session._version = token, key, record.version
            session._expires_at = expires
            session._user_changed = session._force = session._invalidated = False
            return CommitResult(set_cookies, True)

        changes, removed = session._delta()
        expires = session._expires_at
        if changes or removed or session._user_changed or session._force:
            stored = yield Update(
                session._key, changes, removed, session._user_id, session._user_changed,
                now, expires, session._touch, session._raw, session._version, self._absolute,
            )
            if not stored:
                logger.info(
                    "sessionkit: session %s was destroyed by another request; "
                    "this request's changes were dropped", self.ids.log_id(session._token or ""),
                )
            session._user_changed = session._force = session._touch = False
        elif session._touch:
            yield Touch(session._key, now, expires)
            session._touch = False
        return CommitResult(set_cookies, session.accessed)
