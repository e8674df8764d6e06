"""Moving an app to sessionkit, or between stores, without logging anyone out."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx2
import pytest

from sessionkit import SessionConfig, SessionEngine
from tests.apps import make
from tests.servers import serve_asgi, serve_wsgi
from tests.stores import iter_params, store_url_for
from tests.support import KEY, FakeClock, ShopClient, make_app

OLD_SECRET = "the-apps-old-flask-secret"  # short, as real apps' often are
PAIRS = [("sqlite", "redis"), ("redis", "postgresql"), ("postgresql", "mariadb"),
         ("memory", "sqlite")]


@pytest.fixture(params=[pytest.param(p, id=f"{p[0]}-to-{p[1]}") for p in PAIRS])
def stores(request: pytest.FixtureRequest, tmp_path: Path) -> tuple[str, str]:
    old, new = request.param
    old_url = store_url_for(request, tmp_path / "old", old) if old != "sqlite" else \
        f"sqlite:///{tmp_path / 'old.db'}"
    new_url = store_url_for(request, tmp_path, new)
    return old_url, new_url


@pytest.mark.parametrize("framework", ["flask", "fastapi"])
def test_read_through_moves_a_session_with_its_lifetime(
    framework: str, stores: tuple[str, str], clock: FakeClock
) -> None:
    old_url, new_url = stores
    if old_url == "memory://":
        old_store: Any = __import__("sessionkit.stores.memory", fromlist=["MemoryStore"]
                                    ).MemoryStore()
        old_settings: dict[str, Any] = {"store": old_store}
    else:
        old_settings = {"store": old_url}
    before = ShopClient(framework, make(framework, secret_key=KEY, clock=clock, **old_settings))
    before.call("POST", "/set/cart")
    cookie = f"session={before.cookie}"
    old_engine = SessionEngine(secret_key=KEY, clock=clock, **old_settings)
    original = old_engine.load(cookie)
    if old_url == "memory://":
        return  # a memory store is not reachable from another process: nothing to migrate

    clock.advance(60)
    after = ShopClient(framework, make(framework, secret_key=KEY, clock=clock, store=new_url,
                                       migrate_from=old_url))
    assert after.raw("GET", "/get", cookie=cookie).json == {"cart": True}
    assert after.raw("POST", "/set/more", cookie=cookie).json == ["cart", "more"]
    new_engine = SessionEngine(secret_key=KEY, clock=clock, store=new_url)
    moved = new_engine.load(cookie)
    assert moved.to_dict() == {"cart": True, "more": True}
    assert moved.created_at == original.created_at  # the absolute timeout still counts from it
    assert moved.expires_at >= original.expires_at  # its lifetime came along (and slid)
    assert old_engine.load(cookie).is_new  # deleted from the old store


def test_memory_to_sqlite_in_one_process(clock: FakeClock, tmp_path: Path) -> None:
    from sessionkit.stores.memory import MemoryStore

    old = MemoryStore()
    before = SessionEngine(secret_key=KEY, clock=clock, store=old)
    session = before.load(None)
    session["cart"] = ["apple"]
    [cookie] = before.commit(session).set_cookies
    cookie = cookie.split(";")[0]
    url = f"sqlite:///{tmp_path / 'new.db'}"
    engine = SessionEngine(secret_key=KEY, clock=clock, store=url)
    engine.backend.secondaries = (old,)  # type: ignore[attr-defined]
    assert engine.load(cookie)["cart"] == ["apple"]
    assert len(old) == 0


@pytest.fixture(params=list(iter_params(["redis", "postgresql"])))
def new_store(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    return store_url_for(request, tmp_path, request.param)


@pytest.mark.parametrize("framework", ["flask", "fastapi"])
def test_fifty_concurrent_first_requests_lose_nothing(
    framework: str, new_store: str, tmp_path: Path
) -> None:
    old_url = f"sqlite:///{tmp_path / 'old.db'}"
    old = SessionEngine(secret_key=KEY, store=old_url)
    session = old.load(None)
    session["init"] = True
    [cookie] = old.commit(session).set_cookies
    cookie = cookie.split(";")[0]
    app = make(framework, secret_key=KEY, store=new_store, migrate_from=old_url)
    serve = serve_asgi if framework == "fastapi" else serve_wsgi
    with serve(app) as base:
        def add(n: int) -> int:
            with httpx2.Client(base_url=base, timeout=30) as http:
                return http.post(f"/set/k{n:02d}", headers={"Cookie": cookie}).status_code

        with ThreadPoolExecutor(max_workers=50) as pool:
            assert list(pool.map(add, range(50))) == [200] * 50
        with httpx2.Client(base_url=base, timeout=30) as http:
            final = http.get("/get", headers={"Cookie": cookie}).json()
    assert sorted(final) == sorted(["init", *(f"k{n:02d}" for n in range(50))])


# --- framework cookies ---------------------------------------------------------------------
def old_flask_app() -> Any:
    """A shop on Flask's own signed-cookie sessions, as the app was before sessionkit."""
    from flask import Flask, session

    app = Flask("old_shop")
    app.config["SECRET_KEY"] = OLD_SECRET

    @app.post("/login")
    def login() -> Any:
        session["user"] = "ann"
        session.permanent = True
        return {"ok": True}

    @app.post("/cart/<item>")
    def add(item: str) -> Any:
        session["cart"] = [*session.get("cart", []), item]
        return {"cart": session["cart"]}

    return app


@pytest.fixture
def redis_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    return store_url_for(request, tmp_path, "redis")


def test_flask_cookie_import_keeps_the_user_logged_in(clock: FakeClock, redis_url: str) -> None:
    old = old_flask_app().test_client()
    old.post("/login")
    old.post("/cart/apple")
    old.post("/cart/pear")
    flask_cookie = old.get_cookie("session").value  # type: ignore[union-attr]

    from examples.flask_app import create_app

    config = SessionConfig(store=redis_url, secret_key=KEY,
                           migrate_from="flask-cookie", migrate_secret_key=OLD_SECRET)
    new = ShopClient("flask", create_app(config))
    first = new.raw("GET", "/whoami", cookie=f"session={flask_cookie}")
    assert first.json["user"] == "ann"
    [replacement] = first.set_cookies  # our cookie replaces Flask's, same name
    ours = replacement.split(";")[0]
    assert new.raw("GET", "/cart", cookie=ours).json == {"cart": ["apple", "pear"]}
    assert new.raw("POST", "/cart/kiwi", cookie=ours).json == {"cart": ["apple", "pear", "kiwi"]}


def test_flask_cookie_import_takes_the_secret_from_flask_config(tmp_path: Path) -> None:
    from flask import Flask

    from sessionkit.flask import SessionKit

    old = old_flask_app().test_client()
    old.post("/login")
    flask_cookie = old.get_cookie("session").value  # type: ignore[union-attr]
    app = Flask("new_shop")
    app.config.update(SECRET_KEY=OLD_SECRET, SESSIONKIT_SECRET_KEY=KEY,
                      SESSIONKIT_MIGRATE_FROM="flask-cookie")

    @app.get("/user")
    def user() -> Any:
        from flask import session

        return {"user": session.get("user")}

    SessionKit(app)
    assert ShopClient("flask", app).raw("GET", "/user",
                                        cookie=f"session={flask_cookie}").json == {"user": "ann"}


@pytest.mark.parametrize("cookie", [
    "tampered", "expired", "other-secret",
])
def test_bad_flask_cookies_are_ignored(cookie: str, tmp_path: Path) -> None:
    import time
    import unittest.mock

    old = old_flask_app()
    client = old.test_client()
    client.post("/login")
    value = client.get_cookie("session").value  # type: ignore[union-attr]
    if cookie == "tampered":
        value = value.replace(value[5], "A" if value[5] != "A" else "B", 1)
    elif cookie == "other-secret":
        other = old_flask_app()
        other.config["SECRET_KEY"] = "another-apps-secret"
        c = other.test_client()
        c.post("/login")
        value = c.get_cookie("session").value  # type: ignore[union-attr]
    config = SessionConfig(store=f"sqlite:///{tmp_path / 's.db'}", secret_key=KEY,
                           migrate_from="flask-cookie", migrate_secret_key=OLD_SECRET,
                           migrate_max_age=60 if cookie == "expired" else None)
    shop = ShopClient("flask", make_app("flask", config))
    later = time.time() + (61 if cookie == "expired" else 0)  # itsdangerous reads time.time
    with unittest.mock.patch("time.time", return_value=later):
        reply = shop.raw("GET", "/whoami", cookie=f"session={value}")
    assert reply.status == 200
    assert reply.json["user"] is None


def test_starlette_cookie_import_into_the_fastapi_example(redis_url: str) -> None:
    from starlette.applications import Starlette
    from starlette.middleware.sessions import SessionMiddleware
    from starlette.requests import Request
    from starlette.responses import JSONResponse
    from starlette.routing import Route
    from starlette.testclient import TestClient

    async def fill(request: Request) -> JSONResponse:
        request.session.update({"user": "bo", "cart": ["tea", "milk"]})
        return JSONResponse({"ok": True})

    old = Starlette(routes=[Route("/fill", fill, methods=["POST"])])
    old.add_middleware(SessionMiddleware, secret_key="starlette-old-secret")
    starlette_cookie = TestClient(old).post("/fill").cookies["session"]

    config = SessionConfig(store=redis_url, secret_key=KEY,
                           migrate_from="starlette-cookie",
                           migrate_secret_key="starlette-old-secret", migrate_cookie_name="session")
    shop = ShopClient("fastapi", make_app("fastapi", config))
    reply = shop.raw("GET", "/cart", cookie=f"session={starlette_cookie}")
    assert reply.json == {"cart": ["tea", "milk"]}
    ours = reply.set_cookies[0].split(";")[0]
    assert shop.raw("GET", "/whoami", cookie=ours).json["user"] == "bo"
    forged = starlette_cookie[:-3] + ("AAA" if starlette_cookie[-3:] != "AAA" else "BBB")
    assert shop.raw("GET", "/cart", cookie=f"session={forged}").json == {"cart": []}


def test_an_old_cookie_under_another_name_is_cleared_once_imported(tmp_path: Path) -> None:
    old = old_flask_app().test_client()
    old.post("/login")
    flask_cookie = old.get_cookie("session").value  # type: ignore[union-attr]
    config = SessionConfig(store="memory://", secret_key=KEY, cookie_name="sid",
                           migrate_from="flask-cookie", migrate_secret_key=OLD_SECRET)
    shop = ShopClient("flask", make_app("flask", config), cookie_name="sid")
    reply = shop.raw("GET", "/whoami", cookie=f"session={flask_cookie}")
    assert reply.json["user"] == "ann"
    names = sorted(c.split("=")[0] for c in reply.set_cookies)
    assert names == ["session", "sid"]
    assert any(c.startswith("session=;") and "Max-Age=0" in c for c in reply.set_cookies)


def test_cookie_import_needs_the_old_secret() -> None:
    from sessionkit import ConfigError

    with pytest.raises(ConfigError, match="migrate_secret_key"):
        SessionEngine(store="memory://", secret_key=KEY, migrate_from="starlette-cookie")
    with pytest.raises(ConfigError, match="migrate_from must be"):
        SessionEngine(store="memory://", secret_key=KEY, migrate_from="django-cookie")
