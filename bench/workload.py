"""The workload: many clients, each with its own cookies, doing 90% reads and 10% writes.

``InProcess`` calls a WSGI or ASGI app directly (no network, no test client: per-request CPU
only, the way a server would call it); ``OverHttp`` drives a real server on loopback over
keep-alive connections. Both keep a cookie jar per client and apply every ``Set-Cookie``, so
cookie sessions (whose value changes on writes) are measured honestly.
"""

from __future__ import annotations

import asyncio
import io
import statistics
import sys
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

WRITE_EVERY = 10  # one request in ten writes


class Jar:
    """One client's cookies."""

    __slots__ = ("cookies",)

    def __init__(self) -> None:
        self.cookies: dict[str, str] = {}

    def header(self) -> str:
        return "; ".join(f"{name}={value}" for name, value in self.cookies.items())

    def update(self, set_cookies: Iterable[str]) -> None:
        for line in set_cookies:
            pair, _, attributes = line.partition(";")
            name, _, value = pair.strip().partition("=")
            lowered = attributes.lower()
            if "max-age=0" in lowered or "1970" in lowered or value in ("", "''", '""'):
                self.cookies.pop(name, None)
            else:
                self.cookies[name] = value


def plan(requests: int, clients: int, start: int = 0) -> list[tuple[int, str, str]]:
    """(client, method, path) for each request: round robin over clients, every tenth a write."""
    steps = []
    for n in range(start, start + requests):
        if n % WRITE_EVERY == WRITE_EVERY - 1:
            steps.append((n % clients, "POST", f"/cart/item-{n}"))
        else:
            steps.append((n % clients, "GET", "/cart"))
    return steps


@dataclass
class Result:
    seconds: float = 0.0
    requests: int = 0
    latencies: list[float] = field(default_factory=list)
    errors: int = 0

    def add(self, other: Result) -> None:
        self.seconds += other.seconds
        self.requests += other.requests
        self.latencies += other.latencies
        self.errors += other.errors

    @property
    def rate(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0

    def percentile(self, q: float) -> float:
        """Microseconds."""
        if not self.latencies:
            return 0.0
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1e6

    @property
    def median_us(self) -> float:
        return statistics.median(self.latencies) * 1e6 if self.latencies else 0.0


# --- in-process ---------------------------------------------------------------------------------
class InProcess:
    """Calls the app the way a server would; ``run`` plays a plan and times each request."""

    def __init__(self, app: Any, is_async: bool, clients: int) -> None:
        self.app = app
        self.is_async = is_async
        self.jars = [Jar() for _ in range(clients)]
        self.loop = asyncio.new_event_loop() if is_async else None

    def close(self) -> None:
        if self.loop is not None:
            self.loop.close()

    def seed(self, sessions: bool = True) -> None:
        """Every client logs in with a full cart (the session the workload then uses)."""
        self.run([(n, "POST", "/seed") for n in range(len(self.jars))])
        _check_seeded(self.jars, sessions)

    def run(self, steps: list[tuple[int, str, str]]) -> Result:
        if self.loop is not None:
            return self.loop.run_until_complete(self._arun(steps))
        return self._run(steps)

    def pick(self, jar: Jar) -> Any:
        """The app (instance) that serves this client's next request."""
        return self.app

    def _run(self, steps: list[tuple[int, str, str]]) -> Result:
        pick, jars = self.pick, self.jars
        latencies: list[float] = []
        errors = 0
        captured: list[Any] = []

        def start_response(status: str, headers: list[tuple[str, str]], exc: Any = None) -> Any:
            captured.append((status, headers))

        clock = time.perf_counter
        begin = clock()
        for client, method, path in steps:
            jar = jars[client]
            environ = _environ(method, path, jar.header())
            app = pick(jar)
            started = clock()
            body = app(environ, start_response)
            for _chunk in body:
                pass
            close = getattr(body, "close", None)
            if close is not None:
                close()
            latencies.append(clock() - started)
            status, headers = captured.pop()
            if not status.startswith("200"):
                errors += 1
            jar.update(v for k, v in headers if k.lower() == "set-cookie")
        return Result(clock() - begin, len(steps), latencies, errors)

    async def _arun(self, steps: list[tuple[int, str, str]]) -> Result:
        pick, jars = self.pick, self.jars
        latencies: list[float] = []
        errors = 0
        clock = time.perf_counter
        start: list[dict[str, Any]] = []

        async def receive() -> dict[str, Any]:
            return {"type": "http.request", "body": b"", "more_body": False}

        async def send(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                start.append(message)

        begin = clock()
        for client, method, path in steps:
            jar = jars[client]
            app = pick(jar)
            started = clock()
            await app(_scope(method, path, jar.header()), receive, send)
            latencies.append(clock() - started)
            message = start.pop()
            if message["status"] != 200:
                errors += 1
            jar.update(v.decode("latin-1") for k, v in message["headers"]
                       if k.lower() == b"set-cookie")
        return Result(clock() - begin, len(steps), latencies, errors)


class Misrouted(InProcess):
    """Two instances of one app, and a load balancer that always gets affinity wrong: each
    request goes to the instance its cookie does *not* name (hybrid mode's worst case)."""

    def __init__(self, apps: dict[str, Any], is_async: bool, clients: int) -> None:
        super().__init__(None, is_async, clients)
        self.apps = apps
        self.first = next(iter(apps.values()))

    def pick(self, jar: Jar) -> Any:
        value = jar.cookies.get("session")
        if value is None:
            return self.first
        route = value.rpartition(".")[2]
        return next(app for name, app in self.apps.items() if name != route)


def _check_seeded(jars: list[Jar], sessions: bool) -> None:
    missing = sum(1 for jar in jars if not jar.cookies)
    if sessions and missing:
        raise RuntimeError(f"{missing} clients got no session cookie from /seed")


def _environ(method: str, path: str, cookie: str) -> dict[str, Any]:
    environ = {
        "REQUEST_METHOD": method, "SCRIPT_NAME": "", "PATH_INFO": path, "QUERY_STRING": "",
        "SERVER_NAME": "bench", "SERVER_PORT": "80", "SERVER_PROTOCOL": "HTTP/1.1",
        "REMOTE_ADDR": "127.0.0.1", "HTTP_HOST": "bench", "CONTENT_LENGTH": "0",
        "wsgi.version": (1, 0), "wsgi.url_scheme": "http", "wsgi.input": io.BytesIO(),
        "wsgi.errors": sys.stderr, "wsgi.multithread": False, "wsgi.multiprocess": False,
        "wsgi.run_once": False,
    }
    if cookie:
        environ["HTTP_COOKIE"] = cookie
    return environ


def _scope(method: str, path: str, cookie: str) -> dict[str, Any]:
    headers = [(b"host", b"bench")]
    if cookie:
        headers.append((b"cookie", cookie.encode("latin-1")))
    return {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1",
            "method": method, "scheme": "http", "path": path, "raw_path": path.encode(),
            "query_string": b"", "root_path": "", "headers": headers,
            "client": ("127.0.0.1", 1), "server": ("bench", 80)}


# --- over HTTP ----------------------------------------------------------------------------------
class OverHttp:
    """A bounded load generator: ``connections`` keep-alive connections, each serving its
    share of the clients in turn."""

    def __init__(self, port: int, clients: int, connections: int) -> None:
        self.port = port
        self.jars = [Jar() for _ in range(clients)]
        self.connections = connections

    def seed(self, sessions: bool = True) -> None:
        asyncio.run(self._play([(n, "POST", "/seed") for n in range(len(self.jars))]))
        _check_seeded(self.jars, sessions)

    def run(self, steps: list[tuple[int, str, str]]) -> Result:
        return asyncio.run(self._play(steps))

    async def _play(self, steps: list[tuple[int, str, str]]) -> Result:
        shares: list[list[tuple[int, str, str]]] = [[] for _ in range(self.connections)]
        for step in steps:
            shares[step[0] % self.connections].append(step)
        results = [Result() for _ in shares]
        begin = time.perf_counter()
        await asyncio.gather(*(self._connection(share, result)
                               for share, result in zip(shares, results, strict=True)))
        total = Result(time.perf_counter() - begin)
        for result in results:
            total.requests += result.requests
            total.latencies += result.latencies
            total.errors += result.errors
        return total

    async def _connection(self, steps: list[tuple[int, str, str]], result: Result) -> None:
        if not steps:
            return
        reader, writer = await asyncio.open_connection("127.0.0.1", self.port)
        try:
            for client, method, path in steps:
                jar = self.jars[client]
                cookie = jar.header()
                request = (f"{method} {path} HTTP/1.1\r\nHost: bench\r\nContent-Length: 0\r\n"
                           + (f"Cookie: {cookie}\r\n" if cookie else "") + "\r\n")
                started = time.perf_counter()
                writer.write(request.encode("latin-1"))
                head = await reader.readuntil(b"\r\n\r\n")
                lines = head.decode("latin-1").split("\r\n")
                status = int(lines[0].split()[1])
                length = 0
                set_cookies = []
                for line in lines[1:]:
                    name, _, value = line.partition(":")
                    name = name.strip().lower()
                    if name == "content-length":
                        length = int(value)
                    elif name == "set-cookie":
                        set_cookies.append(value.strip())
                await reader.readexactly(length)
                result.latencies.append(time.perf_counter() - started)
                result.requests += 1
                if status != 200:
                    result.errors += 1
                jar.update(set_cookies)
        finally:
            writer.close()
