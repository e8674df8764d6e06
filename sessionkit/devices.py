"""A user's sessions, listed and ended one by one: the "your devices" page every large site has.

``engine.store.user_sessions(user_id)`` (``auser_sessions`` in async code) lists each live
session bound to a user as a ``UserSession``; ``engine.store.revoke(user_id, handle)`` ends
one; ``session.revoke_others()`` ends every other session of the current user when the
response is saved. The same steps serve every mode: the backend says where a user's sessions
are listed (the store's user index; in jwt:// mode, the revocation store, which learns of each
token bound to a user) and how one is ended (deleted; in jwt:// mode, deny-listed).

**Handles.** A listed session is named by a handle: an HMAC, keyed from the secret key, of its
store key (of the token's ``sid`` in jwt:// mode). It names one session to the app that listed
it and is good for nothing else:

* it is not a cookie, and no cookie can be made from it: the cookie carries the session id,
  from which the store key is derived one way (``sessionkit.ids``), and the handle is one
  more one-way step away;
* it is not a store key either, so someone who reads a devices page cannot address the store;
* ``revoke`` takes the user id as well, and only ends a session it finds among *that user's*
  sessions: a handle posted by another user (or guessed) ends nothing. It needs no index of
  handles either (no extra write when a session is created): the user's own index is listed
  and each key's handle compared, in constant time.

Revoking is immediate on shared stores (the record is deleted, or the ``sid`` deny-listed);
in hybrid mode the copies other instances hold go at once with Redis invalidations, else within
``near_cache_max_age``; in local mode each instance lists and ends the sessions it holds.
"""

from __future__ import annotations

import base64
import dataclasses
import hmac
import re
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from . import meta
from .ids import derive
from .sansio import run_async, run_sync

if TYPE_CHECKING:
    from .backend import Backend, Steps
    from .stores.base import Record
_HANDLE_BYTES = 16
_HANDLE_RE = re.compile(r"[A-Za-z0-9_-]{22}")


class Handles:
    """Handles of store keys under a list of secrets: the first makes them, all are accepted
    (a handle listed just before a key rotation still works)."""

    __slots__ = ("_keys",)

    def __init__(self, secret_keys: Sequence[bytes]) -> None:
        self._keys = [derive(secret, b"session-handle") for secret in secret_keys]

    def of(self, key: str) -> str:
        return _handle(self._keys[0], key)

    def matches(self, handle: str, key: str) -> bool:
        return any(hmac.compare_digest(handle, _handle(k, key)) for k in self._keys)


def _handle(secret: bytes, key: str) -> str:
    digest = hmac.digest(secret, key.encode("utf-8", "surrogatepass"), "sha256")
    return base64.urlsafe_b64encode(digest[:_HANDLE_BYTES]).rstrip(b"=").decode("ascii")


@dataclasses.dataclass(frozen=True, slots=True)
class UserSession:
    """One live session of a user, as a devices page shows it."""

    #: Names this session to ``store.revoke(user_id, handle)``; nothing else can use it.
    handle: str
    created_at: datetime
    #: When the session was last used, to within a tenth of its idle timeout (stores that
    #: cannot slide expiry while reading record use in steps, not on every request).
    last_seen: datetime
    expires_at: datetime
    #: The instance that created the session, when known.
    instance: str | None
    #: What the app said about it (``session.description``), e.g. "Firefox on Linux".
    description: str | None
    #: When its user last proved who they are (``session.mark_authenticated()``).
    authenticated_at: datetime | None

    def to_dict(self) -> dict[str, Any]:
        """The fields as JSON values (times in ISO 8601), for an API response."""
        return {
            "handle": self.handle, "created_at": self.created_at.isoformat(),
            "last_seen": self.last_seen.isoformat(), "expires_at": self.expires_at.isoformat(),
            "instance": self.instance, "description": self.description,
            "authenticated_at": (self.authenticated_at.isoformat()
                                 if self.authenticated_at is not None else None),
        }


def _time(epoch: float) -> datetime:
    return datetime.fromtimestamp(epoch, UTC)


class Devices:
    """Lists and ends the sessions of users for one engine. Each operation is written once, as
    steps (``sessionkit.sansio``) that the engine's runners perform on either face."""

    def __init__(self, backend: Backend, handles: Handles, clock: Callable[[], float],
                 idle: float, absolute: float, perform: Callable[[Any], Any],
                 aperform: Callable[[Any], Awaitable[Any]]) -> None:
        self.backend = backend
        self.handles = handles
        #: The engine's clock (epoch seconds; ``time.time`` read at each call by default).
        self.clock = clock
        self._idle = idle
        self._absolute = absolute
        self._perform = perform
        self._aperform = aperform

    def check(self) -> None:
        """Raise ``ConfigError`` now if this mode cannot list users' sessions (jwt:// without
        a revocation store)."""
        self.backend.check_user_listing()

    # --- the steps ----------------------------------------------------------------------------
    def records(self, user_id: str) -> Steps[list[tuple[str, Record]]]:
        """``(key, record)`` of each live session of ``user_id``."""
        _check_user_id(user_id)
        now = self.clock()
        found = yield from self.backend.user_records(user_id, now)
        idle, absolute = self._idle, self._absolute
        return [(key, record) for key, record in found
                if meta.alive(record, now, idle, absolute)]

    def listing(self, user_id: str) -> Steps[list[UserSession]]:
        found = yield from self.records(user_id)
        sessions = [self.describe(key, record) for key, record in found]
        sessions.sort(key=lambda s: (s.last_seen, s.created_at), reverse=True)
        return sessions

    def revoking(self, user_id: str, handle: str) -> Steps[bool]:
        if type(handle) is not str:
            raise TypeError(f"a session handle is a str, not {type(handle).__name__}")
        if not _HANDLE_RE.fullmatch(handle):
            _check_user_id(user_id)
            return False  # not a handle at all: nothing to look up
        found = yield from self.records(user_id)
        for key, record in found:
            if self.handles.matches(handle, key):
                yield from self.backend.revoke(key, record)
                return True
        return False

    def revoking_others(self, user_id: str, keep: str | None) -> Steps[int]:
        """End every session of ``user_id`` but the one at ``keep``; return how many."""
        found = yield from self.records(user_id)
        ended = 0
        for key, record in found:
            if key != keep:
                yield from self.backend.revoke(key, record)
                ended += 1
        return ended

    def describe(self, key: str, record: Record) -> UserSession:
        facts = record.meta
        authenticated = facts.get(meta.AUTHENTICATED)
        idle, absolute = meta.limits(facts, self._idle, self._absolute)
        ends = min(record.expires_at, record.created_at + absolute)
        if meta.IDLE in facts:  # its own idle timeout, which a sliding read does not know
            ends = min(ends, record.accessed_at + idle)
        return UserSession(
            handle=self.handles.of(key), created_at=_time(record.created_at),
            last_seen=_time(record.accessed_at), expires_at=_time(ends),
            instance=record.instance, description=facts.get(meta.DESCRIPTION),
            authenticated_at=_time(authenticated) if authenticated is not None else None,
        )

    # --- the two faces --------------------------------------------------------------------
    def user_sessions(self, user_id: str) -> list[UserSession]:
        return run_sync(self.listing(user_id), self._perform)

    async def auser_sessions(self, user_id: str) -> list[UserSession]:
        return await run_async(self.listing(user_id), self._aperform)

    def revoke(self, user_id: str, handle: str) -> bool:
        return run_sync(self.revoking(user_id, handle), self._perform)

    async def arevoke(self, user_id: str, handle: str) -> bool:
        return await run_async(self.revoking(user_id, handle), self._aperform)


def _check_user_id(user_id: object) -> None:
    if type(user_id) is not str or not user_id:
        raise TypeError(f"user_id must be a non-empty str, not {user_id!r}")


__all__ = ["Devices", "Handles", "UserSession"]
