"""The dashboard's HTTP side: one framework-free handler, and thin ASGI and WSGI glue.

Routes, relative to where the app is mounted: ``GET /`` the page, ``GET /snapshot.json`` the
counters, ``POST /stop/<instance>`` (only with a ``control``: the cluster demo). Disabled, every
route answers 404 as if nothing were mounted. With a token, every route wants it as
``Authorization: Bearer <token>`` or ``?token=<token>``.
"""

from __future__ import annotations

import hmac
import ipaddress
import json
import re
from collections.abc import Awaitable, Callable, Iterable, MutableMapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs

from .page import PAGE

Snapshot = Callable[[], dict[str, Any]]
#: Stops the named instance; returns what to answer (JSON) or raises ``LookupError``.
Control = Callable[[str], dict[str, Any]]
Reply = tuple[int, list[tuple[str, str]], bytes]

_STOP_RE = re.compile(r"^/stop/([A-Za-z0-9._-]{1,64})$")
#: Sent by the page with every control request: a cross-site form cannot set it, and a
#: cross-site fetch that does needs a CORS preflight nobody answers.
CONTROL_HEADER = "x-sessionkit-dashboard"
_NO_STORE = [("cache-control", "no-store"), ("x-content-type-options", "nosniff")]


@dataclass(frozen=True, slots=True)
class Request:
    method: str
    path: str
    query: str
    headers: dict[str, str]
    client: str | None


def _json(status: int, payload: dict[str, Any]) -> Reply:
    body = json.dumps(payload, separators=(",", ":")).encode()
    return status, [("content-type", "application/json"), *_NO_STORE], body


def _is_loopback(host: str | None) -> bool:
    try:
        return host is not None and ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class Dashboard:
    """The dashboard over a ``snapshot`` function. Use ``asgi_app``/``wsgi_app`` to build one
    for an engine; this class is for custom sources such as an aggregator of instances."""

    def __init__(self, snapshot: Snapshot, *, enabled: bool = False, token: str | None = None,
                 control: Control | None = None) -> None:
        if token is not None and len(token) < 16:
            raise ValueError("the dashboard token must be at least 16 characters")
        self.snapshot = snapshot
        self.enabled = enabled
        self.control = control
        self._token = token.encode() if token is not None else None

    def authorized(self, request: Request) -> bool:
        if self._token is None:
            return True
        offered = ""
        scheme, _, value = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() == "bearer":
            offered = value.strip()
        else:
            offered = parse_qs(request.query).get("token", [""])[0]
        return hmac.compare_digest(offered.encode(), self._token)

    def handle(self, request: Request) -> Reply:
        if not self.enabled:
            return 404, [("content-type", "text/plain; charset=utf-8")], b"Not Found"
        if not self.authorized(request):
            status, headers, body = _json(401, {"error": "a valid dashboard token is needed"})
            return status, [*headers, ("www-authenticate", "Bearer")], body
        path = request.path or "/"
        if path == "/":
            if request.method not in ("GET", "HEAD"):
                return _json(405, {"error": "GET only"})
            return 200, [("content-type", "text/html; charset=utf-8"), *_NO_STORE,
                         ("content-security-policy", "default-src 'self'; "
                          "script-src 'unsafe-inline'; style-src 'unsafe-inline'"),
                         ], PAGE.encode()
        if path == "/snapshot.json":
            if request.method not in ("GET", "HEAD"):
                return _json(405, {"error": "GET only"})
            return _json(200, self.snapshot())
        stop = _STOP_RE.match(path)
        if stop is not None and self.control is not None:
            return self._stop(request, stop.group(1))
        return _json(404, {"error": "not found"})

    def _stop(self, request: Request, instance: str) -> Reply:
        if request.method != "POST":
            return _json(405, {"error": "POST only"})
        if not _is_loopback(request.client):
            return _json(403, {"error": "instances can only be stopped from this machine"})
        if request.headers.get(CONTROL_HEADER) != "1":
            return _json(403, {"error": f"send {CONTROL_HEADER}: 1 (the page does)"})
        assert self.control is not None
        try:
            return _json(200, self.control(instance))
        except LookupError:
            return _json(404, {"error": f"no instance {instance}"})

    # --- glue ---------------------------------------------------------------------------------
    async def asgi(self, scope: MutableMapping[str, Any],
                   receive: Callable[[], Awaitable[MutableMapping[str, Any]]],
                   send: Callable[[MutableMapping[str, Any]], Awaitable[None]]) -> None:
        """The ASGI application (``app.mount("/_sessionkit", dashboard.asgi)``)."""
        if scope["type"] != "http":
            return
        path, root = scope["path"], scope.get("root_path", "")
        if root and path.startswith(root):  # Starlette's Mount keeps the prefix in the path
            path = path[len(root):]
        client = scope.get("client")
        status, headers, body = self.handle(Request(
            scope["method"], path, scope.get("query_string", b"").decode("latin-1"),
            {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]},
            client[0] if client else None,
        ))
        await send({"type": "http.response.start", "status": status,
                    "headers": [(k.encode(), v.encode()) for k, v in
                                [*headers, ("content-length", str(len(body)))]]})
        await send({"type": "http.response.body",
                    "body": b"" if scope["method"] == "HEAD" else body})

    def wsgi(self, environ: dict[str, Any], start_response: Callable[..., Any],
             ) -> Iterable[bytes]:
        """The WSGI application (mount it with werkzeug's ``DispatcherMiddleware``)."""
        headers = {key[5:].replace("_", "-").lower(): value
                   for key, value in environ.items() if key.startswith("HTTP_")}
        status, out, body = self.handle(Request(
            environ["REQUEST_METHOD"], environ.get("PATH_INFO", ""),
            environ.get("QUERY_STRING", ""), headers, environ.get("REMOTE_ADDR"),
        ))
        phrase = _PHRASES.get(status, "")
        start_response(f"{status} {phrase}", [*out, ("content-length", str(len(body)))])
        return [b"" if environ["REQUEST_METHOD"] == "HEAD" else body]


_PHRASES = {200: "OK", 401: "Unauthorized", 403: "Forbidden", 404: "Not Found",
            405: "Method Not Allowed"}


class AsgiMount:
    """ASGI middleware that serves ``dashboard`` (an ASGI app) under ``path``, ahead of the
    app it wraps. Added after the session middleware it runs first, so the page's polls never
    load a session nor count as lookups::

        app.add_middleware(AsgiMount, path="/_sessionkit", dashboard=asgi_app(engine, ...))
    """

    def __init__(self, app: Any, *, path: str, dashboard: Any) -> None:
        self.app = app
        self.path = "/" + path.strip("/")
        self.dashboard = dashboard

    async def __call__(self, scope: MutableMapping[str, Any], receive: Any, send: Any) -> None:
        path = scope.get("path", "")
        if scope["type"] == "http" and (path == self.path or path.startswith(self.path + "/")):
            inner = {**scope, "path": path[len(self.path):] or "/", "root_path": ""}
            await self.dashboard(inner, receive, send)
            return
        await self.app(scope, receive, send)
