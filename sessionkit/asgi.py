"""ASGI middleware: ``scope["session"]`` is a sessionkit Session, so Starlette's and FastAPI's
own ``request.session`` is one too."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from ._http import UNAVAILABLE_BODY, add_vary_cookie, saves_session, unavailable
from .config import SessionConfig
from .engine import SessionEngine
from .errors import StoreUnavailable
from .session import Session, UnavailableSession

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]
logger = logging.getLogger("sessionkit")


def _cookie_header(headers: list[tuple[bytes, bytes]]) -> str | None:
    found = [value for name, value in headers if name == b"cookie"]
    if not found:
        return None
    return "; ".join(v.decode("latin-1") for v in found)


class SessionMiddleware:
    """``app.add_middleware(SessionMiddleware, store="redis://...", secret_key=KEY)``."""

    def __init__(
        self,
        app: ASGIApp,
        config: SessionConfig | str | None = None,
        *,
        engine: SessionEngine | None = None,
        **kwargs: Any,
    ) -> None:
        self.app = app
        self.engine = engine if engine is not None else SessionEngine(config, **kwargs)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind == "lifespan":
            await self.app(scope, receive, self._lifespan_send(send))
            return
        if kind != "http" and kind != "websocket":
            await self.app(scope, receive, send)
            return
        engine = self.engine
        session: Session
        try:
            session = await engine.aload(_cookie_header(scope["headers"]))
        except StoreUnavailable as error:
            session = UnavailableSession(error)
        scope["session"] = session
        if kind == "websocket":
            await self.app(scope, receive, send)
            if not isinstance(session, UnavailableSession) and session._key is not None:
                await engine.acommit(session)  # store-side changes only: no cookie to set
            return

        https = scope.get("scheme") == "https"
        started = False

        async def send_with_session(message: Message) -> None:
            nonlocal started
            if (message["type"] == "http.response.start"
                    and not isinstance(session, UnavailableSession)
                    and saves_session(message["status"])):
                result = await engine.acommit(session, https=https)
                if result.vary or result.set_cookies or result.headers:
                    headers = list(message.get("headers", ()))
                    if result.vary:
                        _merge_vary(headers)
                    headers.extend((b"set-cookie", c.encode("latin-1")) for c in result.set_cookies)
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


    def _lifespan_send(self, send: Send) -> Send:
        """Drain local sessions (``drain_to``) when the server shuts the app down."""

        async def send_after_draining(message: Message) -> None:
            if message["type"] == "lifespan.shutdown.complete":
                try:
                    await self.engine.adrain()
                except Exception:
                    logger.exception("sessionkit: draining sessions at shutdown failed")
            await send(message)

        return send_after_draining


def _merge_vary(headers: list[tuple[bytes, bytes]]) -> None:
    for index, (name, value) in enumerate(headers):
        if name.lower() == b"vary":
            merged = add_vary_cookie(value.decode("latin-1"))
            headers[index] = (name, merged.encode("latin-1"))
            return
    headers.append((b"vary", b"Cookie"))
