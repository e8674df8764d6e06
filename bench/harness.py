"""Shared bench plumbing: call WSGI/ASGI apps in-process with a prebuilt request and time
them. No network, no test client: what is measured is the per-request CPU of the app."""

from __future__ import annotations

import asyncio
import statistics
import time
from typing import Any


def wsgi_runner(app: Any, path: str, cookie: str | None, method: str = "GET") -> Any:
    from werkzeug.test import EnvironBuilder

    base = EnvironBuilder(path=path, method=method).get_environ()
    if cookie:
        base["HTTP_COOKIE"] = cookie

    def start_response(status: str, headers: Any, exc_info: Any = None) -> Any:
        return None

    def once() -> None:
        body = app(dict(base), start_response)
        b"".join(body)
        getattr(body, "close", lambda: None)()

    return once


def asgi_runner(app: Any, path: str, cookie: str | None, method: str = "GET") -> Any:
    headers = [(b"host", b"bench")]
    if cookie:
        headers.append((b"cookie", cookie.encode()))
    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": method,
             "scheme": "http", "path": path, "raw_path": path.encode(), "query_string": b"",
             "root_path": "", "headers": headers, "client": ("127.0.0.1", 1),
             "server": ("bench", 80)}

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        return None

    async def once() -> None:
        await app(dict(scope), receive, send)

    return once


def measure(run: Any, seconds: float, is_async: bool) -> float:
    """Microseconds per request: the median of 5 rounds of about ``seconds / 5`` each."""
    loop = asyncio.new_event_loop()

    async def batch(n: int) -> None:
        for _ in range(n):
            await run()

    rounds = []
    n = 200
    for _ in range(5):
        start = time.perf_counter()
        if is_async:
            loop.run_until_complete(batch(n))
        else:
            for _ in range(n):
                run()
        elapsed = time.perf_counter() - start
        rounds.append(elapsed / n * 1e6)
        n = max(200, int(n * (seconds / 5) / max(elapsed, 1e-6)))
    loop.close()
    return statistics.median(rounds)
