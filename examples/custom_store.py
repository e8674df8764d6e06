"""A session store written outside sessionkit, against its documented contract
(docs/writing-a-store.md): sessions in one SQLite file through the standard library's
``sqlite3`` module, with no SQLAlchemy.

It is a ``BlockingStore``: one plain method per operation. sessionkit runs those on a worker
thread for async apps, so the event loop never waits on the disk. Each operation is one
transaction, which gives the atomicity the contract asks for:

* ``update`` merges its delta into the fields as they are *now* (``BEGIN IMMEDIATE`` takes the
  write lock before reading), so two requests that change different keys both land;
* ``update`` and ``touch`` find nothing for a deleted or expired record and write nothing, so a
  late write never resurrects a session a logout destroyed;
* ``create(if_absent=True)`` is one ``INSERT OR IGNORE``.

Use it as any store: ``SessionMiddleware(app, store=SQLiteFileStore("sessions.db"), ...)``;
prove it with ``sessionkit.testing.StoreContract`` (tests/contract/test_example_store.py).
"""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Iterator
from typing import Any

from sessionkit.stores import BlockingStore, Capabilities
from sessionkit.stores.base import (
    Create,
    Delete,
    DeleteUser,
    ListUser,
    Load,
    Record,
    Touch,
    Update,
    merge_fields,
)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS sessions (
    key TEXT PRIMARY KEY, fields TEXT NOT NULL, created REAL NOT NULL, expires REAL NOT NULL,
    accessed REAL NOT NULL, user_id TEXT, version INTEGER NOT NULL, instance TEXT, meta TEXT
);
CREATE INDEX IF NOT EXISTS sessions_user ON sessions (user_id);
"""


def _record(row: tuple[Any, ...]) -> Record:
    """A record from a row's columns (those ``_row`` selects)."""
    fields, created, expires, accessed, user, version, instance, meta = row
    return Record(json.loads(fields), created, expires, accessed, user, version, instance,
                  json.loads(meta) if meta else {})


class SQLiteFileStore(BlockingStore):
    """Sessions in a SQLite file, shared by every process that opens the same file."""

    capabilities = Capabilities(shared=True, lists_records=True)

    def __init__(self, path: str) -> None:
        self.path = path
        self.name = f"example-sqlite:{path}"
        self._local = threading.local()  # sqlite3 connections stay in their thread
        with self._connect() as connection:
            connection.executescript(_SCHEMA)

    @classmethod
    def from_url(cls, url: str) -> SQLiteFileStore:
        """``examplesqlite:///path/to/sessions.db`` (when published as an entry point)."""
        return cls(url.split("://", 1)[1] or "sessions.db")

    def _connect(self) -> sqlite3.Connection:
        connection: sqlite3.Connection | None = getattr(self._local, "connection", None)
        if connection is None:
            connection = sqlite3.connect(self.path, timeout=30, isolation_level=None)
            self._local.connection = connection
        return connection

    def _row(self, key: str) -> Record | None:
        row = self._connect().execute(
            "SELECT fields, created, expires, accessed, user_id, version, instance, meta "
            "FROM sessions WHERE key = ?", (key,)).fetchone()
        return None if row is None else _record(row)

    # --- the operations ------------------------------------------------------------------
    def load(self, op: Load) -> Record | None:
        return self._row(op.key)  # an expired record is returned: the engine judges it

    def create(self, op: Create) -> bool:
        record = op.record
        verb = "INSERT OR IGNORE" if op.if_absent else "INSERT OR REPLACE"
        cursor = self._connect().execute(
            f"{verb} INTO sessions VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (op.key, json.dumps(record.fields), record.created_at, record.expires_at,
             record.accessed_at, record.user_id, record.version, record.instance,
             json.dumps(record.meta)))
        return cursor.rowcount == 1

    def update(self, op: Update) -> bool:
        connection = self._connect()
        connection.execute("BEGIN IMMEDIATE")  # the write lock, before reading what to merge
        try:
            current = self._row(op.key)
            if current is None or current.expires_at <= op.now:
                connection.execute("ROLLBACK")
                return False  # destroyed or expired: a delta never resurrects it
            fields = merge_fields(current.fields, op.changes, op.removed)
            user = op.user_id if op.set_user else current.user_id
            meta = current.meta if op.meta is None else op.meta  # None: unchanged
            connection.execute(
                "UPDATE sessions SET fields = ?, expires = ?, accessed = ?, user_id = ?, "
                "meta = ?, version = version + 1 WHERE key = ?",
                (json.dumps(fields), op.expires_at, op.now, user, json.dumps(meta), op.key))
            connection.execute("COMMIT")
            return True
        except BaseException:
            connection.execute("ROLLBACK")
            raise

    def touch(self, op: Touch) -> bool:
        cursor = self._connect().execute(
            "UPDATE sessions SET expires = ?, accessed = ? WHERE key = ? AND expires > ?",
            (op.expires_at, op.now, op.key, op.now))
        return cursor.rowcount == 1

    def delete(self, op: Delete) -> None:
        self._connect().execute("DELETE FROM sessions WHERE key = ?", (op.key,))

    def delete_user(self, op: DeleteUser) -> int:
        cursor = self._connect().execute("DELETE FROM sessions WHERE user_id = ?", (op.key,))
        return cursor.rowcount

    def list_user(self, op: ListUser) -> list[tuple[str, Record]]:
        rows = self._connect().execute(
            "SELECT key, fields, created, expires, accessed, user_id, version, instance, meta "
            "FROM sessions WHERE user_id = ? AND expires > ?", (op.key, op.now))
        return [(row[0], _record(row[1:])) for row in rows]

    # --- whole-store tools ---------------------------------------------------------------
    def iter_records(self, batch: int = 1000) -> Iterator[list[tuple[str, Record]]]:
        keys = [row[0] for row in self._connect().execute("SELECT key FROM sessions")]
        for start in range(0, len(keys), batch):
            found = [(key, record) for key in keys[start:start + batch]
                     if (record := self._row(key)) is not None]
            if found:
                yield found

    def close(self) -> None:
        connection = getattr(self._local, "connection", None)
        if connection is not None:
            connection.close()
            self._local.connection = None
