"""Hybrid mode against plain Redis, memory and no sessions at all: 90% reads, 10% writes of a
~1 KB session, in-process (no network between client and app; Redis on loopback), Flask and
FastAPI. "affinity" sends every request to the instance its cookie names; "misrouted" sends
every request to the other of two instances. Run:

    python bench/hybrid.py [--rounds 15] [--requests 500] [--redis redis://127.0.0.1:6379/0]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

# At module level: FastAPI resolves the (postponed) annotations of the endpoints here.
from fastapi import FastAPI, Request

KEY = "bench-secret-key-0123456789-abcdefghijklmnop"
PROFILE = "x" * 1000  # the ~1 KB session
WRITE_EVERY = 10  # one request in ten writes


def flask_app(settings: dict[str, Any] | None) -> Any:
    from flask import Flask, jsonify, session

    app = Flask(__name__)
    if settings is not None:
        from sessionkit.flask import SessionKit

        SessionKit(app, **settings)

    @app.post("/seed")
    def seed() -> Any:
        if settings is not None:
            session["profile"] = PROFILE
        return jsonify(ok=True)

    @app.get("/read")
    def read() -> Any:
        return jsonify(n=len(session.get("profile", "")) if settings is not None else 0)

    @app.post("/write")
    def write() -> Any:
        if settings is not None:
            session["n"] = session.get("n", 0) + 1
        return jsonify(ok=True)

    return app


def fastapi_app(settings: dict[str, Any] | None) -> Any:
    app = FastAPI()
    if settings is not None:
        from sessionkit.asgi import SessionMiddleware

        app.add_middleware(SessionMiddleware, **settings)

    @app.post("/seed")
    async def seed(request: Request) -> dict[str, bool]:
        if settings is not None:
            request.session["profile"] = PROFILE
        return {"ok": True}

    @app.get("/read")
    async def read(request: Request) -> dict[str, int]:
        return {"n": len(request.session.get("profile", "")) if settings is not None else 0}

    @app.post("/write")
    async def write(request: Request) -> dict[str, bool]:
        if settings is not None:
            request.session["n"] = request.session.get("n", 0) + 1
        return {"ok": True}

    return app


# --- calling an app in-process, keeping the session cookie like a browser ------------------
def wsgi_caller(app: Any) -> Callable[[str, str, str | None], Any]:
    from werkzeug.test import EnvironBuilder

    bases = {(m, p): EnvironBuilder(path=p, method=m).get_environ()
             for m, p in (("GET", "/read"), ("POST", "/write"), ("POST", "/seed"))}

    def call(method: str, path: str, cookie: str | None) -> str | None:
        environ = dict(bases[method, path])
        if cookie:
            environ["HTTP_COOKIE"] = cookie
        found: list[str] = []

        def start_response(status: str, headers: Any, exc_info: Any = None) -> Any:
            found.extend(v for k, v in headers if k.lower() == "set-cookie")

        body = app(environ, start_response)
        b"".join(body)
        getattr(body, "close", lambda: None)()
        return _session_cookie(found)

    return call


def asgi_caller(app: Any) -> Callable[[str, str, str | None], Any]:
    async def call(method: str, path: str, cookie: str | None) -> str | None:
        headers = [(b"host", b"bench")]
        if cookie:
            headers.append((b"cookie", cookie.encode()))
        scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1",
                 "method": method, "scheme": "http", "path": path, "raw_path": path.encode(),
                 "query_string": b"", "root_path": "", "headers": headers,
                 "client": ("127.0.0.1", 1), "server": ("bench", 80)}
        found: list[str] = []

        async def receive() -> dict[str, Any]:
            return {"type": "http.request", "body": b"", "more_body": False}

        async def send(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                found.extend(v.decode() for k, v in message.get("headers", [])
                             if k.lower() == b"set-cookie")

        await app(scope, receive, send)
        return _session_cookie(found)

    return call


def _session_cookie(headers: list[str]) -> str | None:
    for header in headers:
        if header.startswith("session="):
            return header.split(";", 1)[0]
    return None


class Browser:
    """One browser driving instances: 90% reads, 10% writes; request ``i`` goes to
    ``callers[i % len(callers)]``, so with two callers every request lands on the instance
    that did not serve the one before (while the cookie names the one that did)."""

    def __init__(self, framework: str, callers: list[Any]) -> None:
        self.is_async = framework == "fastapi"
        self.callers = callers
        self.cookie: str | None = None
        self.done = 0
        self.loop = asyncio.new_event_loop()
        self.loop.run_until_complete(self._go(callers[0], "POST", "/seed"))
        self.seeded = self.cookie is not None

    async def _go(self, caller: Any, method: str, path: str) -> None:
        result = caller(method, path, self.cookie)
        cookie = await result if self.is_async else result
        if cookie:
            self.cookie = cookie

    def _request(self, i: int) -> tuple[Any, str, str]:
        method, path = ("POST", "/write") if i % WRITE_EVERY == 0 else ("GET", "/read")
        return self.callers[i % len(self.callers)], method, path

    async def _batch(self, start: int, n: int) -> None:
        for i in range(start, start + n):
            await self._go(*self._request(i))

    def time(self, n: int) -> float:
        """Microseconds per request over the next ``n`` requests."""
        started = time.perf_counter()
        if self.is_async:
            self.loop.run_until_complete(self._batch(self.done, n))
        else:
            for i in range(self.done, self.done + n):
                self.loop.run_until_complete(self._go(*self._request(i)))
        self.done += n
        return (time.perf_counter() - started) / n * 1e6


def instances(framework: str, settings: dict[str, Any] | None, count: int) -> list[Any]:
    make, caller = ((flask_app, wsgi_caller) if framework == "flask"
                    else (fastapi_app, asgi_caller))
    if settings is None:
        return [caller(make(None)) for _ in range(count)]
    return [caller(make({**settings, "instance_id": f"bench-{n}"})) for n in range(count)]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--requests", type=int, default=500, help="per run and round")
    parser.add_argument("--redis", default=os.environ.get("SESSIONKIT_BENCH_REDIS_URL",
                                                          "redis://127.0.0.1:6379/0"))
    args = parser.parse_args()
    redis_url = args.redis + ("&" if "?" in args.redis else "?") + "key_prefix=bench:"
    modes: list[tuple[str, dict[str, Any] | None, bool]] = [
        ("none", None, False),
        ("memory", {"store": "memory://", "secret_key": KEY}, False),
        ("redis", {"store": redis_url, "secret_key": KEY}, True),
        ("hybrid", {"store": redis_url, "secret_key": KEY, "near_cache": True}, True),
    ]
    runs: dict[tuple[str, str, str], Browser] = {}

    def browser(framework: str, settings: dict[str, Any] | None, count: int) -> Browser:
        made = Browser(framework, instances(framework, settings, count))
        if settings is not None and not made.seeded:
            raise SystemExit(f"{framework} {settings['store']}: the seed request set no cookie")
        return made

    for framework in ("flask", "fastapi"):
        for name, settings, shared in modes:
            runs[framework, name, "affinity"] = browser(framework, settings, 1)
            if shared:
                runs[framework, name, "misrouted"] = browser(framework, settings, 2)
    # Rounds interleave the runs, so a burst of load from elsewhere on the machine hits them
    # all alike; each run reports its best round (the least disturbed).
    timings: dict[tuple[str, str, str], list[float]] = {key: [] for key in runs}
    for _ in range(args.rounds):
        for key, browser in runs.items():
            timings[key].append(browser.time(args.requests))
    print(f"{100 - 100 // WRITE_EVERY}% reads / {100 // WRITE_EVERY}% writes, ~1 KB session; "
          f"microseconds per request, best of {args.rounds} interleaved rounds of "
          f"{args.requests} requests; x = throughput relative to no sessions")
    print(f"{'framework':10} {'mode':8} {'affinity':>10} {'x':>6} {'misrouted':>10} {'x':>6}")
    for framework in ("flask", "fastapi"):
        baseline = min(timings[framework, "none", "affinity"])
        for name, _, shared in modes:
            home = min(timings[framework, name, "affinity"])
            line = f"{framework:10} {name:8} {home:8.1f}us {baseline / home:6.2f}"
            if shared:
                away = min(timings[framework, name, "misrouted"])
                line += f" {away:8.1f}us {baseline / away:6.2f}"
            print(line)


if __name__ == "__main__":
    main()
