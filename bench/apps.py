"""The benchmark's one app, built on every session library it compares.

The logic is the same everywhere (a shop cart: read it, add an item; about 1 KB of session
data for a logged-in user with 30 items) and written against the plain session mapping, so
each library's own cost is what differs. Variants are named ``<framework>/<library>-<store>``;
``build(name, urls)`` makes one, and ``wsgi()`` / ``asgi()`` make the one named by the
``BENCH_VARIANT`` environment variable for real servers (gunicorn, uvicorn).

Peer libraries are imported here only, inside the variants that need them: sessionkit never
imports them.
"""


import json
import os
from collections.abc import Callable, MutableMapping
from typing import Any

KEY = "bench-secret-key-0123456789-abcdefghijklmnop"
IDLE = 14 * 86400
CART_SIZE = 30
#: The cart of a seeded session: 30 items, about 1 KB with the user id.
CART = [f"item-{n:03d}-{'x' * 20}" for n in range(CART_SIZE)]

Session = MutableMapping[str, Any]


# --- the app logic, shared by every variant -------------------------------------------------
def view_cart(session: Session) -> dict[str, Any]:
    return {"user": session.get("user"), "items": len(session.get("cart", ()))}


def add_item(session: Session, item: str) -> dict[str, Any]:
    cart = list(session.get("cart", ()))
    cart.append(f"{item}-{'x' * 20}")
    session["cart"] = cart[-CART_SIZE:]  # assigned, so every library sees the change
    return view_cart(session)


def seed(session: Session) -> dict[str, Any]:
    session["user"] = "user-0001"
    session["cart"] = list(CART)
    return view_cart(session)


class Fixed(dict[str, Any]):
    """The no-session app's stand-in: one process-wide cart, no identification at all."""


FIXED = Fixed(user="user-0001", cart=list(CART))


# --- Flask ------------------------------------------------------------------------------------
def _no_sessions() -> Any:
    """The no-session baseline's interface: Flask opens nothing (its null session) and saves
    nothing, so the baseline pays for no cookie session either."""
    from flask.sessions import SessionInterface

    class NoSessions(SessionInterface):
        def open_session(self, app: Any, request: Any) -> None:
            return None

        def save_session(self, app: Any, session: Any, response: Any) -> None:
            return None

    return NoSessions()


def _flask(configure: Callable[[Any], None] | None) -> Any:
    from flask import Flask, Response, session

    app = Flask("bench")
    app.config.update(SECRET_KEY=KEY, SESSION_COOKIE_SECURE=False)
    if configure is not None:
        configure(app)
    else:  # no sessions at all: not even Flask's cookie session looking for its cookie
        app.session_interface = _no_sessions()
    store: Callable[[], Session] = (lambda: session) if configure else (lambda: FIXED)

    def reply(data: dict[str, Any]) -> Response:
        return Response(json.dumps(data), mimetype="application/json")

    @app.get("/cart")
    def cart() -> Response:
        return reply(view_cart(store()))

    @app.post("/cart/<item>")
    def add(item: str) -> Response:
        return reply(add_item(store(), item))

    @app.post("/seed")
    def seeded() -> Response:
        return reply(seed(store()))

    return app


#: The instance id of sessionkit's apps: a server process gets its own (``_from_environment``),
#: since one instance's memory store in two processes is what sessionkit warns about.
INSTANCE = {"id": "bench"}


def _flask_sessionkit(store: str, **extra: Any) -> Callable[[Any], None]:
    def configure(app: Any) -> None:
        from sessionkit.flask import SessionKit

        SessionKit(app, store=store, secret_key=KEY, instance_id=INSTANCE["id"],
                   idle_timeout=IDLE, **extra)

    return configure


def _flask_session_redis(url: str) -> Callable[[Any], None]:
    def configure(app: Any) -> None:
        import redis
        from flask_session import Session as FlaskSession

        app.config.update(SESSION_TYPE="redis", SESSION_REDIS=redis.Redis.from_url(url),
                          SESSION_KEY_PREFIX="flask-session:")
        FlaskSession(app)

    return configure


def _flask_session_sqlalchemy(url: str) -> Callable[[Any], None]:
    def configure(app: Any) -> None:
        from flask_session import Session as FlaskSession
        from flask_sqlalchemy import SQLAlchemy

        app.config.update(SQLALCHEMY_DATABASE_URI=url, SESSION_TYPE="sqlalchemy",
                          SESSION_SQLALCHEMY_TABLE="flask_session_bench")
        app.config["SESSION_SQLALCHEMY"] = SQLAlchemy(app)
        FlaskSession(app)

    return configure


def _flask_floor(app: Any) -> None:
    """The floor (bench/floor.py): Flask's session hooks around a dict, nothing more."""
    from bench import floor

    floor.flask(app)


def _flask_cookie(app: Any) -> None:
    """Flask's own signed-cookie session: nothing to configure but the secret key."""


# --- FastAPI ----------------------------------------------------------------------------------
def _fastapi(configure: Callable[[Any], None] | None) -> Any:
    from fastapi import FastAPI, Request
    from fastapi.responses import Response

    app = FastAPI()

    def store(request: Request) -> Session:
        return request.session if configure else FIXED

    def reply(data: dict[str, Any]) -> Response:
        return Response(json.dumps(data), media_type="application/json")

    @app.get("/cart")
    async def cart(request: Request) -> Response:
        return reply(view_cart(store(request)))

    @app.post("/cart/{item}")
    async def add(item: str, request: Request) -> Response:
        return reply(add_item(store(request), item))

    @app.post("/seed")
    async def seeded(request: Request) -> Response:
        return reply(seed(store(request)))

    if configure is not None:
        configure(app)
    return app


def _fastapi_sessionkit(store: str, **extra: Any) -> Callable[[Any], None]:
    def configure(app: Any) -> None:
        from sessionkit.asgi import SessionMiddleware

        app.add_middleware(SessionMiddleware, store=store, secret_key=KEY,
                           instance_id=INSTANCE["id"], idle_timeout=IDLE, **extra)

    return configure


def _starsessions_redis(url: str) -> Callable[[Any], None]:
    def configure(app: Any) -> None:
        import redis.asyncio
        from starsessions import SessionAutoloadMiddleware, SessionMiddleware
        from starsessions.stores.redis import RedisStore

        store = RedisStore(connection=redis.asyncio.Redis.from_url(url), prefix="starsessions:")
        app.add_middleware(SessionAutoloadMiddleware)
        app.add_middleware(SessionMiddleware, store=store, lifetime=IDLE,
                           cookie_https_only=False)

    return configure


def _fastapi_floor(app: Any) -> None:
    """The floor (bench/floor.py) as the app's middleware, where sessionkit's is."""
    from bench.floor import FloorMiddleware

    app.add_middleware(FloorMiddleware)


def _starlette_cookie(app: Any) -> None:
    from starlette.middleware.sessions import SessionMiddleware

    app.add_middleware(SessionMiddleware, secret_key=KEY, max_age=IDLE, https_only=False)


# --- the catalogue ----------------------------------------------------------------------------
def build(name: str, urls: dict[str, str], instance: str | None = None) -> Any:
    """The app called ``name``; ``urls`` gives the ``redis`` and ``postgresql`` URLs;
    ``instance`` names sessionkit's instance (several apps stand for several instances)."""
    previous = INSTANCE["id"]
    INSTANCE["id"] = instance or previous
    try:
        return _build(name, urls)
    finally:
        INSTANCE["id"] = previous


def _build(name: str, urls: dict[str, str]) -> Any:
    framework, _, library = name.partition("/")
    redis_url, sql_url = urls.get("redis", ""), urls.get("postgresql", "")
    flask: dict[str, Callable[[], Callable[[Any], None] | None]] = {
        "none": lambda: None,
        "sessionkit-memory": lambda: _flask_sessionkit("memory://"),
        "sessionkit-hybrid": lambda: _flask_sessionkit(redis_url, near_cache=True),
        "sessionkit-redis": lambda: _flask_sessionkit(redis_url),
        "flask-session-redis": lambda: _flask_session_redis(redis_url),
        "sessionkit-jwt": lambda: _flask_sessionkit("jwt://"),
        "sessionkit-jwt-encrypted": lambda: _flask_sessionkit("jwt://?encrypted=true"),
        "flask-cookie": lambda: _flask_cookie,
        "floor": lambda: _flask_floor,
        "sessionkit-postgresql": lambda: _flask_sessionkit(
            sql_url + ("&" if "?" in sql_url else "?") + "table=sessionkit_bench"),
        "flask-session-sqlalchemy": lambda: _flask_session_sqlalchemy(sql_url),
    }
    fastapi: dict[str, Callable[[], Callable[[Any], None] | None]] = {
        "none": lambda: None,
        "sessionkit-memory": lambda: _fastapi_sessionkit("memory://"),
        "sessionkit-hybrid": lambda: _fastapi_sessionkit(redis_url, near_cache=True),
        "sessionkit-redis": lambda: _fastapi_sessionkit(redis_url),
        "starsessions-redis": lambda: _starsessions_redis(redis_url),
        "sessionkit-jwt": lambda: _fastapi_sessionkit("jwt://"),
        "sessionkit-jwt-encrypted": lambda: _fastapi_sessionkit("jwt://?encrypted=true"),
        "starlette-cookie": lambda: _starlette_cookie,
        "floor": lambda: _fastapi_floor,
    }
    if framework == "flask" and library in flask:
        return _flask(flask[library]())
    if framework == "fastapi" and library in fastapi:
        return _fastapi(fastapi[library]())
    raise SystemExit(f"unknown bench variant {name!r}")


def _from_environment() -> Any:
    INSTANCE["id"] = f"bench-server-{os.getpid()}"
    urls = {"redis": os.environ.get("BENCH_REDIS_URL", ""),
            "postgresql": os.environ.get("BENCH_POSTGRES_URL", "")}
    return build(os.environ["BENCH_VARIANT"], urls)


def wsgi() -> Any:
    """gunicorn's entry point: ``gunicorn 'bench.apps:wsgi()'``."""
    return _from_environment()


def asgi() -> Any:
    """uvicorn's entry point: ``uvicorn --factory bench.apps:asgi``."""
    return _from_environment()
