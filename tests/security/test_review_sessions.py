"""Findings of the outside review about session lifecycles, each as the attack or failure it
was: logout over a WebSocket, a migrated cookie replayed after logout, lone surrogates and NUL,
a JWT login right after log-out-everywhere, and configurations that failed late or wrongly."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from sessionkit import ConfigError, SessionConfig
from sessionkit.migrate import GRACE_SECONDS
from tests.stores import store_case
from tests.support import KEY, FakeClock, ShopClient

SERVER_MODES = ["memory", "sqlite", "redis", "postgresql", "mariadb"]
HOUR = 3600.0


def settings_for(request: pytest.FixtureRequest, tmp_path: Path, mode: str,
                 **extra: Any) -> dict[str, Any]:
    case = store_case(request, tmp_path, mode)
    return {"store": case.url, "secret_key": KEY, **case.settings, **extra}


# --- 1. logout over a WebSocket ---------------------------------------------------------------
def websocket_app(**settings: Any) -> Any:
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import JSONResponse
    from starlette.routing import Route, WebSocketRoute
    from starlette.websockets import WebSocket

    from sessionkit.asgi import SessionMiddleware

    async def login(request: Request) -> JSONResponse:
        request.session["user"] = "alice"
        return JSONResponse({"ok": True})

    async def who(request: Request) -> JSONResponse:
        return JSONResponse(dict(request.session))

    async def socket(websocket: WebSocket) -> None:
        await websocket.accept()
        action = websocket.query_params["do"]
        try:
            if action == "logout":
                websocket.session.invalidate()  # type: ignore[attr-defined]
            elif action == "regenerate":
                websocket.session.regenerate()  # type: ignore[attr-defined]
            elif action == "clear":
                websocket.session.clear()
            elif action == "write":
                websocket.session["from_socket"] = True
            await websocket.send_json({"ok": True})
        except RuntimeError as exc:
            await websocket.send_json({"error": str(exc)})
        await websocket.close()

    app = Starlette(routes=[Route("/login", login, methods=["POST"]), Route("/who", who),
                            WebSocketRoute("/ws", socket)])
    app.add_middleware(SessionMiddleware, **settings)
    return app


@pytest.mark.parametrize("mode", SERVER_MODES)
@pytest.mark.parametrize("action", ["logout", "clear"])
def test_logout_over_a_websocket_destroys_the_session(
    request: pytest.FixtureRequest, tmp_path: Path, mode: str, action: str
) -> None:
    from starlette.testclient import TestClient

    client = TestClient(websocket_app(**settings_for(request, tmp_path, mode)))
    client.post("/login")
    cookie = client.cookies["session"]
    with client.websocket_connect(f"/ws?do={action}") as socket:
        assert socket.receive_json() == {"ok": True}
    replay = TestClient(client.app)
    replay.cookies.set("session", cookie)
    assert replay.get("/who").json() == {}  # the old id is dead on the server


def test_writes_over_a_websocket_are_kept_and_regenerate_is_refused(
    request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    from starlette.testclient import TestClient

    client = TestClient(websocket_app(**settings_for(request, tmp_path, "redis")))
    client.post("/login")
    with client.websocket_connect("/ws?do=write") as socket:
        assert socket.receive_json() == {"ok": True}
    assert client.get("/who").json() == {"user": "alice", "from_socket": True}
    with client.websocket_connect("/ws?do=regenerate") as socket:
        assert "cannot work over a WebSocket" in socket.receive_json()["error"]
    assert client.get("/who").json() == {"user": "alice", "from_socket": True}


# --- 3. a migrated cookie replayed after logout --------------------------------------------
def flask_cookie_shop(clock: FakeClock, **settings: Any) -> tuple[ShopClient, str]:
    """A sessionkit shop that imports Flask cookies, and a Flask cookie of user "ann"."""
    from flask import Flask, session

    from examples.flask_app import create_app

    old = Flask(__name__)
    old.secret_key = KEY

    @old.get("/")
    def login() -> str:
        session["user"] = "ann"
        session["cart"] = ["apple"]
        return ""

    old_cookie = old.test_client().get("/").headers["Set-Cookie"].split(";")[0].split("=", 1)[1]
    config = SessionConfig(secret_key="n" * 40, instance_id="inst-a", clock=clock,
                           migrate_from="flask-cookie", migrate_secret_key=KEY, **settings)
    return ShopClient("flask", create_app(config)), old_cookie


def test_an_imported_cookie_cannot_bring_a_logged_out_session_back(clock: FakeClock) -> None:
    shop, old = flask_cookie_shop(clock)
    assert shop.raw("GET", "/whoami", cookie=f"session={old}").json["user"] == "ann"
    # The parallel first requests of one browser all carry the old cookie: they import too.
    assert shop.raw("GET", "/whoami", cookie=f"session={old}").json["user"] == "ann"
    clock.advance(GRACE_SECONDS + 1)
    replay = shop.raw("GET", "/whoami", cookie=f"session={old}")
    assert replay.json["user"] is None and replay.json["session_new"] is True


def test_log_out_everywhere_reaches_imported_sessions_through_the_hook(
    clock: FakeClock,
) -> None:
    def bind(session: Any) -> None:
        session.user_id = session.get("user")

    shop, old = flask_cookie_shop(clock, store="memory://", migrate_hook=bind)
    imported = shop.raw("GET", "/whoami", cookie=f"session={old}")
    cookie = imported.set_cookies[0].split(";")[0]
    assert shop.raw("GET", "/whoami", cookie=cookie).json["user"] == "ann"
    from tests.support import engine_of

    assert engine_of(shop.app).store.delete_user_sessions("ann") == 1
    assert shop.raw("GET", "/whoami", cookie=cookie).json["user"] is None


# --- 5. lone surrogates and NUL ------------------------------------------------------------
#: Text no UTF-8 store, database or token carries as it is.
ODD = {"surrogate": "a\ud800b", "nul": "a\x00b", "mixed": "é\udfff€"}


def odd_text_app(**settings: Any) -> Any:
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import JSONResponse
    from starlette.routing import Route

    from sessionkit.asgi import SessionMiddleware

    async def put(request: Request) -> JSONResponse:
        what = request.path_params["what"]
        value = ODD[request.query_params["value"]]
        try:
            if what == "value":
                request.session["v"] = [value, {"k": value}]
            elif what == "key":
                request.session[value] = 1
            else:
                request.session.user_id = value  # type: ignore[attr-defined]
        except ValueError as exc:
            return JSONResponse({"refused": str(exc)}, 400)
        return JSONResponse({"ok": True})

    async def get(request: Request) -> JSONResponse:
        return JSONResponse({"repr": repr(request.session.get("v"))})

    app = Starlette(routes=[Route("/put/{what}", put, methods=["POST"]), Route("/get", get)])
    app.add_middleware(SessionMiddleware, **settings)
    return app


@pytest.mark.parametrize("mode", [*SERVER_MODES, "jwt", "jwt-redis"])
@pytest.mark.parametrize("value", ["surrogate", "nul", "mixed"])
def test_odd_text_values_are_kept_exactly(request: pytest.FixtureRequest, tmp_path: Path,
                                          mode: str, value: str) -> None:
    from starlette.testclient import TestClient

    client = TestClient(odd_text_app(**settings_for(request, tmp_path, mode)))
    assert client.post(f"/put/value?value={value}").status_code == 200
    reply = client.get("/get")
    assert reply.status_code == 200
    assert reply.json() == {"repr": repr([ODD[value], {"k": ODD[value]}])}


@pytest.mark.parametrize("mode", SERVER_MODES)
@pytest.mark.parametrize(("what", "value"), [("user", "surrogate"), ("user", "nul"),
                                             ("key", "surrogate")])
def test_odd_text_user_ids_and_keys_are_refused_with_a_typed_error(
    request: pytest.FixtureRequest, tmp_path: Path, mode: str, what: str, value: str
) -> None:
    """A user id is a database column and a Redis key name; a session key a Redis field name:
    text they cannot hold is refused as it is assigned. (A NUL in a session key is stored as
    JSON text everywhere, so it is kept.)"""
    from starlette.testclient import TestClient

    client = TestClient(odd_text_app(**settings_for(request, tmp_path, mode)))
    reply = client.post(f"/put/{what}?value={value}")
    assert reply.status_code == 400, reply.text
    assert "must" in reply.json()["refused"]


# --- 6. a JWT login right after log-out-everywhere -------------------------------------------
@pytest.mark.parametrize("framework", ["flask", "fastapi"])
def test_a_login_after_log_out_everywhere_stays_logged_in(framework: str, clock: FakeClock
                                                          ) -> None:
    from tests.support import engine_of, make_app

    config = SessionConfig(store="jwt://", secret_key=KEY, instance_id="inst-a", clock=clock,
                           revocation_store="memory://")
    shop = ShopClient(framework, make_app(framework, config))
    shop.call("POST", "/cart/apple")  # an anonymous session, created now
    clock.advance(HOUR)
    engine_of(shop.app).store.delete_user_sessions("alice")  # from another device
    clock.advance(1)
    assert shop.call("POST", "/login", {"user": "alice"}).status == 200
    clock.advance(1)
    who = shop.call("GET", "/whoami").json
    assert who["user"] == "alice"  # the login is not undone by the earlier marker
    assert shop.call("GET", "/cart").json == {"cart": ["apple"]}
    engine_of(shop.app).store.delete_user_sessions("alice")  # a later one does end it
    clock.advance(1)
    assert shop.call("GET", "/whoami").json["user"] is None


# --- 9. configurations that failed late or wrongly -----------------------------------------
def test_flask_cookie_migration_with_only_flasks_secret_key_starts() -> None:
    from flask import Flask

    from sessionkit.flask import SessionKit

    app = Flask(__name__)
    app.secret_key = KEY
    kit = SessionKit(app, store="memory://", migrate_from="flask-cookie")
    assert kit.engine.migration is not None


@pytest.mark.parametrize(("store", "fragment"), [
    ("nosuch://x", "unknown store scheme"),
    ("redis://localhost:notaport/0", "not a valid URL"),
    ("no-scheme-at-all", "must be a URL"),
])
def test_a_config_refuses_what_it_can_know_alone(store: str, fragment: str) -> None:
    with pytest.raises(ConfigError, match=fragment):
        SessionConfig(store=store, secret_key=KEY)
