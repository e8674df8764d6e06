"""The read-through from a peer library's store: a request that carries a peer's session
cookie, and no sessionkit session, gets that session, moved into sessionkit's store once.

Where a moved session lives. sessionkit store keys are HMACs of sessionkit tokens, and a peer
cookie is not one; so a peer session gets the token the secret derives from the peer's record
id (``SessionIds.derived``). Every instance and request computes the same token for one peer
cookie, which makes the move safe under concurrency: the first request writes the session at
that key *if absent*, the others find it there, and all of them answer with the same new
cookie, so one browser's parallel first requests share one session and one cart. The bulk
copy (``sessionkit migrate --from <peer URL>``) writes under the same keys, which is how a
copied session is later found by its peer cookie: the read-through looks there first.

The move is one-shot: the session is written here before it is deleted there (a request
that fails after the write loses nothing: the next one finds it here), a peer record is
read and deleted once, and expired ones are deleted unread. The old cookie leads to the moved
session (it was already that session's bearer credential, and a parallel request with it
must land on the same session) until the session is logged out, regenerated (as at login)
or expires; then it leads to a fresh, empty session.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable, Sequence

from ..backend import Found, Steps
from ..errors import StoreUnavailable
from ..ids import SessionIds
from ..stores.base import Create, Delete, Load, On, Record, deadline
from .base import PeerSource

logger = logging.getLogger("sessionkit")

#: Peer cookies tried per request at most (as for sessionkit's own cookies).
MAX_COOKIES = 3


@dataclasses.dataclass(frozen=True, slots=True)
class Peer:
    """A peer library as a source of sessions."""

    kind: str  #: ``flask-session`` or ``starsessions``: part of every derived key
    source: PeerSource
    #: The session id in one of its cookie values, or None (verified first, no I/O).
    read_cookie: Callable[[str], str | None]


def derivation_name(kind: str, record_id: str) -> bytes:
    """What a peer session's sessionkit token is derived from."""
    return f"{kind}\0{record_id}".encode()


class PeerImporter:
    """Finds the session a peer cookie names, here or (moving it) in the peer's store. Its
    steps yield store operations for the engine's runners: plain ones on sessionkit's store,
    ``On(source, ...)`` on the peer's."""

    def __init__(self, peer: Peer, ids: SessionIds, *, idle: float, absolute: float,
                 max_age: float | None, instance_id: str) -> None:
        self.peer = peer
        self.source = peer.source
        self._ids = ids
        self._idle = idle
        self._absolute = absolute
        self._max_age = max_age
        self._instance_id = instance_id

    def lookup(self, values: Sequence[str], now: float) -> Steps[Found | None]:
        """The session of the first peer cookie among ``values`` that has one."""
        for value in values[:MAX_COOKIES]:
            session_id = self.peer.read_cookie(value)
            if session_id is None:
                continue
            found = yield from self.claim(self.source.record_id(session_id), now)
            if found is not None:
                return found
        return None

    def claim(self, record_id: str, now: float) -> Steps[Found | None]:
        """The session of one peer record: already here (moved or copied before), or moved."""
        derived = self._ids.derived(derivation_name(self.peer.kind, record_id))
        record: Record | None = None
        generation = 0
        for index, (_, here) in enumerate(derived):
            record = yield self._load(here, now)
            if record is not None:
                generation = index
                yield from self._forget(record_id)  # a bulk copy leaves it there
                break
        token, key = derived[generation]
        if record is None:
            record = yield from self.move(record_id, key, now)
        if record is None:
            return None
        if record.expires_at <= now or record.created_at + self._absolute <= now:
            yield Delete(key)
            return None
        return Found(record, token, key, None, generation, reroute=True)

    def move(self, record_id: str, key: str, now: float) -> Steps[Record | None]:
        """Write the peer's session at ``key`` unless a concurrent request did, then delete it
        there; the copy here wins (it may hold that request's changes already)."""
        record: Record | None = yield On(self.source, self._load(record_id, now))
        if record is None:
            # Gone there: a concurrent request may have just moved it here.
            moved: Record | None = yield self._load(key, now)
            return moved
        if not self._capped(record, now):
            yield On(self.source, Delete(record_id))
            return None
        created = yield Create(key, record, self._absolute, if_absent=True)
        if not created:
            record = yield self._load(key, now)
        yield from self._forget(record_id)
        return record

    def _load(self, key: str, now: float) -> Load:
        return Load(key, now, self._idle, self._absolute)

    def _capped(self, record: Record, now: float) -> bool:
        """Give a peer session sessionkit's limits; False if it has expired."""
        limit = deadline(record.created_at, now, self._idle, self._absolute)
        if self._max_age is not None:
            limit = min(limit, now + self._max_age)
        record.expires_at = min(record.expires_at, limit)
        record.accessed_at = now
        record.instance = self._instance_id
        return record.expires_at > now

    def _forget(self, record_id: str) -> Steps[None]:
        """Delete the peer's copy of a session that is here. Housekeeping: the session is
        safe here already, so a peer store that fails now costs nothing but a log line (the
        read-through looks here first)."""
        try:
            yield On(self.source, Delete(record_id))
        except StoreUnavailable as exc:
            logger.warning("sessionkit: a session moved from %s could not be deleted there "
                           "(%s); it stays there until it expires", self.source.name, exc)

    def close(self) -> None:
        self.source.close()

    async def aclose(self) -> None:
        await self.source.aclose()
