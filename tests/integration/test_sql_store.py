"""The SQL store on SQLite (file), PostgreSQL and MariaDB, through the sync and async faces.

Service-backed databases come from the environment (tests/stores.py): skipped on a laptop
without them, failing in CI. The unavailable-database tests need no service: they point at a
closed loopback port.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import pickle
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from sessionkit.cli import main as cli_main
from sessionkit.errors import ConfigError, StoreUnavailable
from sessionkit.stores import open_store
from sessionkit.stores.base import Create, Delete, DeleteUser, Load, Op, Record, Touch, Update
from sessionkit.stores.sql import SQLStore, face_urls, gc
from tests.stores import SQL_TABLE, store_url_for

DATABASES = ["sqlite", "postgresql", "mariadb"]
NOW = 1_800_000_000.25
IDLE, ABSOLUTE = 1800.0, 86400.0
CONCURRENT = 50
KEY = "k" * 22
PASSWORD = "hunter2-not-for-logs"
CLOSED_PORTS = [
    pytest.param(f"postgresql+psycopg://postgres:{PASSWORD}@127.0.0.1:1/test?connect_timeout=2",
                 id="postgresql"),
    pytest.param(f"mysql+pymysql://root:{PASSWORD}@127.0.0.1:1/test?connect_timeout=2",
                 id="mariadb"),
]


class Face:
    """One store driven through one face. Async operations share one event loop per test,
    as in a server; ``asyncio.run`` per call is exercised separately."""

    def __init__(self, store: SQLStore, kind: str) -> None:
        self.store = store
        self.kind = kind
        self._runner = asyncio.Runner() if kind == "async" else None

    def __call__(self, op: Op) -> Any:
        if self._runner is None:
            return self.store.execute(op)
        return self._runner.run(self.store.aexecute(op))

    def gc(self, now: float, batch_size: int) -> int:
        if self._runner is None:
            return self.store.gc(now, batch_size)
        return self._runner.run(self.store.agc(now, batch_size))

    def concurrently(self, ops: list[Op]) -> list[Any]:
        """All ``ops`` at once: threads released together, or tasks on one loop."""
        if self._runner is None:
            barrier = threading.Barrier(len(ops))

            def run(op: Op) -> Any:
                barrier.wait(timeout=10)
                return self.store.execute(op)

            with ThreadPoolExecutor(max_workers=len(ops)) as pool:
                return list(pool.map(run, ops))

        async def gather() -> list[Any]:
            return list(await asyncio.gather(*(self.store.aexecute(op) for op in ops)))

        return self._runner.run(gather())

    def close(self) -> None:
        if self._runner is not None:
            self._runner.run(self.store.aclose())
            self._runner.close()
        self.store.close()


@pytest.fixture(params=DATABASES)
def url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    return store_url_for(request, tmp_path, request.param)


@pytest.fixture(params=["sync", "async"])
def kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def face(url: str, kind: str) -> Iterator[Face]:
    opened = Face(SQLStore.from_url(url), kind)
    yield opened
    opened.close()


@contextlib.contextmanager
def database(url: str) -> Iterator[sa.Connection]:
    """A plain connection to the test database, beside the store, in one transaction."""
    engine = sa.create_engine(url)
    try:
        with engine.begin() as connection:
            yield connection
    finally:
        engine.dispose()


@contextlib.contextmanager
def statements() -> Iterator[list[str]]:
    """Every SQL statement any engine sends while the block runs."""
    seen: list[str] = []

    def record(*args: Any) -> None:
        seen.append(args[2])

    sa.event.listen(sa.Engine, "before_cursor_execute", record)
    try:
        yield seen
    finally:
        sa.event.remove(sa.Engine, "before_cursor_execute", record)


def with_query(url: str, **params: str) -> str:
    return sa.make_url(url).update_query_dict(params).render_as_string(hide_password=False)


def unique_table(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex[:12]}"


def drop_table(url: str, name: str) -> None:
    with database(url) as connection:
        connection.execute(sa.text(f"DROP TABLE IF EXISTS {name}"))


def put(face: Face, key: str = KEY, fields: dict[str, str] | None = None, *,
        user: str | None = None, expires_at: float = NOW + IDLE, version: int = 1) -> Record:
    record = Record({"a": "1"} if fields is None else fields, NOW, expires_at, NOW, user, version)
    face(Create(key, record, ABSOLUTE))
    return record


def load(face: Face, key: str = KEY, now: float = NOW) -> Record | None:
    result: Record | None = face(Load(key, now, IDLE, ABSOLUTE))
    return result


def delta(changes: dict[str, str], *, removed: tuple[str, ...] = (), now: float = NOW + 1,
          base: Record | None = None, expires_at: float | None = None,
          user: str | None = None, set_user: bool = False, key: str = KEY) -> Update:
    base_fields = base.fields if base is not None else {"a": "1"}
    base_version = base.version if base is not None else 1
    deadline = now + IDLE if expires_at is None else expires_at
    return Update(key, changes, removed, user, set_user, now, deadline, base_fields,
                  base_version, ABSOLUTE)


# --- records ----------------------------------------------------------------------------------
def test_create_and_load_keep_every_text_byte_for_byte(face: Face, url: str) -> None:
    fields = {
        "cart": '["apple","pear"]',
        "name": '"Zoë 東京 🍣"',
        "escaped": '"\\u00e9\\n"',
        "nested": '{"a":[1,{"b":null}],"c":1.5e-07,"d":"x\\"y"}',
        "spaced": '{ "x" : 1 }',
        "": "0",
        "clé 🔑": "true",
    }
    record = Record(fields, NOW, NOW + IDLE, NOW + 0.123456, "usér@example.org", 1)
    face(Create(KEY, record, ABSOLUTE))
    loaded = load(face)
    assert loaded == record
    assert loaded is not None
    assert [v.encode() for v in loaded.fields.values()] == [v.encode() for v in fields.values()]
    with database(url) as connection:
        stored = connection.execute(sa.text(f"SELECT data, format FROM {SQL_TABLE}")).one()
    assert stored.data.isascii()  # JSON escapes: no database charset can alter it
    assert stored.format == 1


def test_an_expired_row_is_handed_to_the_engine_as_it_is(face: Face, url: str) -> None:
    put(face, expires_at=NOW + 10)
    assert load(face, now=NOW + 9.5) is not None
    expired = load(face, now=NOW + 10)
    assert expired is not None
    assert expired.expires_at == NOW + 10  # the engine judges it expired and deletes it
    assert load(face, "missing") is None


def test_create_replaces_a_record_whole(face: Face) -> None:
    put(face, fields={"a": "1", "b": "2"}, user="alice", version=7)
    replacement = put(face, fields={"c": "3"}, user=None, expires_at=NOW + 50)
    assert load(face) == replacement


# --- updates ----------------------------------------------------------------------------------
def test_update_merges_a_delta_and_bumps_the_version(face: Face) -> None:
    base = put(face, fields={"a": "1", "b": "2", "c": "3"})
    assert face(delta({"b": "20", "d": "4"}, removed=("c",), base=base)) == 2  # the new version
    record = load(face)
    assert record is not None
    assert record.fields == {"a": "1", "b": "20", "d": "4"}
    assert record.version == 2
    assert face.store.update_retries == 0


def test_a_stale_base_still_merges_onto_the_current_row(face: Face) -> None:
    base = put(face, fields={"a": "1"})
    assert face(delta({"b": "2"}, base=base)) == 2
    assert face(delta({"c": "3"}, removed=("a",), base=base)) == 3  # loaded before b landed
    record = load(face)
    assert record is not None
    assert record.fields == {"b": "2", "c": "3"}
    assert record.version == 3
    assert face.store.update_retries == 1


def test_a_deleted_session_is_never_resurrected(face: Face, url: str) -> None:
    base = put(face)
    face(Delete(KEY))
    assert face(delta({"b": "2"}, base=base)) is False
    assert face(Touch(KEY, NOW + 1, NOW + IDLE)) is False
    assert load(face) is None
    with database(url) as connection:
        assert connection.execute(sa.text(f"SELECT COUNT(*) FROM {SQL_TABLE}")).scalar() == 0


def test_an_expired_session_is_left_as_it_was(face: Face) -> None:
    base = put(face, expires_at=NOW + 10)
    assert face(delta({"b": "2"}, base=base, now=NOW + 10)) is False
    assert face(Touch(KEY, NOW + 20, NOW + 20 + IDLE)) is False
    assert load(face, now=NOW) == base  # looked at before its deadline: untouched


def test_every_update_slides_the_expiry(face: Face) -> None:
    base = put(face, expires_at=NOW + 100)
    assert face(delta({"c": "3"}, base=base, now=NOW + 2, expires_at=NOW + 600))
    record = load(face)
    assert record is not None
    assert (record.expires_at, record.accessed_at) == (NOW + 600, NOW + 2)


def test_touch_slides_a_live_session_and_reports_it_even_when_nothing_changes(
    face: Face,
) -> None:
    put(face, expires_at=NOW + 100)
    assert face(Touch(KEY, NOW + 5, NOW + 700)) is True
    assert face(Touch(KEY, NOW + 5, NOW + 700)) is True  # matched, though no value changed
    record = load(face)
    assert record is not None
    assert (record.expires_at, record.accessed_at, record.version) == (NOW + 700, NOW + 5, 1)


def test_set_user_rebinds_and_otherwise_the_user_stays(face: Face) -> None:
    def user_after(update: Update) -> str | None:
        assert face(update)
        record = load(face)
        assert record is not None
        return record.user_id

    put(face, user="alice")
    assert user_after(delta({"b": "2"}, user="mallory", set_user=False)) == "alice"
    assert user_after(delta({}, user="bob", set_user=True)) == "bob"
    assert user_after(delta({}, user=None, set_user=True)) is None


def test_concurrent_updates_of_distinct_keys_all_land(
    face: Face, record_property: Callable[[str, object], None]
) -> None:
    base = put(face, fields={"init": "0"})
    ops: list[Op] = [delta({f"k{n:02d}": str(n)}, base=base) for n in range(CONCURRENT)]
    # Each landed as its own version: every write counted once, in some order.
    assert sorted(face.concurrently(ops)) == list(range(2, CONCURRENT + 2))
    record = load(face)
    assert record is not None
    assert sorted(record.fields) == ["init", *(f"k{n:02d}" for n in range(CONCURRENT))]
    assert record.version == CONCURRENT + 1
    # All but the first carried a stale version, and each merged again once: the re-read
    # locks the row (SQLite: the failed write already holds the database lock). A database
    # may still break a lock cycle by rolling one back (InnoDB deadlock detection), which
    # costs that update one more try; without the lock it takes well over twice as many.
    assert CONCURRENT - 1 <= face.store.update_retries < 2 * (CONCURRENT - 1)
    record_property("update_retries", face.store.update_retries)


# --- users, deletion, garbage collection ------------------------------------------------------
def test_delete_user_deletes_exactly_that_users_sessions(face: Face) -> None:
    for n in range(3):
        put(face, f"alice-{n}", user="alice")
    put(face, "capital", user="Alice")  # user ids are case-sensitive everywhere
    put(face, "bob", user="bob")
    put(face, "anonymous")
    assert face(DeleteUser("alice")) == 3
    assert [load(face, f"alice-{n}") for n in range(3)] == [None] * 3
    assert all(load(face, key) is not None for key in ("capital", "bob", "anonymous"))
    assert face(DeleteUser("alice")) == 0


def test_gc_deletes_exactly_the_expired_rows_in_batches(face: Face) -> None:
    for n in range(10):
        put(face, f"old-{n}", expires_at=NOW - 100 + n)
    put(face, "due-now", expires_at=NOW)
    for n in range(4):
        put(face, f"live-{n}", expires_at=NOW + 1 + n)
    with statements() as sent:
        assert face.gc(NOW, batch_size=3) == 11
    verbs = [s.lstrip().split()[0].upper() for s in sent]
    assert verbs.count("DELETE") == 4  # 3+3+3+2
    if face.store.sync_url.get_backend_name() not in ("mysql", "mariadb"):
        assert verbs == ["DELETE"] * 4  # each DELETE picks its rows: no ids sent back and forth
    assert all(load(face, f"live-{n}", now=NOW - 200) is not None for n in range(4))
    assert load(face, "due-now", now=NOW - 200) is None
    assert face.gc(NOW, batch_size=3) == 0


def test_statements_per_operation(face: Face) -> None:
    base = put(face)
    load(face)  # first use done: connection set up, table checked
    with statements() as sent:
        load(face)
    assert len(sent) == 1, sent
    with statements() as sent:
        face(delta({"b": "2"}, base=base))
    assert len(sent) == 1, sent
    with statements() as sent:
        face(delta({"c": "3"}, base=base))  # stale: the locked re-read and the write follow
    assert len(sent) == 3, sent
    with statements() as sent:
        face(Touch(KEY, NOW + 2, NOW + IDLE))
        put(face, "other")
    assert len(sent) == 2, sent


# --- rows this store did not write ------------------------------------------------------------
UNREADABLE = {
    "corrupt-text-key": ("not json", 1),
    "corrupt-list-key": ('["a","b"]', 1),
    "corrupt-pickle-key": (pickle.dumps({"cart": ["apple"]}, protocol=0).decode("ascii"), 1),
    "corrupt-number-key": ('{"cart":1}', 1),
    "future-format-key": ('{"cart":"1"}', 2),
}


def test_unreadable_rows_load_as_missing_and_are_logged(
    face: Face, url: str, caplog: pytest.LogCaptureFixture
) -> None:
    load(face)  # creates the table
    with database(url) as connection:
        for key, (data, record_format) in UNREADABLE.items():
            connection.execute(sa.insert(face.store.table).values(
                id=key, data=data, created_at=NOW, expires_at=NOW + IDLE, accessed_at=NOW,
                user_id=None, version=1, format=record_format,
            ))
    caplog.clear()
    for key in UNREADABLE:
        assert load(face, key) is None
    stale = Record({}, NOW, NOW + IDLE, NOW, version=0)  # forces a read of the stored row
    assert face(delta({"b": "2"}, base=stale, key="corrupt-text-key")) is False
    errors = [r for r in caplog.records if r.levelno == logging.ERROR and r.name == "sessionkit"]
    assert len(errors) == len(UNREADABLE) + 1
    assert "unknown record format 2" in caplog.text
    assert not any(key in caplog.text for key in UNREADABLE)


# --- configuration ----------------------------------------------------------------------------
def test_create_table_false_names_the_missing_table_and_its_ddl(url: str, kind: str) -> None:
    table = unique_table("sk_missing")
    store = Face(SQLStore.from_url(with_query(url, table=table, create_table="false")), kind)
    try:
        with pytest.raises(ConfigError) as info:
            load(store)
        message = str(info.value)
        assert "create_table=false" in message
        assert f"CREATE TABLE {table}" in message
        with database(url) as connection:
            assert not sa.inspect(connection).has_table(table)
            ddl = message.split("create it with:\n", 1)[1]
            for statement in filter(None, (s.strip() for s in ddl.split(";"))):
                connection.execute(sa.text(statement))
        put(store)  # the DDL it quoted is the table it needs
        assert load(store) is not None
    finally:
        store.close()
        drop_table(url, table)


def test_table_option_keeps_sessions_in_a_table_it_creates(url: str, kind: str) -> None:
    table = unique_table("sk_custom")
    store = Face(SQLStore.from_url(with_query(url, table=table)), kind)
    try:
        # A new table, so its column types are this code's: times keep their microseconds,
        # user ids compare case-sensitively.
        record = Record({"a": "1"}, NOW, NOW + IDLE, NOW + 0.123456, "Alice")
        store(Create(KEY, record, ABSOLUTE))
        put(store, "lower", user="alice")
        assert load(store) == record
        assert store(DeleteUser("alice")) == 1
        with database(url) as connection:
            assert connection.execute(sa.text(f"SELECT id FROM {table}")).scalars().all() == [KEY]
            inspector = sa.inspect(connection)
            assert {i["name"] for i in inspector.get_indexes(table)} == {
                f"ix_{table}_expires_at", f"ix_{table}_user_id"
            }
            if inspector.has_table(SQL_TABLE):
                count = connection.execute(sa.text(f"SELECT COUNT(*) FROM {SQL_TABLE}")).scalar()
                assert count == 0
    finally:
        store.close()
        drop_table(url, table)


DRIVER_PARAMS = {"sqlite": {"timeout": "7"}, "postgresql": {"application_name": "sk_probe"},
                 "mariadb": {"connect_timeout": "7"}}


def test_driver_query_parameters_reach_the_driver(
    url: str, kind: str, request: pytest.FixtureRequest
) -> None:
    database_name = request.node.callspec.params["url"]
    params = DRIVER_PARAMS[database_name]
    store = Face(SQLStore.from_url(with_query(url, table=SQL_TABLE, **params)), kind)
    try:
        assert dict(store.store.sync_url.query) == params  # store options removed, rest kept
        put(store)
        assert load(store) is not None
        if database_name == "postgresql":  # the pooled connection announces itself
            with database(url) as connection:
                names = connection.execute(
                    sa.text("SELECT application_name FROM pg_stat_activity")
                ).scalars().all()
            assert "sk_probe" in names
    finally:
        store.close()
    rejected = Face(SQLStore.from_url(with_query(url, not_a_driver_option="1")), kind)
    try:  # the driver, not sessionkit, is who turns it down
        if database_name == "sqlite":  # pysqlite ignores unknown arguments, and says so
            with pytest.warns(sa.exc.SAWarning, match="not_a_driver_option"):
                load(rejected)
        else:
            with pytest.raises(Exception, match="not_a_driver_option"):
                load(rejected)
    finally:
        rejected.close()


@pytest.mark.parametrize(
    ("query", "option"),
    [
        ("table=1sessions", "table"),
        ("table=sessions;drop", "table"),
        ("table=", "table"),
        ("table=" + "t" * 64, "table"),
        ("table=a&table=b", "table"),
        ("create_table=maybe", "create_table"),
    ],
)
def test_bad_store_options_are_config_errors_naming_the_option(query: str, option: str) -> None:
    with pytest.raises(ConfigError, match=option):
        SQLStore.from_url(f"sqlite:///sessions.db?{query}")


@pytest.mark.parametrize(
    ("given", "sync_driver", "async_driver"),
    [
        ("sqlite:///s.db", "sqlite", "sqlite+aiosqlite"),
        ("sqlite+aiosqlite:///s.db", "sqlite", "sqlite+aiosqlite"),
        ("postgresql://h/db", "postgresql", "postgresql+asyncpg"),
        ("postgres://h/db", "postgresql", "postgresql+asyncpg"),
        ("postgresql+psycopg2://h/db", "postgresql+psycopg2", "postgresql+asyncpg"),
        ("postgresql+psycopg://h/db", "postgresql+psycopg", "postgresql+psycopg"),
        ("postgresql+asyncpg://h/db", "postgresql+psycopg", "postgresql+asyncpg"),
        ("mysql://h/db", "mysql", "mysql+aiomysql"),
        ("mysql+pymysql://h/db", "mysql+pymysql", "mysql+aiomysql"),
        ("mysql+mysqldb://h/db", "mysql+mysqldb", "mysql+aiomysql"),
        ("mysql+aiomysql://h/db", "mysql+pymysql", "mysql+aiomysql"),
        ("mysql+asyncmy://h/db", "mysql+pymysql", "mysql+asyncmy"),
        ("mariadb://h/db", "mariadb", "mariadb+aiomysql"),
        ("mariadb+pymysql://h/db", "mariadb+pymysql", "mariadb+aiomysql"),
        ("mariadb+aiomysql://h/db", "mariadb+pymysql", "mariadb+aiomysql"),
        ("mssql+pyodbc://h/db", "mssql+pyodbc", "mssql+pyodbc"),
    ],
)
def test_each_face_gets_its_driver(given: str, sync_driver: str, async_driver: str) -> None:
    sync_url, async_url = face_urls(sa.make_url(given))
    assert (sync_url.drivername, async_url.drivername) == (sync_driver, async_driver)
    assert sync_url.database == async_url.database == sa.make_url(given).database


def test_urls_open_a_lazy_store_named_without_its_password() -> None:
    store = open_store(f"mysql+pymysql://root:{PASSWORD}@127.0.0.1:1/test?table=t")
    assert isinstance(store, SQLStore)  # nothing connected: port 1 is closed
    assert store.name == "mysql+pymysql://root:***@127.0.0.1:1/test?table=t"
    with pytest.raises(ConfigError, match="not a SQL database URL"):
        SQLStore.from_url("memory://")


# --- outages ----------------------------------------------------------------------------------
@pytest.mark.parametrize("closed", CLOSED_PORTS)
def test_an_unreachable_database_is_store_unavailable_without_the_password(
    closed: str, kind: str
) -> None:
    face = Face(SQLStore.from_url(closed), kind)
    try:
        with pytest.raises(StoreUnavailable) as info:
            load(face)
        with pytest.raises(StoreUnavailable):
            face(delta({"b": "2"}))
    finally:
        face.close()
    assert PASSWORD not in str(info.value)
    assert ":***@127.0.0.1:1" in str(info.value)


def test_an_error_that_quotes_the_password_is_redacted() -> None:
    """The store's outage errors hide the URL's secrets even where the driver quotes them."""
    from sessionkit.redact import url_secrets

    url = f"postgresql+psycopg://postgres:{PASSWORD}@127.0.0.1:1/test"
    store = SQLStore.from_url(url)
    error = StoreUnavailable(store.name, OSError(f"authentication for postgres:{PASSWORD} failed"),
                             hide=url_secrets(url))
    assert PASSWORD not in str(error)
    assert "authentication for postgres:*** failed" in str(error)


def test_the_store_recovers_when_the_database_comes_back(tmp_path: Path, kind: str) -> None:
    folder = tmp_path / "not-yet"
    face = Face(SQLStore.from_url(f"sqlite:///{folder / 'sessions.db'}"), kind)
    try:
        with pytest.raises(StoreUnavailable):
            put(face)
        folder.mkdir()
        put(face)  # same store object: no restart
        assert load(face) is not None
    finally:
        face.close()


# --- event loops and in-memory SQLite ---------------------------------------------------------
def test_the_async_face_survives_a_new_event_loop_per_call(
    url: str, caplog: pytest.LogCaptureFixture
) -> None:
    store = SQLStore.from_url(url)  # as under a test client that starts a loop per request
    record = Record({"a": "1"}, NOW, NOW + IDLE, NOW)
    asyncio.run(store.aexecute(Create(KEY, record, ABSOLUTE)))
    for _ in range(3):
        assert asyncio.run(store.aexecute(Load(KEY, NOW, IDLE, ABSOLUTE))) == record
    asyncio.run(store.aclose())
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]


def test_in_memory_sqlite_serves_each_face_its_own_database(kind: str) -> None:
    face = Face(SQLStore.from_url("sqlite://"), kind)
    try:
        base = put(face, fields={"init": "0"})
        ops: list[Op] = [delta({f"k{n:02d}": "1"}, base=base) for n in range(CONCURRENT)]
        assert sorted(face.concurrently(ops)) == list(range(2, CONCURRENT + 2))
        record = load(face)
        assert record is not None
        assert len(record.fields) == CONCURRENT + 1
    finally:
        face.close()
    other = SQLStore.from_url("sqlite:///:memory:")
    try:
        put(Face(other, "sync"))
        assert asyncio.run(other.aexecute(Load(KEY, NOW, IDLE, ABSOLUTE))) is None
    finally:
        other.close()


# --- gc from code and from the command line ---------------------------------------------------
def test_gc_function_and_cli_delete_what_expired_by_the_wall_clock(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    url = f"sqlite:///{tmp_path / 'sessions.db'}"
    face = Face(SQLStore.from_url(url), "sync")
    wall = time.time()
    for n in range(3):
        face(Create(f"old-{n}", Record({}, wall - 90, wall - 60, wall - 90), ABSOLUTE))
    face(Create("live", Record({}, wall, wall + 3600, wall), ABSOLUTE))
    face(Create("older", Record({}, wall - 90, wall - 30, wall - 90), ABSOLUTE))
    assert cli_main(["gc", url, "--batch-size", "2"]) == 0
    assert capsys.readouterr().out == f"deleted 4 expired sessions from {url}\n"
    assert gc(url) == 0
    assert load(face, "live", now=wall) is not None
    face.close()


def test_cli_help_and_a_url_that_is_not_sql(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli_main(["--help"]) == 0
    assert "gc" in capsys.readouterr().out
    assert cli_main(["gc", "--help"]) == 0
    assert "--batch-size" in capsys.readouterr().out
    assert cli_main(["gc", f"redis://:{PASSWORD}@127.0.0.1:6379/0"]) == 2
    captured = capsys.readouterr()
    assert "not a SQL database URL" in captured.err
    assert PASSWORD not in captured.err
    assert captured.out == ""
    assert cli_main(["gc", "sqlite:///x.db", "--batch-size", "0"]) == 2
    assert "--batch-size" in capsys.readouterr().err


def test_a_table_made_by_an_earlier_version_gets_the_new_column(tmp_path: Path) -> None:
    from sessionkit import ConfigError
    from sessionkit.stores.sql import SQLStore

    url = f"sqlite:///{tmp_path / 'old.db'}"
    with database(url) as connection:
        connection.execute(sa.text(
            "CREATE TABLE sessionkit_sessions (id VARCHAR(43) PRIMARY KEY, data TEXT NOT NULL, "
            "created_at FLOAT NOT NULL, expires_at FLOAT NOT NULL, accessed_at FLOAT NOT NULL, "
            "user_id VARCHAR(256), version INTEGER NOT NULL, format SMALLINT NOT NULL)"))
    strict = SQLStore(url + "?create_table=false")
    with pytest.raises(ConfigError, match='ALTER TABLE sessionkit_sessions ADD COLUMN instance'):
        strict.execute(Load(KEY, NOW, IDLE, ABSOLUTE))
    store = SQLStore(url)
    store.execute(Create(KEY, Record({"a": "1"}, NOW, NOW + IDLE, NOW, None, 1, "inst-a"),
                         ABSOLUTE))
    loaded = store.execute(Load(KEY, NOW, IDLE, ABSOLUTE))
    assert loaded.instance == "inst-a"
    store.close()


def test_a_table_without_the_meta_column_gets_it_on_every_database(url: str) -> None:
    """A table made before sessions kept facts (meta): the strict store names the ALTER
    TABLE to run; the default one adds the column, and facts round-trip from then on."""
    table = "sk_before_meta"
    base = url.split("?")[0]
    with database(base) as connection:
        connection.execute(sa.text(f"DROP TABLE IF EXISTS {table}"))
        connection.execute(sa.text(
            f"CREATE TABLE {table} (id VARCHAR(43) PRIMARY KEY, data TEXT NOT NULL, "
            "created_at FLOAT NOT NULL, expires_at FLOAT NOT NULL, accessed_at FLOAT NOT NULL, "
            "user_id VARCHAR(256), version INTEGER NOT NULL, format SMALLINT NOT NULL, "
            "instance VARCHAR(63))"))
    strict = SQLStore(f"{base}?table={table}&create_table=false")
    try:
        with pytest.raises(ConfigError, match=f"ALTER TABLE {table} ADD COLUMN meta"):
            strict.execute(Load(KEY, NOW, IDLE, ABSOLUTE))
    finally:
        strict.close()
    store = SQLStore(f"{base}?table={table}")
    try:
        facts = {"au": NOW - 1.5, "dn": "Laptop ☃", "xp": True}
        store.execute(Create(KEY, Record({"a": "1"}, NOW, NOW + IDLE, NOW, "ann", 1, "inst-a",
                                         facts), ABSOLUTE))
        loaded = store.execute(Load(KEY, NOW, IDLE, ABSOLUTE))
        assert loaded is not None
        assert loaded.meta == facts
    finally:
        store.close()
        with database(base) as connection:
            connection.execute(sa.text(f"DROP TABLE IF EXISTS {table}"))


def test_a_row_whose_facts_are_garbled_is_no_session(url: str) -> None:
    """Facts decide when a session ends: a row whose meta is not what sessionkit writes is
    treated as missing (and logged), never read with its facts guessed."""
    store = SQLStore.from_url(url)
    try:
        store.execute(Create(KEY, Record({"a": "1"}, NOW, NOW + IDLE, NOW, "ann", 1, None,
                                         {"xi": 60.0}), ABSOLUTE))
        for garbled in ('{"xi": "60"}', '{"xi": -1}', "[1]", "not json", '{"xp": 1}'):
            with database(url.split("?")[0]) as connection:
                connection.execute(sa.text(f"UPDATE {SQL_TABLE} SET meta = :m WHERE id = :k"),
                                   {"m": garbled, "k": KEY})
            assert store.execute(Load(KEY, NOW, IDLE, ABSOLUTE)) is None, garbled
    finally:
        store.close()
