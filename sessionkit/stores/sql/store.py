"""``SQLStore``: sessions in one SQL table, the operations as generators of statements.

Statements per request: a read is one SELECT (a row found expired is then deleted by the
engine, so that no clock set back and no request in flight revives it); a write is one
UPDATE, or one upsert for a new session. Expired rows nobody reads again are deleted by
``SQLStore.gc`` / ``sessionkit gc URL``, run periodically.

Concurrency. An update merges the request's delta into the stored fields. It first bets that
nobody wrote since the load, which costs one ``UPDATE ... WHERE version = <loaded>``. When
someone did, it reads the current row under a lock (``SELECT ... FOR UPDATE``; on SQLite the
failed UPDATE already holds the write lock), merges the delta onto that and writes again, so
concurrent requests that change different keys all land. Requests that write the *same* key
concurrently: the last to commit wins.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator, Mapping
from typing import Any, Self

import sqlalchemy as sa
from sqlalchemy.dialects import mysql, postgresql, sqlite

from ...errors import StoreUnavailable
from ...meta import decode as decode_meta
from ...meta import encode as encode_meta
from ...redact import redact_url, url_secrets
from ..base import (
    Capabilities,
    CommandStore,
    Create,
    Delete,
    DeleteUser,
    ListUser,
    Load,
    Op,
    R,
    Record,
    Touch,
    Update,
    merge_fields,
)
from . import schema
from .faces import Faces
from .schema import FORMAT, decode_fields, encode_fields, session_table
from .steps import (
    Sleep,
    Step,
    Steps,
    T,
    Transaction,
    backoff,
    connection_lost,
    is_transient_conflict,
)
from .urls import STORE_OPTIONS, dialect_name, face_urls, parse_url, store_options

logger = logging.getLogger("sessionkit")

#: Attempts of one update: the optimistic write, then locked re-reads (one is normally enough).
UPDATE_ATTEMPTS = 8
#: Dialects that run ``DELETE ... WHERE id IN (SELECT ... LIMIT n)`` through the indexes.
_DELETES_BY_SUBQUERY = ("postgresql", "sqlite")


class SQLStore(CommandStore[Step]):
    """Sessions in one SQL table. Operation methods are generators run by ``execute`` and
    ``aexecute``; nothing connects before the first operation."""

    capabilities = Capabilities(shared=True, lists_records=True)

    def __init__(self, url: str) -> None:
        self.name = redact_url(url)
        parsed = parse_url(url, self.name)
        self.table_name, self.create_table = store_options(url)
        sync_url, async_url = face_urls(parsed.difference_update_query(STORE_OPTIONS))
        self.table = session_table(self.table_name)
        #: Updates that found the row changed since it was loaded and merged again.
        self.update_retries = 0
        self._dialect = dialect_name(sync_url, self.name)
        self._lock = threading.Lock()  # counters
        self._faces = Faces(sync_url, async_url, self._dialect, name=self.name,
                            secrets=url_secrets(url), prepare=self._prepare)

    @property
    def sync_url(self) -> sa.URL:
        return self._faces.sync_url

    @property
    def async_url(self) -> sa.URL:
        return self._faces.async_url

    @classmethod
    def from_url(cls, url: str) -> Self:
        return cls(url)

    # --- faces --------------------------------------------------------------------------------
    def run(self, steps: Steps[T]) -> T:
        return self._faces.run(steps)

    async def arun(self, steps: Steps[T]) -> T:
        return await self._faces.arun(steps)

    def execute(self, op: Op[R]) -> R:
        try:
            return self.run(self.steps(op))
        except StoreUnavailable as exc:
            if not connection_lost(exc):
                raise
            return self.run(self.steps(op))  # once more, on a fresh connection

    async def aexecute(self, op: Op[R]) -> R:
        try:
            return await self.arun(self.steps(op))
        except StoreUnavailable as exc:
            if not connection_lost(exc):
                raise
            return await self.arun(self.steps(op))

    def close(self) -> None:
        self._faces.close()

    async def aclose(self) -> None:
        """Close the running loop's pool (other loops' pools close as their loops end)."""
        await self._faces.aclose()

    def _prepare(self) -> Steps[None]:
        """The table exists and has the columns this version writes (``schema.prepare``)."""
        return schema.prepare(self.table, self.create_table, self.name)

    def _has_table(self, connection: sa.Connection) -> bool:
        return schema.has_table(self.table_name, connection)

    # --- whole-store tools --------------------------------------------------------------------
    def iter_records(self, batch: int = 1000) -> Iterator[list[tuple[str, Record]]]:
        """Rows in id order, a batch per transaction (keyset pagination: no OFFSET scans)."""
        after = ""
        while True:
            rows = self.run(self._page(after, batch))
            found = [(row.id, record) for row in rows
                     if (record := self._record(row)) is not None]
            if found:
                yield found
            if len(rows) < batch:
                return
            after = rows[-1].id

    def put_records(self, items: list[tuple[str, Record]], absolute: float) -> int:
        """One transaction and, where the dialect can, one statement per batch."""
        if not items:
            return 0
        return self.run(self._insert_many([self._row(k, r) for k, r in items]))

    def _page(self, after: str, size: int) -> Steps[list[Any]]:
        table = self.table
        result = yield (sa.select(table).where(table.c.id > after).order_by(table.c.id)
                        .limit(size))
        return list(result.all())

    def _insert_many(self, rows: list[dict[str, Any]]) -> Steps[int]:
        table = self.table
        if self._dialect in ("postgresql", "sqlite"):
            # RETURNING counts exactly what was inserted (rowcount is unreliable for these).
            insert = (postgresql if self._dialect == "postgresql" else sqlite).insert(table)
            result = yield insert.values(rows).on_conflict_do_nothing().returning(table.c.id)
            return len(result.all())
        if self._dialect in ("mysql", "mariadb"):
            result = yield sa.insert(table).values(rows).prefix_with("IGNORE")
            return int(result.rowcount)
        written = 0
        for row in rows:
            result = yield self._insert_if_absent(row)
            written += int(result.rowcount > 0)
        return written

    def gc(self, now: float | None = None, batch_size: int = 1000) -> int:
        """Delete the sessions expired at ``now`` (default: the wall clock); return how many.

        Each batch of ``batch_size`` rows is its own transaction, so a large backlog never
        holds locks for long."""
        return self.run(self._collect(*_gc_arguments(now, batch_size)))

    async def agc(self, now: float | None = None, batch_size: int = 1000) -> int:
        return await self.arun(self._collect(*_gc_arguments(now, batch_size)))

    # --- operations ---------------------------------------------------------------------------
    def load(self, op: Load) -> Steps[Record | None]:
        """One SELECT. An expired row is returned too: the engine judges expiry and deletes
        it, so that nothing (a clock set back, a request in flight) can revive it later."""
        result = yield self._select(op.key)
        return self._record(result.first())

    def create(self, op: Create) -> Steps[bool]:
        row = self._row(op.key, op.record)
        if op.if_absent:
            result = yield self._insert_if_absent(row)
            if self._dialect in ("postgresql", "sqlite"):
                return result.first() is not None
            return bool(result.rowcount > 0)
        # Not ``yield from``: the runner sends each result back, which a list cannot take.
        for statement in self._upsert(row):  # noqa: UP028
            yield statement
        return True

    def update(self, op: Update) -> Steps[int]:
        """Merge the delta; first onto the loaded fields, then onto the current row if another
        request wrote in between. The version check makes each write a compare-and-set, so
        the version it wrote is the record's new one."""
        fields: Mapping[str, str] = op.base_fields
        version = op.base_version
        for attempt in range(UPDATE_ATTEMPTS):
            try:
                if attempt:
                    self._count_retry()
                    current = self._record((yield self._select(op.key, lock=True)).first())
                    if current is None or current.expires_at <= op.now:
                        return False  # destroyed or expired: a delta never resurrects it
                    fields, version = current.fields, current.version
                result = yield self._merge(op, fields, version)
            except sa.exc.DBAPIError as exc:
                if not is_transient_conflict(exc):
                    raise
                # The database gave up on this transaction (a deadlock between row locks):
                # it is rolled back; merge again from the current row after a pause.
                yield Transaction.ROLLBACK
                yield Sleep(backoff(attempt))
                continue
            if result.rowcount > 0:
                return version + 1
            if attempt:  # only without row locks: start afresh after a pause
                yield Transaction.ROLLBACK
                yield Sleep(backoff(attempt))
        raise StoreUnavailable(self.name, TimeoutError(
            f"an update conflicted with concurrent writes {UPDATE_ATTEMPTS} times"
        ))

    def touch(self, op: Touch) -> Steps[bool]:
        table = self.table
        result = yield (
            sa.update(table)
            .where(table.c.id == op.key, table.c.expires_at > op.now)
            .values(expires_at=op.expires_at, accessed_at=op.now)
        )
        return bool(result.rowcount > 0)

    def delete(self, op: Delete) -> Steps[None]:
        yield sa.delete(self.table).where(self.table.c.id == op.key)

    def delete_user(self, op: DeleteUser) -> Steps[int]:
        result = yield sa.delete(self.table).where(self.table.c.user_id == op.key)
        return int(result.rowcount)

    def list_user(self, op: ListUser) -> Steps[list[tuple[str, Record]]]:
        """One SELECT through the ``user_id`` index."""
        table = self.table
        result = yield sa.select(table).where(table.c.user_id == op.key,
                                              table.c.expires_at > op.now)
        return [(row.id, record) for row in result.all()
                if (record := self._record(row)) is not None]

    def _collect(self, now: float, batch_size: int) -> Steps[int]:
        """Garbage collection: expired rows, oldest first, one committed batch at a time.

        On PostgreSQL and SQLite each batch is one DELETE whose subquery picks the ids on the
        server: sending them back as 1,000 bound parameters cost more client CPU than the
        database spent deleting (``bench/scale.py``). MySQL and MariaDB would run that
        DELETE as a scan of the whole table, so there the ids are selected first."""
        table = self.table
        expired = table.c.expires_at <= now
        oldest = (
            sa.select(table.c.id).where(expired).order_by(table.c.expires_at).limit(batch_size)
        )
        deleted = 0
        while True:
            # Re-checking the expiry spares a row re-created under the same key meanwhile
            # (a batch that spares one ends the run early: the next run gets the rest).
            if self._dialect in _DELETES_BY_SUBQUERY:
                result = yield sa.delete(table).where(
                    table.c.id.in_(oldest.scalar_subquery()), expired
                )
                picked = count = int(result.rowcount)
            else:
                ids = list((yield oldest).scalars())
                picked, count = len(ids), 0
                if ids:
                    result = yield sa.delete(table).where(table.c.id.in_(ids), expired)
                    count = int(result.rowcount)
            deleted += count
            yield Transaction.COMMIT
            if picked < batch_size:
                return deleted

    # --- statements and rows ------------------------------------------------------------------
    def _select(self, key: str, lock: bool = False) -> sa.Select[Any]:
        statement = sa.select(self.table).where(self.table.c.id == key)
        return statement.with_for_update() if lock else statement

    def _row(self, key: str, record: Record) -> dict[str, Any]:
        return {
            "id": key,
            "data": encode_fields(record.fields),
            "created_at": record.created_at,
            "expires_at": record.expires_at,
            "accessed_at": record.accessed_at,
            "user_id": record.user_id,
            "version": record.version,
            "format": FORMAT,
            "instance": record.instance,
            "meta": encode_meta(record.meta) if record.meta else None,
        }

    def _upsert(self, row: dict[str, Any]) -> list[sa.Executable]:
        """One native statement where the dialect has one; else delete and insert."""
        table = self.table
        columns = [name for name in row if name != "id"]
        if self._dialect == "postgresql":
            pg_insert = postgresql.insert(table).values(row)
            return [pg_insert.on_conflict_do_update(
                index_elements=[table.c.id], set_={c: pg_insert.excluded[c] for c in columns}
            )]
        if self._dialect == "sqlite":
            lite_insert = sqlite.insert(table).values(row)
            return [lite_insert.on_conflict_do_update(
                index_elements=[table.c.id], set_={c: lite_insert.excluded[c] for c in columns}
            )]
        if self._dialect in ("mysql", "mariadb"):
            my_insert = mysql.insert(table).values(row)
            return [my_insert.on_duplicate_key_update({c: my_insert.inserted[c] for c in columns})]
        return [sa.delete(table).where(table.c.id == row["id"]), sa.insert(table).values(row)]

    def _insert_if_absent(self, row: dict[str, Any]) -> sa.Executable:
        """One statement that inserts unless the id exists, reporting which: a row of
        ``RETURNING`` on PostgreSQL and SQLite (their drivers give no rowcount for
        ``ON CONFLICT DO NOTHING``: psycopg 3 says -1 either way), else its rowcount."""
        table = self.table
        if self._dialect == "postgresql":
            return (postgresql.insert(table).values(row).on_conflict_do_nothing()
                    .returning(table.c.id))
        if self._dialect == "sqlite":
            return (sqlite.insert(table).values(row).on_conflict_do_nothing()
                    .returning(table.c.id))
        if self._dialect in ("mysql", "mariadb"):
            return sa.insert(table).values(row).prefix_with("IGNORE")
        exists = sa.select(table.c.id).where(table.c.id == row["id"])
        return sa.insert(table).from_select(
            list(row), sa.select(*(sa.literal(v) for v in row.values())).where(~exists.exists())
        )

    def _merge(self, op: Update, fields: Mapping[str, str], version: int) -> sa.Update:
        """The compare-and-set write of ``fields`` with the delta applied, if still ``version``."""
        table = self.table
        merged = merge_fields(fields, op.changes, op.removed)
        values: dict[str, Any] = {"data": encode_fields(merged), "version": table.c.version + 1}
        if op.set_user:
            values["user_id"] = op.user_id
        if op.meta is not None:
            values["meta"] = encode_meta(op.meta) if op.meta else None
        values["expires_at"] = op.expires_at
        values["accessed_at"] = op.now
        return (
            sa.update(table)
            .where(table.c.id == op.key, table.c.version == version, table.c.expires_at > op.now)
            .values(values)
        )

    def _record(self, row: sa.Row[Any] | None) -> Record | None:
        """The record of a row, or None if there is none or it is unreadable (logged)."""
        if row is None:
            return None
        if row.format != FORMAT:
            self._unreadable(f"unknown record format {row.format!r}")
            return None
        fields = decode_fields(row.data)
        if fields is None:
            self._unreadable("data that is not a JSON object of JSON texts")
            return None
        meta = {} if row.meta is None else decode_meta(row.meta)
        if meta is None:
            self._unreadable("session facts (meta) that are not what this version writes")
            return None
        return Record(
            fields, float(row.created_at), float(row.expires_at), float(row.accessed_at),
            row.user_id, int(row.version), row.instance, meta,
        )

    def _unreadable(self, reason: str) -> None:
        logger.error(
            "sessionkit: %s: a row of table %s has %s; treating that session as missing",
            self.name, self.table_name, reason,
        )

    def _count_retry(self) -> None:
        with self._lock:
            self.update_retries += 1


def _gc_arguments(now: float | None, batch_size: int) -> tuple[float, int]:
    if batch_size < 1:
        raise ValueError("batch_size must be 1 or more")
    return (time.time() if now is None else now), batch_size


def gc(url: str, *, batch_size: int = 1000) -> int:
    """Delete the expired sessions of the SQL store at ``url``; return how many."""
    store = SQLStore.from_url(url)
    try:
        return store.gc(batch_size=batch_size)
    finally:
        store.close()

