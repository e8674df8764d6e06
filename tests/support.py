"""Test helpers: a controllable clock, one client API over Flask's and Starlette's test
clients, and the rule for tests that need real services."""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass, field
from typing import Any, NoReturn

import pytest

KEY = "test-secret-key-0123456789-abcdefghijklmnop"
OLD_KEY = "an-older-secret-key-0123456789-abcdefghijkl"
INSTANCE = "inst-a"
FRAMEWORKS = ["flask", "fastapi"]


class FakeClock:
    """Injectable ``clock``: time only moves when a test says so."""

    def __init__(self, start: float = 1_800_000_000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def unavailable(message: str) -> NoReturn:
    """Skip a test whose service or program is missing; fail it where they are required
    (SESSIONKIT_REQUIRE_SERVICES=1, as in CI)."""
    if os.environ.get("SESSIONKIT_REQUIRE_SERVICES") == "1":
        pytest.fail(message + " (SESSIONKIT_REQUIRE_SERVICES=1)")
    pytest.skip(message)


def service_url(variable: str, what: str) -> str:
    """The URL of a real service from the environment; skip (or fail in CI) without it."""
    url = os.environ.get(variable)
    if url:
        return url
    unavailable(f"{what} not configured: set {variable} to run this test")


def require_binary(name: str, install: str) -> str:
    """The path of a program the test runs (also found in /usr/sbin); skip or fail without it."""
    found = shutil.which(name) or shutil.which(name, path="/usr/sbin:/sbin")
    if found:
        return found
    unavailable(f"{name} is not installed ({install})")


@dataclass
class Reply:
    status: int
    body: bytes
    headers: list[tuple[str, str]]

    @property
    def json(self) -> Any:
        return json.loads(self.body)

    def header(self, name: str) -> str | None:
        values = self.headers_named(name)
        return values[0] if values else None

    def headers_named(self, name: str) -> list[str]:
        return [v for k, v in self.headers if k.lower() == name.lower()]

    @property
    def set_cookies(self) -> list[str]:
        return self.headers_named("set-cookie")


@dataclass
class ShopClient:
    """A browser-like client (keeps cookies) for either framework, plus raw requests."""

    framework: str
    app: Any
    https: bool = False
    cookie_name: str = "session"
    _client: Any = field(init=False)
    _raw: Any = field(init=False)

    def __post_init__(self) -> None:
        scheme = "https" if self.https else "http"
        if self.framework in ("flask", "wsgi"):
            from werkzeug.test import Client

            self._client = Client(self.app)
            self._raw = Client(self.app, use_cookies=False)
            self._base = f"{scheme}://localhost"
        else:
            from starlette.testclient import TestClient

            self._client = TestClient(self.app, base_url=f"{scheme}://testserver")
            self._raw = TestClient(self.app, base_url=f"{scheme}://testserver")
            self._base = ""

    def _send(self, client: Any, method: str, path: str, body: Any, headers: Any) -> Reply:
        if self.framework != "fastapi":
            kwargs: dict[str, Any] = {"method": method, "headers": headers or {}}
            if body is not None:
                kwargs["json"] = body
            response = client.open(path, base_url=self._base, **kwargs)
            return Reply(response.status_code, response.get_data(), list(response.headers.items()))
        response = client.request(method, path, json=body, headers=headers)
        return Reply(response.status_code, response.content, list(response.headers.multi_items()))

    def call(self, method: str, path: str, body: Any = None) -> Reply:
        """A request that sends and keeps cookies, like a browser."""
        return self._send(self._client, method, path, body, None)

    def raw(
        self, method: str, path: str, cookie: str | None = None, body: Any = None, **headers: str
    ) -> Reply:
        """A request with exactly the ``Cookie`` header given and no cookie jar."""
        if self.framework == "fastapi":
            self._raw.cookies.clear()
        sent = {k.replace("_", "-"): v for k, v in headers.items()}
        if cookie is not None:
            sent["Cookie"] = cookie
        return self._send(self._raw, method, path, body, sent)

    @property
    def cookie(self) -> str | None:
        """The session cookie's value in the jar."""
        if self.framework != "fastapi":
            found = self._client.get_cookie(self.cookie_name)
            return found.value if found is not None else None
        value: str | None = self._client.cookies.get(self.cookie_name)
        return value

    def forget_cookies(self) -> None:
        if self.framework != "fastapi":
            self._client._cookies.clear()
        else:
            self._client.cookies.clear()


def cookie_attributes(header: str) -> dict[str, str]:
    """The attributes of a ``Set-Cookie`` value, by lower-case name (each framework spells
    and orders them its own way)."""
    found = {}
    for part in header.split(";")[1:]:
        name, _, value = part.strip().partition("=")
        found[name.lower()] = value
    return found


def deletes_cookie(header: str, name: str = "session") -> bool:
    """Whether a ``Set-Cookie`` value makes the browser forget cookie ``name``."""
    attributes = cookie_attributes(header)
    return header.startswith(name + "=") and (
        attributes.get("max-age") == "0" or "1970" in attributes.get("expires", ""))


def make_app(framework: str, config: Any) -> Any:
    if framework == "flask":
        from examples.flask_app import create_app as create_flask

        return create_flask(config)
    from examples.fastapi_app import create_app as create_fastapi

    return create_fastapi(config)


def engine_of(app: Any) -> Any:
    """The SessionEngine behind an example app."""
    if hasattr(app, "extensions"):
        return app.extensions["sessionkit"]
    return app.state.sessionkit


def call_asgi(app: Any, path: str, headers: list[tuple[bytes, bytes]],
              scheme: str = "http") -> tuple[int, list[tuple[bytes, bytes]], bytes]:
    """One raw HTTP request through an ASGI app, byte-exact headers included."""
    import asyncio

    messages: list[dict[str, Any]] = []
    scope = {
        "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "GET",
        "scheme": scheme, "path": path, "raw_path": path.encode(), "query_string": b"",
        "root_path": "", "headers": headers, "client": ("127.0.0.1", 1), "server": ("t", 80),
    }

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        messages.append(message)

    asyncio.run(app(scope, receive, send))
    start = next(m for m in messages if m["type"] == "http.response.start")
    body = b"".join(m.get("body", b"") for m in messages if m["type"] == "http.response.body")
    return start["status"], list(start.get("headers", [])), body


def call_wsgi(app: Any, path: str, cookie: str | None) -> tuple[str, list[tuple[str, str]], bytes]:
    """One raw request through a WSGI app with ``HTTP_COOKIE`` exactly as given."""
    from werkzeug.test import EnvironBuilder

    environ = EnvironBuilder(path=path).get_environ()
    if cookie is not None:
        environ["HTTP_COOKIE"] = cookie
    captured: list[Any] = []

    def start_response(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
        captured[:] = [status, headers]
        return lambda data: None

    chunks = app(environ, start_response)
    try:
        body = b"".join(chunks)
    finally:
        close = getattr(chunks, "close", None)
        if close is not None:
            close()
    return captured[0], captured[1], body
