"""The session table: its columns on every dialect, what its rows hold, and the steps that
make sure it exists with the columns this version writes (creating or adding them, or, with
``create_table=false``, saying how)."""

from __future__ import annotations

import functools
import json
from collections.abc import Mapping

import sqlalchemy as sa
from sqlalchemy.dialects import mysql

from ...errors import ConfigError
from .steps import Call, Steps, Transaction

#: The record format this code writes, stored in every row.
FORMAT = 1

_KEY = sa.String(43).with_variant(
    mysql.VARCHAR(43, charset="ascii", collation="ascii_bin"), "mysql", "mariadb"
)
_USER = sa.String(256).with_variant(
    mysql.VARCHAR(256, charset="utf8mb4", collation="utf8mb4_bin"), "mysql", "mariadb"
)
_DATA = sa.Text().with_variant(mysql.MEDIUMTEXT(), "mysql", "mariadb")


#: Nullable columns later versions added: a table made by an earlier version gets them on
#: first use (or, with create_table=false, a ConfigError with the ALTER TABLE to run).
ADDED_COLUMNS = ("instance", "meta")


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
        #: Facts about the session (``sessionkit.meta``), compact JSON; NULL when it has none.
        sa.Column("meta", sa.Text(), nullable=True),
    )


def encode_fields(fields: Mapping[str, str]) -> str:
    """One JSON object of the values' JSON texts; ASCII-only, so no charset can alter it."""
    return json.dumps(dict(fields), separators=(",", ":"))


def decode_fields(data: object) -> dict[str, str] | None:
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


def prepare(table: sa.Table, create: bool, where: str) -> Steps[None]:
    """Make sure ``table`` exists (create it, or, with ``create`` false, check for it) and has
    the columns this version writes (add them, or say how). ``where`` names the store."""
    name = table.name
    if not create:
        if not (yield Call(functools.partial(has_table, name))):
            ddl = yield Call(functools.partial(table_ddl, table))
            raise ConfigError(
                f"the session table {name!r} does not exist in {where} and "
                f"create_table=false; create it with:\n{ddl}"
            )
    else:
        try:
            yield Call(table.metadata.create_all)
        except sa.exc.DBAPIError:
            # Another process may have created it between the check and the CREATE.
            yield Transaction.ROLLBACK
            if not (yield Call(functools.partial(has_table, name))):
                raise
    missing = yield Call(functools.partial(missing_columns, name))
    for column in missing:
        ddl = yield Call(functools.partial(add_column_ddl, table, column))
        if not create:
            raise ConfigError(f"the session table {name!r} in {where} lacks a column this "
                              f"version needs; add it with:\n{ddl}")
        try:
            yield sa.text(ddl)
        except sa.exc.DBAPIError:  # another process added it first
            yield Transaction.ROLLBACK
            if column in (yield Call(functools.partial(missing_columns, name))):
                raise
        yield Transaction.COMMIT


def has_table(name: str, connection: sa.Connection) -> bool:
    return sa.inspect(connection).has_table(name)


def missing_columns(name: str, connection: sa.Connection) -> list[str]:
    """Columns added by later versions (nullable), absent from a table an older one made."""
    present = {c["name"] for c in sa.inspect(connection).get_columns(name)}
    return [column for column in ADDED_COLUMNS if column not in present]


def add_column_ddl(table: sa.Table, name: str, connection: sa.Connection) -> str:
    kind = table.c[name].type.compile(dialect=connection.dialect)
    quote = connection.dialect.identifier_preparer.quote
    return f"ALTER TABLE {quote(table.name)} ADD COLUMN {quote(name)} {kind}"


def table_ddl(table: sa.Table, connection: sa.Connection) -> str:
    """The DDL of the table and its indexes, in this database's dialect."""
    indexes = sorted(table.indexes, key=lambda index: str(index.name))
    statements: list[sa.schema.ExecutableDDLElement] = [
        sa.schema.CreateTable(table), *map(sa.schema.CreateIndex, indexes)
    ]
    text = "\n".join(
        str(statement.compile(dialect=connection.dialect)).strip() + ";"
        for statement in statements
    )
    return "\n".join(line.rstrip() for line in text.splitlines())
