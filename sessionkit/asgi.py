"""ASGI middleware: ``scope["session"]`` is a sessionkit Session, so Starlette's and FastAPI's
own ``request.session`` is one too.

Starlette's ``SessionMiddleware`` arguments are accepted as they are (``secret_key``,
``session_cookie``, ``max_age``, ``path``, ``same_site``, ``https_only``, ``domain``,
``partitioned``), so replacing the import line is the whole migration: with them, the cookies
Starlette's middleware issued are imported once (nobody is logged out), and a secret shorter
than sessionkit asks for is accepted with a warning, because the app already uses it.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any, Literal, Unpack

from ._http import UNAVAILABLE_BODY, add_vary_cookie, unavailable
from .config import MIN_SECRET_BYTES, SessionConfig, SessionOptions
from .cookies import CookieStyle
from .engine import SessionEngine
from .errors import SessionKitError, StoreUnavailable
from .session import Session, UnavailableSession

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]
logger = logging.getLogger("sessionkit")

#: Starlette's ``SessionMiddleware`` arguments -> sessionkit settings.
_STARLETTE_ARGUMENTS = ("session_cookie", "max_age", "path", "same_site", "https_only",
                        "domain", "partitioned")


class MiddlewareOptions(SessionOptions, total=False):
    """sessionkit's settings, and Starlette's ``SessionMiddleware`` arguments."""

    session_cookie: str
    max_age: int | None
    path: str
    same_site: Literal["lax", "strict", "none"]
    https_only: bool
    domain: str | None
    partitioned: bool


def _cookie_header(headers: list[tuple[bytes, bytes]]) -> str | None:
    """The request's cookies as one header (HTTP/2 may split them over several)."""
    found: str | None = None
    for name, value in headers:
        if name == b"cookie":
            text = value.decode("latin-1")
            found = text if found is None else f"{found}; {text}"
    return found


class SessionMiddleware:
    """``app.add_middleware(SessionMiddleware, store="redis://...", secret_key=KEY)``.

    A configuration error is raised at once when the middleware is built outside an event
    loop. Starlette builds its middleware lazily, inside the server's loop, where uvicorn
    would take an exception for "lifespan unsupported" and then answer 500 to everything: there
    the error is logged as critical, fails the lifespan startup (the server exits) and is
    raised again by every request. Build a ``SessionConfig`` at import time to fail earlier.
    """

    def __init__(
        self,
        app: ASGIApp,
        config: SessionConfig | str | None = None,
        *,
        engine: SessionEngine | None = None,
        **options: Unpack[MiddlewareOptions],
    ) -> None:
        self.app = app
        self.error: SessionKitError | None = None
        self.engine: SessionEngine
        try:
            self.engine = engine if engine is not None else SessionEngine(
                config, cookie_style=CookieStyle.STARLETTE,
                **_starlette_settings(dict(options)))
        except SessionKitError as error:
            if not _in_event_loop():
                raise
            logger.critical("sessionkit: the session middleware cannot start: %s", error)
            self.error = error
            return
        self.engine.lifecycle.install_exit_hooks()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind == "lifespan":
            if self.error is not None:
                await self._fail_startup(receive, send)
                return
            await self.app(scope, receive, self._lifespan_send(send))
            return
        if kind != "http" and kind != "websocket":
            await self.app(scope, receive, send)
            return
        if self.error is not None:
            raise self.error
        engine = self.engine
        engine.lifecycle.request_started()
        cookie = _cookie_header(scope["headers"])
        session: Session
        try:
            if kind == "websocket":
                session = await engine.aload_websocket(cookie)
            else:  # (in this process's memory: no coroutine to make for it)
                session = engine.load(cookie) if engine.inline else await engine.aload(cookie)
        except StoreUnavailable as error:
            session = UnavailableSession(error)
        scope["session"] = session
        if kind == "websocket":
            await self._websocket(scope, receive, send, session)
            return

        https = scope.get("scheme") == "https"
        started = False

        async def send_with_session(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start" and not isinstance(
                    session, UnavailableSession):
                status = message["status"]
                result = (engine.commit(session, https=https, status=status) if engine.inline
                          else await engine.acommit(session, https=https, status=status))
                if result.vary or result.set_cookies or result.headers:
                    headers = list(message.get("headers", ()))
                    if result.vary:
                        _merge_vary(headers)
                    if result.set_cookies:
                        headers.extend((b"set-cookie", c.encode("latin-1"))
                                       for c in result.set_cookies)
                    if result.headers:
                        headers.extend((k.lower().encode(), v.encode()) for k, v in result.headers)
                    message["headers"] = headers
            started = True
            await send(message)

        try:
            await self.app(scope, receive, send_with_session)
        except StoreUnavailable as error:
            if started:
                raise
            headers = [
                (k.lower().encode(), v.encode())
                for k, v in unavailable(error, engine.config.retry_after)
            ]
            await send({"type": "http.response.start", "status": 503, "headers": headers})
            await send({"type": "http.response.body", "body": UNAVAILABLE_BODY})

    async def _websocket(self, scope: Scope, receive: Receive, send: Send,
                         session: Session) -> None:
        """Save the session when the app closes the connection, before the close frame
        leaves (a client that sees the close may go on at once, and a test client cancels
        the app), or else when the app returns."""
        engine = self.engine
        pending = not isinstance(session, UnavailableSession)

        async def send_closing(message: Message) -> None:
            nonlocal pending
            if pending and message["type"] in ("websocket.close", "websocket.http.response.start"):
                pending = False
                await _uncancelled(engine.acommit_websocket(session))
            await send(message)

        await self.app(scope, receive, send_closing)
        if pending:
            pending = False
            await _uncancelled(engine.acommit_websocket(session))

    async def _fail_startup(self, receive: Receive, send: Send) -> None:
        """A middleware that could not start fails the lifespan startup: the server exits
        with the error instead of serving 500s. The error is raised after the report, as
        Starlette's router does (a test client then raises it instead of waiting for a
        shutdown that never comes; uvicorn, told of the failure, exits quietly)."""
        assert self.error is not None
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.failed",
                        "message": f"sessionkit: {self.error}"})
        raise self.error

    def _lifespan_send(self, send: Send) -> Send:
        """Drain local sessions (``drain_to``) when the server shuts the app down."""

        async def send_after_draining(message: Message) -> None:
            if message["type"] == "lifespan.shutdown.complete" and self.error is None:
                try:
                    await self.engine.adrain()
                except Exception:
                    logger.exception("sessionkit: draining sessions at shutdown failed")
            await send(message)

        return send_after_draining


async def _uncancelled(work: Awaitable[None]) -> None:
    """Finish ``work`` even if the connection's task is being cancelled (a logout must reach
    the store): shielded with anyio, which Starlette and FastAPI run on, when it is there."""
    try:
        import anyio
    except ImportError:  # a bare ASGI app on a server without anyio
        await work
        return
    with anyio.CancelScope(shield=True):
        await work


def _in_event_loop() -> bool:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True


def _starlette_settings(kwargs: dict[str, Any]) -> dict[str, Any]:
    """sessionkit settings for Starlette's ``SessionMiddleware`` arguments, where given."""
    given = {name: kwargs.pop(name) for name in _STARLETTE_ARGUMENTS if name in kwargs}
    secret = kwargs.get("secret_key")
    legacy_secret = secret is not None and not isinstance(secret, str | bytes | list | tuple)
    if legacy_secret:  # starlette.datastructures.Secret
        secret = kwargs["secret_key"] = str(secret)
    short = isinstance(secret, str | bytes) and len(
        secret.encode() if isinstance(secret, str) else secret) < MIN_SECRET_BYTES
    if not given and not legacy_secret and not short:
        return kwargs
    settings = dict(kwargs)
    if short:
        assert isinstance(secret, str | bytes)
        raw = secret.encode() if isinstance(secret, str) else secret
        logger.warning(
            "sessionkit: secret_key is %d bytes, under the %d sessionkit asks for; it is used "
            "because the app already signs its sessions with it, but a secret that short can "
            "be guessed. Generate one with: "
            "python -c \"import secrets; print(secrets.token_urlsafe(48))\"",
            len(raw), MIN_SECRET_BYTES)
        settings["secret_key"] = hashlib.sha256(b"sessionkit/v1 short-secret " + raw).digest()
    if "session_cookie" in given:
        settings.setdefault("cookie_name", given["session_cookie"])
    if "path" in given:
        settings.setdefault("cookie_path", given["path"])
    if "domain" in given:
        settings.setdefault("cookie_domain", given["domain"])
    if "same_site" in given:
        settings.setdefault("cookie_samesite", given["same_site"])
    if "https_only" in given:
        settings.setdefault("cookie_secure", bool(given["https_only"]))
    if "partitioned" in given:
        settings.setdefault("cookie_partitioned", given["partitioned"])
    max_age = given.get("max_age", 14 * 24 * 3600)
    if max_age is None:
        settings.setdefault("cookie_persistent", False)
    else:
        settings.setdefault("idle_timeout", max_age)
        settings.setdefault("cookie_max_age", max_age)
        settings.setdefault("absolute_timeout", max(max_age, 30 * 86400))
    if secret is not None and "migrate_from" not in settings:
        # The cookies Starlette's middleware issued: imported once, nobody is logged out.
        settings["migrate_from"] = "starlette-cookie"
        settings["migrate_secret_key"] = secret
        settings["migrate_cookie_name"] = settings.get("cookie_name", "session")
        if max_age is not None:
            settings["migrate_max_age"] = max_age
    return settings


def _merge_vary(headers: list[tuple[bytes, bytes]]) -> None:
    for index, (name, value) in enumerate(headers):
        if name.lower() == b"vary":
            merged = add_vary_cookie(value.decode("latin-1"))
            headers[index] = (name, merged.encode("latin-1"))
            return
    headers.append((b"vary", b"Cookie"))
