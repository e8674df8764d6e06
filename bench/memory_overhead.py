"""Per-request cost of sessionkit's memory mode against the same app without sessions.

In-process, no network: each framework's app is called directly (WSGI callable, ASGI
coroutine) with a prebuilt request, so the numbers are per-request CPU. Run:

    python bench/memory_overhead.py [--seconds 2]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from harness import asgi_runner, measure, wsgi_runner

KEY = "bench-secret-key-0123456789-abcdefghijklmnop"
CART = [f"item-{n:03d}-{'x' * 20}" for n in range(30)]  # ~1 KB session


def flask_app(sessions: bool) -> Any:
    from flask import Flask, g

    from sessionkit.flask import SessionKit

    app = Flask(__name__)
    if sessions:
        SessionKit(app, store="memory://", secret_key=KEY, instance_id="bench")
        from flask import session as store
    else:
        store = None

    @app.get("/cart")
    def cart() -> Any:
        data = store if store is not None else g.__dict__.setdefault("s", {"cart": CART})
        return {"n": len(data.get("cart", []))}

    @app.post("/seed")
    def seed() -> Any:
        if store is not None:
            store["cart"] = list(CART)
        return {"ok": True}

    return app


def starlette_app(sessions: bool) -> Any:
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import JSONResponse
    from starlette.routing import Route

    from sessionkit.asgi import SessionMiddleware

    fixed = {"cart": CART}

    async def cart(request: Request) -> JSONResponse:
        data = request.session if sessions else fixed
        return JSONResponse({"n": len(data.get("cart", []))})

    async def seed(request: Request) -> JSONResponse:
        if sessions:
            request.session["cart"] = list(CART)
        return JSONResponse({"ok": True})

    app = Starlette(routes=[Route("/cart", cart), Route("/seed", seed, methods=["POST"])])
    if sessions:
        app.add_middleware(SessionMiddleware, store="memory://", secret_key=KEY,
                           instance_id="bench")
    return app


def seed_cookie(kind: str, app: Any) -> str:
    if kind == "flask":
        reply = app.test_client().post("/seed")
        return str(reply.headers["Set-Cookie"].split(";")[0])
    from starlette.testclient import TestClient

    return str(TestClient(app).post("/seed").headers["set-cookie"].split(";")[0])


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=2.0)
    args = parser.parse_args()
    rows = []
    for kind, make, runner, is_async in (
        ("flask", flask_app, wsgi_runner, False),
        ("starlette", starlette_app, asgi_runner, True),
    ):
        bare = measure(runner(make(False), "/cart", None), args.seconds, is_async)
        app = make(True)
        cookie = seed_cookie(kind, app)
        read = measure(runner(app, "/cart", cookie), args.seconds, is_async)
        fresh = measure(runner(app, "/cart", None), args.seconds, is_async)
        rows.append((kind, "no sessions", bare, 1.0))
        rows.append((kind, "memory://, no cookie", fresh, fresh / bare))
        rows.append((kind, "memory://, read 1 KB cart", read, read / bare))
    print(f"{'framework':<10} {'app':<28} {'µs/request':>10} {'ratio':>7}")
    for kind, label, micros, ratio in rows:
        print(f"{kind:<10} {label:<28} {micros:>10.1f} {ratio:>7.3f}")


if __name__ == "__main__":
    main()
