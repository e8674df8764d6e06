"""Hybrid mode: a near cache of the sessions an instance serves, in front of a shared store.

The shared store (Redis, SQL) keeps the truth; each instance keeps a bounded LRU of copies of
the sessions it served, and the load balancer's affinity makes those copies hit. Affinity is
an optimisation here, never a correctness requirement: a request that lands anywhere else is
read from the store, exactly as in shared mode.

The cookie is ``<id>~<stamp>.<instance>``: the route stays what follows the only ``.`` (so the
generated load-balancer configs route on it unchanged), and the *stamp* is a random tag that
every write replaces. A copy remembers the stamp of the write (or of the cookie it was read
for) that made it.

**The rule.** A read is served from the copy, with no store round trip, only when

1. the cookie's route names this instance,
2. this instance holds a copy of that session whose stamp equals the cookie's stamp, no write
   to it is in flight here, and no store invalidation of it awaits its recheck,
3. the copy is not past its expiry as last known (else the store decides),
4. and either the store has pushed invalidations without a break since before the copy was
   read (Redis, ``sessionkit.invalidations``), or it confirmed the copy (read or written it)
   less than ``near_cache_max_age`` ago.

Otherwise the session is read from the store, and the copy is refreshed.

**Why it is safe.** A session changes only by a write, and every write goes through to the
store before its response, replacing the stamp in the cookie it sends. A copy is made only from
a store read, or from a write this instance knows the exact outcome of: no other write to that
session ran here meanwhile, and the store's answer is the record's new version, the next after
the copy's (every write bumps it atomically with its data), so no other instance wrote in
between either (else the copy is dropped). So for a client whose requests follow one another,
the cookie it sends always carries the stamp of its latest write, and only the process that
made that write (or read the session since) holds a copy with that stamp: a write through B is
never hidden by A's copy, because B's cookie names B and carries a stamp A never saw (the stamp
also tells apart worker processes that share an instance id). Destroying a session
(``invalidate``, ``regenerate``, expiry) drops the copy here before and after the store delete.
What a cookie cannot carry — a log-out-everywhere, or a write made through another instance by
a concurrent request whose older cookie the browser kept — reaches the copy through a Redis
invalidation at once, else once the copy is ``near_cache_max_age`` old (the stated bound).

Loads that race with writes or drops never install what they read if the session changed
here after the load began: every change takes a tick of one counter, and a removed copy
leaves a tombstone with its tick (bounded; beyond the bound, the newest forgotten tick stands
for all of them).
"""

from __future__ import annotations

import dataclasses
import itertools
import secrets
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterator, Mapping
from typing import Any

from .backend import Found, Lookup, Miss, Steps
from .events import Events
from .ids import SessionIds
from .serverside import STAMP_SEPARATOR, Cookie, ServerSide
from .session import SessionState
from .stores.base import Delete, DeleteUser, Op, R, Record, Store, Touch, merge_fields

#: Random bytes of a write stamp (hex in the cookie: 8 characters).
STAMP_BYTES = 4
#: An invalidation this soon after a write here may be that write's own: the copy is rechecked
#: with a store read (and kept if equal) instead of dropped.
OWN_WRITE_SECONDS = 1.0


def new_stamp() -> str:
    return secrets.token_hex(STAMP_BYTES)


@dataclasses.dataclass(slots=True)
class Copy:
    """One cached session. ``record`` is never changed in place (a change installs a new one),
    so it can be handed to a request as it is."""

    record: Record
    stamp: str
    confirmed: float  #: when the store last confirmed this content (engine clock)
    tick: int  #: when it was installed or last began changing (``NearCache`` counter)
    writing: int = 0  #: ticket of a write in flight here (0: none)
    #: Tick of a store invalidation not yet checked (0: none): not served until rechecked.
    doubt: int = 0
    #: When (``time.monotonic``) a write or touch here last changed this record, or 0: an
    #: invalidation soon after is likely that change's own, worth a recheck, not a drop.
    written: float = 0.0


class NearCache:
    """A bounded LRU of copies with the bookkeeping of the rule above. Thread-safe; no
    method blocks, so asyncio needs nothing more."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._copies: OrderedDict[str, Copy] = OrderedDict()
        # Removed copies: key -> (reason, tick), for miss reasons and racing loads.
        self._gone: OrderedDict[str, tuple[str, int]] = OrderedDict()
        self._floor = 0  # the newest tick of a tombstone forgotten
        self._loading: dict[str, int] = {}  # keys being read from the store: how many reads
        #: Since when (engine clock) the store has been pushing invalidations without a break;
        #: None when it is not. Copies confirmed after it need no ``max_age``.
        self.watched_since: float | None = None
        self._ticks = itertools.count(1)
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._copies)

    def tick(self) -> int:
        """The current tick: a load takes one before it reads the store."""
        with self._lock:
            return next(self._ticks)

    def begin_load(self, key: str) -> int:
        """Register a store read of ``key`` (so that invalidations meanwhile are remembered);
        return the tick to ``install`` with. Pair with ``end_load``."""
        with self._lock:
            self._loading[key] = self._loading.get(key, 0) + 1
            return next(self._ticks)

    def end_load(self, key: str) -> None:
        with self._lock:
            left = self._loading.pop(key, 1) - 1
            if left:
                self._loading[key] = left

    def lookup(self, key: str, stamp: str, now: float, max_age: float
               ) -> tuple[Record | None, str]:
        """The copy to serve, with "hit"; or None with the reason (``events.NEAR_CACHE``)."""
        with self._lock:
            copy = self._copies.get(key)
            if copy is None:
                gone = self._gone.get(key)
                return None, gone[0] if gone is not None else "not_cached"
            if copy.writing or copy.stamp != stamp:
                return None, "stale_version"
            record = copy.record
            watched = self.watched_since is not None and copy.confirmed > self.watched_since
            if (copy.doubt or record.expires_at <= now
                    or (not watched and now - copy.confirmed >= max_age)):
                return None, "invalidated"
            self._copies.move_to_end(key)
            return record, "hit"

    def stamp_of(self, key: str) -> str | None:
        with self._lock:
            copy = self._copies.get(key)
            return copy.stamp if copy is not None else None

    def install(self, key: str, record: Record, stamp: str, now: float, since: int) -> bool:
        """Keep what a store read returned, unless the session changed here since ``since``
        (the tick taken before the read): then the read may predate that change."""
        with self._lock:
            gone = self._gone.get(key)
            if (gone[1] if gone is not None else self._floor) > since:
                return False
            copy = self._copies.get(key)
            if copy is not None and (copy.writing or copy.tick > since):
                return False
            self._put(key, Copy(record, stamp, now, next(self._ticks)))
            return True

    def created(self, key: str, record: Record, stamp: str) -> None:
        """A new session was written: its copy is exact (nobody else knows its key yet)."""
        with self._lock:
            self._put(key, Copy(record, stamp, record.accessed_at, next(self._ticks),
                                written=time.monotonic()))

    def begin_write(self, key: str) -> tuple[int, Record | None]:
        """Mark a write in flight; return its ticket and the copy it may build on, if that
        copy is current (no other write in flight here)."""
        with self._lock:
            ticket = next(self._ticks)
            copy = self._copies.get(key)
            if copy is None:
                return ticket, None
            base = None if copy.writing else copy.record
            copy.writing = copy.tick = ticket
            return ticket, base

    def end_write(self, key: str, ticket: int, record: Record | None, stamp: str) -> int:
        """Install ``record`` (the copy the write built on, with its changes applied) if no
        other write began here since ``ticket``; else, or with ``record`` None (the write's
        outcome is unknown), drop the copy. Returns the tick of an invalidation that arrived
        meanwhile (the new copy then waits for a recheck), else 0."""
        with self._lock:
            copy = self._copies.get(key)
            if record is not None and copy is not None and copy.writing == ticket:
                doubt = copy.doubt
                self._put(key, Copy(record, stamp, record.accessed_at, next(self._ticks),
                                    doubt=doubt, written=time.monotonic()))
                return doubt
            self._drop(key, "invalidated")
            return 0

    # --- invalidations pushed by the store (``sessionkit.invalidations``) ------------------
    def invalidated(self, keys: list[str]) -> list[tuple[str, int]]:
        """The store says ``keys`` changed. A copy this instance wrote in the last
        ``OWN_WRITE_SECONDS`` is set aside until rechecked (the change is likely its own
        write); any other copy is dropped; reads in flight never install what they read.
        Returns the copies to recheck (key and tick)."""
        rechecks = []
        recent = time.monotonic() - OWN_WRITE_SECONDS
        with self._lock:
            for key in keys:
                copy = self._copies.get(key)
                if copy is not None and (copy.writing or copy.written > recent):
                    copy.doubt = copy.tick = next(self._ticks)
                    if not copy.writing:  # a write in flight asks for its own recheck
                        rechecks.append((key, copy.doubt))
                elif copy is not None or key in self._loading:
                    # Not this instance's own write: the copy goes (a read refreshes it).
                    self._drop(key, "invalidated")
        return rechecks

    def confirm(self, key: str, doubt: int, stored: tuple[int, float] | None, now: float
                ) -> None:
        """A recheck found the record's version and the time of its last write or touch
        (``stored``; None: gone or unreadable). Keep the copy if both are the copy's own: the
        change was this instance's own write (every write bumps the version with its data;
        the time also tells apart writers that keep no version), else drop it."""
        with self._lock:
            copy = self._copies.get(key)
            if copy is None or copy.doubt != doubt or copy.writing:
                return  # changed here since: a newer recheck or the write decides
            record = copy.record
            if stored == (record.version, record.accessed_at):
                copy.doubt = 0
                copy.confirmed = now
            else:
                self._drop(key, "invalidated")

    def watching(self, since: float | None) -> None:
        """Invalidations flow from ``since`` (engine clock), or stopped (None): then any
        could have been missed, so every copy goes."""
        with self._lock:
            if since is None:
                for key in list(self._copies):
                    self._drop(key, "invalidated")
            self.watched_since = since

    def end_touch(self, key: str, ticket: int, accessed_at: float | None,
                  expires_at: float) -> int:
        """A touch begun with ``begin_write`` ended: the copy takes the new expiry, or goes
        when the record is gone (``accessed_at`` None) or another change began here since.
        Its content stays as confirmed as it was (a touch proves the record alive, not
        unchanged). Returns the tick of an invalidation that arrived meanwhile, as
        ``end_write`` does."""
        with self._lock:
            copy = self._copies.get(key)
            if accessed_at is not None and copy is not None and copy.writing == ticket:
                copy.record = dataclasses.replace(copy.record, accessed_at=accessed_at,
                                                  expires_at=expires_at)
                copy.writing = 0
                copy.tick = next(self._ticks)
                copy.written = time.monotonic()
                return copy.doubt
            self._drop(key, "invalidated")
            return 0

    def drop(self, key: str) -> None:
        with self._lock:
            self._drop(key, "invalidated")

    def drop_user(self, user_id: str) -> int:
        """Drop every copy bound to ``user_id`` (log-out-everywhere through this instance)."""
        with self._lock:
            keys = [k for k, c in self._copies.items() if c.record.user_id == user_id]
            for key in keys:
                self._drop(key, "invalidated")
            return len(keys)

    # --- lock held -------------------------------------------------------------------------
    def _put(self, key: str, copy: Copy) -> None:
        self._copies[key] = copy
        self._copies.move_to_end(key)
        while len(self._copies) > self.size:
            old_key, old = self._copies.popitem(last=False)
            self._bury(old_key, "evicted", old.tick)

    def _drop(self, key: str, reason: str) -> None:
        self._copies.pop(key, None)
        self._bury(key, reason, next(self._ticks))

    def _bury(self, key: str, reason: str, tick: int) -> None:
        gone = self._gone
        gone[key] = (reason, tick)
        gone.move_to_end(key)
        while len(gone) > self.size:
            _, (_, forgotten) = gone.popitem(last=False)
            self._floor = max(self._floor, forgotten)


class NearBackend(ServerSide):
    """Server-side sessions through a ``NearCache``: the rule in the module docstring."""

    def __init__(
        self, store: Store, ids: SessionIds, instance_id: str, idle: float, absolute: float,
        secondaries: tuple[Store, ...] = (), *, size: int, max_age: float,
        clock: Callable[[], float],
    ) -> None:
        super().__init__(store, ids, instance_id, idle, absolute, secondaries)
        self.cache = NearCache(size)
        self.max_age = max_age
        #: What the app sees as ``engine.store``: log-out-everywhere also drops copies here.
        self.public_store = NearStore(store, self.cache)
        #: Where hits and misses are counted (the engine's ``Events``).
        self.events: Events | None = None
        #: Redis invalidations (``sessionkit.invalidations``), for the stores that push them.
        self.invalidations = _invalidations_for(store, self.cache, clock, idle, absolute)

    def _count(self, result: str) -> None:
        if self.events is not None:
            self.events.near(result)

    def hit_now(self, value: str, now: float) -> Lookup | None:
        """A copy here, served without the steps (most requests); else None."""
        cookie = self.parse(value)
        if isinstance(cookie, Miss) or cookie.route != self.instance_id:
            return None  # (no copy to serve: the steps read the store)
        return self._near(cookie, now)[0]

    def _near(self, cookie: Cookie, now: float) -> tuple[Found | None, str]:
        """The copy here (a hit, counted), or None and why not (counted by the read)."""
        if self.invalidations is not None:
            self.invalidations.start()  # here, not at import: after a pre-fork server forks
        if cookie.route != self.instance_id:
            return None, "route_elsewhere"
        record, result = self.cache.lookup(cookie.key, cookie.stamp, now, self.max_age)
        if record is None:
            return None, result
        self._count(result)
        return Found(record, cookie.token, cookie.key, cookie.route, cookie.generation), result

    def lookup(self, value: str, now: float) -> Steps[Lookup]:
        cookie = self.parse(value)
        if isinstance(cookie, Miss):
            return cookie
        near, result = self._near(cookie, now)
        if near is not None:
            return near
        here = cookie.route == self.instance_id
        self._count(result)
        since = self.cache.begin_load(cookie.key)
        try:
            found = yield from self.read(cookie, now)
            if isinstance(found, Found):
                self.cache.install(cookie.key, found.record, cookie.stamp or new_stamp(), now,
                                   since)
                # Name this instance (with a stamp) so that the next request can hit.
                found.reroute = not here or not cookie.stamp
        finally:
            self.cache.end_load(cookie.key)
        return found

    def create(self, record: Record) -> Steps[tuple[str, str, str]]:
        _, token, key = yield from super().create(record)
        stamp = new_stamp()
        self.cache.created(key, dataclasses.replace(record), stamp)
        return self._value(token, stamp), token, key

    def update(
        self, state: SessionState, changes: Mapping[str, str], removed: tuple[str, ...],
        record: Record,
    ) -> Steps[str | None]:
        key, token = state.key, state.token
        assert key is not None
        assert token is not None
        ticket, base = self.cache.begin_write(key)
        stamp = new_stamp()
        try:
            stored = yield from self.write(state, changes, removed, record)
        except BaseException:
            self.cache.end_write(key, ticket, None, stamp)
            raise
        after = (_applied(base, changes, removed, record, state.user_changed, state.meta_changed,
                          stored) if stored else None)
        self._recheck(key, self.cache.end_write(key, ticket, after, stamp))
        return self._value(token, stamp) if stored else None

    def touch(self, state: SessionState, record: Record) -> Steps[str | None]:
        """In flight like a write (its own invalidation is rechecked, not taken for
        another's), since it changes the record's last write time that rechecks compare."""
        key = state.key
        assert key is not None
        ticket, _ = self.cache.begin_write(key)
        alive = False
        try:
            alive = yield Touch(key, record.accessed_at, record.expires_at)
        finally:
            doubt = self.cache.end_touch(key, ticket, record.accessed_at if alive else None,
                                         record.expires_at)
        self._recheck(key, doubt)
        return None

    def _recheck(self, key: str, doubt: int) -> None:
        """A change here ended after an invalidation of the copy arrived (``doubt``, else 0):
        the watcher rechecks the copy, which is not served meanwhile."""
        if doubt and self.invalidations is not None:
            self.invalidations.recheck(key, doubt)

    def destroy(self, key: str, until: float) -> Steps[None]:
        self.cache.drop(key)  # never served again here, even while the delete runs
        try:
            yield Delete(key)
        finally:
            self.cache.drop(key)  # nor installed by a load that read it before the delete

    def close(self) -> None:
        if self.invalidations is not None:
            self.invalidations.stop()

    def cookie_value(self, state: SessionState, record: Record) -> str:
        assert state.token is not None
        assert state.key is not None
        return self._value(state.token, self.cache.stamp_of(state.key) or new_stamp())

    def _value(self, token: str, stamp: str) -> str:
        return f"{token}{STAMP_SEPARATOR}{stamp}{self._route_suffix}"


def _invalidations_for(store: Store, cache: NearCache, clock: Callable[[], float],
                       idle: float, absolute: float) -> Any:
    """The store's invalidation watcher, for the stores that push changes, else None."""
    return store.invalidation_watcher(cache, clock, idle, absolute)


def _applied(base: Record | None, changes: Mapping[str, str], removed: tuple[str, ...],
             written: Record, set_user: bool, set_meta: bool, stored: int) -> Record | None:
    """The stored session after a delta write on top of ``base``, or None when it is not
    known exactly: only a store that tells the record's new version (``stored``, an ``int``
    and not ``True``) can show that nobody wrote between ``base`` and this write, which is
    when the new version is the next after ``base``'s. Another instance's write merged in
    between (through a cookie the browser kept from before) would otherwise be missing from
    the copy for as long as this instance keeps confirming it with its own writes."""
    if base is None or type(stored) is not int or stored != base.version + 1:
        return None
    return Record(merge_fields(base.fields, changes, removed), base.created_at,
                  written.expires_at, written.accessed_at,
                  written.user_id if set_user else base.user_id, stored,
                  base.instance, written.meta if set_meta else base.meta)


class NearStore(Store):
    """The shared store as the app sees it (``engine.store``): every operation goes to the
    store, and whatever it may change is dropped from this instance's copies afterwards."""

    def __init__(self, inner: Store, cache: NearCache) -> None:
        self.inner = inner
        self.cache = cache
        self.name = inner.name
        self.capabilities = inner.capabilities  # type: ignore[misc]

    def execute(self, op: Op[R]) -> R:
        try:
            return self.inner.execute(op)
        finally:
            self._forget(op)

    async def aexecute(self, op: Op[R]) -> R:
        try:
            return await self.inner.aexecute(op)
        finally:
            self._forget(op)

    def _forget(self, op: Op[Any]) -> None:
        if isinstance(op, DeleteUser):
            self.cache.drop_user(op.key)
        elif op.method != "load":
            self.cache.drop(op.key)

    def iter_records(self, batch: int = 1000) -> Iterator[list[tuple[str, Record]]]:
        return self.inner.iter_records(batch)

    def put_records(self, items: list[tuple[str, Record]], absolute: float) -> int:
        written = self.inner.put_records(items, absolute)
        for key, _ in items:
            self.cache.drop(key)
        return written

    def close(self) -> None:
        self.inner.close()

    async def aclose(self) -> None:
        await self.inner.aclose()
