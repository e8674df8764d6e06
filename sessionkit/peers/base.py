"""What a peer library's session store is to sessionkit: a source read and emptied one
session at a time. A session is read there, written into sessionkit's store and deleted
there; nothing else is ever written there.

The sources run on the same sans-I/O machinery as sessionkit's own stores: the Redis and SQL
sources (``redis_source``, ``sql_source``) are ``RedisStore`` and ``SQLStore`` with other
``load``/``delete`` steps, so the sync and async faces, pools, timeouts and outage handling
are theirs; the cachelib directory source (``file_source``) yields file commands to a sync
runner and an async one. Each maps the id a peer's cookie carries to the key of its record
(``record_id``), turns a stored session into a ``Record`` (``RecordFormat``), and lists its
records for the bulk copy (``iter_records``: record ids with records).
"""

from __future__ import annotations

from typing import NoReturn

from ..errors import ConfigError
from ..stores.base import Create, DeleteUser, Record, Store, Touch, Update
from .records import RecordFormat


class PeerSource(Store):
    """A peer library's session store, read and emptied one session at a time."""

    #: How the peer writes a session's data.
    format: RecordFormat

    def record_id(self, session_id: str) -> str:
        """The key of the record of ``session_id`` (the id the peer's cookie carries)."""
        return session_id

    def _read_only(self) -> NoReturn:
        raise ConfigError(f"{self.name} is a peer library's session store: sessionkit only "
                          f"reads sessions there (and deletes those it moved)")

    def create(self, op: Create) -> NoReturn:
        self._read_only()

    def update(self, op: Update) -> NoReturn:
        self._read_only()

    def touch(self, op: Touch) -> NoReturn:
        self._read_only()

    def delete_user(self, op: DeleteUser) -> NoReturn:
        self._read_only()

    def put_records(self, items: list[tuple[str, Record]], absolute: float) -> NoReturn:
        self._read_only()
