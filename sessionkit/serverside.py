"""Server-side sessions: the cookie carries ``<id>.<instance>``, a store keeps the data.

Hybrid mode (``sessionkit.nearcache``) adds a write stamp to the id part:
``<id>~<stamp>.<instance>``. The route stays what follows the only ``.``; this backend reads
such cookies too (ignoring the stamp), so switching hybrid mode off logs nobody out.
"""

from __future__ import annotations

import functools
import logging
import re
from collections.abc import Callable, Mapping
from typing import NamedTuple

from .affinity import split_route
from .backend import Backend, Found, Lookup, Miss, Steps
from .ids import TOKEN_LENGTH, SessionIds
from .session import SessionState
from .stores.base import (
    BlockingStore,
    Create,
    Delete,
    ListUser,
    Load,
    On,
    Record,
    Store,
    Touch,
    Update,
)

logger = logging.getLogger("sessionkit")
STAMP_SEPARATOR = "~"
MAX_STAMP_LENGTH = 16
_STAMP_RE = re.compile(rf"[0-9a-z]{{1,{MAX_STAMP_LENGTH}}}")
_MAX_COOKIE_VALUE = TOKEN_LENGTH + 1 + MAX_STAMP_LENGTH + 1 + 63
INVALID = Miss("invalid")
VERIFIED_CACHE_SIZE = 8192


class Cookie(NamedTuple):
    """An authentic server-side cookie value, taken apart."""

    token: str
    key: str  #: the store key
    generation: int  #: index of the secret that issued it
    route: str | None  #: the instance it names
    stamp: str  #: hybrid mode's write stamp ("" when absent)


class ServerSide(Backend):
    """``secondaries``: stores to read a session from when this store does not hold it, in
    order — the fallback store where other instances drained their sessions (local mode), the
    old store of a migration (``migrate_from``). A session found there moves here."""

    def __init__(
        self, store: Store, ids: SessionIds, instance_id: str, idle: float, absolute: float,
        secondaries: tuple[Store, ...] = (),
    ) -> None:
        self.io_store = self.public_store = self.store = store
        self.secondaries = secondaries
        self.slides_on_load = store.capabilities.slides_on_load
        self._local = not store.shared
        # ``lookup_now`` calls the store's own ``load`` when its ``execute`` is the base's
        # dispatch to it (one call fewer per read of this process's memory).
        self._load_now: Callable[[Load], Record | None] = (
            store.load if isinstance(store, BlockingStore)
            and type(store).execute is BlockingStore.execute else store.execute)
        self._use(ids)
        self.instance_id = instance_id
        self._route_suffix = "." + instance_id
        self._idle = idle
        self._absolute = absolute
        # A store in this process and nowhere else to look: every lookup is answered on the
        # spot, so ``hit_now`` is the whole lookup (a subclass with its own ``lookup`` offers
        # its own ``hit_now``, if any).
        self.inline = (store.capabilities.nonblocking and not secondaries
                       and type(self).lookup is ServerSide.lookup)
        if self.inline:
            self.hit_now = self.lookup_now

    def _use(self, ids: SessionIds) -> None:
        self.ids = ids
        # What a cookie value says depends on nothing but the value (and the secrets): a
        # browser sending the same cookie again costs a dictionary lookup instead of taking
        # it apart, base64 and an HMAC. Bounded, so hostile values only cycle the cache.
        self._verify = ids.verify
        self.parse = functools.lru_cache(maxsize=VERIFIED_CACHE_SIZE)(  # type: ignore[method-assign]
            self._parse)

    def rekey(self, secret_keys: tuple[bytes, ...]) -> None:
        self._use(SessionIds(secret_keys))

    def parse(self, value: str) -> Cookie | Miss:
        """What a cookie value says, checked (length, characters, authenticity) before any
        store lookup (remembered per value: ``_use``)."""
        return self._parse(value)

    def _parse(self, value: str) -> Cookie | Miss:
        if len(value) > _MAX_COOKIE_VALUE:
            return INVALID
        parts = split_route(value)
        if parts is None:
            return INVALID
        token, route = parts
        token, _, stamp = token.partition(STAMP_SEPARATOR)
        if stamp and not _STAMP_RE.fullmatch(stamp):
            return Miss("invalid", route)
        verified = self._verify(token)
        if verified is None:
            return Miss("invalid", route)
        key, generation = verified
        return Cookie(token, key, generation, route, stamp)

    def lookup(self, value: str, now: float) -> Steps[Lookup]:
        cookie = self.parse(value)
        if isinstance(cookie, Miss):
            return cookie
        return (yield from self.read(cookie, now))

    def lookup_now(self, value: str, now: float) -> Lookup:
        """``lookup``, performed on the spot (``hit_now`` when ``inline``)."""
        cookie = self.parse(value)
        if isinstance(cookie, Miss):
            return cookie
        record = self._load_now(Load(cookie.key, now, self._idle, self._absolute))
        return self._found(cookie, record, moved=False)

    def read(self, cookie: Cookie, now: float) -> Steps[Lookup]:
        """Read the session a parsed cookie names from the store (or a secondary)."""
        load = Load(cookie.key, now, self._idle, self._absolute)
        record: Record | None = yield load
        moved = False
        for secondary in self.secondaries:
            if record is not None:
                break
            record = yield from self._move(secondary, cookie.key, load)
            moved = record is not None
        return self._found(cookie, record, moved)

    def _found(self, cookie: Cookie, record: Record | None, moved: bool) -> Lookup:
        """What a read found: the session, or why there is none."""
        token, key, generation, route = cookie.token, cookie.key, cookie.generation, cookie.route
        if record is None:
            return self.miss(route)
        reroute = self._local and (moved or (route is not None and route != self.instance_id))
        # A hybrid-mode cookie: re-issue it without the stamp, or a hybrid instance it names
        # could take this instance's writes for its own copy's version (mixed fleets).
        reroute = reroute or bool(cookie.stamp)
        return Found(record, token, key, route, generation, reroute)

    def _move(self, secondary: Store, key: str, load: Load) -> Steps[Record | None]:
        """Read ``key`` from ``secondary`` and move it here. If another request moved it
        first, its copy here wins (it may hold that request's changes already)."""
        record: Record | None = yield On(secondary, load)
        if record is None:
            # Gone from there too: a concurrent request may have just moved it here.
            moved: Record | None = yield load
            return moved
        if record.expires_at <= load.now or record.created_at + self._absolute <= load.now:
            yield On(secondary, Delete(key))
            return None
        created = yield Create(key, record, self._absolute, if_absent=True)
        if not created:
            record = yield load
        yield On(secondary, Delete(key))
        return record

    def miss(self, route: str | None) -> Miss:
        foreign = route is not None and route != self.instance_id
        return Miss("affinity_miss" if foreign and not self.store.shared else "not_found", route)

    def create(self, record: Record) -> Steps[tuple[str, str, str]]:
        token, key = self.ids.new()
        yield Create(key, record, self._absolute)
        return token + self._route_suffix, token, key

    def update(
        self, state: SessionState, changes: Mapping[str, str], removed: tuple[str, ...],
        record: Record,
    ) -> Steps[str | None]:
        stored = yield from self.write(state, changes, removed, record)
        return self.cookie_value(state, record) if stored else None

    def write(
        self, state: SessionState, changes: Mapping[str, str], removed: tuple[str, ...],
        record: Record,
    ) -> Steps[int]:
        """Merge a request's changes into the stored session; False if it was destroyed, else
        what the store answered (True, or the record's new version)."""
        assert state.key is not None
        # The deadline slides on the same steps for writes as for reads (see the engine's
        # TOUCH_FRACTION): until a step is due it stays the one stored.
        slide = self.slides_on_load or state.touch
        if not slide:
            record.expires_at = state.expires_at
        stored: int = yield Update(
            state.key, changes, removed, record.user_id, state.user_changed,
            record.accessed_at, record.expires_at, state.raw, state.version,
            self._absolute, slide, record.meta if state.meta_changed else None,
        )
        if not stored:
            logger.info(
                "sessionkit: session %s was destroyed by another request; this request's "
                "changes were dropped", self.log_id(state.token or ""),
            )
        return stored

    def touch(self, state: SessionState, record: Record) -> Steps[str | None]:
        assert state.key is not None
        yield Touch(state.key, record.accessed_at, record.expires_at)
        return None

    def destroy(self, key: str, until: float) -> Steps[None]:
        yield Delete(key)

    def user_records(self, user_id: str, now: float) -> Steps[list[tuple[str, Record]]]:
        found: list[tuple[str, Record]] = yield ListUser(user_id, now)
        return found

    def cookie_value(self, state: SessionState, record: Record) -> str:
        assert state.token is not None
        return state.token + self._route_suffix

    def log_id(self, token: str) -> str:
        return self.ids.log_id(token)
