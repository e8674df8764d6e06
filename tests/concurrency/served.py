"""The apps the concurrency suite serves from real server processes (uvicorn, gunicorn), with
their settings from ``SESSIONKIT_*`` variables: ``uvicorn --factory
tests.concurrency.served:asgi_app`` and ``gunicorn 'tests.concurrency.served:wsgi_app()'``.

Routes: ``POST /set/<key>`` (adds a key), ``GET /get``, ``POST /slow/<key>`` (loads the
session, waits ``SLOW_SECONDS``, then adds a key), ``POST /login`` (regenerates the id),
``POST /logout`` (invalidates).
"""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Any

from sessionkit import SessionConfig

SLOW_SECONDS = 0.5
#: Set by ``/slow`` once it holds the loaded session (for servers running in the test process).
slow_loaded = threading.Event()


def wsgi_app(**settings: Any) -> Any:
    from flask import Flask, jsonify, session

    from sessionkit.flask import SessionKit

    app = Flask(__name__)
    SessionKit(app, settings.pop("config", None) or SessionConfig.from_env(), **settings)

    @app.post("/set/<key>")
    def set_key(key: str) -> Any:
        session[key] = True
        return jsonify(ok=True)

    @app.get("/get")
    def get() -> Any:
        return jsonify(dict(session))

    @app.post("/slow/<key>")
    def slow(key: str) -> Any:
        session.get("x")  # loaded now, before the wait
        slow_loaded.set()
        time.sleep(SLOW_SECONDS)
        session[key] = True
        return jsonify(ok=True)

    @app.post("/login")
    def login() -> Any:
        session.regenerate()  # type: ignore[attr-defined]
        return jsonify(ok=True)

    @app.post("/logout")
    def logout() -> Any:
        session.invalidate()  # type: ignore[attr-defined]
        return jsonify(ok=True)

    return app


def asgi_app(**settings: Any) -> Any:
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import JSONResponse
    from starlette.routing import Route

    from sessionkit.asgi import SessionMiddleware

    async def set_key(request: Request) -> JSONResponse:
        request.session[request.path_params["key"]] = True
        return JSONResponse({"ok": True})

    async def get(request: Request) -> JSONResponse:
        return JSONResponse(dict(request.session))

    async def slow(request: Request) -> JSONResponse:
        request.session.get("x")
        slow_loaded.set()
        await asyncio.sleep(SLOW_SECONDS)
        request.session[request.path_params["key"]] = True
        return JSONResponse({"ok": True})

    async def login(request: Request) -> JSONResponse:
        request.session.regenerate()  # type: ignore[attr-defined]
        return JSONResponse({"ok": True})

    async def logout(request: Request) -> JSONResponse:
        request.session.invalidate()  # type: ignore[attr-defined]
        return JSONResponse({"ok": True})

    app = Starlette(routes=[
        Route("/set/{key}", set_key, methods=["POST"]),
        Route("/get", get),
        Route("/slow/{key}", slow, methods=["POST"]),
        Route("/login", login, methods=["POST"]),
        Route("/logout", logout, methods=["POST"]),
    ])
    config = settings.pop("config", None) or SessionConfig.from_env()
    app.add_middleware(SessionMiddleware, config, **settings)
    return app
