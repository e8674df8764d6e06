"""SQL store: any SQLAlchemy database URL (``sqlite://``, ``postgresql://``, ``mysql://``, ...).

Every operation is one generator that *yields* SQLAlchemy Core statements and receives their
results, in the sans-I/O style of the engine (``sessionkit.sansio``). The sync face performs
them on an ``Engine``, the async face awaits them on an ``AsyncEngine``: both share every
statement and every rule, and each operation runs in one transaction.

Statements per request: a read is one SELECT (a row found expired is then deleted by the
engine, so that no clock set back and no request in flight revives it); a write is one
UPDATE, or one upsert for a new session. Expired rows nobody reads again are deleted by
``SQLStore.gc`` / ``sessionkit gc URL``, run periodically.

URLs. The sync face uses the URL as given; the async face maps it to an asyncio driver::

    sqlite, sqlite+pysqlite                         -> sqlite+aiosqlite
    postgresql, postgresql+psycopg2                 -> postgresql+asyncpg
    postgresql+psycopg                              -> postgresql+psycopg (psycopg 3 does both)
    mysql, mysql+pymysql, mysql+mysqldb             -> mysql+aiomysql
    mariadb, mariadb+pymysql, mariadb+mysqldb       -> mariadb+aiomysql

An async URL given by the user (``+aiosqlite``, ``+asyncpg``, ``+aiomysql``, ``+asyncmy``) is
mapped back for the sync face (``sqlite``, ``postgresql+psycopg``, ``mysql+pymysql``,
``mariadb+pymysql``), and ``postgres://`` is read as ``postgresql://``. Other dialects use
the URL as given on both faces. Two query options belong to the store and are removed before
the URL reaches SQLAlchemy; every other parameter goes to the driver untouched:

    table=NAME          the table (default ``sessionkit_sessions``)
    create_table=false  never create it: a missing table is a ConfigError quoting the DDL

The table, created on first use (once per process and face) unless ``create_table=false``::

    CREATE TABLE sessionkit_sessions (
        id          VARCHAR(43) NOT NULL PRIMARY KEY,  -- store key (an HMAC), never the id
        data        TEXT NOT NULL,             -- {"key": "<that key's JSON text>", ...}
        created_at  DOUBLE PRECISION NOT NULL, -- epoch seconds, as are the next two
        expires_at  DOUBLE PRECISION NOT NULL,
        accessed_at DOUBLE PRECISION NOT NULL,
        user_id     VARCHAR(256),
        version     INTEGER NOT NULL,          -- bumped by every update
        format      SMALLINT NOT NULL,         -- record format 1: later formats read old rows
        instance    VARCHAR(63)                -- the instance that created it (for stats)
    );
    CREATE INDEX ix_sessionkit_sessions_expires_at ON sessionkit_sessions (expires_at);
    CREATE INDEX ix_sessionkit_sessions_user_id ON sessionkit_sessions (user_id);

On MySQL/MariaDB ``data`` is MEDIUMTEXT (TEXT stops at 64 KiB) and ``id``/``user_id`` compare
as bytes (``ascii_bin``, ``utf8mb4_bin``): the default collations treat ``"alice"`` and
``"Alice"`` as one user. ``data`` is pure ASCII (JSON escapes the rest), so every character
set keeps each value's text byte for byte. Rows are JSON only: nothing is ever unpickled.

Concurrency. An update merges the request's delta into the stored fields. It first bets that
nobody wrote since the load, which costs one ``UPDATE ... WHERE version = <loaded>``. When
someone did, it reads the current row under a lock (``SELECT ... FOR UPDATE``; on SQLite the
failed UPDATE already holds the write lock), merges the delta onto that and writes again, so
concurrent requests that change different keys all land. Requests that write the *same* key
concurrently: the last to commit wins.

SQLite. Writers wait up to 30 s for each other (``timeout``) instead of failing, and a file
database runs in WAL mode so that readers never block the writer. An in-memory database
(``sqlite://``) lives on one connection per face, taking transactions in turn; the sync and
async faces then hold two separate databases (every event loop shares the async one).

Async pools. asyncio connections belong to the event loop that opened them, so the async face
keeps one pool per running loop (a server runs one) and closes it as that loop shuts down;
test clients that start a loop per request therefore never reuse a dead loop's connection.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import enum
import functools
import json
import logging
import random
import re
import threading
import time
import weakref
from collections.abc import AsyncGenerator, Callable, Generator, Iterator, Mapping
from typing import Any, TypeAlias, TypeVar
from urllib.parse import parse_qsl

import sqlalchemy as sa
from sqlalchemy.dialects import mysql, postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine
from sqlalchemy.pool import StaticPool

from ..config import parse_bool
from ..errors import ConfigError, StoreUnavailable
from ..redact import redact_url, url_secrets
from ..sansio import run_async, run_sync
from .base import (
    Capabilities,
    CommandStore,
    Create,
    Delete,
    DeleteUser,
    Load,
    Op,
    R,
    Record,
    Touch,
    Update,
    merge_fields,
)

__all__ = ["SQLStore", "face_urls", "gc"]

logger = logging.getLogger("sessionkit")
T = TypeVar("T")

DEFAULT_TABLE = "sessionkit_sessions"
#: The record format this code writes, stored in every row.
FORMAT = 1
#: Attempts of one update: the optimistic write, then locked re-reads (one is normally enough).
UPDATE_ATTEMPTS = 8
_BACKOFF_FIRST = 0.005
_BACKOFF_CAP = 0.2
_SQLITE_BUSY_SECONDS = 30
_TABLE_NAME_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,62}")
_STORE_OPTIONS = ("table", "create_table")
#: Dialects that run ``DELETE ... WHERE id IN (SELECT ... LIMIT n)`` through the indexes.
_DELETES_BY_SUBQUERY = ("postgresql", "sqlite")

# --- URLs -------------------------------------------------------------------------------------
_ASYNC_DRIVERS = {  # sync drivername -> its async counterpart
    "sqlite": "sqlite+aiosqlite",
    "sqlite+pysqlite": "sqlite+aiosqlite",
    "postgresql": "postgresql+asyncpg",
    "postgresql+psycopg2": "postgresql+asyncpg",
    "postgresql+psycopg": "postgresql+psycopg",
    "mysql": "mysql+aiomysql",
    "mysql+pymysql": "mysql+aiomysql",
    "mysql+mysqldb": "mysql+aiomysql",
    "mariadb": "mariadb+aiomysql",
    "mariadb+pymysql": "mariadb+aiomysql",
    "mariadb+mysqldb": "mariadb+aiomysql",
}
_SYNC_DRIVERS = {  # async drivername given by the user -> the sync driver to pair with it
    "sqlite+aiosqlite": "sqlite",
    "postgresql+asyncpg": "postgresql+psycopg",
    "postgresql+psycopg_async": "postgresql+psycopg",
    "mysql+aiomysql": "mysql+pymysql",
    "mysql+asyncmy": "mysql+pymysql",
    "mariadb+aiomysql": "mariadb+pymysql",
    "mariadb+asyncmy": "mariadb+pymysql",
}


def face_urls(url: sa.URL) -> tuple[sa.URL, sa.URL]:
    """The URLs of the sync and the async engine for one store URL (see the module doc)."""
    driver = url.drivername.lower()
    if driver == "postgres" or driver.startswith("postgres+"):
        driver = "postgresql" + driver[len("postgres"):]
    if driver in _SYNC_DRIVERS:
        return url.set(drivername=_SYNC_DRIVERS[driver]), url.set(drivername=driver)
    return url.set(drivername=driver), url.set(drivername=_ASYNC_DRIVERS.get(driver, driver))


def _parse_url(url: str, name: str) -> sa.URL:
    try:
        return sa.make_url(url)
    except sa.exc.ArgumentError:
        raise ConfigError(f"{name} is not a database URL SQLAlchemy can parse") from None


def _dialect_name(url: sa.URL, name: str) -> str:
    """The dialect's name; checked now so that a wrong URL fails at startup, not mid-request."""
    try:
        dialect: str = url.get_dialect().name
    except sa.exc.NoSuchModuleError as exc:
        raise ConfigError(
            f"{name} is not a SQL database URL ({exc}); the SQL store takes SQLAlchemy URLs "
            f"such as sqlite:///sessions.db, postgresql+psycopg://... or mysql+pymysql://..."
        ) from None
    return dialect


def _given_options(url: str) -> dict[str, list[str]]:
    """The store options as written, blank ones included (SQLAlchemy drops ``table=``)."""
    query = url.split("?", 1)[1] if "?" in url else ""
    given: dict[str, list[str]] = {}
    for name, value in parse_qsl(query, keep_blank_values=True):
        if name in _STORE_OPTIONS:
            given.setdefault(name, []).append(value)
    return given


def _single_option(given: dict[str, list[str]], name: str, default: str) -> str:
    values = given.get(name, [default])
    if len(values) > 1:
        raise ConfigError(f"store URL option {name} is given {len(values)} times; give it once")
    return values[0]


def _store_options(url: str) -> tuple[str, bool]:
    """``(table, create_table)`` from the URL query, validated."""
    given = _given_options(url)
    table = _single_option(given, "table", DEFAULT_TABLE)
    if not _TABLE_NAME_RE.fullmatch(table):
        raise ConfigError(
            f"store URL option table={table!r} is invalid: use a plain SQL identifier "
            f"(letters, digits and _, not starting with a digit, at most 63 characters)"
        )
    create = parse_bool(_single_option(given, "create_table", "true"),
                        "store URL option create_table")
    return table, create


# --- the table --------------------------------------------------------------------------------
_KEY = sa.String(43).with_variant(
    mysql.VARCHAR(43, charset="ascii", collation="ascii_bin"), "mysql", "mariadb"
)
_USER = sa.String(256).with_variant(
    mysql.VARCHAR(256, charset="utf8mb4", collation="utf8mb4_bin"), "mysql", "mariadb"
)
_DATA = sa.Text().with_variant(mysql.MEDIUMTEXT(), "mysql", "mariadb")


#: Nullable columns later versions added: a table made by an earlier version gets them on
#: first use (or, with create_table=false, a ConfigError with the ALTER TABLE to run).
ADDED_COLUMNS = ("instance",)


def session_table(name: str) -> sa.Table:
    """The session table, on its own ``MetaData`` (each store may name its table)."""
    return sa.Table(
        name,
        sa.MetaData(),
        sa.Column("id", _KEY, primary_key=True),
        sa.Column("data", _DATA, nullable=False),
        sa.Column("created_at", sa.Double(), nullable=False),
        sa.Column("expires_at", sa.Double(), nullable=False, index=True),
        sa.Column("accessed_at", sa.Double(), nullable=False),
        sa.Column("user_id", _USER, nullable=True, index=True),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("format", sa.SmallInteger(), nullable=False),
        sa.Column("instance", sa.String(63), nullable=True),
    )


def _encode_fields(fields: Mapping[str, str]) -> str:
    """One JSON object of the values' JSON texts; ASCII-only, so no charset can alter it."""
    return json.dumps(dict(fields), separators=(",", ":"))


def _decode_fields(data: object) -> dict[str, str] | None:
    """The fields of a stored ``data`` value, or None if it is not what this store writes."""
    if not isinstance(data, str):
        return None
    try:
        fields: object = json.loads(data)
    except (ValueError, RecursionError):
        return None
    if not isinstance(fields, dict) or not all(isinstance(v, str) for v in fields.values()):
        return None
    return fields


# --- steps and their runners ------------------------------------------------------------------
@dataclasses.dataclass(frozen=True, slots=True)
class Sleep:
    """Wait before retrying: ``time.sleep`` on the sync face, ``asyncio.sleep`` on the async."""

    seconds: float


@dataclasses.dataclass(frozen=True, slots=True)
class Call:
    """Run a SQLAlchemy API that is not one statement (``create_all``, inspection) on the
    sync ``Connection``; the async face hands it to ``AsyncConnection.run_sync``."""

    function: Callable[[sa.Connection], Any]


class Transaction(enum.Enum):
    """End the current transaction; the next statement starts a new one."""

    COMMIT = "commit"
    ROLLBACK = "rollback"


Step: TypeAlias = sa.Executable | Sleep | Call | Transaction
Steps: TypeAlias = Generator[Step, Any, T]


def _perform(connection: sa.Connection, step: Step) -> Any:
    """Perform one step on the sync face (``sessionkit.sansio.run_sync`` drives the steps)."""
    if isinstance(step, Sleep):
        time.sleep(step.seconds)
        return None
    if isinstance(step, Call):
        return step.function(connection)
    if step is Transaction.COMMIT:
        connection.commit()
        return None
    if step is Transaction.ROLLBACK:
        connection.rollback()
        return None
    return connection.execute(step)


async def _aperform(connection: AsyncConnection, step: Step) -> Any:
    """The same on the async face: only here does awaiting differ."""
    if isinstance(step, Sleep):
        await asyncio.sleep(step.seconds)
        return None
    if isinstance(step, Call):
        return await connection.run_sync(step.function)
    if step is Transaction.COMMIT:
        await connection.commit()
        return None
    if step is Transaction.ROLLBACK:
        await connection.rollback()
        return None
    return await connection.execute(step)


def _is_unavailable(exc: BaseException) -> bool:
    """A failure of the database or the way to it, as opposed to a bug or a bad schema."""
    if isinstance(exc, sa.exc.OperationalError | sa.exc.InterfaceError | sa.exc.TimeoutError):
        return True  # sa.exc.TimeoutError: no pooled connection came free in time
    if isinstance(exc, sa.exc.DBAPIError):
        return exc.connection_invalidated
    return isinstance(exc, OSError)  # TimeoutError and ConnectionError included


def _connection_lost(error: StoreUnavailable) -> bool:
    """The operation failed because its pooled connection had died (a restarted database, a
    killed backend, a dropped socket): the pool has discarded it, so running the operation
    again gets a fresh one. Every operation is one transaction and safe to repeat (writes are
    upserts, merges of the same delta, deletes), so the request need not see the outage."""
    cause = error.__cause__
    return isinstance(cause, sa.exc.DBAPIError) and cause.connection_invalidated


#: Errors a database raises to ask for the transaction to be retried: MySQL/MariaDB deadlock
#: and lock wait timeout, PostgreSQL serialization failure and deadlock, SQLite busy.
_TRANSIENT_MYSQL = {1205, 1213}
_TRANSIENT_SQLSTATE = {"40001", "40P01"}


def _is_transient_conflict(exc: sa.exc.DBAPIError) -> bool:
    original = exc.orig
    args = getattr(original, "args", ())
    if args and isinstance(args[0], int) and args[0] in _TRANSIENT_MYSQL:
        return True
    if getattr(original, "sqlstate", None) in _TRANSIENT_SQLSTATE:
        return True
    return "database is locked" in str(original)


def _backoff(attempt: int) -> float:
    """Full jitter: concurrent retries spread out instead of colliding again."""
    return random.uniform(0, min(_BACKOFF_CAP, _BACKOFF_FIRST * 2**attempt))  # noqa: S311


def _enable_wal(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    try:
        cursor.execute("PRAGMA journal_mode=WAL")
    finally:
        cursor.close()


async def _close_with_loop(engine: AsyncEngine) -> AsyncGenerator[None, None]:
    """Parked for the life of an event loop: ``asyncio.run`` closes open async generators
    before it closes the loop, which runs this ``finally`` while connections can still close."""
    try:
        yield
    finally:
        await engine.dispose()


@dataclasses.dataclass(slots=True)
class _AsyncFace:
    """The async engine one event loop uses, and what the face serializes on that loop."""

    engine: AsyncEngine
    prepare_lock: asyncio.Lock
    serial: contextlib.AbstractAsyncContextManager[Any]
    keeper: AsyncGenerator[None, None] | None


# --- the store --------------------------------------------------------------------------------
class SQLStore(CommandStore[Step]):
    """Sessions in one SQL table. Operation methods are generators run by ``execute`` and
    ``aexecute``; nothing connects before the first operation."""

    capabilities = Capabilities(shared=True, lists_records=True)

    def __init__(self, url: str) -> None:
        self.name = redact_url(url)
        parsed = _parse_url(url, self.name)
        self.table_name, self.create_table = _store_options(url)
        self.sync_url, self.async_url = face_urls(parsed.difference_update_query(_STORE_OPTIONS))
        self.table = session_table(self.table_name)
        #: Updates that found the row changed since it was loaded and merged again.
        self.update_retries = 0
        self._dialect = _dialect_name(self.sync_url, self.name)
        #: Secrets of the URL (password, ``?password=``...): never in an error message.
        self._secrets = url_secrets(url)
        self._in_memory = self._dialect == "sqlite" and self.sync_url.database in (
            None, "", ":memory:"
        )
        self._lock = threading.Lock()  # engines and counters
        self._prepare_lock = threading.Lock()
        # One shared in-memory connection cannot hold two transactions: take them in turn.
        self._serial: contextlib.AbstractContextManager[Any] = (
            threading.Lock() if self._in_memory else contextlib.nullcontext()
        )
        self._engine: sa.Engine | None = None
        self._sync_ready = False
        self._async_faces: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _AsyncFace] = (
            weakref.WeakKeyDictionary()
        )
        self._memory_async_engine: AsyncEngine | None = None
        self._async_ready = False

    @classmethod
    def from_url(cls, url: str) -> SQLStore:
        return cls(url)

    # --- faces --------------------------------------------------------------------------------
    def execute(self, op: Op[R]) -> R:
        try:
            return self.run(self.steps(op))
        except StoreUnavailable as exc:
            if not _connection_lost(exc):
                raise
            return self.run(self.steps(op))  # once more, on a fresh connection

    async def aexecute(self, op: Op[R]) -> R:
        try:
            return await self.arun(self.steps(op))
        except StoreUnavailable as exc:
            if not _connection_lost(exc):
                raise
            return await self.arun(self.steps(op))

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

    def close(self) -> None:
        with self._lock:
            engine, self._engine = self._engine, None
            self._sync_ready = False
        if engine is not None:
            engine.dispose()

    async def aclose(self) -> None:
        """Close the running loop's pool (other loops' pools close as their loops end)."""
        loop = asyncio.get_running_loop()
        with self._lock:
            face = self._async_faces.pop(loop, None)
            memory_engine, self._memory_async_engine = self._memory_async_engine, None
            if memory_engine is not None:
                self._async_faces.clear()
            self._async_ready = False
        if face is not None and face.keeper is not None:
            await face.keeper.aclose()
        if memory_engine is not None:
            await memory_engine.dispose()

    # --- runners: I/O only (CommandStore.run / arun) ---------------------------------------
    def run(self, steps: Steps[T]) -> T:
        with self._unavailable_on_failure():
            engine = self._sync_engine()
            if not self._sync_ready:
                with self._prepare_lock:
                    if not self._sync_ready:
                        self._transact(engine, self._prepare())
                        self._sync_ready = True
            return self._transact(engine, steps)

    def _transact(self, engine: sa.Engine, steps: Steps[T]) -> T:
        with self._serial, engine.connect() as connection:
            result = run_sync(steps, functools.partial(_perform, connection))
            connection.commit()
            return result

    async def arun(self, steps: Steps[T]) -> T:
        with self._unavailable_on_failure():
            face = await self._async_face()
            if not self._async_ready:
                async with face.prepare_lock:
                    if not self._async_ready:
                        await self._atransact(face, self._prepare())
                        self._async_ready = True
            return await self._atransact(face, steps)

    async def _atransact(self, face: _AsyncFace, steps: Steps[T]) -> T:
        async with face.serial, face.engine.connect() as connection:
            result = await run_async(steps, functools.partial(_aperform, connection))
            await connection.commit()
            return result

    @contextlib.contextmanager
    def _unavailable_on_failure(self) -> Iterator[None]:
        try:
            yield
        except Exception as exc:
            if _is_unavailable(exc):
                raise self._unavailable(exc) from exc
            raise

    def _unavailable(self, exc: Exception) -> StoreUnavailable:
        """The error to raise, naming the store but never its password."""
        cause = exc.orig if isinstance(exc, sa.exc.DBAPIError) and exc.orig is not None else exc
        return StoreUnavailable(self.name, cause, hide=self._secrets)

    # --- engines ------------------------------------------------------------------------------
    def _sync_engine(self) -> sa.Engine:
        engine = self._engine
        if engine is None:
            with self._lock:
                engine = self._engine
                if engine is None:
                    engine = self._engine = sa.create_engine(self.sync_url, **self._options())
                    self._configure(engine)
        return engine

    async def _async_face(self) -> _AsyncFace:
        loop = asyncio.get_running_loop()
        with self._lock:
            face = self._async_faces.get(loop)
            fresh = face is None
            if face is None:
                face = self._async_faces[loop] = self._new_async_face()
        if fresh and face.keeper is not None:
            await anext(face.keeper)  # from now on, this loop's shutdown closes the pool
        return face

    def _new_async_face(self) -> _AsyncFace:
        if self._in_memory:  # the database *is* the connection: one for every loop
            if self._memory_async_engine is None:
                self._memory_async_engine = self._new_async_engine()
            return _AsyncFace(self._memory_async_engine, asyncio.Lock(), asyncio.Lock(), None)
        engine = self._new_async_engine()
        keeper = _close_with_loop(engine)
        return _AsyncFace(engine, asyncio.Lock(), contextlib.nullcontext(), keeper)

    def _new_async_engine(self) -> AsyncEngine:
        engine = create_async_engine(self.async_url, **self._options())
        self._configure(engine.sync_engine)
        return engine

    def _options(self) -> dict[str, Any]:
        """Engine options: reconnect after an outage, keep session data out of errors."""
        options: dict[str, Any] = {"pool_pre_ping": True, "hide_parameters": True}
        if self._dialect == "sqlite":
            connect_args: dict[str, Any] = {}
            if "timeout" not in self.sync_url.query:
                connect_args["timeout"] = _SQLITE_BUSY_SECONDS
            if self._in_memory:
                options["poolclass"] = StaticPool
                connect_args["check_same_thread"] = False
            options["connect_args"] = connect_args
        return options

    def _configure(self, engine: sa.Engine) -> None:
        if self._dialect == "sqlite" and not self._in_memory:
            sa.event.listen(engine, "connect", _enable_wal)

    # --- the table ----------------------------------------------------------------------------
    def _prepare(self) -> Steps[None]:
        """Make sure the table exists (create it, or, with create_table=false, check for it)
        and has the columns this version writes (add them, or say how)."""
        if not self.create_table:
            if not (yield Call(self._has_table)):
                ddl = yield Call(self._ddl)
                raise ConfigError(
                    f"the session table {self.table_name!r} does not exist in {self.name} and "
                    f"create_table=false; create it with:\n{ddl}"
                )
        else:
            try:
                yield Call(self._create_table)
            except sa.exc.DBAPIError:
                # Another process may have created it between the check and the CREATE.
                yield Transaction.ROLLBACK
                if not (yield Call(self._has_table)):
                    raise
        missing = yield Call(self._missing_columns)
        for column in missing:
            ddl = yield Call(functools.partial(self._add_column_ddl, column))
            if not self.create_table:
                raise ConfigError(f"the session table {self.table_name!r} in {self.name} "
                                  f"lacks a column this version needs; add it with:\n{ddl}")
            try:
                yield sa.text(ddl)
            except sa.exc.DBAPIError:  # another process added it first
                yield Transaction.ROLLBACK
                if column in (yield Call(self._missing_columns)):
                    raise
            yield Transaction.COMMIT

    def _missing_columns(self, connection: sa.Connection) -> list[str]:
        """Columns added by later versions (nullable), absent from a table an older one made."""
        present = {c["name"] for c in sa.inspect(connection).get_columns(self.table_name)}
        return [name for name in ADDED_COLUMNS if name not in present]

    def _add_column_ddl(self, name: str, connection: sa.Connection) -> str:
        column = self.table.c[name]
        kind = column.type.compile(dialect=connection.dialect)
        quote = connection.dialect.identifier_preparer.quote
        return f"ALTER TABLE {quote(self.table_name)} ADD COLUMN {quote(name)} {kind}"

    def _create_table(self, connection: sa.Connection) -> None:
        self.table.metadata.create_all(connection, checkfirst=True)

    def _has_table(self, connection: sa.Connection) -> bool:
        return sa.inspect(connection).has_table(self.table_name)

    def _ddl(self, connection: sa.Connection) -> str:
        """The DDL of the table and its indexes, in this database's dialect."""
        indexes = sorted(self.table.indexes, key=lambda index: str(index.name))
        statements: list[sa.schema.ExecutableDDLElement] = [
            sa.schema.CreateTable(self.table), *map(sa.schema.CreateIndex, indexes)
        ]
        text = "\n".join(
            str(statement.compile(dialect=connection.dialect)).strip() + ";"
            for statement in statements
        )
        return "\n".join(line.rstrip() for line in text.splitlines())

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

    def update(self, op: Update) -> Steps[bool]:
        """Merge the delta; first onto the loaded fields, then onto the current row if another
        request wrote in between. The version check makes each write a compare-and-set."""
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
                if not _is_transient_conflict(exc):
                    raise
                # The database gave up on this transaction (a deadlock between row locks):
                # it is rolled back; merge again from the current row after a pause.
                yield Transaction.ROLLBACK
                yield Sleep(_backoff(attempt))
                continue
            if result.rowcount > 0:
                return True
            if attempt:  # only without row locks: start afresh after a pause
                yield Transaction.ROLLBACK
                yield Sleep(_backoff(attempt))
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
            "data": _encode_fields(record.fields),
            "created_at": record.created_at,
            "expires_at": record.expires_at,
            "accessed_at": record.accessed_at,
            "user_id": record.user_id,
            "version": record.version,
            "format": FORMAT,
            "instance": record.instance,
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
        values: dict[str, Any] = {"data": _encode_fields(merged), "version": table.c.version + 1}
        if op.set_user:
            values["user_id"] = op.user_id
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
        fields = _decode_fields(row.data)
        if fields is None:
            self._unreadable("data that is not a JSON object of JSON texts")
            return None
        return Record(
            fields, float(row.created_at), float(row.expires_at), float(row.accessed_at),
            row.user_id, int(row.version), row.instance,
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
