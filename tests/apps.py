"""Minimal apps over every adapter, for tests that need routes the shop does not have."""

from __future__ import annotations

import dataclasses
from typing import Any

from sessionkit.errors import StoreUnavailable
from sessionkit.stores.base import Load, Op, Record
from sessionkit.stores.memory import MemoryStore


class FlakyStore(MemoryStore):
    """A memory store that can be switched off, to test the store-down paths."""

    down = False
    fail_on: frozenset[str] = frozenset()  # operations that fail even when up

    def execute(self, op: Op) -> Any:
        if self.down or op.method in self.fail_on:
            raise StoreUnavailable("flaky://", ConnectionError("connection refused"), 3)
        return super().execute(op)

    async def aexecute(self, op: Op) -> Any:
        return self.execute(op)


class RecordingStore(MemoryStore):
    """A memory store that remembers the operations it performed. With
    ``slides_on_load=False`` it behaves like SQL: reading does not move the expiry."""

    def __init__(self, slides_on_load: bool = True) -> None:
        super().__init__()
        self.capabilities = dataclasses.replace(  # type: ignore[misc]
            MemoryStore.capabilities, slides_on_load=slides_on_load)
        self.slides_on_load = slides_on_load
        self.ops: list[str] = []

    def execute(self, op: Op) -> Any:
        self.ops.append(op.method)
        return super().execute(op)

    def load(self, op: Load) -> Record | None:
        if self.slides_on_load:
            return super().load(op)
        with self._lock:  # a copy of the record as it is: reading moves nothing
            record = self._records.get(op.key)
            return None if record is None else dataclasses.replace(record)


def flask_app(**settings: Any) -> Any:
    from flask import Flask, jsonify, session

    from sessionkit.flask import SessionKit

    app = Flask(__name__)
    SessionKit(app, **settings)

    @app.post("/set/<key>")
    def set_key(key: str) -> Any:
        session[key] = True
        return jsonify(sorted(session))

    @app.get("/get")
    def get() -> Any:
        return jsonify(dict(session))

    @app.get("/noop")
    def noop() -> Any:
        return jsonify(ok=True)

    @app.post("/regenerate")
    def regenerate() -> Any:
        session.regenerate()  # type: ignore[attr-defined]
        return jsonify(ok=True)

    @app.post("/invalidate-then-write")
    def invalidate_then_write() -> Any:
        session.invalidate()  # type: ignore[attr-defined]
        session["flash"] = "bye"
        return jsonify(ok=True)

    return app


def starlette_app(**settings: Any) -> Any:
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import JSONResponse
    from starlette.routing import Route, WebSocketRoute
    from starlette.websockets import WebSocket

    from sessionkit.asgi import SessionMiddleware

    async def set_key(request: Request) -> JSONResponse:
        request.session[request.path_params["key"]] = True
        return JSONResponse(sorted(request.session))

    async def get(request: Request) -> JSONResponse:
        return JSONResponse(dict(request.session))

    async def noop(request: Request) -> JSONResponse:
        return JSONResponse({"ok": True})

    async def regenerate(request: Request) -> JSONResponse:
        request.session.regenerate()  # type: ignore[attr-defined]
        return JSONResponse({"ok": True})

    async def invalidate_then_write(request: Request) -> JSONResponse:
        request.session.invalidate()  # type: ignore[attr-defined]
        request.session["flash"] = "bye"
        return JSONResponse({"ok": True})

    async def ws(websocket: WebSocket) -> None:
        await websocket.accept()
        websocket.session["seen_ws"] = True
        await websocket.send_json(dict(websocket.session))
        await websocket.close()

    app = Starlette(routes=[
        Route("/set/{key}", set_key, methods=["POST"]),
        Route("/get", get),
        Route("/noop", noop),
        Route("/regenerate", regenerate, methods=["POST"]),
        Route("/invalidate-then-write", invalidate_then_write, methods=["POST"]),
        WebSocketRoute("/ws", ws),
    ])
    app.add_middleware(SessionMiddleware, **settings)
    return app


def wsgi_app(**settings: Any) -> Any:
    """A bare WSGI app (no framework) under sessionkit.wsgi.SessionMiddleware."""
    import json

    from sessionkit.wsgi import ENVIRON_KEY, SessionMiddleware

    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        session = environ[ENVIRON_KEY]
        path = environ["PATH_INFO"]
        if path.startswith("/set/"):
            session[path[5:]] = True
            body: Any = sorted(session)
        elif path == "/get":
            body = dict(session)
        elif path == "/regenerate":
            session.regenerate()
            body = {"ok": True}
        elif path == "/invalidate-then-write":
            session.invalidate()
            session["flash"] = "bye"
            body = {"ok": True}
        else:
            body = {"ok": True}
        start_response("200 OK", [("Content-Type", "application/json"), ("Vary", "Accept")])
        return [json.dumps(body).encode()]

    return SessionMiddleware(app, **settings)


def make(kind: str, **settings: Any) -> Any:
    """The test app for ``kind`` ("flask", "fastapi" or "wsgi") with sessionkit settings."""
    return {"flask": flask_app, "fastapi": starlette_app, "wsgi": wsgi_app}[kind](**settings)
