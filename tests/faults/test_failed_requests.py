"""A request that fails with a 5xx saves nothing it changed in the session: a cart half-emptied
before the payment failed stays as it was, and a new session that failed sets no cookie."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.support import KEY, ShopClient

KINDS = ["flask", "fastapi", "wsgi"]


def flask_app(**settings: Any) -> Any:
    from flask import Flask, abort, jsonify, session

    from sessionkit.flask import SessionKit

    app = Flask(__name__)
    SessionKit(app, **settings)

    @app.post("/put/<key>")
    def put(key: str) -> Any:
        session[key] = True
        return jsonify(ok=True)

    @app.get("/get")
    def get() -> Any:
        return jsonify(dict(session))

    @app.post("/checkout/<how>")
    def checkout(how: str) -> Any:
        session.pop("cart", None)
        session["paid"] = True
        if how == "raise":
            raise RuntimeError("payment service down")
        if how == "abort":
            abort(502)
        return jsonify(error="payment failed"), 500

    @app.post("/logout-then-fail")
    def logout_then_fail() -> Any:
        session.invalidate()  # type: ignore[attr-defined]
        raise RuntimeError("failed after logout")

    return app


def starlette_app(**settings: Any) -> Any:
    from starlette.applications import Starlette
    from starlette.exceptions import HTTPException
    from starlette.requests import Request
    from starlette.responses import JSONResponse
    from starlette.routing import Route

    from sessionkit.asgi import SessionMiddleware

    async def put(request: Request) -> JSONResponse:
        request.session[request.path_params["key"]] = True
        return JSONResponse({"ok": True})

    async def get(request: Request) -> JSONResponse:
        return JSONResponse(dict(request.session))

    async def checkout(request: Request) -> JSONResponse:
        request.session.pop("cart", None)
        request.session["paid"] = True
        how = request.path_params["how"]
        if how == "raise":
            raise RuntimeError("payment service down")
        if how == "abort":
            raise HTTPException(502)
        return JSONResponse({"error": "payment failed"}, 500)

    async def logout_then_fail(request: Request) -> JSONResponse:
        request.session.invalidate()  # type: ignore[attr-defined]
        raise RuntimeError("failed after logout")

    app = Starlette(routes=[
        Route("/put/{key}", put, methods=["POST"]),
        Route("/get", get),
        Route("/checkout/{how}", checkout, methods=["POST"]),
        Route("/logout-then-fail", logout_then_fail, methods=["POST"]),
    ])
    app.add_middleware(SessionMiddleware, **settings)
    return app


def wsgi_app(**settings: Any) -> Any:
    from sessionkit.wsgi import ENVIRON_KEY, SessionMiddleware

    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        session = environ[ENVIRON_KEY]
        path = environ["PATH_INFO"]
        status = "200 OK"
        if path.startswith("/put/"):
            session[path[5:]] = True
        elif path.startswith("/checkout/"):
            session.pop("cart", None)
            session["paid"] = True
            if path.endswith("/raise"):
                raise RuntimeError("payment service down")
            status = "502 Bad Gateway" if path.endswith("/abort") else "500 Internal Server Error"
        elif path == "/logout-then-fail":
            session.invalidate()
            raise RuntimeError("failed after logout")
        body = json.dumps(dict(session)).encode()
        start_response(status, [("Content-Type", "application/json")])
        return [body]

    return SessionMiddleware(app, **settings)


def make(kind: str) -> ShopClient:
    build = {"flask": flask_app, "fastapi": starlette_app, "wsgi": wsgi_app}[kind]
    return ShopClient(kind, build(secret_key=KEY, store="memory://"))


def _call(shop: ShopClient, path: str, cookie: str | None = None) -> Any:
    """POST that tolerates the app raising (test clients re-raise server errors)."""
    if shop.framework == "fastapi":
        from starlette.testclient import TestClient

        client = TestClient(shop.app, raise_server_exceptions=False)
        response = client.post(path, headers={"Cookie": cookie} if cookie else {})
        return response.status_code, response.headers.get_list("set-cookie")
    reply = shop.raw("POST", path, cookie=cookie)
    return reply.status, reply.set_cookies


@pytest.mark.parametrize("how", ["raise", "abort", "return-500"])
@pytest.mark.parametrize("kind", KINDS)
def test_a_failed_request_leaves_the_session_as_it_was(kind: str, how: str) -> None:
    shop = make(kind)
    shop.call("POST", "/put/cart")
    cookie = f"session={shop.cookie}"
    if kind == "wsgi" and how == "raise":
        with pytest.raises(RuntimeError):  # a bare WSGI app's error reaches the server
            _call(shop, f"/checkout/{how}", cookie)
    else:
        status, set_cookies = _call(shop, f"/checkout/{how}", cookie)
        assert status >= 500 and set_cookies == []
    assert shop.raw("GET", "/get", cookie=cookie).json == {"cart": True}


@pytest.mark.parametrize("kind", ["flask", "fastapi"])
def test_a_new_session_that_failed_sets_no_cookie_and_stores_nothing(kind: str) -> None:
    shop = make(kind)
    status, set_cookies = _call(shop, "/checkout/return-500")
    assert status == 500 and set_cookies == []
    engine = shop.app.extensions["sessionkit"] if kind == "flask" else None
    if engine is not None:
        assert len(engine.store) == 0


@pytest.mark.parametrize("kind", ["flask", "fastapi"])
def test_a_logout_that_failed_is_not_half_done(kind: str) -> None:
    shop = make(kind)
    shop.call("POST", "/put/user")
    cookie = f"session={shop.cookie}"
    status, set_cookies = _call(shop, "/logout-then-fail", cookie)
    assert status == 500 and set_cookies == []
    assert shop.raw("GET", "/get", cookie=cookie).json == {"user": True}
