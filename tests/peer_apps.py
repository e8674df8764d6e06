"""The apps of the peer-migration tests: one shop whose code does not change while its session
library does (Flask on Flask-Session, then on sessionkit; Starlette on starsessions, then
FastAPI on sessionkit), and what the tests look at in the peers' stores."""

from __future__ import annotations

import contextlib
import hashlib
import time
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

from tests.support import KEY, ShopClient

#: The Flask app's SECRET_KEY (Flask-Session signs its cookies with it under use_signer).
OLD_SECRET = "the-flask-apps-own-secret-key"
USERS = {"ann": ["apple", "pear"], "bo": ["tea"], "cy": ["milk", "eggs", "rice"]}


# --- Flask ------------------------------------------------------------------------------------
def flask_shop(configure: Callable[[Any], None]) -> Any:
    """The shop on Flask; ``configure`` installs the session library."""
    from flask import Flask, flash, get_flashed_messages, session

    app = Flask("peer_shop")
    app.config["SECRET_KEY"] = OLD_SECRET

    @app.post("/login/<user>")
    def login(user: str) -> Any:
        session["user"] = user
        flash(f"welcome {user}")
        return {"ok": True}

    @app.post("/cart/<item>")
    def add(item: str) -> Any:
        session["cart"] = [*session.get("cart", []), item]  # reassigned: Flask-Session needs it
        return {"cart": session["cart"]}

    @app.post("/put/<name>")
    def put(name: str) -> Any:
        session[name] = True
        return {"ok": True}

    @app.post("/logout")
    def logout() -> Any:
        session.clear()
        return {"ok": True}

    @app.get("/whoami")
    def whoami() -> Any:
        return {"user": session.get("user"), "cart": session.get("cart", [])}

    @app.get("/keys")
    def keys() -> Any:
        return sorted(session.keys())

    @app.get("/flashes")
    def flashes() -> Any:
        return get_flashed_messages()

    @app.get("/value/<name>")
    def value(name: str) -> Any:
        found = session.get(name)
        return {"type": type(found).__name__, "repr": repr(found)}

    @app.post("/fail")
    def fail() -> Any:
        session.get("user")
        raise RuntimeError("the request fails after reading the session")

    configure(app)
    return app


def flask_session(**config: Any) -> Callable[[Any], None]:
    """Flask-Session 0.8 with these settings (``SESSION_*``)."""
    def configure(app: Any) -> None:
        from flask_session import Session

        app.config.update(config)
        with warnings.catch_warnings():  # SESSION_USE_SIGNER and the file backend are deprecated
            warnings.simplefilter("ignore", DeprecationWarning)
            Session(app)

    return configure


def sessionkit_flask(**settings: Any) -> Callable[[Any], None]:
    def configure(app: Any) -> None:
        from sessionkit.flask import SessionKit

        SessionKit(app, secret_key=KEY, **settings)

    return configure


def old_redis_app(redis_url: str, prefix: str = "session:", signed: bool = False,
                  serialization: str = "msgpack") -> Any:
    import redis

    return flask_shop(flask_session(
        SESSION_TYPE="redis", SESSION_REDIS=redis.Redis.from_url(redis_url),
        SESSION_KEY_PREFIX=prefix, SESSION_USE_SIGNER=signed,
        SESSION_SERIALIZATION_FORMAT=serialization))


def peer_redis_url(redis_url: str, prefix: str = "session:", signed: bool = False) -> str:
    return (f"flask-session+{redis_url}?key_prefix={quote(prefix)}"
            + ("&use_signer=true" if signed else ""))


def file_app(directory: Path, backend: str) -> Any:
    if backend == "cachelib":
        from cachelib.file import FileSystemCache

        settings: dict[str, Any] = {"SESSION_TYPE": "cachelib",
                                    "SESSION_CACHELIB": FileSystemCache(str(directory))}
    else:  # the deprecated filesystem backend: the same files
        settings = {"SESSION_TYPE": "filesystem", "SESSION_FILE_DIR": str(directory)}
    return flask_shop(flask_session(**settings))


# --- Starlette / FastAPI ----------------------------------------------------------------------
def starlette_routes() -> list[Any]:
    from starlette.requests import Request
    from starlette.responses import JSONResponse
    from starlette.routing import Route

    async def login(request: Request) -> JSONResponse:
        request.session["user"] = request.path_params["user"]
        return JSONResponse({"ok": True})

    async def add(request: Request) -> JSONResponse:
        cart = [*request.session.get("cart", []), request.path_params["item"]]
        request.session["cart"] = cart
        return JSONResponse({"cart": cart})

    async def put(request: Request) -> JSONResponse:
        request.session[request.path_params["name"]] = True
        return JSONResponse({"ok": True})

    async def logout(request: Request) -> JSONResponse:
        request.session.clear()
        return JSONResponse({"ok": True})

    async def whoami(request: Request) -> JSONResponse:
        return JSONResponse({"user": request.session.get("user"),
                             "cart": request.session.get("cart", [])})

    async def keys(request: Request) -> JSONResponse:
        return JSONResponse(sorted(request.session.keys()))

    return [Route("/login/{user}", login, methods=["POST"]),
            Route("/cart/{item}", add, methods=["POST"]),
            Route("/put/{name}", put, methods=["POST"]),
            Route("/logout", logout, methods=["POST"]),
            Route("/whoami", whoami), Route("/keys", keys)]


def starsessions_shop(redis_url: str, prefix: str) -> Any:
    """The shop on Starlette with starsessions 2.x over its RedisStore (JSON serializer)."""
    import redis.asyncio
    from starlette.applications import Starlette
    from starlette.middleware import Middleware
    from starsessions import SessionAutoloadMiddleware, SessionMiddleware
    from starsessions.stores.redis import RedisStore

    store = RedisStore(connection=redis.asyncio.Redis.from_url(redis_url), prefix=prefix)
    return Starlette(routes=starlette_routes(), middleware=[
        Middleware(SessionMiddleware, store=store, lifetime=3600, cookie_https_only=False),
        Middleware(SessionAutoloadMiddleware),
    ])


def fill_on_starsessions(redis_url: str, prefix: str) -> dict[str, str]:
    """The users log in and fill carts on the starsessions shop; their cookies."""
    from starlette.testclient import TestClient

    # One client, so one event loop for starsessions' redis.asyncio pool; each user starts
    # with no cookie.
    with TestClient(starsessions_shop(redis_url, prefix)) as client:
        def client_for() -> Any:
            client.cookies.clear()
            return client

        return log_in_and_fill_carts(client_for, lambda c: c.cookies["session"])


def sessionkit_fastapi(**settings: Any) -> Any:
    """The same shop on FastAPI with sessionkit."""
    from fastapi import FastAPI
    from starlette.middleware import Middleware

    from sessionkit.asgi import SessionMiddleware

    return FastAPI(routes=starlette_routes(), middleware=[
        Middleware(SessionMiddleware, secret_key=KEY, **settings)])


# --- journeys and what the stores hold -------------------------------------------------------
def log_in_and_fill_carts(client_for: Callable[[], Any], cookie_of: Callable[[Any], str]
                          ) -> dict[str, str]:
    """Each user of ``USERS`` logs in and fills a cart on the old app; their cookies."""
    cookies = {}
    for user, items in USERS.items():
        client = client_for()
        assert client.post(f"/login/{user}").status_code == 200
        for item in items:
            assert client.post(f"/cart/{item}").status_code == 200
        cookies[user] = cookie_of(client)
    return cookies


def flask_cookie(client: Any) -> str:
    found = client.get_cookie("session")
    assert found is not None
    value: str = found.value
    return value


def set_cookie(reply: Any, name: str = "session") -> str:
    """The ``name=value`` the response sets (sessionkit's new cookie)."""
    found = [c.split(";")[0] for c in reply.set_cookies if c.startswith(f"{name}=")
             and "Max-Age=0" not in c]
    assert len(found) == 1, reply.set_cookies
    return found[0]


def sessionkit_sessions(url: str) -> int:
    """How many live sessions sessionkit's store holds."""
    from sessionkit import tools
    from sessionkit.stores import open_store

    store = open_store(url)
    try:
        return tools.stats(store).live
    finally:
        store.close()


def cachelib_file(directory: Path, sid: str, prefix: str = "session:") -> Path:
    """The file cachelib keeps the session ``sid`` in."""
    return directory / hashlib.sha256((prefix + sid).encode()).hexdigest()


def wait_until_gone(client: Any, key: str) -> None:
    """A Redis key given a TTL of 1 ms expires: wait (bounded) until Redis says so."""
    client.pexpire(key, 1)
    deadline = time.monotonic() + 5
    while client.exists(key):
        assert time.monotonic() < deadline, "Redis did not expire the key within 5 s"
        time.sleep(0.01)


@contextlib.contextmanager
def redis_client(url: str) -> Iterator[Any]:
    import redis

    client = redis.Redis.from_url(url)
    try:
        yield client
    finally:
        client.close()


def shop(framework: str, app: Any) -> ShopClient:
    return ShopClient(framework, app)
