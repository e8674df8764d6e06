"""The dashboard's HTTP side: one framework-free handler, and thin ASGI and WSGI glue.

Routes, relative to where the app is mounted: ``GET /`` the page, ``GET /snapshot.json`` the
counters, ``POST /stop/<instance>`` (only with a ``control``, which needs a token: the cluster
demo). Disabled, every route answers 404 as if nothing were mounted.

- With a token, the counters and the controls want ``Authorization: Bearer <token>``, never a
  ``?token=`` (URLs land in access logs, proxies and browser history). The page itself is
  static, holds no data and is served to anyone: opened as ``.../#token=<token>`` (a fragment
  is never sent), its script keeps the token for the tab and drops it from the address bar.
- Without a token it warns at startup. Without a token, and whenever it has controls, it
  answers only requests addressed to ``localhost`` or an IP address: a DNS-rebinding page,
  whose ``Host`` is its own name, gets 403. ``allowed_hosts`` lists the host names to answer
  instead (with or without a token).
- Every response forbids framing (``X-Frame-Options: DENY``, ``frame-ancestors 'none'``).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import ipaddress
import json
import logging
import re
from collections.abc import Awaitable, Callable, Iterable, MutableMapping
from dataclasses import dataclass
from typing import Any

from .page import PAGE

logger = logging.getLogger("sessionkit")

Snapshot = Callable[[], dict[str, Any]]
#: Stops the named instance; returns what to answer (JSON) or raises ``LookupError``.
Control = Callable[[str], dict[str, Any]]
Reply = tuple[int, list[tuple[str, str]], bytes]

_STOP_RE = re.compile(r"^/stop/([A-Za-z0-9._-]{1,64})$")
#: Sent by the page with every control request: a cross-site form cannot set it, and a
#: cross-site fetch that does needs a CORS preflight nobody answers.
CONTROL_HEADER = "x-sessionkit-dashboard"
_SAFE = [("cache-control", "no-store"), ("x-content-type-options", "nosniff"),
         ("x-frame-options", "DENY"), ("referrer-policy", "no-referrer")]


def _inline_hash(tag: str) -> str:
    """The CSP source of the page's one inline ``<tag>``: only that exact code runs."""
    body = PAGE.split(f"<{tag}>", 1)[1].split(f"</{tag}>", 1)[0]
    digest = base64.b64encode(hashlib.sha256(body.encode()).digest()).decode()
    return f"'sha256-{digest}'"


_PAGE_POLICY = (f"default-src 'self'; script-src {_inline_hash('script')}; "
                f"style-src {_inline_hash('style')}; frame-ancestors 'none'; base-uri 'none'; "
                f"form-action 'none'")
_DATA_POLICY = "default-src 'none'; frame-ancestors 'none'"


@dataclass(frozen=True, slots=True)
class Request:
    method: str
    path: str
    query: str
    headers: dict[str, str]
    client: str | None


def _json(status: int, payload: dict[str, Any]) -> Reply:
    body = json.dumps(payload, separators=(",", ":")).encode()
    return status, [("content-type", "application/json"), *_SAFE,
                    ("content-security-policy", _DATA_POLICY)], body


def _is_loopback(host: str | None) -> bool:
    try:
        return host is not None and ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _host_name(header: str) -> str:
    """The host of a ``Host`` header, lower case, without port or trailing dot."""
    value = header.strip().lower()
    if value.startswith("["):  # [::1]:8080
        end = value.find("]")
        return value[1:end] if end > 0 else value
    name, colon, port = value.rpartition(":")
    if colon and port.isdigit() and ":" not in name:
        value = name
    return value.rstrip(".")


def _local_or_address(name: str) -> bool:
    """A name no DNS-rebinding page can have: ``localhost`` (and ``*.localhost``, which
    browsers resolve themselves) or an IP address (an attacker's page has a domain name)."""
    if name == "localhost" or name.endswith(".localhost"):
        return True
    try:
        ipaddress.ip_address(name)
    except ValueError:
        return False
    return True


class Dashboard:
    """The dashboard over a ``snapshot`` function. Use ``asgi_app``/``wsgi_app`` to build one
    for an engine; this class is for custom sources such as an aggregator of instances."""

    def __init__(self, snapshot: Snapshot, *, enabled: bool = False, token: str | None = None,
                 control: Control | None = None,
                 allowed_hosts: Iterable[str] | None = None) -> None:
        if token is not None and len(token) < 16:
            raise ValueError("the dashboard token must be at least 16 characters")
        if control is not None and token is None:
            raise ValueError("a dashboard that can stop instances needs a token "
                             "(at least 16 characters)")
        self.snapshot = snapshot
        self.enabled = enabled
        self.control = control
        self._token = token.encode() if token is not None else None
        self._hosts = (frozenset(_host_name(h) for h in allowed_hosts)
                       if allowed_hosts is not None else None)
        if enabled and token is None:
            logger.warning(
                "sessionkit: the dashboard is enabled without a token: whoever can reach it "
                "reads its counters. It answers only requests for localhost or an IP address%s; "
                "set token=<at least 16 random characters> (and open it as .../#token=<token>)",
                "" if self._hosts is None else " or " + ", ".join(sorted(self._hosts)),
            )

    def authorized(self, request: Request) -> bool:
        """Whether the request carries the token (``Authorization: Bearer``; never a query
        parameter), or no token is configured."""
        if self._token is None:
            return True
        scheme, _, value = request.headers.get("authorization", "").partition(" ")
        offered = value.strip() if scheme.lower() == "bearer" else ""
        return hmac.compare_digest(offered.encode(), self._token)

    def host_allowed(self, request: Request) -> bool:
        """Whether the request is addressed to a host this dashboard answers for."""
        header = request.headers.get("host", "")
        if not header.strip():
            return True  # no Host: not a browser (every browser sends it)
        name = _host_name(header)
        if self._hosts is not None:
            return name in self._hosts
        if self._token is not None and self.control is None:
            return True  # the token proves who asks; a rebinding page cannot have it
        return _local_or_address(name)

    def handle(self, request: Request) -> Reply:
        if not self.enabled:
            return 404, [("content-type", "text/plain; charset=utf-8")], b"Not Found"
        if not self.host_allowed(request):
            return _json(403, {"error": "this dashboard does not answer for that host name"})
        path = request.path or "/"
        if path == "/":  # static: holds no data, and its script brings the token
            if request.method not in ("GET", "HEAD"):
                return _json(405, {"error": "GET only"})
            return 200, [("content-type", "text/html; charset=utf-8"), *_SAFE,
                         ("content-security-policy", _PAGE_POLICY)], PAGE.encode()
        if not self.authorized(request):
            status, headers, body = _json(401, {"error": "a valid dashboard token is needed"})
            return status, [*headers, ("www-authenticate", "Bearer")], body
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
