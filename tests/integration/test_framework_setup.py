"""How each framework is set up: Flask's app.config and SECRET_KEY, the test client's
session_transaction, FastAPI's SessionDep."""

from __future__ import annotations

import pytest
from fastapi import FastAPI, Request
from flask import Flask, session
from starlette.testclient import TestClient

from sessionkit import ConfigError, Session
from sessionkit.asgi import SessionMiddleware
from sessionkit.fastapi import SessionDep
from sessionkit.flask import SessionKit
from tests.support import KEY, OLD_KEY


def flask_app(**config: object) -> Flask:
    app = Flask(__name__)
    app.config.update(config)

    @app.post("/put/<value>")
    def put(value: str) -> dict[str, object]:
        session["value"] = value
        return {"ok": True}

    @app.get("/get")
    def get() -> dict[str, object]:
        return {"value": session.get("value"), "ours": isinstance(session._get_current_object(),  # type: ignore[attr-defined]
                                                                   Session)}

    return app


def test_settings_come_from_app_config() -> None:
    app = flask_app(SESSIONKIT_COOKIE_NAME="sid", SESSIONKIT_SECRET_KEY=KEY,
                    SESSIONKIT_IDLE_TIMEOUT="1h", SESSIONKIT_INSTANCE_ID="cfg-a")
    kit = SessionKit()
    kit.init_app(app)
    assert kit.engine.config.cookie_name == "sid"
    assert kit.engine.config.idle_seconds == 3600
    client = app.test_client()
    reply = client.post("/put/x")
    assert reply.headers["Set-Cookie"].startswith("sid=")
    assert reply.headers["Set-Cookie"].split(";")[0].endswith(".cfg-a")
    assert client.get("/get").json == {"value": "x", "ours": True}


def test_flask_secret_key_and_its_fallbacks_are_used_for_rotation() -> None:
    old = flask_app(SECRET_KEY=OLD_KEY)
    SessionKit(old, store="memory://")
    client = old.test_client()
    client.post("/put/kept")
    cookie = client.get_cookie("session").value  # type: ignore[union-attr]
    rotated = flask_app(SECRET_KEY=KEY, SECRET_KEY_FALLBACKS=[OLD_KEY])
    SessionKit(rotated, store=old.extensions["sessionkit"].store)
    other = rotated.test_client()
    other.set_cookie("session", cookie)
    assert other.get("/get").json == {"value": "kept", "ours": True}


def test_a_short_flask_secret_key_works_and_is_reported(caplog: pytest.LogCaptureFixture
                                                        ) -> None:
    """The app signs its sessions with it already: refusing it would break the app."""
    app = flask_app(SECRET_KEY="dev")
    SessionKit(app)
    assert "SECRET_KEY (or a fallback) is 3 bytes" in caplog.text
    client = app.test_client()
    client.post("/put/x")
    assert client.get("/get").json == {"value": "x", "ours": True}


def test_a_misspelt_setting_in_app_config_is_refused() -> None:
    with pytest.raises(ConfigError, match="unknown setting SESSIONKIT_COOKIE_NAMES"):
        SessionKit(flask_app(SESSIONKIT_COOKIE_NAMES="x", SECRET_KEY=KEY))


def test_session_transaction_in_the_flask_test_client() -> None:
    app = flask_app(SECRET_KEY=KEY)
    SessionKit(app)
    client = app.test_client()
    with client.session_transaction() as prepared:
        prepared["value"] = "preset"
    assert client.get("/get").json == {"value": "preset", "ours": True}


def test_session_dep_without_the_middleware_explains_the_fix() -> None:
    app = FastAPI()

    @app.get("/")
    def view(session: SessionDep) -> dict[str, object]:
        return dict(session)

    with pytest.raises(RuntimeError, match=r"add sessionkit\.asgi\.SessionMiddleware"):
        TestClient(app).get("/")


def test_session_dep_and_request_session_are_the_same_object() -> None:
    app = FastAPI()
    app.add_middleware(SessionMiddleware, secret_key=KEY)

    @app.get("/")
    def view(request: Request, session: SessionDep) -> dict[str, object]:
        return {"same": request.session is session, "type": type(session).__name__}

    assert TestClient(app).get("/").json() == {"same": True, "type": "Session"}
