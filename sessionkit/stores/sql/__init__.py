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

The package, one job per module: ``urls`` (which URL each face uses, the store's options),
``schema`` (the table on every dialect, what its rows hold, creating and upgrading it),
``steps`` (what operations yield besides statements, and how database errors are read),
``faces`` (the sync engine and the per-event-loop async engines, one transaction per
operation), ``store`` (``SQLStore``: the operations, garbage collection, the bulk tools).
"""

from __future__ import annotations

from ..._extras import missing_extra

try:
    from .schema import decode_fields, encode_fields, session_table
    from .steps import Call, Sleep, Step, Steps, Transaction
    from .store import SQLStore, gc
    from .urls import face_urls
except ModuleNotFoundError as exc:  # pragma: no cover  (the release check imports it so)
    if (exc.name or "").split(".")[0] != "sqlalchemy":
        raise
    raise missing_extra(exc, "sql", "sessionkit.stores.sql") from None

__all__ = ["Call", "SQLStore", "Sleep", "Step", "Steps", "Transaction", "decode_fields",
           "encode_fields", "face_urls", "gc", "session_table"]
