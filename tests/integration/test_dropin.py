"""An existing app swaps one import and keeps working: the session is the dict its framework
hands out, emptying it ends it, Flask's tagged types come back as themselves on every store,
and each framework's own settings are honoured."""

from __future__ import annotations

import copy
import json
import logging
import uuid
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any
from unittest import mock

import pytest
from markupsafe import Markup

from sessionkit import ConfigError, SessionConfig
from tests.stores import ALL_STORES, StoreCase, iter_params, store_case
from tests.support import FRAMEWORKS, KEY, ShopClient, cookie_attributes, deletes_cookie

#: Values Flask's own session serializer keeps, and what they must come back as.
TAGGED: dict[str, Any] = {
    "tuple": (1, "two", (3.5, None)),
    "bytes": b"\xff\x00binary",
    "markup": Markup("<em>safe</em>"),
    "uuid": uuid.UUID("12345678-1234-5678-1234-567812345678"),
    "aware": datetime(2026, 11, 29, 18, 30, 5, 123456, tzinfo=timezone(timedelta(hours=2))),
    "naive": datetime(2026, 1, 2, 3, 4, 5),
    "looks_tagged": {" t": "not a tuple"},
    "looks_escaped": {" di": {" t~": 1}},
    "nested": {"when": datetime(2030, 1, 1, tzinfo=UTC), "items": [(1, 2), b"x"]},
}


def _report(session: Any) -> dict[str, Any]:
    """What came back, with the types: the check runs where the values live."""
    return {name: {"equal": session.get(name) == value,
                   "type": type(session.get(name)).__name__ == type(value).__name__}
            for name, value in TAGGED.items()}


def _dict_behaviour(session: Any) -> dict[str, Any]:
    plain = dict(session)
    return {
        "isinstance": isinstance(session, dict),
        "json": json.loads(json.dumps(session)) == json.loads(json.dumps(plain)),
        "copy": type(session.copy()) is dict and session.copy() == plain,
        "or": type(session | {"extra": 1}) is dict and (session | {"extra": 1})["extra"] == 1,
        "deepcopy": copy.deepcopy(session) == plain,
        "eq": session == plain,
    }


def flask_app(**settings: Any) -> Any:
    from flask import Flask, jsonify, session

    from sessionkit.flask import SessionKit

    app = Flask(__name__)
    app.config.update(settings.pop("flask_config", {}))
    SessionKit(app, **settings)

    @app.post("/tagged")
    def put_tagged() -> Any:
        session.update(TAGGED)
        return jsonify(ok=True)

    @app.get("/tagged")
    def get_tagged() -> Any:
        return jsonify(_report(session))

    @app.post("/cart/<item>")
    def add(item: str) -> Any:
        session.setdefault("cart", []).append(item)
        return jsonify(dict(session))

    @app.get("/dict")
    def as_dict() -> Any:
        return jsonify(_dict_behaviour(session._get_current_object()))  # type: ignore[attr-defined]

    @app.post("/clear")
    def clear() -> Any:
        session.clear()
        return jsonify(dict(session))

    @app.post("/pop-all")
    def pop_all() -> Any:
        for key in list(session):
            session.pop(key)
        return jsonify(ok=True)

    @app.post("/permanent/<flag>")
    def permanent(flag: str) -> Any:
        session["seen"] = True
        session.permanent = flag == "yes"
        return jsonify(ok=True)

    @app.get("/who")
    def who() -> Any:
        return jsonify(new=session.new, keys=sorted(session))

    return app


def starlette_app(**settings: Any) -> Any:
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import JSONResponse
    from starlette.routing import Route

    from sessionkit.asgi import SessionMiddleware

    settings.pop("flask_config", None)

    async def put_tagged(request: Request) -> JSONResponse:
        request.session.update(TAGGED)
        return JSONResponse({"ok": True})

    async def get_tagged(request: Request) -> JSONResponse:
        return JSONResponse(_report(request.session))

    async def add(request: Request) -> JSONResponse:
        request.session.setdefault("cart", []).append(request.path_params["item"])
        return JSONResponse(request.session)  # the session itself, as Starlette apps do

    async def as_dict(request: Request) -> JSONResponse:
        return JSONResponse(_dict_behaviour(request.session))

    async def clear(request: Request) -> JSONResponse:
        request.session.clear()
        return JSONResponse(request.session)

    async def pop_all(request: Request) -> JSONResponse:
        for key in list(request.session):
            request.session.pop(key)
        return JSONResponse({"ok": True})

    async def who(request: Request) -> JSONResponse:
        return JSONResponse({"new": request.session.is_new,  # type: ignore[attr-defined]
                             "keys": sorted(request.session)})

    app = Starlette(routes=[
        Route("/tagged", put_tagged, methods=["POST"]), Route("/tagged", get_tagged),
        Route("/cart/{item}", add, methods=["POST"]), Route("/dict", as_dict),
        Route("/clear", clear, methods=["POST"]), Route("/pop-all", pop_all, methods=["POST"]),
        Route("/who", who),
    ])
    app.add_middleware(SessionMiddleware, **settings)
    return app


def client(framework: str, https: bool = False, **settings: Any) -> ShopClient:
    settings.setdefault("secret_key", KEY)
    make = flask_app if framework == "flask" else starlette_app
    return ShopClient(framework, make(**settings), https=https)


@pytest.fixture(params=FRAMEWORKS)
def framework(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture(params=list(iter_params(list(ALL_STORES))))
def case(request: pytest.FixtureRequest, tmp_path: Path) -> StoreCase:
    return store_case(request, tmp_path, request.param)


def test_the_session_is_the_dict_the_framework_hands_out(framework: str) -> None:
    shop = client(framework)
    assert shop.call("POST", "/cart/apple").json == {"cart": ["apple"]}
    assert shop.call("POST", "/cart/pear").json == {"cart": ["apple", "pear"]}  # in place
    assert shop.call("GET", "/dict").json == {
        "isinstance": True, "json": True, "copy": True, "or": True, "deepcopy": True,
        "eq": True}
    assert shop.call("POST", "/cart/plum").json == {"cart": ["apple", "pear", "plum"]}


def test_flasks_tagged_types_round_trip_on_every_store(framework: str, case: StoreCase
                                                      ) -> None:
    shop = client(framework, store=case.url, **case.settings)
    assert shop.call("POST", "/tagged").status == 200
    report = shop.call("GET", "/tagged").json
    assert report == {name: {"equal": True, "type": True} for name in TAGGED}


@pytest.mark.parametrize("route", ["/clear", "/pop-all"])
def test_emptying_the_session_ends_it_everywhere(framework: str, case: StoreCase, route: str
                                                ) -> None:
    shop = client(framework, store=case.url, **case.settings)
    shop.call("POST", "/cart/apple")
    old = shop.cookie
    reply = shop.call("POST", route)
    [deleted] = reply.set_cookies
    assert deletes_cookie(deleted)
    assert shop.cookie is None
    # Nothing is left under the old id: replaying it finds no session, not an empty one.
    replay = shop.raw("GET", "/who", cookie=f"session={old}")
    assert replay.json == {"new": True, "keys": []}


def test_an_empty_session_that_stays_empty_sends_nothing(framework: str) -> None:
    shop = client(framework)
    reply = shop.call("POST", "/clear")
    assert reply.set_cookies == []


def test_flask_permanent_decides_the_cookies_lifetime() -> None:
    lifetime = timedelta(days=3)
    shop = client("flask", flask_config={"PERMANENT_SESSION_LIFETIME": lifetime})
    permanent = shop.call("POST", "/permanent/yes").set_cookies[0]
    expires = cookie_attributes(permanent)["expires"]
    expected = datetime.now(UTC) + lifetime
    assert expected.strftime("%d %b %Y") in expires
    browser_session = shop.call("POST", "/permanent/no").set_cookies[0]
    assert "expires" not in cookie_attributes(browser_session)
    assert "max-age" not in cookie_attributes(browser_session)


def test_flask_cookie_settings_are_honoured_and_sessionkits_win() -> None:
    flask_config = {"SESSION_COOKIE_NAME": "flask_sid", "SESSION_COOKIE_PATH": "/shop",
                    "SESSION_COOKIE_SAMESITE": "Strict", "SESSION_COOKIE_HTTPONLY": False,
                    "SESSION_COOKIE_SECURE": True, "SESSION_COOKIE_PARTITIONED": True,
                    "SESSION_COOKIE_DOMAIN": "example.com"}
    shop = client("flask", flask_config=flask_config)
    [cookie] = shop.call("POST", "/cart/apple").set_cookies
    attributes = cookie_attributes(cookie)
    assert cookie.startswith("flask_sid=")
    assert attributes["path"] == "/shop" and attributes["samesite"] == "Strict"
    assert attributes["domain"] == "example.com"
    assert {"secure", "partitioned"} <= set(attributes) and "httponly" not in attributes
    ours = client("flask", flask_config={**flask_config, "SESSIONKIT_COOKIE_NAME": "ours",
                                         "SESSIONKIT_COOKIE_SAMESITE": "lax"})
    [cookie] = ours.call("POST", "/cart/apple").set_cookies
    assert cookie.startswith("ours=") and cookie_attributes(cookie)["samesite"] == "Lax"


def test_a_flask_setting_that_cannot_be_honoured_fails_at_startup() -> None:
    with pytest.raises(ConfigError, match=r"cannot be honoured.*SameSite=None"):
        client("flask", flask_config={"SESSION_COOKIE_SAMESITE": "None",
                                      "SESSION_COOKIE_SECURE": False})
    with pytest.raises(ConfigError, match=r"cannot be honoured.*__Host-"):
        client("flask", flask_config={"SESSION_COOKIE_NAME": "__Host-s",
                                      "SESSION_COOKIE_PATH": "/shop"})


@pytest.mark.parametrize("partitioned", [False, True])
def test_partitioned_cookies(framework: str, partitioned: bool) -> None:
    if framework == "flask":
        shop = client("flask", https=True,
                      flask_config={"SESSION_COOKIE_SECURE": True,
                                    "SESSION_COOKIE_PARTITIONED": partitioned})
    else:
        shop = client("fastapi", https=True, cookie_secure=True,
                      cookie_partitioned=partitioned)
    [cookie] = shop.call("POST", "/cart/apple").set_cookies
    assert ("partitioned" in cookie_attributes(cookie)) is partitioned
    [deleted] = shop.call("POST", "/clear").set_cookies
    assert ("partitioned" in cookie_attributes(deleted)) is partitioned


def test_partitioned_without_secure_is_refused() -> None:
    with pytest.raises(ConfigError, match="Partitioned"):
        SessionConfig(cookie_partitioned=True, cookie_secure=False)


def test_the_clock_is_read_when_it_is_needed(framework: str) -> None:
    """``mock.patch("time.time")`` (as freezegun does) moves sessionkit's clock too."""
    import time

    start = time.time()
    with mock.patch("time.time", return_value=start):
        shop = client(framework, idle_timeout=60)
        shop.call("POST", "/cart/apple")
    with mock.patch("time.time", return_value=start + 30):
        assert shop.call("GET", "/who").json == {"new": False, "keys": ["cart"]}
    with mock.patch("time.time", return_value=start + 30 + 61):
        assert shop.call("GET", "/who").json == {"new": True, "keys": []}


def test_starlettes_arguments_and_cookies_carry_over(caplog: pytest.LogCaptureFixture) -> None:
    """Replacing Starlette's import keeps its arguments working and its users logged in."""
    from starlette.applications import Starlette
    from starlette.middleware.sessions import SessionMiddleware as StarletteSessions
    from starlette.requests import Request
    from starlette.responses import JSONResponse
    from starlette.routing import Route
    from starlette.testclient import TestClient

    from sessionkit.asgi import SessionMiddleware

    async def login(request: Request) -> JSONResponse:
        request.session["user"] = "alice"
        return JSONResponse(request.session)

    async def who(request: Request) -> JSONResponse:
        return JSONResponse(request.session)

    arguments = {"secret_key": "short-dev-key", "session_cookie": "sess", "max_age": 3600,
                 "same_site": "strict", "path": "/"}
    routes = [Route("/login", login, methods=["POST"]), Route("/who", who)]
    before = Starlette(routes=routes)
    before.add_middleware(StarletteSessions, **arguments)
    old = TestClient(before).post("/login").cookies["sess"]

    after = Starlette(routes=routes)
    after.add_middleware(SessionMiddleware, **arguments)
    browser = TestClient(after)
    browser.cookies.set("sess", old)
    reply = browser.get("/who")
    assert reply.json() == {"user": "alice"}  # imported: still logged in
    cookie = reply.headers["set-cookie"]
    assert cookie.startswith("sess=") and "; Max-Age=3600;" in cookie
    assert "samesite=strict" in cookie and "; path=/;" in cookie
    assert browser.get("/who").json() == {"user": "alice"}  # now on sessionkit's cookie
    assert "secret_key is 13 bytes" in caplog.text
    tampered = TestClient(after)
    tampered.cookies.set("sess", old[:-2] + "xx")
    assert tampered.get("/who").json() == {}


def test_a_config_error_under_a_lazy_middleware_stack_fails_the_lifespan(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Starlette builds middleware inside the server's loop, where uvicorn takes an exception
    for "lifespan unsupported": the error must stop the server instead of a 500 per request."""
    import asyncio

    from starlette.applications import Starlette

    from sessionkit.asgi import SessionMiddleware

    app = Starlette()
    app.add_middleware(SessionMiddleware, store="memory://", secret_key=KEY,
                       idle_timeout="soon")
    sent: list[dict[str, Any]] = []

    async def lifespan() -> None:
        messages = [{"type": "lifespan.startup"}]

        async def receive() -> dict[str, Any]:
            return messages.pop(0) if messages else await asyncio.sleep(3600)  # type: ignore[func-returns-value]

        async def send(message: dict[str, Any]) -> None:
            sent.append(message)

        with pytest.raises(ConfigError):
            await app({"type": "lifespan", "asgi": {"version": "3.0"}}, receive, send)

    with caplog.at_level(logging.CRITICAL, logger="sessionkit"):
        asyncio.run(lifespan())
    assert sent[0]["type"] == "lifespan.startup.failed"  # (Starlette's router reports it too)
    assert "idle_timeout" in sent[0]["message"]
    assert "cannot start" in caplog.text
    with pytest.raises(ConfigError, match="idle_timeout"):  # built at import: raised at once
        SessionMiddleware(app, store="memory://", secret_key=KEY, idle_timeout="soon")
    from starlette.testclient import TestClient

    with pytest.raises(ConfigError), TestClient(app):  # a test client raises, never hangs
        pass
