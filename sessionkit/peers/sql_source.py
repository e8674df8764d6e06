"""Sessions in Flask-Session's SQL table (``SqlAlchemySessionInterface``): an ``SQLStore``
whose steps read and delete that table's rows, and which creates nothing in that database."""

from __future__ import annotations

import datetime
import time
from collections.abc import Iterator
from typing import Any

from .._extras import missing_extra

try:
    import sqlalchemy as sa
except ModuleNotFoundError as exc:  # pragma: no cover  (the release check imports it so)
    raise missing_extra(exc, "sql", "sessionkit.peers.sql_source") from None

from ..errors import ConfigError
from ..stores.base import Delete, Load, Record
from ..stores.sql import Call, SQLStore
from ..stores.sql import Steps as SQLSteps
from .base import PeerSource
from .records import RecordFormat


def flask_session_table(name: str, schema: str | None) -> sa.Table:
    """The table Flask-Session 0.8 creates (``SESSION_SQLALCHEMY_TABLE``, default
    ``sessions``): ``session_id`` is its key prefix plus the id, ``data`` the serialized
    session, ``expiry`` a naive UTC datetime."""
    return sa.Table(
        name, sa.MetaData(),
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("session_id", sa.String(255), unique=True),
        sa.Column("data", sa.LargeBinary()),
        sa.Column("expiry", sa.DateTime()),
        schema=schema,
    )


class SQLTableSource(PeerSource, SQLStore):
    """Sessions in Flask-Session's SQL table (``flask_session_table``)."""

    def __init__(self, url: str, *, table: str, schema: str | None, prefix: str,
                 format: RecordFormat) -> None:
        super().__init__(url)
        self.table_name, self.schema, self.prefix, self.format = table, schema, prefix, format
        self.table = flask_session_table(table, schema)

    def _prepare(self) -> SQLSteps[None]:
        """Nothing is created in the peer's database: the table is only checked for."""
        if not (yield Call(self._has_table)):
            where = f"{self.schema}.{self.table_name}" if self.schema else self.table_name
            raise ConfigError(
                f"no table {where!r} in {self.name}: give the table Flask-Session used "
                f"(SESSION_SQLALCHEMY_TABLE, default 'sessions') as table=... in the URL"
            )

    def _has_table(self, connection: sa.Connection) -> bool:
        return sa.inspect(connection).has_table(self.table_name, schema=self.schema)

    def load(self, op: Load) -> SQLSteps[Record | None]:
        table = self.table
        result = yield sa.select(table.c.data, table.c.expiry).where(
            table.c.session_id == self.prefix + op.key)
        row = result.first()
        return None if row is None else self._row_record(row, op.now)

    def delete(self, op: Delete) -> SQLSteps[None]:
        yield sa.delete(self.table).where(self.table.c.session_id == self.prefix + op.key)

    def _row_record(self, row: Any, now: float) -> Record | None:
        if row.data is None:
            return None
        # No expiry is expired, as Flask-Session has it.
        expires_at = 0.0 if row.expiry is None else _utc_timestamp(row.expiry)
        return self.format.record(bytes(row.data), expires_at, now, self.name)

    def iter_records(self, batch: int = 1000) -> Iterator[list[tuple[str, Record]]]:
        """Rows in id order, a batch per transaction; rows under another prefix are skipped."""
        after: int | None = None
        while True:
            rows = self.run(self._rows_after(after, batch))
            now = time.time()
            found = []
            for row in rows:
                session_id = row.session_id
                if not isinstance(session_id, str) or not session_id.startswith(self.prefix):
                    continue
                record = self._row_record(row, now)
                if record is not None:
                    found.append((session_id[len(self.prefix):], record))
            if found:
                yield found
            if len(rows) < batch:
                return
            after = rows[-1].id

    def _rows_after(self, after: int | None, size: int) -> SQLSteps[list[Any]]:
        table = self.table
        statement = sa.select(table).order_by(table.c.id).limit(size)
        if after is not None:
            statement = statement.where(table.c.id > after)
        result = yield statement
        return list(result.all())


def _utc_timestamp(value: Any) -> float:
    if not isinstance(value, datetime.datetime):
        return 0.0  # unreadable: expired
    if value.tzinfo is None:
        value = value.replace(tzinfo=datetime.UTC)
    return float(value.timestamp())
