"""One Starlette app written for starsessions 2.x, run on the real starsessions and then with
its imports swapped to ``sessionkit.compat.starsessions``: the same requests see the same
behaviour where the compat module promises it (cookie attributes, lifetime and rolling
expiry, the metadata helpers, regenerate, clear), in memory and on real Redis; and with
``migrate_from`` the users starsessions logged in stay logged in after the swap."""

from __future__ import annotations

import importlib
import re
from collections.abc import Callable
from types import SimpleNamespace
from typing import Any
from unittest import mock

import pytest

from sessionkit import ConfigError
from tests.peer_apps import redis_client, sessionkit_sessions
from tests.stores import REDIS_ENV, flush_redis
from tests.support import KEY, FakeClock, cookie_attributes, deletes_cookie, service_url

PREFIX = "shop.sessions:"
BASE = "https://testserver"  # the cookies are Secure (starsessions' cookie_https_only default)


def library(name: str) -> SimpleNamespace:
    """The names the app imports, from starsessions (``"starsessions"``) or from the compat
    module (``"compat"``): the only line of the app that changes."""
    if name == "starsessions":
        import starsessions
        import starsessions.session
        from starsessions.stores.redis import RedisStore

        return SimpleNamespace(**{**vars(starsessions), **vars(starsessions.session),
                                  "RedisStore": RedisStore, "is_peer": True})
    compat = importlib.import_module("sessionkit.compat.starsessions")
    return SimpleNamespace(**vars(compat), is_peer=False)


def shop(lib: SimpleNamespace, store: Any, **middleware: Any) -> Any:
    """The app: the same code for both libraries."""
    from starlette.applications import Starlette
    from starlette.middleware import Middleware
    from starlette.requests import Request
    from starlette.responses import JSONResponse
    from starlette.routing import Route

    async def login(request: Request) -> JSONResponse:
        request.session["user"] = request.path_params["user"]
        lib.regenerate_session_id(request)
        return JSONResponse({"ok": True})

    async def add(request: Request) -> JSONResponse:
        request.session["cart"] = [*request.session.get("cart", []), request.path_params["item"]]
        return JSONResponse({"cart": request.session["cart"]})

    async def whoami(request: Request) -> JSONResponse:
        await lib.load_session(request)  # a no-op after autoloading, in both
        return JSONResponse({"user": request.session.get("user"),
                             "cart": request.session.get("cart", [])})

    async def meta(request: Request) -> JSONResponse:
        return JSONResponse({"metadata": lib.get_session_metadata(request),
                             "remaining": lib.get_session_remaining_seconds(request),
                             "has_id": lib.get_session_id(request) is not None,
                             "loaded": lib.is_loaded(request)})

    async def logout(request: Request) -> JSONResponse:
        request.session.clear()
        return JSONResponse({"ok": True})

    return Starlette(routes=[
        Route("/login/{user}", login, methods=["POST"]),
        Route("/cart/{item}", add, methods=["POST"]),
        Route("/whoami", whoami), Route("/meta", meta),
        Route("/logout", logout, methods=["POST"]),
    ], middleware=[Middleware(lib.SessionMiddleware, store=store, **middleware),
                   Middleware(lib.SessionAutoloadMiddleware)])


@pytest.fixture(params=["memory", "redis"])
def store_kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def redis_url() -> str:
    url = service_url(REDIS_ENV, "Redis")
    flush_redis(url)
    return url


def store_for(lib: SimpleNamespace, kind: str) -> tuple[Any, dict[str, Any]]:
    """The app's store, and what the swap adds to the middleware's arguments (a shared store
    needs a secret_key under sessionkit)."""
    if kind == "memory":
        return lib.InMemoryStore(), {}
    import redis.asyncio

    store = lib.RedisStore(connection=redis.asyncio.Redis.from_url(service_url(REDIS_ENV,
                                                                               "Redis")),
                           prefix=PREFIX)
    return store, ({} if lib.is_peer else {"secret_key": KEY})


def run(lib_name: str, kind: str, journey: Callable[[Any, FakeClock], Any], **middleware: Any
        ) -> Any:
    """``journey(client, clock)`` against the shop on ``lib_name`` with ``kind`` of store,
    with ``time.time`` patched to ``clock`` (both libraries read it)."""
    from starlette.testclient import TestClient

    lib = library(lib_name)
    store, added = store_for(lib, kind)
    if kind == "redis":
        flush_redis(service_url(REDIS_ENV, "Redis"))
    clock = FakeClock()
    app = shop(lib, store, **middleware, **added)
    with mock.patch("time.time", clock), TestClient(app, base_url=BASE) as client:
        return journey(client, clock)


def both(kind: str, journey: Callable[[Any, FakeClock], Any], **middleware: Any
         ) -> tuple[Any, Any]:
    return (run("starsessions", kind, journey, **middleware),
            run("compat", kind, journey, **middleware))


def set_cookie(reply: Any) -> str:
    [header] = reply.headers.get_list("set-cookie")
    return str(header)


def replay(client: Any, value: str) -> None:
    """Send ``value`` as the session cookie from now on (the jar keeps the cookies of
    ``testserver`` under ``testserver.local``), as a browser holding an old cookie would."""
    client.cookies.clear()
    client.cookies.set("session", value, domain="testserver.local")


def shape(header: str) -> dict[str, str]:
    """A ``Set-Cookie`` value without the session id: its attributes (starsessions writes
    ``max-age``, sessionkit Starlette's ``Max-Age``)."""
    return cookie_attributes(header)


# --- the same behaviour ---------------------------------------------------------------------
@pytest.mark.parametrize("middleware", [
    {},
    {"lifetime": 3600},
    {"lifetime": 3600, "rolling": True},
    {"cookie_name": "sid", "cookie_same_site": "strict", "cookie_path": "/shop",
     "cookie_domain": "example.com", "cookie_https_only": False, "lifetime": 60},
    {"cookie_same_site": "none"},
], ids=["defaults", "fixed", "rolling", "cookie-settings", "samesite-none"])
def test_cookie_attributes_are_the_same(middleware: dict[str, Any]) -> None:
    def journey(client: Any, clock: FakeClock) -> dict[str, str]:
        header = set_cookie(client.post("/login/ann"))
        assert header.startswith(middleware.get("cookie_name", "session") + "=")
        return shape(header)

    peer, ours = both("memory", journey, **middleware)
    assert ours == peer


def test_a_fixed_lifetime_counts_from_creation(store_kind: str) -> None:
    def journey(client: Any, clock: FakeClock) -> list[Any]:
        seen = [shape(set_cookie(client.post("/login/ann")))["max-age"]]
        clock.advance(40)
        reply = client.get("/whoami")
        seen += [reply.json(), shape(set_cookie(reply))["max-age"]]  # sent again, 60 s left
        clock.advance(30)
        reply = client.post("/cart/tea")
        seen += [reply.json(), shape(set_cookie(reply))["max-age"]]
        seen.append(client.get("/meta").json()["remaining"])
        return seen

    peer, ours = both(store_kind, journey, lifetime=100)
    assert ours == peer == ["100", {"user": "ann", "cart": []}, "60", {"cart": ["tea"]}, "30",
                            30]


def test_a_rolling_lifetime_extends_on_every_response(store_kind: str) -> None:
    def journey(client: Any, clock: FakeClock) -> list[Any]:
        seen = [shape(set_cookie(client.post("/login/ann")))["max-age"]]
        for _ in range(3):  # 3 x 80 s: longer than the lifetime, never 100 s apart
            clock.advance(80)
            reply = client.get("/whoami")
            seen += [reply.json()["user"], shape(set_cookie(reply))["max-age"]]
        return seen

    peer, ours = both(store_kind, journey, lifetime=100, rolling=True)
    assert ours == peer == ["100", "ann", "100", "ann", "100", "ann", "100"]


def test_lifetime_zero_is_a_browser_session_cookie(store_kind: str) -> None:
    def journey(client: Any, clock: FakeClock) -> list[Any]:
        login = set_cookie(client.post("/login/ann"))
        clock.advance(86400)
        return ["max-age" in shape(login), "expires" in shape(login),
                client.get("/whoami").json()]

    peer, ours = both(store_kind, journey)
    assert ours == peer == [False, False, {"user": "ann", "cart": []}]


def test_the_metadata_helpers_agree(store_kind: str) -> None:
    def journey(client: Any, clock: FakeClock) -> list[Any]:
        fresh = client.get("/meta").json()  # no session yet
        created = clock.now
        client.post("/login/ann")
        clock.advance(25)
        known = client.get("/meta").json()
        return [fresh, known, created]

    peer, ours = both(store_kind, journey, lifetime=600)
    assert ours == peer
    fresh, known, created = ours
    assert fresh["has_id"] is False and fresh["loaded"] is True
    assert known == {"metadata": {"lifetime": 600, "created": created,
                                  "last_access": created + 25},
                     "remaining": 575, "has_id": True, "loaded": True}


def test_regenerate_changes_the_cookie_and_keeps_the_data(store_kind: str) -> None:
    def journey(client: Any, clock: FakeClock) -> list[Any]:
        client.post("/login/ann")
        client.post("/cart/tea")
        before = client.cookies["session"]
        relogin = client.post("/login/ann")
        after = client.cookies["session"]
        return [after != before, "session" in relogin.headers["set-cookie"],
                client.get("/whoami").json()]

    peer, ours = both(store_kind, journey)
    assert ours == peer == [True, True, {"user": "ann", "cart": ["tea"]}]


def test_clear_ends_the_session(store_kind: str) -> None:
    def journey(client: Any, clock: FakeClock) -> list[Any]:
        client.post("/login/ann")
        old = client.cookies["session"]
        header = set_cookie(client.post("/logout"))
        replay(client, old)
        return [deletes_cookie(header), shape(header), client.get("/whoami").json()]

    peer, ours = both(store_kind, journey)
    assert ours == peer
    assert ours[0] is True and ours[2] == {"user": None, "cart": []}


# --- what sessionkit adds ---------------------------------------------------------------------
def test_sessions_expire_on_the_server_too() -> None:
    """starsessions leaves expiry to the cookie (and to Redis' TTL); sessionkit also refuses a
    session past its lifetime when an old cookie is replayed."""
    def journey(client: Any, clock: FakeClock) -> list[Any]:
        client.post("/login/ann")
        old = client.cookies["session"]
        clock.advance(101)
        replay(client, old)
        return client.get("/whoami").json()

    assert run("compat", "memory", journey, lifetime=100) == {"user": None, "cart": []}


def test_the_id_before_regenerate_is_destroyed() -> None:
    def journey(client: Any, clock: FakeClock) -> Any:
        client.post("/login/ann")
        old = client.cookies["session"]
        client.post("/login/bo")
        replay(client, old)
        return client.get("/whoami").json()

    assert run("compat", "memory", journey) == {"user": None, "cart": []}


def test_a_redis_url_store_keeps_records_under_its_prefix(redis_url: str) -> None:
    from starlette.testclient import TestClient

    lib = library("compat")
    app = shop(lib, lib.RedisStore(url=redis_url, prefix=PREFIX), secret_key=KEY)
    with TestClient(app, base_url=BASE) as client:
        client.post("/login/ann")
        assert client.get("/whoami").json()["user"] == "ann"
    with redis_client(redis_url) as redis:
        keys = [key.decode() for key in redis.keys("*")]
    assert keys and all(key.startswith(PREFIX) for key in keys)


# --- moving: nobody is logged out ---------------------------------------------------------------
def test_starsessions_users_stay_logged_in_after_the_swap(redis_url: str) -> None:
    import redis.asyncio
    from starlette.testclient import TestClient

    def logged_in_on(lib_name: str, **added: Any) -> Any:
        lib = library(lib_name)
        store = lib.RedisStore(connection=redis.asyncio.Redis.from_url(redis_url),
                               prefix=PREFIX)
        return shop(lib, store, lifetime=3600, **added)

    jars = {}
    with TestClient(logged_in_on("starsessions"), base_url=BASE) as client:
        for user, items in {"ann": ["apple", "pear"], "bo": ["tea"]}.items():
            client.cookies.clear()
            client.post(f"/login/{user}")
            for item in items:
                client.post(f"/cart/{item}")
            jars[user] = client.cookies["session"]
    assert all(re.fullmatch(r"[0-9a-f]{32}", value) for value in jars.values())

    swapped = logged_in_on("compat", secret_key=KEY,
                           migrate_from=f"starsessions+{redis_url}?prefix={PREFIX}")
    with TestClient(swapped, base_url=BASE) as client:
        for user, items in {"ann": ["apple", "pear"], "bo": ["tea"]}.items():
            replay(client, jars[user])
            assert client.get("/whoami").json() == {"user": user, "cart": items}
            assert client.cookies["session"] != jars[user]  # sessionkit's own cookie now
            assert client.post("/cart/milk").json() == {"cart": [*items, "milk"]}
            meta = client.get("/meta").json()["metadata"]
            assert meta["lifetime"] == 3600 and meta["created"] > 0
    assert sessionkit_sessions(f"{redis_url}?key_prefix={PREFIX}") == 2
    with redis_client(redis_url) as client:
        assert not any(client.exists(PREFIX + value) for value in jars.values())  # moved


def test_cookie_store_sessions_are_imported() -> None:
    from starlette.testclient import TestClient

    def app_on(lib_name: str) -> Any:
        lib = library(lib_name)
        return shop(lib, lib.CookieStore(secret_key="the-apps-old-cookie-secret"), lifetime=600)

    with TestClient(app_on("starsessions"), base_url=BASE) as client:
        client.post("/login/ann")
        client.post("/cart/tea")
        old = client.cookies["session"]
    with TestClient(app_on("compat"), base_url=BASE) as client:
        replay(client, old)
        assert client.get("/whoami").json() == {"user": "ann", "cart": ["tea"]}
        assert client.cookies["session"] != old
        assert client.get("/meta").json()["metadata"]["lifetime"] == 600
        assert client.post("/cart/milk").json() == {"cart": ["tea", "milk"]}


# --- errors name the fix ------------------------------------------------------------------------
def test_arguments_sessionkit_cannot_honour_are_refused() -> None:
    import starsessions

    compat = library("compat")

    async def app(scope: Any, receive: Any, send: Any) -> None:
        raise AssertionError("never called")

    with pytest.raises(compat.ImproperlyConfigured, match="import InMemoryStore from sessionkit"):
        compat.SessionMiddleware(app, store=starsessions.InMemoryStore())
    with pytest.raises(compat.ImproperlyConfigured, match="encodes session values itself"):
        compat.SessionMiddleware(app, store=compat.InMemoryStore(),
                                 serializer=starsessions.JsonSerializer())
    with pytest.raises(compat.ImproperlyConfigured, match="store must be InMemoryStore"):
        compat.SessionMiddleware(app, store={"kind": "memory"})
    with pytest.raises(compat.ImproperlyConfigured, match="zero"):
        compat.SessionMiddleware(app, store=compat.InMemoryStore(), lifetime=-1)
    with pytest.raises(compat.ImproperlyConfigured, match="'url' or 'connection'"):
        compat.RedisStore()
    with pytest.raises(compat.ImproperlyConfigured, match="must be a string"):
        compat.RedisStore(url="redis://127.0.0.1/0", prefix=lambda key: "x" + key)
    with pytest.raises(ConfigError, match="secret_key is required"):
        compat.SessionMiddleware(app, store=compat.RedisStore(url="redis://127.0.0.1/0"))
    assert issubclass(compat.ImproperlyConfigured, ConfigError)


def test_a_custom_json_encoder_is_named_as_unused(caplog: pytest.LogCaptureFixture) -> None:
    import json

    from starlette.testclient import TestClient

    compat = library("compat")
    serializer = compat.JsonSerializer(json_encoder=json.JSONEncoder,
                                       json_decoder=type("Decoder", (json.JSONDecoder,), {}))
    with TestClient(shop(compat, compat.InMemoryStore(), serializer=serializer),
                    base_url=BASE) as client:
        client.post("/login/ann")
        assert client.get("/whoami").json()["user"] == "ann"
    assert "json_encoder/json_decoder are not used" in caplog.text


def test_helpers_without_the_middleware_say_so() -> None:
    from starlette.requests import HTTPConnection

    compat = library("compat")
    request = HTTPConnection({"type": "http", "headers": []})
    assert compat.is_loaded(request) is False
    with pytest.raises(compat.ImproperlyConfigured, match="add SessionMiddleware"):
        compat.get_session_id(request)
