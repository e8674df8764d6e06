"""``memory://``: sessions in this process — the embedded default and the local (sticky) mode.

An ``OrderedDict`` gives O(1) get/set and LRU order at once; with sliding expiry the least
recently used entry is also the one that expires first, so expired entries are swept from the
old end in O(1) per write. Records are copy-on-write (a write installs a new ``fields`` dict),
so a load hands out the stored dict without copying it. One lock makes every operation atomic
under threaded WSGI servers; no operation awaits, so asyncio needs nothing more.
"""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict
from collections.abc import Iterator

from .base import (
    BlockingStore,
    Capabilities,
    Create,
    Delete,
    DeleteUser,
    ListUser,
    Load,
    Record,
    Touch,
    Update,
    deadline,
    merge_fields,
    positive_int,
    url_options,
)

logger = logging.getLogger("sessionkit")
_SWEEP_PER_WRITE = 2


class MemoryStore(BlockingStore):
    capabilities = Capabilities(shared=False, slides_on_load=True, nonblocking=True,
                                lists_records=True)

    def __init__(self, max_sessions: int = 100_000) -> None:
        if max_sessions < 1:
            raise ValueError("max_sessions must be 1 or more")
        self.max_sessions = max_sessions
        self.name = f"memory://?max_sessions={max_sessions}"
        self.evicted_live = 0
        self._records: OrderedDict[str, Record] = OrderedDict()
        self._users: dict[str, set[str]] = {}
        self._lock = threading.Lock()

    @classmethod
    def from_url(cls, url: str) -> MemoryStore:
        return cls(**url_options(url, {"max_sessions": positive_int}))

    def __len__(self) -> int:
        return len(self._records)

    def iter_records(self, batch: int = 1000) -> Iterator[list[tuple[str, Record]]]:
        with self._lock:
            items = [(key, _copy(r)) for key, r in self._records.items()]
        for start in range(0, len(items), batch):
            yield items[start:start + batch]

    # --- operations -----------------------------------------------------------------------
    def load(self, op: Load) -> Record | None:
        with self._lock:
            record = self._records.get(op.key)
            if record is None or record.expires_at <= op.now:  # expired: the engine deletes it
                return record
            # The slid record replaces this one, which the caller gets: no other reference
            # to it is left here, so nothing changes it under the caller (one copy per read).
            self._records[op.key] = Record(
                record.fields, record.created_at,
                deadline(record.created_at, op.now, op.idle, op.absolute), op.now,
                record.user_id, record.version, record.instance, record.meta)
            self._records.move_to_end(op.key)
            return record

    def create(self, op: Create) -> bool:
        new = op.record
        stored = _copy(new)
        stored.fields = dict(new.fields)
        with self._lock:
            if op.if_absent and op.key in self._records:
                return False
            old = self._records.pop(op.key, None)
            if old is not None:
                self._unindex(op.key, old.user_id)
            self._records[op.key] = stored
            self._index(op.key, stored.user_id)
            self._sweep(new.accessed_at)
            return True

    def update(self, op: Update) -> int:
        with self._lock:
            record = self._records.get(op.key)
            if record is None or record.expires_at <= op.now:
                if record is not None:
                    self._drop(op.key, record)
                return False
            record.fields = merge_fields(record.fields, op.changes, op.removed)
            if op.meta is not None:
                record.meta = dict(op.meta)
            if op.set_user and op.user_id != record.user_id:
                self._unindex(op.key, record.user_id)
                record.user_id = op.user_id
                self._index(op.key, op.user_id)
            record.version += 1
            record.accessed_at = op.now
            record.expires_at = op.expires_at
            self._records.move_to_end(op.key)
            return record.version

    def touch(self, op: Touch) -> bool:
        with self._lock:
            record = self._records.get(op.key)
            if record is None or record.expires_at <= op.now:
                return False
            record.accessed_at = op.now
            record.expires_at = op.expires_at
            return True

    def delete(self, op: Delete) -> None:
        with self._lock:
            record = self._records.pop(op.key, None)
            if record is not None:
                self._unindex(op.key, record.user_id)

    def delete_user(self, op: DeleteUser) -> int:
        with self._lock:
            keys = self._users.pop(op.key, set())
            for key in keys:
                self._records.pop(key, None)
            return len(keys)

    def list_user(self, op: ListUser) -> list[tuple[str, Record]]:
        with self._lock:
            records = self._records
            return [(key, _copy(record)) for key in self._users.get(op.key, ())
                    if (record := records.get(key)) is not None and record.expires_at > op.now]

    # --- bookkeeping (lock held) ----------------------------------------------------------
    def _drop(self, key: str, record: Record) -> None:
        del self._records[key]
        self._unindex(key, record.user_id)

    def _index(self, key: str, user_id: str | None) -> None:
        if user_id is not None:
            self._users.setdefault(user_id, set()).add(key)

    def _unindex(self, key: str, user_id: str | None) -> None:
        if user_id is not None:
            keys = self._users.get(user_id)
            if keys is not None:
                keys.discard(key)
                if not keys:
                    del self._users[user_id]

    def _sweep(self, now: float) -> None:
        """Drop expired entries from the old end, then evict beyond ``max_sessions``."""
        records = self._records
        for _ in range(_SWEEP_PER_WRITE):
            if not records:
                break
            key, record = next(iter(records.items()))
            if record.expires_at > now:
                break
            self._drop(key, record)
        while len(records) > self.max_sessions:
            key, record = records.popitem(last=False)
            self._unindex(key, record.user_id)
            if record.expires_at > now:
                self.evicted_live += 1
                if self.evicted_live == 1 or self.evicted_live % 1000 == 0:
                    logger.warning(
                        "sessionkit: memory store full (max_sessions=%d): evicted %d live "
                        "session(s) so far; raise max_sessions or use a shared store",
                        self.max_sessions, self.evicted_live,
                    )


def _copy(record: Record) -> Record:
    """A snapshot of ``record``. Its ``fields`` dict is shared: the store never changes one in
    place (updates build a new dict), so sharing is safe and saves a copy per read.
    (``dataclasses.replace`` costs several times as much on this hot path.)"""
    return Record(record.fields, record.created_at, record.expires_at, record.accessed_at,
                  record.user_id, record.version, record.instance, record.meta)
