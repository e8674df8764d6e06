"""Moving a Flask app from Flask-Session 0.8 to sessionkit with nobody logged out.

The real Flask-Session serves the shop against a real store (Redis, PostgreSQL, MariaDB, a
cachelib directory); the same shop then restarts on sessionkit with ``migrate_from`` naming
that store, and the users' old cookies keep their logins and carts."""

from __future__ import annotations

import asyncio
import datetime
import os
import pickle
import struct
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx2
import pytest

from sessionkit import ConfigError, SessionEngine
from sessionkit.codecs import encode_value
from sessionkit.stores.base import Create, Op
from sessionkit.stores.memory import MemoryStore
from tests.peer_apps import (
    OLD_SECRET,
    USERS,
    cachelib_file,
    file_app,
    flask_cookie,
    flask_session,
    flask_shop,
    log_in_and_fill_carts,
    old_redis_app,
    peer_redis_url,
    redis_client,
    sessionkit_flask,
    sessionkit_sessions,
    set_cookie,
    shop,
    wait_until_gone,
)
from tests.servers import serve_wsgi
from tests.stores import MYSQL_ENV, POSTGRES_ENV, REDIS_ENV, clear_sql, flush_redis
from tests.support import KEY, FakeClock, ShopClient, service_url

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

DAY = 86400.0


@pytest.fixture
def redis_url() -> str:
    url = service_url(REDIS_ENV, "Redis")
    flush_redis(url)
    return url


def sid_of(cookie: str) -> str:
    """The session id in a Flask-Session cookie, signed (``<id>.<signature>``) or not."""
    return cookie.rsplit(".", 1)[0] if "." in cookie else cookie


def token(cookie: str) -> str:
    """The session id in a sessionkit cookie (without hybrid mode's write stamp)."""
    return cookie.split("=", 1)[1].split(".")[0].split("~")[0]


def assert_moved(new: ShopClient, cookies: dict[str, str], peer_has: Callable[[str], bool],
                 store_url: str) -> None:
    """Each user's old cookie brings their login and cart once, with a sessionkit cookie;
    the peer's record is gone, the old cookie again finds the same session (never a second
    copy), and after a log-out it finds nothing of the user's."""
    for user, old in cookies.items():
        assert peer_has(sid_of(old))
        first = new.raw("GET", "/whoami", cookie=f"session={old}")
        assert first.status == 200
        assert first.json == {"user": user, "cart": USERS[user]}
        ours = set_cookie(first)
        assert ours != f"session={old}"
        assert not peer_has(sid_of(old))  # moved: gone from the peer's store
        again = new.raw("GET", "/whoami", cookie=f"session={old}")
        assert again.json == first.json
        assert token(set_cookie(again)) == token(ours)  # the same session, not a second copy
        assert new.raw("GET", "/flashes", cookie=ours).json == [f"welcome {user}"]
        assert new.raw("POST", "/cart/more", cookie=ours).json == {"cart": [*USERS[user], "more"]}
        assert new.raw("GET", "/whoami", cookie=ours).json["cart"] == [*USERS[user], "more"]
    assert sessionkit_sessions(store_url) == len(cookies)
    old = cookies["ann"]
    ours = set_cookie(new.raw("GET", "/whoami", cookie=f"session={old}"))
    assert new.raw("POST", "/logout", cookie=ours).status == 200
    after = new.raw("GET", "/whoami", cookie=f"session={old}")
    assert after.json == {"user": None, "cart": []}  # the old cookie revives nothing


# --- Redis ---------------------------------------------------------------------------------
@pytest.mark.parametrize(("prefix", "signed", "serialization", "near_cache"), [
    pytest.param("session:", False, "msgpack", False, id="msgpack"),
    pytest.param("shop-session:", True, "json", False, id="json-signed"),
    pytest.param("session:", False, "msgpack", True, id="msgpack-hybrid-mode"),
])
def test_redis_users_keep_logins_and_carts(redis_url: str, prefix: str, signed: bool,
                                           serialization: str, near_cache: bool) -> None:
    old = old_redis_app(redis_url, prefix, signed, serialization)
    cookies = log_in_and_fill_carts(old.test_client, flask_cookie)
    # The restarted app: same code, sessionkit instead of Flask-Session. Under use_signer the
    # app's own SECRET_KEY verifies the old cookies.
    new = shop("flask", flask_shop(sessionkit_flask(
        store=redis_url, near_cache=near_cache,
        migrate_from=peer_redis_url(redis_url, prefix, signed))))
    with redis_client(redis_url) as client:
        assert_moved(new, cookies, lambda sid: bool(client.exists(prefix + sid)), redis_url)


@pytest.fixture
def ann_on_redis(redis_url: str) -> tuple[str, ShopClient]:
    """Ann's Flask-Session cookie (signed), and the shop restarted on sessionkit."""
    cookies = log_in_and_fill_carts(old_redis_app(redis_url, signed=True).test_client,
                                    flask_cookie)
    new = shop("flask", flask_shop(sessionkit_flask(
        store=redis_url, migrate_from=peer_redis_url(redis_url, signed=True))))
    return cookies["ann"], new


@pytest.mark.parametrize("kind", ["tampered", "other-secret", "unsigned", "unknown", "expired",
                                  "garbage", "oversized"])
def test_bad_cookies_get_a_fresh_session(kind: str, redis_url: str,
                                         ann_on_redis: tuple[str, ShopClient]) -> None:
    from itsdangerous import Signer

    cookie, new = ann_on_redis
    sid = sid_of(cookie)
    value = {
        "tampered": cookie[:3] + ("A" if cookie[3] != "A" else "B") + cookie[4:],
        "other-secret": Signer("another-app", salt="flask-session",
                               key_derivation="hmac").sign(sid).decode(),
        "unsigned": sid,
        "unknown": Signer(OLD_SECRET, salt="flask-session",
                          key_derivation="hmac").sign("x" * 43).decode(),
        "expired": cookie,
        "garbage": "%00;;\"'\\",
        "oversized": cookie + "A" * 4000,
    }[kind]
    with redis_client(redis_url) as client:
        if kind == "expired":
            wait_until_gone(client, "session:" + sid)
        reply = new.raw("GET", "/whoami", cookie=f"session={value}")
        assert reply.status == 200
        assert reply.json == {"user": None, "cart": []}
        assert not [c for c in reply.set_cookies if "Max-Age=0" not in c]  # nothing to save
        assert bool(client.exists("session:" + sid)) == (kind != "expired")  # left alone
    assert sessionkit_sessions(redis_url) == 0


class _Marker:
    """Pickles as a call that would create ``path`` if the pickle were loaded."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __reduce__(self) -> Any:
        return (os.system, (f"touch {self.path}",))


@pytest.fixture
def forbid_unpickling(monkeypatch: pytest.MonkeyPatch) -> Callable[[], None]:
    """Call it once the old app has served (cachelib unpickles its own files): from then on,
    any attempt to unpickle fails the request, and so the test."""
    def refuse(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("pickle was asked to load data")

    def forbid() -> None:
        for name in ("loads", "load", "Unpickler", "_loads", "_load", "_Unpickler"):
            if hasattr(pickle, name):
                monkeypatch.setattr(pickle, name, refuse)

    return forbid


@pytest.mark.parametrize("payload", ["code", "old-pickle", "garbage", "not-a-dict"])
def test_pickled_and_garbage_records_are_refused_unread(
        payload: str, redis_url: str, tmp_path: Path, caplog: pytest.LogCaptureFixture,
        forbid_unpickling: Callable[[], None]) -> None:
    forbid_unpickling()
    marker = tmp_path / "code-ran"
    sid = "pickled-session-id-0123456789-abcdefghijkl"
    record = {
        "code": pickle.dumps({"user": "mallory", "x": _Marker(marker)}),
        "old-pickle": pickle.dumps({"user": "mallory", "cart": ["x"]}),  # Flask-Session < 0.7
        "garbage": b"\xc1\x00garbage",
        "not-a-dict": b"\x93\x01\x02\x03",
    }[payload]
    with redis_client(redis_url) as client:
        client.set("session:" + sid, record, ex=3600)
    new = shop("flask", flask_shop(sessionkit_flask(
        store=redis_url, migrate_from=peer_redis_url(redis_url))))
    reply = new.raw("GET", "/whoami", cookie=f"session={sid}")
    assert reply.status == 200
    assert reply.json == {"user": None, "cart": []}
    assert not marker.exists()
    assert "unreadable" in caplog.text


def test_the_old_secret_can_be_given_outside_flask(redis_url: str) -> None:
    cookies = log_in_and_fill_carts(old_redis_app(redis_url, signed=True).test_client,
                                    flask_cookie)
    engine = SessionEngine(store=redis_url, secret_key=KEY, migrate_secret_key=[OLD_SECRET],
                           migrate_from=peer_redis_url(redis_url, signed=True))
    try:
        assert engine.load(f"session={cookies['cy']}")["cart"] == USERS["cy"]
    finally:
        engine.close()


def test_a_failed_request_loses_nothing(ann_on_redis: tuple[str, ShopClient]) -> None:
    cookie, new = ann_on_redis
    assert new.raw("POST", "/fail", cookie=f"session={cookie}").status == 500
    assert new.raw("GET", "/whoami", cookie=f"session={cookie}").json["user"] == "ann"


def test_concurrent_first_requests_share_one_session(redis_url: str) -> None:
    cookies = log_in_and_fill_carts(old_redis_app(redis_url).test_client, flask_cookie)
    app = flask_shop(sessionkit_flask(store=redis_url, migrate_from=peer_redis_url(redis_url)))
    old = f"session={cookies['bo']}"
    with serve_wsgi(app) as base:
        def put(n: int) -> tuple[int, str]:
            with httpx2.Client(base_url=base, timeout=30) as http:
                reply = http.post(f"/put/k{n:02d}", headers={"Cookie": old})
                return reply.status_code, reply.headers["set-cookie"].split(";")[0]

        with ThreadPoolExecutor(max_workers=20) as pool:
            replies = list(pool.map(put, range(20)))
        assert {status for status, _ in replies} == {200}
        [ours] = {cookie for _, cookie in replies}  # one session, one cookie for all
        with httpx2.Client(base_url=base, timeout=30) as http:
            keys = http.get("/keys", headers={"Cookie": ours}).json()
            whoami = http.get("/whoami", headers={"Cookie": ours}).json()
    assert keys == sorted(["_flashes", "cart", "user", *(f"k{n:02d}" for n in range(20))])
    assert whoami == {"user": "bo", "cart": USERS["bo"]}
    assert sessionkit_sessions(redis_url) == 1


class _HeldFirstCreate(MemoryStore):
    """sessionkit's store, holding the first session write until told: a request that moves
    a session is overtaken, between its read and its write, by another moving it too."""

    def __init__(self) -> None:
        super().__init__()
        self.reached, self.go = threading.Event(), threading.Event()
        self._held = False

    def execute(self, op: Op) -> Any:
        if isinstance(op, Create) and not self._held:
            self._held = True
            self.reached.set()
            assert self.go.wait(10)
        return super().execute(op)


def test_an_overtaken_move_joins_the_session_the_other_request_moved(tmp_path: Path) -> None:
    directory = tmp_path / "flask_session"
    cookie = "session=" + log_in_and_fill_carts(
        file_app(directory, "cachelib").test_client, flask_cookie)["ann"]
    store = _HeldFirstCreate()
    engine = SessionEngine(store=store, secret_key=KEY,
                           migrate_from=f"flask-session+file://{directory}")
    slow: dict[str, Any] = {}

    def slow_request() -> None:
        session = engine.load(cookie)  # read the peer's record; its write is held
        session["from_slow"] = True
        slow["cookies"] = engine.commit(session).set_cookies

    thread = threading.Thread(target=slow_request)
    thread.start()
    assert store.reached.wait(10)
    fast = engine.load(cookie)  # moves the session and answers first
    fast["from_fast"] = True
    [ours] = engine.commit(fast).set_cookies
    store.go.set()
    thread.join(10)
    assert slow["cookies"] == [ours]  # the same session
    session = engine.load(ours.split(";")[0])
    assert session["user"] == "ann" and session["from_fast"] and session["from_slow"]
    assert not cachelib_file(directory, cookie.split("=", 1)[1]).exists()


# --- SQLAlchemy ----------------------------------------------------------------------------
@pytest.fixture(params=["postgresql", "mariadb"])
def sql_url(request: pytest.FixtureRequest) -> Iterator[str]:
    env, what = (POSTGRES_ENV, "PostgreSQL") if request.param == "postgresql" else (
        MYSQL_ENV, "MariaDB/MySQL")
    url = service_url(env, what)
    drop_flask_session_table(url)
    clear_sql(url)
    yield url
    drop_flask_session_table(url)


def drop_flask_session_table(url: str) -> None:
    import sqlalchemy as sa

    engine = sa.create_engine(url)
    try:
        with engine.begin() as connection:
            connection.execute(sa.text("DROP TABLE IF EXISTS flask_sessions"))
    finally:
        engine.dispose()


def fill_on_sqlalchemy(sql_url: str) -> dict[str, str]:
    from flask_sqlalchemy import SQLAlchemy

    holder: dict[str, Any] = {}

    def configure(app: Any) -> None:
        app.config.update(SQLALCHEMY_DATABASE_URI=sql_url)
        holder["db"] = SQLAlchemy(app)
        flask_session(SESSION_TYPE="sqlalchemy", SESSION_SQLALCHEMY=holder["db"],
                      SESSION_SQLALCHEMY_TABLE="flask_sessions")(app)

    old = flask_shop(configure)
    try:
        return log_in_and_fill_carts(old.test_client, flask_cookie)
    finally:
        with old.app_context():
            holder["db"].engine.dispose()


def sql_rows(url: str) -> Callable[[str], bool]:
    import sqlalchemy as sa

    def has(sid: str) -> bool:
        engine = sa.create_engine(url)
        try:
            with engine.connect() as connection:
                return connection.execute(
                    sa.text("SELECT COUNT(*) FROM flask_sessions WHERE session_id = :s"),
                    {"s": "session:" + sid}).scalar_one() == 1
        finally:
            engine.dispose()

    return has


def test_sqlalchemy_users_keep_logins_and_carts(sql_url: str) -> None:
    cookies = fill_on_sqlalchemy(sql_url)
    new = shop("flask", flask_shop(sessionkit_flask(
        store=sql_url, migrate_from=f"flask-session+{sql_url}?table=flask_sessions")))
    assert_moved(new, cookies, sql_rows(sql_url), sql_url)


def test_sqlalchemy_expired_rows_are_deleted_unread(sql_url: str) -> None:
    cookies = fill_on_sqlalchemy(sql_url)
    later = FakeClock(time.time() + 32 * DAY)  # past PERMANENT_SESSION_LIFETIME (31 days)
    new = shop("flask", flask_shop(sessionkit_flask(
        store=sql_url, clock=later, migrate_from=f"flask-session+{sql_url}?table=flask_sessions")))
    for cookie in cookies.values():
        assert new.raw("GET", "/whoami", cookie=f"session={cookie}").json["user"] is None
        assert not sql_rows(sql_url)(cookie)


def test_a_missing_table_is_named(tmp_path: Path) -> None:
    engine = SessionEngine(store="memory://", secret_key=KEY,
                           migrate_from=f"flask-session+sqlite:///{tmp_path / 'old.db'}?table=nope")
    with pytest.raises(ConfigError, match="no table 'nope'"):
        engine.load("session=" + "s" * 43)


# --- the filesystem / cachelib backend -----------------------------------------------------
@pytest.mark.parametrize("backend", ["cachelib", "filesystem"])
def test_cachelib_files_users_keep_logins_and_carts(
        backend: str, tmp_path: Path, redis_url: str, forbid_unpickling: Callable[[], None]
) -> None:
    directory = tmp_path / "flask_session"
    cookies = log_in_and_fill_carts(file_app(directory, backend).test_client, flask_cookie)
    forbid_unpickling()
    new = shop("flask", flask_shop(sessionkit_flask(
        store=redis_url, migrate_from=f"flask-session+file://{directory}")))
    assert_moved(new, cookies, lambda sid: cachelib_file(directory, sid).exists(), redis_url)


def test_cachelib_expired_files_are_deleted_unread(tmp_path: Path) -> None:
    directory = tmp_path / "flask_session"
    cookies = log_in_and_fill_carts(file_app(directory, "cachelib").test_client, flask_cookie)
    later = FakeClock(time.time() + 32 * DAY)
    new = shop("flask", flask_shop(sessionkit_flask(
        store="memory://", clock=later, migrate_from=f"flask-session+file://{directory}")))
    for cookie in cookies.values():
        assert new.raw("GET", "/whoami", cookie=f"session={cookie}").json["user"] is None
        assert not cachelib_file(directory, cookie).exists()


def test_code_in_a_session_file_never_runs(tmp_path: Path, caplog: pytest.LogCaptureFixture,
                                           forbid_unpickling: Callable[[], None]) -> None:
    forbid_unpickling()
    marker = tmp_path / "code-ran"
    directory = tmp_path / "flask_session"
    directory.mkdir()
    header = struct.pack("I", int(time.time()) + 3600)
    nested, top = "n" * 43, "t" * 43
    cachelib_file(directory, nested).write_bytes(
        header + pickle.dumps({"user": "mallory", "x": _Marker(marker)}, 5))
    cachelib_file(directory, top).write_bytes(header + pickle.dumps(_Marker(marker), 5))
    new = shop("flask", flask_shop(sessionkit_flask(
        store="memory://", migrate_from=f"flask-session+file://{directory}")))
    reply = new.raw("GET", "/keys", cookie=f"session={nested}")
    assert reply.json == ["user"]  # the rest of the session is kept; the call is not
    assert "'x'" in caplog.text and f"{os.system.__module__}.system" not in caplog.text
    assert new.raw("GET", "/whoami", cookie=f"session={top}").json["user"] is None
    assert not marker.exists()


@pytest.mark.parametrize("backend", ["file", "postgresql", "mariadb"])
def test_the_async_face_moves_sessions_too(backend: str, tmp_path: Path) -> None:
    if backend == "file":
        directory = tmp_path / "flask_session"
        cookies = log_in_and_fill_carts(file_app(directory, "cachelib").test_client,
                                        flask_cookie)
        source = f"flask-session+file://{directory}"
    else:
        url = service_url(*{"postgresql": (POSTGRES_ENV, "PostgreSQL"),
                            "mariadb": (MYSQL_ENV, "MariaDB/MySQL")}[backend])
        drop_flask_session_table(url)
        cookies = fill_on_sqlalchemy(url)
        source = f"flask-session+{url}?table=flask_sessions"
    engine = SessionEngine(store="memory://", secret_key=KEY, migrate_from=source)

    async def move() -> tuple[Any, Any]:
        try:
            moved = await engine.aload(f"session={cookies['cy']}")
            result = await engine.acommit(moved)
            again = await engine.aload(result.set_cookies[0].split(";")[0])
            return moved.get("cart"), again.get("user")
        finally:
            await engine.aclose()

    try:
        assert asyncio.run(move()) == (USERS["cy"], "cy")
    finally:
        if backend != "file":
            drop_flask_session_table(url)


# --- values JSON lacks -----------------------------------------------------------------------
WHEN = datetime.datetime(2026, 5, 6, 7, 8, 9, 123000, tzinfo=datetime.UTC)
UID = uuid.UUID(int=12345)


def _tagged_types_accepted() -> bool:
    try:
        encode_value("k", WHEN)
    except TypeError:
        return False
    return True


TAGGED = _tagged_types_accepted()


def fill_typed_values(app: Any, markup: bool) -> str:
    from flask import session
    from markupsafe import Markup

    @app.post("/typed")
    def typed() -> Any:
        session.update(user="ann", when=WHEN, uid=UID, raw=b"\x00\xff", pair=(1, "x"))
        if markup:
            session["note"] = Markup("<b>hi</b>")
        return {"ok": True}

    client = app.test_client()
    client.post("/typed")
    return flask_cookie(client)


@pytest.mark.skipif(TAGGED, reason="sessionkit keeps these types now: see the test below")
@pytest.mark.parametrize("backend", ["redis", "file"])
def test_values_json_lacks_are_dropped_and_named(backend: str, redis_url: str, tmp_path: Path,
                                                 caplog: pytest.LogCaptureFixture) -> None:
    directory = tmp_path / "flask_session"
    old = old_redis_app(redis_url) if backend == "redis" else file_app(directory, "cachelib")
    cookie = fill_typed_values(old, markup=backend == "file")
    source = peer_redis_url(redis_url) if backend == "redis" else f"flask-session+file://{directory}"
    new = shop("flask", flask_shop(sessionkit_flask(store="memory://", migrate_from=source)))
    keys = new.raw("GET", "/keys", cookie=f"session={cookie}").json
    # What the peer's own store turned into strings or lists stays so; the rest is dropped.
    kept = {"redis": ["pair", "uid", "user"], "file": ["note", "pair", "user"]}[backend]
    assert keys == kept
    for dropped in {"when", "uid", "raw"} - set(kept):
        assert f"{dropped!r}" in caplog.text


@pytest.mark.skipif(not TAGGED, reason="needs sessionkit's tagged value encoding (datetime, "
                    "UUID, bytes, tuple, Markup); enabled by itself once encode_value takes them")
@pytest.mark.parametrize("backend", ["redis", "file"])
def test_values_json_lacks_keep_their_types(backend: str, redis_url: str, tmp_path: Path
                                            ) -> None:
    directory = tmp_path / "flask_session"
    old = old_redis_app(redis_url) if backend == "redis" else file_app(directory, "cachelib")
    cookie = fill_typed_values(old, markup=backend == "file")
    source = peer_redis_url(redis_url) if backend == "redis" else f"flask-session+file://{directory}"
    new = shop("flask", flask_shop(sessionkit_flask(store="memory://", migrate_from=source)))
    ours = set_cookie(new.raw("GET", "/whoami", cookie=f"session={cookie}"))

    def value(name: str) -> Any:
        return new.raw("GET", f"/value/{name}", cookie=ours).json

    assert value("when") == {"type": "datetime", "repr": repr(WHEN)}
    assert value("raw") == {"type": "bytes", "repr": repr(b"\x00\xff")}
    if backend == "file":  # a pickle keeps every type
        assert value("uid") == {"type": "UUID", "repr": repr(UID)}
        assert value("pair") == {"type": "tuple", "repr": repr((1, "x"))}
        assert value("note")["type"] == "Markup"
    else:  # Flask-Session's MessagePack made these a string and a list already
        assert value("uid") == {"type": "str", "repr": repr(str(UID))}
        assert value("pair") == {"type": "list", "repr": repr([1, "x"])}


# --- configuration ---------------------------------------------------------------------------
@pytest.mark.parametrize(("source", "message"), [
    ("flask-session+redis://127.0.0.1/0?prefix=x", "unknown option 'prefix'.*key_prefix, "
     "socket_connect_timeout, socket_timeout, use_signer"),
    ("flask-session+redis://127.0.0.1/0?use_signer=maybe", "use_signer"),
    ("flask-session+redis://127.0.0.1/0?use_signer=true", "migrate_secret_key"),
    ("flask-session+file://relative/dir", "absolute path"),
    ("flask-session+file:///tmp?table=x", "unknown option 'table'"),
    ("flask-session+memcached://127.0.0.1", "redis://, rediss://, unix://, file://"),
    ("flask-session://127.0.0.1:6379/0", "names no store.*flask-session\\+redis://"),
])
def test_bad_peer_urls_are_config_errors(source: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        SessionEngine(store="memory://", secret_key=KEY, migrate_from=source)


def test_a_peer_url_is_no_store_and_needs_a_server_side_mode() -> None:
    with pytest.raises(ConfigError, match="unknown store scheme"):
        SessionEngine(store="flask-session+redis://127.0.0.1/0", secret_key=KEY)
    with pytest.raises(ConfigError, match="jwt://"):
        SessionEngine(store="jwt://", secret_key=KEY,
                      migrate_from="flask-session+redis://127.0.0.1/0")
